package gpg

import "errors"

// Verification errors. Each rejection reason has its own sentinel so that
// callers (the CLI, the registry's error-code mapping) can use errors.Is
// instead of matching strings. Returned errors wrap exactly one of these,
// plus the underlying go-crypto error where there is one.
var (
	// ErrTooLarge: the message, its decompressed form or its literal data
	// exceeds the limits (SPEC sections 1 and 2: clients cap a signature at
	// 4 MiB; CVE-2020-1702 class of unbounded reads).
	ErrTooLarge = errors.New("openpgp message too large")
	// ErrNotOpenPGP: the input does not start with an OpenPGP packet at all.
	ErrNotOpenPGP = errors.New("not an openpgp message")
	// ErrArmored: an ASCII-armored message. The wire format is the raw binary
	// message (SPEC section 1), and containers/image's openpgp backend cannot
	// read armor, so accepting it would store signatures clients reject.
	ErrArmored = errors.New("ascii-armored openpgp message; binary required")
	// ErrCleartextSigned: a cleartext-signed ("-----BEGIN PGP SIGNED
	// MESSAGE-----") text; rejected by SPEC section 3 step 1.
	ErrCleartextSigned = errors.New("cleartext-signed message")
	// ErrEncrypted: an encrypted message (with or without a signature inside);
	// rejected by SPEC section 3 step 1.
	ErrEncrypted = errors.New("encrypted openpgp message")
	// ErrUnsigned: literal data without any signature (gpg --store); rejected
	// by SPEC section 3 step 1.
	ErrUnsigned = errors.New("openpgp message is not signed")
	// ErrMultipleSignatures: more than one signature packet; rejected by SPEC
	// section 3 step 1, because which signature "counts" would be ambiguous.
	ErrMultipleSignatures = errors.New("openpgp message has more than one signature")
	// ErrMalformedMessage: any other deviation from
	// [compressed]{one-pass-signature, literal data, signature}: trailing or
	// unknown packets, detached signatures, old-style signature-first
	// messages, nested compression, one-pass/signature mismatches.
	ErrMalformedMessage = errors.New("malformed openpgp signed message")
	// ErrUnknownSigner: no key in the keyring can have made the signature.
	ErrUnknownSigner = errors.New("signature made by unknown key")
	// ErrKeyRevoked: the signer's primary key (or its primary user ID) is revoked.
	ErrKeyRevoked = errors.New("signing key is revoked")
	// ErrSubkeyRevoked: the signature was made by a revoked subkey. SPEC
	// section 3 step 2: a subkey counts as its primary key unless revoked,
	// whatever the signature's creation time (the fixture revocation reason is
	// "key compromised").
	ErrSubkeyRevoked = errors.New("signing subkey is revoked")
	// ErrKeyExpired: the signing key (primary or subkey) has expired.
	ErrKeyExpired = errors.New("signing key is expired")
	// ErrSignatureExpired: the signature has expired, or claims to be made in
	// the future.
	ErrSignatureExpired = errors.New("signature is expired")
	// ErrInvalidSignature: the signature does not verify (corrupt signature,
	// wrong key material, unparseable or unsupported signature packet).
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrWeakAlgorithm: a message hash (MD5, SHA-1, RIPEMD-160) or key size
	// that is no longer accepted. The v1 go-crypto API does not enforce these
	// itself; SHA-1 has practical chosen-prefix collisions ("SHA-1 is a
	// Shambles", 2020).
	ErrWeakAlgorithm = errors.New("weak cryptographic algorithm")
)

// Key loading and signing errors.
var (
	// ErrNoKeys: a keyring that was supplied contains no usable OpenPGP key.
	ErrNoKeys = errors.New("keyring contains no openpgp keys")
	// ErrKeyNotFound: no key matches the requested signing identity.
	ErrKeyNotFound = errors.New("signing key not found")
	// ErrAmbiguousKey: more than one key matches the requested signing identity.
	ErrAmbiguousKey = errors.New("signing key identity is ambiguous")
	// ErrNoSecretKey: the key is known, but only its public part.
	ErrNoSecretKey = errors.New("no secret key available")
	// ErrKeyUnusable: the key cannot sign now (no signing capability, expired or revoked).
	ErrKeyUnusable = errors.New("key cannot be used for signing")
	// ErrPassphraseRequired: the secret key is passphrase-protected and no passphrase was supplied.
	ErrPassphraseRequired = errors.New("passphrase required to unlock secret key")
	// ErrWrongPassphrase: the supplied passphrase does not unlock the secret key.
	ErrWrongPassphrase = errors.New("wrong passphrase for secret key")
)

// errPanic marks a panic recovered inside go-crypto. It is never expected;
// the fuzz target fails if it ever sees it.
var errPanic = errors.New("internal error: panic while processing openpgp data")
