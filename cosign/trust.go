package cosign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// maxCertificateFileBytes bounds a PEM file of CA certificates.
const maxCertificateFileBytes = 1 << 20

// ParseCertificatesPEM parses a PEM file of CA certificates: at least one
// CERTIFICATE block and no block of any other type. Text between blocks
// (the comments of CA bundle files) is ignored.
func ParseCertificatesPEM(pemBytes []byte) ([]*x509.Certificate, error) {
	if len(pemBytes) > maxCertificateFileBytes {
		return nil, fmt.Errorf("%w: certificate file larger than %d bytes", ErrPolicy, maxCertificateFileBytes)
	}
	var certs []*x509.Certificate
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %q in a certificate file", ErrPolicy, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrPolicy, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate found", ErrPolicy)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("%w: malformed PEM block after certificate %d", ErrPolicy, len(certs))
	}
	return certs, nil
}

// ParseRekorPublicKey parses a Rekor log's public key: PKIX PEM, ECDSA
// (Rekor signs its entry timestamps with ECDSA).
func ParseRekorPublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	pub, err := ParsePublicKey(pemBytes)
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a Rekor public key must be ECDSA, not %T", ErrPolicy, pub)
	}
	return k, nil
}

// trustedKeys is trusted material made of bare keys and certificates
// rather than a trusted_root.json: what a containers-policy.json
// sigstoreSigned requirement names (fulcio.caPath, rekorPublicKeyPath).
type trustedKeys struct {
	root.BaseTrustedMaterial
	cas  []root.CertificateAuthority
	logs map[string]*root.TransparencyLog
}

func (t *trustedKeys) FulcioCertificateAuthorities() []root.CertificateAuthority { return t.cas }

func (t *trustedKeys) RekorLogs() map[string]*root.TransparencyLog { return t.logs }

// NewTrustedMaterial returns trusted material in which every certificate
// of fulcioCAs is a trust anchor of its own (as containers/image puts the
// whole caPath file into one root pool), without validity windows beyond
// the certificates' own, and each Rekor key is a log whose ID is the
// SHA-256 of its PKIX encoding (Rekor's log ID), valid at all times.
func NewTrustedMaterial(fulcioCAs []*x509.Certificate, rekorKeys []*ecdsa.PublicKey) (root.TrustedMaterial, error) {
	t := &trustedKeys{logs: map[string]*root.TransparencyLog{}}
	for _, c := range fulcioCAs {
		t.cas = append(t.cas, &root.FulcioCertificateAuthority{Root: c})
	}
	for _, k := range rekorKeys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("%w: Rekor key: %w", ErrPolicy, err)
		}
		id := sha256.Sum256(der)
		t.logs[hex.EncodeToString(id[:])] = &root.TransparencyLog{
			ID:                id[:],
			HashFunc:          crypto.SHA256,
			PublicKey:         k,
			SignatureHashFunc: crypto.SHA256,
		}
	}
	return t, nil
}

var _ root.TrustedMaterial = (*trustedKeys)(nil)
