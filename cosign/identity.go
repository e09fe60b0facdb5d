package cosign

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Fulcio's OIDC issuer extensions. V1 holds the issuer as raw bytes; V2 as
// a DER-encoded UTF8String (Fulcio docs/oid-info.md). Fulcio writes both.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// Matcher matches a certificate field exactly or by a regular expression
// that must match the WHOLE value. cosign's regexps are unanchored, so
// "https://github.com/org/repo/" there also accepts
// "https://evil.example/?https://github.com/org/repo/"; Signet's do not.
type Matcher struct {
	exact string
	re    *regexp.Regexp
}

// Exact matches s and nothing else.
func Exact(s string) Matcher { return Matcher{exact: s} }

// Regexp compiles expr anchored at both ends, as ^(?:expr)$.
func Regexp(expr string) (Matcher, error) {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return Matcher{}, fmt.Errorf("%w: regular expression %q: %w", ErrPolicy, expr, err)
	}
	return Matcher{re: re}, nil
}

// IsZero reports an unset matcher.
func (m Matcher) IsZero() bool { return m.exact == "" && m.re == nil }

// Match reports whether s matches.
func (m Matcher) Match(s string) bool {
	if m.re != nil {
		return m.re.MatchString(s)
	}
	return m.exact != "" && s == m.exact
}

func (m Matcher) String() string {
	if m.re != nil {
		return "regexp " + m.re.String()
	}
	return fmt.Sprintf("%q", m.exact)
}

// CertificateIssuer returns the OIDC issuer a Fulcio certificate names. It
// reads both issuer extensions; if both are present they must agree
// (ErrIssuerConflict), and an extension that appears twice must too.
func CertificateIssuer(cert *x509.Certificate) (string, error) {
	var v1, v2 []string
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidIssuerV1):
			if !utf8.Valid(ext.Value) {
				return "", fmt.Errorf("%w: issuer extension %v is not UTF-8", ErrIssuerMismatch, oidIssuerV1)
			}
			v1 = append(v1, string(ext.Value))
		case ext.Id.Equal(oidIssuerV2):
			var s string
			rest, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8")
			if err != nil || len(rest) != 0 {
				return "", fmt.Errorf("%w: issuer extension %v is not a DER UTF8String", ErrIssuerMismatch, oidIssuerV2)
			}
			v2 = append(v2, s)
		}
	}
	all := append(append([]string{}, v1...), v2...)
	if len(all) == 0 {
		return "", fmt.Errorf("%w: certificate has no OIDC issuer extension", ErrIssuerMismatch)
	}
	for _, s := range all[1:] {
		if s != all[0] {
			return "", fmt.Errorf("%w: %q and %q", ErrIssuerConflict, all[0], s)
		}
	}
	return all[0], nil
}

// CertificateIdentities returns the certificate's subject alternative
// names: DNS names, emails, IP addresses, URIs and Fulcio's otherName.
func CertificateIdentities(cert *x509.Certificate) []string {
	return cryptoutils.GetSubjectAlternateNames(cert)
}

// checkIssuer and checkIdentity are steps 2 and 3 of SPEC section 5.
func checkIssuer(cert *x509.Certificate, want Matcher) (string, error) {
	issuer, err := CertificateIssuer(cert)
	if err != nil {
		return "", &VerificationError{Step: StepIssuer, Err: err}
	}
	if !want.Match(issuer) {
		return "", reject(StepIssuer, ErrIssuerMismatch, "issuer %q, want %s", issuer, want)
	}
	return issuer, nil
}

func checkIdentity(cert *x509.Certificate, want Matcher, emailOnly bool) (string, error) {
	sans := CertificateIdentities(cert)
	if emailOnly {
		sans = cert.EmailAddresses
	}
	for _, san := range sans {
		if want.Match(san) {
			return san, nil
		}
	}
	return "", reject(StepIdentity, ErrIdentityMismatch, "certificate names %q, want %s", sans, want)
}

// checkChain is step 1: the leaf must be valid at signingTime (checked
// first, so an expired certificate gets its own error) and chain to one
// of the trusted Fulcio CAs at that time, for code signing. Only the
// trusted root's intermediates are used: a chain shipped with the
// signature adds nothing to trust.
func checkChain(cert *x509.Certificate, cas []root.CertificateAuthority, signingTime time.Time) error {
	if signingTime.Before(cert.NotBefore) || signingTime.After(cert.NotAfter) {
		return reject(StepCertificateChain, ErrCertificateNotValid, "signed at %s, certificate valid %s to %s",
			signingTime.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(cas) == 0 {
		return reject(StepCertificateChain, ErrCertificateChain, "the trusted root has no certificate authorities")
	}
	// Go's verifier rejects Fulcio's critical otherName SAN as unhandled;
	// identities are matched separately (checkIdentity), so drop it here,
	// as sigstore-go does, on a private copy.
	leaf := *cert
	leaf.UnhandledCriticalExtensions = nil
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(cryptoutils.SANOID) {
			leaf.UnhandledCriticalExtensions = append(leaf.UnhandledCriticalExtensions, oid)
		}
	}
	var errs []error
	for _, ca := range cas {
		_, err := ca.Verify(&leaf, signingTime)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return rejectErr(StepCertificateChain, ErrCertificateChain, errors.Join(errs...))
}
