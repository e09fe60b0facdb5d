package cosign

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/strictjson"
)

// Claims is what a candidate says about itself, read without verifying
// anything: for display only (signet describe), never for a decision.
type Claims struct {
	Format   Format
	Kind     Kind
	Location string
	// Content is what is signed: a simple-signing payload, or a DSSE
	// envelope holding an in-toto statement.
	Content       string
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
	var untrustedStatement []byte
	switch c.Format {
	case FormatLegacy:
		_, cl.Logged = c.UntrustedAnnotations[annotationBundle]
		cl.Content = "simple-signing payload"
		if c.Kind == KindSignature {
			cl.PredicateType = ""
			if _, signed, err := parseSimpleSigning(c.UntrustedPayload); err != nil {
				cl.Problem = "payload: " + err.Error()
			} else if c.Image != "" && signed != c.Image {
				cl.Problem = fmt.Sprintf("the payload names %s, not this image", signed)
			}
		} else {
			cl.Content = "DSSE envelope (in-toto statement)"
			var err error
			if untrustedStatement, err = untrustedEnvelopePayload(c.UntrustedPayload); err != nil {
				cl.Problem = "envelope: " + err.Error()
			}
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
		cl.Content = "message signature"
		if env := b.GetDsseEnvelope(); env != nil {
			cl.Content = "DSSE envelope (in-toto statement)"
			untrustedStatement = env.GetPayload()
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
	if untrustedStatement != nil && cl.Problem == "" {
		cl.statementClaims(untrustedStatement, c.Image)
	}
	return cl
}

// statementClaims reads the predicate type and subjects an in-toto
// statement claims. The predicate type fills in a missing annotation; an
// annotation that disagrees with the statement, or a statement about
// another image, is reported as a problem (the statement is what the
// signature covers).
func (cl *Claims) statementClaims(untrusted []byte, image digest.Digest) {
	if len(untrusted) > maxBundleBytes {
		cl.Problem = "statement too large"
		return
	}
	v, err := strictjson.Parse(untrusted)
	if err != nil {
		cl.Problem = "statement: " + err.Error()
		return
	}
	pt, err := strictjson.StringField(v, "predicateType")
	if err != nil {
		cl.Problem = "statement: " + err.Error()
		return
	}
	if cl.Format == FormatBundle {
		// A bundle without the annotation is classified by what it signs.
		cl.Kind = KindSignature
		if pt != SignPredicateType {
			cl.Kind = KindAttestation
		}
	}
	switch {
	case cl.PredicateType == "":
		cl.PredicateType = pt
	case cl.PredicateType != pt:
		cl.Problem = fmt.Sprintf("the predicate type annotation %q differs from the statement's %q", cl.PredicateType, pt)
		cl.PredicateType = pt
		return
	}
	if image == "" {
		return
	}
	want := image.Encoded()
	subjects, _ := v.Get("subject")
	var named []string
	for _, s := range subjects.Elems {
		digests, _ := s.Get("digest")
		h, err := strictjson.StringField(digests, "sha256")
		if err != nil {
			continue
		}
		if h == want {
			return
		}
		named = append(named, "sha256:"+h)
	}
	cl.Problem = fmt.Sprintf("the statement's subjects %v do not include this image", named)
}

// untrustedEnvelopePayload returns the statement of a DSSE envelope (a
// legacy .att layer), unverified.
func untrustedEnvelopePayload(untrusted []byte) ([]byte, error) {
	v, err := strictjson.Parse(untrusted)
	if err != nil {
		return nil, err
	}
	typ, err := strictjson.StringField(v, "payloadType")
	if err != nil {
		return nil, err
	}
	if typ != inTotoPayloadType {
		return nil, fmt.Errorf("payload type %q, want %q", typ, inTotoPayloadType)
	}
	p, err := strictjson.StringField(v, "payload")
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("payload is not base64")
	}
	return b, nil
}

// Storage names where the entry is stored, as describe shows it:
// "legacy .sig tag", "legacy .att tag" or "bundle v0.3 referrer".
func (cl *Claims) Storage() string {
	if cl.Format == FormatLegacy && cl.Kind == KindAttestation {
		return "legacy .att tag"
	}
	return cl.Format.String()
}
