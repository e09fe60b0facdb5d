package gpg

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"go.podman.io/image/v5/signature"
)

// Compile-time check: containers/image code (SignDockerManifest,
// VerifyDockerManifestSignature, policy evaluation) can use a *Mechanism.
var _ signature.SigningMechanism = (*Mechanism)(nil)

// minKeyBits is the smallest RSA/DSA key we accept a signature from; it is
// go-crypto's own default minimum in its v2 API (2047 tolerates keys whose
// top bit happens to be clear).
const minKeyBits = 2047

// Options configure a Mechanism. The zero value is usable.
type Options struct {
	// Passphrase unlocks passphrase-protected secret keys when signing. The
	// CLI reads it from a file or environment variable; it is copied, and the
	// copy is zeroed by Close.
	Passphrase []byte
	// CacheSize is the number of successful verifications remembered: 0 means
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
	// Now returns the current time; nil means time.Now. Expiry and revocation
	// are evaluated against it, and signatures are created at it.
	Now func() time.Time
}

// Mechanism signs and verifies OpenPGP messages with a fixed keyring.
// It is safe for concurrent use: the keyring is never modified after
// construction (secret keys are decrypted into per-call copies). The zero
// value trusts no key.
type Mechanism struct {
	keyring    openpgp.EntityList
	identities []string
	passphrase []byte
	now        func() time.Time
	cache      *resultCache // nil when disabled
}

// Result describes a verified signature.
type Result struct {
	// Contents are the signed bytes. They are authentic, but still untrusted
	// input for whatever parses them (SPEC section 3 step 3).
	Contents []byte
	// Fingerprint is the signer's primary key fingerprint, uppercase hex (40
	// characters for v4 keys); this is the key identity containers/image uses.
	Fingerprint string
	// KeyID is the 16-hex-digit key ID of the signer's primary key, as printed
	// by "oc adm verify-image-signature" (SPEC section 4).
	KeyID string
	// SigningKeyFingerprint and SigningKeyID identify the key that actually
	// made the signature: the primary key or one of its subkeys.
	SigningKeyFingerprint string
	SigningKeyID          string
	// SignatureTime is the signature's creation time.
	SignatureTime time.Time
	// UserID is the signer's primary user ID, for display only.
	UserID string
}

// NewMechanism returns a Mechanism trusting the keys in keyrings (binary or
// armored, public or secret; see NewMechanismWithOptions).
func NewMechanism(keyrings ...[]byte) (*Mechanism, error) {
	return NewMechanismWithOptions(Options{}, keyrings...)
}

// NewMechanismFromFiles reads each keyring file (binary or armored, public or
// secret) and returns a Mechanism trusting their keys.
func NewMechanismFromFiles(opts Options, paths ...string) (*Mechanism, error) {
	blobs := make([][]byte, 0, len(paths))
	for _, p := range paths {
		b, err := readKeyringFile(p)
		if err != nil {
			return nil, err
		}
		blobs = append(blobs, b)
	}
	return NewMechanismWithOptions(opts, blobs...)
}

// NewMechanismWithOptions returns a Mechanism trusting every key in keyrings.
// Each keyring may be binary or ASCII-armored (detected automatically, and
// may hold several armored blocks), public or secret; each must contain at
// least one key. A key given more than once (e.g. public and secret export)
// is merged into one. With no keyrings at all the Mechanism trusts nothing,
// which is still useful for UntrustedSignatureContents.
func NewMechanismWithOptions(opts Options, keyrings ...[]byte) (*Mechanism, error) {
	var all openpgp.EntityList
	for i, blob := range keyrings {
		el, err := readKeyring(blob)
		if err != nil {
			return nil, fmt.Errorf("loading keyring %d: %w", i+1, err)
		}
		if len(el) == 0 {
			return nil, fmt.Errorf("loading keyring %d: %w", i+1, ErrNoKeys)
		}
		all = append(all, el...)
	}
	all = mergeEntities(all)
	m := &Mechanism{
		keyring:    all,
		identities: make([]string, 0, len(all)),
		passphrase: slices.Clone(opts.Passphrase),
		now:        opts.Now,
	}
	for _, e := range all {
		m.identities = append(m.identities, fingerprintHex(e.PrimaryKey))
	}
	switch {
	case opts.CacheSize == 0:
		m.cache = newResultCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		m.cache = newResultCache(opts.CacheSize)
	}
	return m, nil
}

// clock returns the current time; a zero Mechanism uses time.Now.
func (m *Mechanism) clock() time.Time {
	if m.now == nil {
		return time.Now()
	}
	return m.now()
}

// KeyIdentities returns the primary key fingerprints of the trusted keys, in
// the form Verify returns them (like containers/image's
// NewEphemeralGPGSigningMechanism).
func (m *Mechanism) KeyIdentities() []string {
	return slices.Clone(m.identities)
}

// Close zeroes the passphrase copy. The Mechanism remains usable for
// verification. Close must not run concurrently with Sign.
func (m *Mechanism) Close() error {
	clear(m.passphrase)
	m.passphrase = nil
	return nil
}

// SupportsSigning returns nil if the keyring holds any secret key, or a
// signature.SigningNotSupportedError.
func (m *Mechanism) SupportsSigning() error {
	for _, e := range m.keyring {
		if hasSecret(e.PrivateKey) {
			return nil
		}
		for _, s := range e.Subkeys {
			if hasSecret(s.PrivateKey) {
				return nil
			}
		}
	}
	return signature.SigningNotSupportedError("signing is not supported: the keyring contains no secret keys")
}

func hasSecret(k *packet.PrivateKey) bool {
	return k != nil && !k.Dummy()
}

// Verify verifies unverifiedSignature and returns the signed contents and the
// signer's primary key fingerprint (uppercase hex), as
// signature.SigningMechanism requires. See VerifyDetailed.
func (m *Mechanism) Verify(unverifiedSignature []byte) (contents []byte, keyIdentity string, err error) {
	r, err := m.VerifyDetailed(unverifiedSignature)
	if err != nil {
		return nil, "", err
	}
	return r.Contents, r.Fingerprint, nil
}

// VerifyDetailed verifies unverifiedSignature: first its packet structure
// (SPEC section 3 step 1), then the signature against the keyring, including
// revocation and expiry (step 2). Errors wrap one of the Err* sentinels.
// Repeated verification of the same bytes is served from a cache.
func (m *Mechanism) VerifyDetailed(unverifiedSignature []byte) (res Result, err error) {
	defer recoverPanic(&err)
	if len(unverifiedSignature) > MaxMessageSize {
		return Result{}, fmt.Errorf("verifying openpgp signature: %w: %d bytes exceeds the %d byte limit", ErrTooLarge, len(unverifiedSignature), MaxMessageSize)
	}
	now := m.clock()
	var cacheKey [32]byte
	if m.cache != nil {
		cacheKey = sha256.Sum256(unverifiedSignature)
		if r, ok := m.cache.get(cacheKey, now); ok {
			return r, nil
		}
	}
	msg, err := parseSignedMessage(unverifiedSignature)
	if err != nil {
		return Result{}, fmt.Errorf("verifying openpgp signature: %w", err)
	}
	key, sig, contents, err := m.verifyCrypto(msg, now)
	if err != nil {
		return Result{}, fmt.Errorf("verifying openpgp signature: %w", err)
	}
	res = Result{
		Contents:              contents,
		Fingerprint:           fingerprintHex(key.Entity.PrimaryKey),
		KeyID:                 keyIDHex(key.Entity.PrimaryKey.KeyId),
		SigningKeyFingerprint: fingerprintHex(key.PublicKey),
		SigningKeyID:          keyIDHex(key.PublicKey.KeyId),
		SignatureTime:         sig.CreationTime,
	}
	if id := key.Entity.PrimaryIdentity(); id != nil {
		res.UserID = id.Name
	}
	if m.cache != nil {
		m.cache.add(cacheKey, res, key, sig)
	}
	return res, nil
}

// verifyCrypto runs go-crypto's verification on a message whose structure
// parseSignedMessage has accepted, so ReadMessage sees exactly one one-pass
// signature, one literal packet and one signature.
func (m *Mechanism) verifyCrypto(msg *signedMessage, now time.Time) (openpgp.Key, *packet.Signature, []byte, error) {
	limit := int64(maxDecompressedSize)
	cfg := &packet.Config{
		Time:                       func() time.Time { return now },
		MaxDecompressedMessageSize: &limit,
	}
	// msg.packets is the structurally checked, already decompressed
	// packet sequence: go-crypto verifies exactly what the structural
	// pass accepted, without decompressing a second time.
	md, err := openpgp.ReadMessage(bytes.NewReader(msg.packets), m.keyring, nil, cfg)
	if err != nil {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	if !md.IsSigned {
		return openpgp.Key{}, nil, nil, ErrUnsigned
	}
	if md.SignedBy == nil {
		if len(m.keyring.KeysById(md.SignedByKeyId)) > 0 {
			return openpgp.Key{}, nil, nil, fmt.Errorf("%w: key %s is in the keyring but is not valid for signing", ErrUnknownSigner, keyIDHex(md.SignedByKeyId))
		}
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: key id %s", ErrUnknownSigner, keyIDHex(md.SignedByKeyId))
	}
	// The signature is only checked once the body has been read to EOF.
	contents, err := io.ReadAll(&limitReader{r: md.UnverifiedBody, n: MaxContentsSize})
	if errors.Is(err, errLimitExceeded) {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: literal data exceeds %d bytes", ErrTooLarge, MaxContentsSize)
	}
	if err != nil {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: reading signed data: %w", ErrMalformedMessage, err)
	}
	key := *md.SignedBy
	if md.SignatureError != nil {
		return openpgp.Key{}, nil, nil, classifySignatureError(md.SignatureError, key, md.Signature, now)
	}
	sig := md.Signature
	if sig == nil {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: no signature matches the signing key", ErrInvalidSignature)
	}
	// Defence in depth: both parsers must have seen the same data.
	if !bytes.Equal(contents, msg.untrustedContent) {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: inconsistent literal data", ErrMalformedMessage)
	}
	// An issuer fingerprint, when present, must name the key that verified.
	if len(sig.IssuerFingerprint) > 0 && !bytes.Equal(sig.IssuerFingerprint, key.PublicKey.Fingerprint) {
		return openpgp.Key{}, nil, nil, fmt.Errorf("%w: issuer fingerprint does not match the signing key", ErrInvalidSignature)
	}
	if err := checkKeyStrength(key.PublicKey); err != nil {
		return openpgp.Key{}, nil, nil, err
	}
	return key, sig, contents, nil
}

// classifySignatureError maps go-crypto's verdict to our sentinels. go-crypto
// checks the cryptography first and only then revocation and expiry
// (checkMessageSignatureDetails in openpgp/read.go), so the expiry and
// revocation errors imply an otherwise valid signature.
func classifySignatureError(err error, key openpgp.Key, sig *packet.Signature, now time.Time) error {
	switch {
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		// go-crypto does not say which revocation applied; a revoked primary
		// key (or user ID) takes precedence over a revoked subkey.
		if key.Entity != nil && !key.Entity.Revoked(now) && key.PublicKey != key.Entity.PrimaryKey && key.Revoked(now) {
			return fmt.Errorf("%w: subkey %s", ErrSubkeyRevoked, fingerprintHex(key.PublicKey))
		}
		return fmt.Errorf("%w: key %s", ErrKeyRevoked, fingerprintHex(key.PublicKey))
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return fmt.Errorf("%w: key %s", ErrKeyExpired, fingerprintHex(key.PublicKey))
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		if sig != nil && sig.CreationTime.After(now) {
			return fmt.Errorf("%w: signature created in the future (%s)", ErrSignatureExpired, sig.CreationTime.UTC().Format(time.RFC3339))
		}
		return ErrSignatureExpired
	}
	return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
}

func checkKeyStrength(pk *packet.PublicKey) error {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly, packet.PubKeyAlgoDSA:
		bits, err := pk.BitLength()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
		}
		if bits < minKeyBits {
			return fmt.Errorf("%w: %d-bit key %s", ErrWeakAlgorithm, bits, fingerprintHex(pk))
		}
	}
	return nil
}

// UntrustedSignatureContents returns the contents of a structurally valid
// signed message and the 16-hex key ID it claims to be signed by, WITHOUT
// verifying anything. Never base a decision on the result.
func (m *Mechanism) UntrustedSignatureContents(untrustedSignature []byte) (untrustedContents []byte, shortKeyIdentifier string, err error) {
	defer recoverPanic(&err)
	msg, err := parseSignedMessage(untrustedSignature)
	if err != nil {
		return nil, "", fmt.Errorf("reading untrusted openpgp message: %w", err)
	}
	return msg.untrustedContent, keyIDHex(msg.onePass.KeyId), nil
}

// Sign returns a binary OpenPGP signed message (one-pass signature, literal
// data, signature) of input, made by the key named by keyIdentity: a full
// fingerprint, a 16-hex key ID, an e-mail address or an exact user ID. A
// primary key selects its newest valid signing subkey if it has one, as gpg
// does; a trailing "!" forces the exact key named. Protected secret keys are
// unlocked with Options.Passphrase.
func (m *Mechanism) Sign(input []byte, keyIdentity string) ([]byte, error) {
	return m.sign(input, keyIdentity, m.passphrase)
}

// SignWithPassphrase is Sign with an explicit passphrase; an empty passphrase
// falls back to Options.Passphrase. containers/image's
// SignDockerManifestWithOptions calls this method when it exists.
func (m *Mechanism) SignWithPassphrase(input []byte, keyIdentity, passphrase string) ([]byte, error) {
	if passphrase == "" {
		return m.sign(input, keyIdentity, m.passphrase)
	}
	pass := []byte(passphrase)
	defer clear(pass)
	return m.sign(input, keyIdentity, pass)
}

func (m *Mechanism) sign(input []byte, keyIdentity string, passphrase []byte) (out []byte, err error) {
	defer recoverPanic(&err)
	if len(input) > MaxContentsSize {
		return nil, fmt.Errorf("signing: %w: %d bytes exceeds the %d byte limit", ErrTooLarge, len(input), MaxContentsSize)
	}
	now := m.clock()
	ent, keyID, err := m.findSigningEntity(keyIdentity, now)
	if err != nil {
		return nil, fmt.Errorf("signing with %q: %w", keyIdentity, err)
	}
	key, ok := ent.SigningKeyById(now, keyID)
	if !ok {
		return nil, fmt.Errorf("signing with %q: %w: no valid signing key (expired, revoked or not signing-capable)", keyIdentity, ErrKeyUnusable)
	}
	if !hasSecret(key.PrivateKey) {
		return nil, fmt.Errorf("signing with %q: %w for key %s", keyIdentity, ErrNoSecretKey, fingerprintHex(key.PublicKey))
	}
	priv := key.PrivateKey
	if priv.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("signing with %q: %w (key %s)", keyIdentity, ErrPassphraseRequired, fingerprintHex(key.PublicKey))
		}
		// Decrypt a copy: the shared keyring is never mutated, so concurrent
		// calls stay race-free and the unlocked key dies with this call.
		unlocked := *priv
		if err := unlocked.Decrypt(passphrase); err != nil {
			return nil, fmt.Errorf("signing with %q: %w (key %s): %w", keyIdentity, ErrWrongPassphrase, fingerprintHex(key.PublicKey), err)
		}
		priv = &unlocked
	}
	signer := withPrivateKey(ent, key.PublicKey, priv)
	cfg := &packet.Config{
		Time:         func() time.Time { return now },
		SigningKeyId: key.PublicKey.KeyId,
		DefaultHash:  crypto.SHA256,
	}
	var buf bytes.Buffer
	w, err := openpgp.Sign(&buf, signer, &openpgp.FileHints{IsBinary: true, ModTime: now}, cfg)
	if err != nil {
		return nil, fmt.Errorf("signing with %q: %w", keyIdentity, err)
	}
	if _, err := w.Write(input); err != nil {
		return nil, fmt.Errorf("signing with %q: %w", keyIdentity, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("signing with %q: %w", keyIdentity, err)
	}
	return buf.Bytes(), nil
}

// withPrivateKey returns a shallow copy of e in which the key pub uses priv.
func withPrivateKey(e *openpgp.Entity, pub *packet.PublicKey, priv *packet.PrivateKey) *openpgp.Entity {
	c := *e
	if pub == e.PrimaryKey {
		c.PrivateKey = priv
		return &c
	}
	c.Subkeys = slices.Clone(e.Subkeys)
	for i := range c.Subkeys {
		if c.Subkeys[i].PublicKey == pub {
			c.Subkeys[i].PrivateKey = priv
		}
	}
	return &c
}

// findSigningEntity resolves keyIdentity to one entity with secret key
// material, and the key ID SigningKeyById should use (0: let it choose the
// best signing key of the entity, as gpg does for a primary key).
func (m *Mechanism) findSigningEntity(keyIdentity string, now time.Time) (*openpgp.Entity, uint64, error) {
	id := strings.TrimSpace(keyIdentity)
	exact := strings.HasSuffix(id, "!")
	id = strings.TrimSuffix(id, "!")
	hexID := strings.ToUpper(strings.ReplaceAll(id, " ", ""))
	hexID = strings.TrimPrefix(hexID, "0X")
	isHex := hexID != "" && strings.Trim(hexID, "0123456789ABCDEF") == ""

	type match struct {
		ent   *openpgp.Entity
		keyID uint64
	}
	var matches []match
	for _, e := range m.keyring {
		switch {
		case isHex && (len(hexID) == 40 || len(hexID) == 64):
			if fingerprintHex(e.PrimaryKey) == hexID {
				matches = append(matches, match{e, primaryChoice(e, exact)})
				continue
			}
			for _, s := range e.Subkeys {
				if fingerprintHex(s.PublicKey) == hexID {
					matches = append(matches, match{e, s.PublicKey.KeyId})
					break
				}
			}
		case isHex && len(hexID) == 16:
			if keyIDHex(e.PrimaryKey.KeyId) == hexID {
				matches = append(matches, match{e, primaryChoice(e, exact)})
				continue
			}
			for _, s := range e.Subkeys {
				if keyIDHex(s.PublicKey.KeyId) == hexID {
					matches = append(matches, match{e, s.PublicKey.KeyId})
					break
				}
			}
		case isHex:
			// Short (8-hex) key IDs collide trivially; require more.
			return nil, 0, fmt.Errorf("%w: use a full fingerprint, a 16-hex key id or an e-mail address", ErrKeyNotFound)
		default:
			if identityMatches(e, id, now) {
				matches = append(matches, match{e, 0})
			}
		}
	}
	if len(matches) == 0 {
		return nil, 0, ErrKeyNotFound
	}
	withSecret := matches[:0:0]
	for _, mt := range matches {
		if entityHasSecret(mt.ent) {
			withSecret = append(withSecret, mt)
		}
	}
	switch len(withSecret) {
	case 0:
		return nil, 0, ErrNoSecretKey
	case 1:
		return withSecret[0].ent, withSecret[0].keyID, nil
	}
	fprs := make([]string, 0, len(withSecret))
	for _, mt := range withSecret {
		fprs = append(fprs, fingerprintHex(mt.ent.PrimaryKey))
	}
	return nil, 0, fmt.Errorf("%w: matches %s", ErrAmbiguousKey, strings.Join(fprs, ", "))
}

func primaryChoice(e *openpgp.Entity, exact bool) uint64 {
	if exact {
		return e.PrimaryKey.KeyId
	}
	return 0
}

func entityHasSecret(e *openpgp.Entity) bool {
	if hasSecret(e.PrivateKey) {
		return true
	}
	for _, s := range e.Subkeys {
		if hasSecret(s.PrivateKey) {
			return true
		}
	}
	return false
}

// identityMatches matches an e-mail address ("a@b", "<a@b>") against the
// e-mail part of the entity's non-revoked user IDs, case-insensitively, or
// anything else against a complete user ID.
func identityMatches(e *openpgp.Entity, id string, now time.Time) bool {
	email := ""
	if strings.Contains(id, "@") && !strings.Contains(id, " ") {
		email = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	}
	for _, ident := range e.Identities {
		if ident.Revoked(now) {
			continue
		}
		if email != "" {
			if ident.UserId != nil && strings.EqualFold(ident.UserId.Email, email) {
				return true
			}
			continue
		}
		if ident.Name == id {
			return true
		}
	}
	return false
}

func fingerprintHex(pk *packet.PublicKey) string {
	return strings.ToUpper(hex.EncodeToString(pk.Fingerprint))
}

func keyIDHex(id uint64) string {
	return fmt.Sprintf("%016X", id)
}

// recoverPanic turns a panic inside go-crypto on hostile input into an
// error. None is known; this keeps a future one from taking down the
// registry, and errPanic lets the fuzz target notice it.
func recoverPanic(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", errPanic, r)
	}
}
