package cosign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// maxKeyFileBytes bounds a public key file; a PEM key is a few hundred bytes.
const maxKeyFileBytes = 64 << 10

// ParsePublicKey parses a PKIX public key in PEM ("-----BEGIN PUBLIC
// KEY-----", as `cosign generate-key-pair` writes cosign.pub). Only ECDSA
// P-256 and P-384 and Ed25519 keys are accepted; exactly one PEM block, and
// nothing but whitespace around it.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	if len(pemBytes) > maxKeyFileBytes {
		return nil, fmt.Errorf("%w: public key file larger than %d bytes", ErrPolicy, maxKeyFileBytes)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block in public key file", ErrPolicy)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the public key's PEM block", ErrPolicy)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: PEM block is %q, want \"PUBLIC KEY\" (PKIX)", ErrPolicy, block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse public key: %w", ErrPolicy, err)
	}
	if err := checkKeyType(pub); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return pub, nil
}

func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("unsupported ECDSA curve %s (P-256 and P-384 are supported)", k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported public key type %T (ECDSA P-256/P-384 and Ed25519 are supported)", pub)
}

// verifySignature checks untrustedSig over message with pub: ECDSA is an
// ASN.1 signature over SHA-256 of the message (cosign's default digest for
// every curve; for P-384 SHA-384 is accepted too, as sigstore's default for
// that curve), Ed25519 signs the message itself.
func verifySignature(pub crypto.PublicKey, message, untrustedSig []byte) error {
	if err := checkKeyType(pub); err != nil {
		return err
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(message)
		if ecdsa.VerifyASN1(k, h[:], untrustedSig) {
			return nil
		}
		if k.Curve == elliptic.P384() {
			h := sha512.Sum384(message)
			if ecdsa.VerifyASN1(k, h[:], untrustedSig) {
				return nil
			}
		}
	case ed25519.PublicKey:
		if ed25519.Verify(k, message, untrustedSig) {
			return nil
		}
	}
	return errors.New("signature does not verify")
}

// samePublicKey compares two keys by their PKIX encoding.
func samePublicKey(a, b crypto.PublicKey) bool {
	da, err := x509.MarshalPKIXPublicKey(a)
	if err != nil {
		return false
	}
	db, err := x509.MarshalPKIXPublicKey(b)
	if err != nil {
		return false
	}
	return bytes.Equal(da, db)
}
