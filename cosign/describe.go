package cosign

import (
	"crypto/x509"
	"strings"
)

// Claims is what a candidate says about itself, read without verifying
// anything: for display only (signet describe), never for a decision.
type Claims struct {
	Format        Format
	Kind          Kind
	Location      string
	PredicateType string
	Created       string
	// UntrustedIdentity and UntrustedIssuer come from the signing
	// certificate; both are empty for a key-signed entry.
	UntrustedIdentity string
	UntrustedIssuer   string
	// KeySigned marks an entry signed with a key rather than a Fulcio
	// certificate; KeyHint is a bundle's public key hint, if any.
	KeySigned bool
	KeyHint   string
	// Logged reports that a transparency log entry is attached.
	Logged bool
	// Problem explains what could not be read, if anything.
	Problem string
}

// UntrustedClaims reads c's claims without verifying them.
func UntrustedClaims(c *Candidate) Claims {
	cl := Claims{Format: c.Format, Kind: c.Kind, Location: c.Location,
		PredicateType: c.UntrustedPredicateType, Created: c.UntrustedCreated}
	var cert *x509.Certificate
	switch c.Format {
	case FormatLegacy:
		_, cl.Logged = c.UntrustedAnnotations[annotationBundle]
		if c.Kind == KindSignature {
			cl.PredicateType = ""
		}
		certPEM, ok := c.UntrustedAnnotations[annotationCertificate]
		if !ok {
			cl.KeySigned = true
			break
		}
		var err error
		if cert, err = parseCertificatePEM(certPEM); err != nil {
			cl.Problem = "certificate: " + err.Error()
		}
	case FormatBundle:
		b, err := parseBundle(c.UntrustedBundle)
		if err != nil {
			cl.Problem = err.Error()
			break
		}
		if entries, err := b.TlogEntries(); err == nil && len(entries) > 0 {
			cl.Logged = true
		}
		content, err := b.VerificationContent()
		if err != nil {
			cl.Problem = err.Error()
			break
		}
		if cert = content.Certificate(); cert == nil {
			cl.KeySigned = true
			if pk := content.PublicKey(); pk != nil {
				cl.KeyHint = pk.Hint()
			}
		}
	}
	if cert != nil {
		cl.UntrustedIdentity = strings.Join(CertificateIdentities(cert), ", ")
		issuer, err := CertificateIssuer(cert)
		if err != nil {
			cl.Problem = err.Error()
		}
		cl.UntrustedIssuer = issuer
	}
	return cl
}
