// Package gpg is Signet's OpenPGP signing mechanism: it signs blobs and
// verifies OpenPGP signed messages against an immutable keyring, using the
// pure-Go github.com/ProtonMail/go-crypto implementation (no gpgme, no cgo,
// no gpg-agent).
//
// It owns exactly one thing: turning bytes into "these contents were signed by
// this key" (SPEC section 3, steps 1 and 2). *Mechanism implements
// containers/image's signature.SigningMechanism, so containers/image code can
// use it for both signing and verification.
//
// It must not interpret the signed contents. The simple-signing payload lives
// in gpg/payload and the identity rules in gpg/policy (STYLE point 10); only
// after Verify returns may a caller parse the contents, and even then they stay
// untrusted until the manifest digest and identity checks pass.
//
// Every message is treated as hostile until verified (STYLE point 9): the
// input size is capped, the packet structure is checked strictly before any
// key is consulted, decompression and literal data are read through limits,
// and every rejection has its own sentinel error usable with errors.Is.
package gpg
