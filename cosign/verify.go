package cosign

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signet-registry/signet/internal/strictjson"
)

// Policy says what a signature must satisfy. Exactly one of Key and the
// keyless pair (Identity and Issuer) is set.
type Policy struct {
	// Key is the signer's public key (keyed mode; see ParsePublicKey).
	Key crypto.PublicKey
	// Identity and Issuer match a Fulcio certificate's subject alternative
	// name and OIDC issuer (keyless mode).
	Identity, Issuer Matcher
	// EmailIdentity matches Identity against the certificate's email
	// addresses only, not its other subject alternative names
	// (containers-policy.json's fulcio.subjectEmail).
	EmailIdentity bool
	// TrustedMaterial holds the Fulcio CAs (keyless) and the Rekor keys
	// (unless IgnoreTlog): a parsed trusted_root.json.
	TrustedMaterial root.TrustedMaterial
	// IgnoreTlog skips the transparency log. It must be asked for
	// explicitly; keyless signatures are then checked at the current time.
	IgnoreTlog bool
	// Annotations must each equal a string value the signature carries
	// (legacy: the payload's optional section; bundle: the in-toto
	// subject's annotations).
	Annotations map[string]string
	// Now is the clock for keyless checks without a log; nil: time.Now.
	// (sigstore-go reads the system clock itself for bundles.)
	Now func() time.Time
}

// Verifier verifies candidates against a Policy.
type Verifier struct {
	p   Policy
	now func() time.Time
}

// NewVerifier checks that the policy is complete.
func NewVerifier(p Policy) (*Verifier, error) {
	keyless := !p.Identity.IsZero() || !p.Issuer.IsZero()
	switch {
	case p.Key != nil && keyless:
		return nil, fmt.Errorf("%w: a key and certificate identities are exclusive", ErrPolicy)
	case p.Key != nil:
		if err := checkKeyType(p.Key); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
	case p.Identity.IsZero() || p.Issuer.IsZero():
		return nil, fmt.Errorf("%w: keyless verification needs both a certificate identity and an OIDC issuer", ErrPolicy)
	case p.TrustedMaterial == nil || len(p.TrustedMaterial.FulcioCertificateAuthorities()) == 0:
		return nil, fmt.Errorf("%w: keyless verification needs a trusted root with Fulcio certificate authorities", ErrPolicy)
	}
	if !p.IgnoreTlog && (p.TrustedMaterial == nil || len(p.TrustedMaterial.RekorLogs()) == 0) {
		return nil, fmt.Errorf("%w: transparency log verification needs a trusted root with Rekor keys (or an explicit choice to ignore the log)", ErrPolicy)
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{p: p, now: now}, nil
}

// Checks lists, in cosign's words, what Verify checks of every signature
// it accepts.
func (v *Verifier) Checks() []string {
	var out []string
	if len(v.p.Annotations) > 0 {
		out = append(out, "The specified annotations were verified.")
	}
	out = append(out, "The cosign claims were validated")
	if !v.p.IgnoreTlog {
		out = append(out, "Existence of the claims in the transparency log was verified offline")
	}
	if v.p.Key != nil {
		out = append(out, "The signatures were verified against the specified public key")
	} else {
		what := "identity"
		if v.p.EmailIdentity {
			what = "email address"
		}
		out = append(out,
			"The code-signing certificate was verified using trusted certificate authority certificates",
			fmt.Sprintf("The certificate's OIDC issuer matched %s and its %s matched %s (regexps anchored)", v.p.Issuer, what, v.p.Identity))
	}
	return out
}

// Verified is a signature that passed every check.
type Verified struct {
	Candidate *Candidate
	// Payload is the claims in cosign's output form.
	Payload Payload
	// Subject and Issuer are the matched certificate identity (keyless).
	Subject, Issuer string
	// SignedDockerReference is the docker-reference the signature signs:
	// the legacy payload's critical.identity. A bundle signs none (its
	// in-toto statement names only the digest), so it is empty there,
	// whatever Payload shows for output.
	SignedDockerReference string
	// IntegratedTime is when Rekor logged the signature, when checked.
	IntegratedTime time.Time
}

// Verify runs every check on c for the image whose digest is image;
// imageRef (HOST/REPO@DIGEST) only labels a bundle's output as cosign
// does. Errors are *VerificationError.
func (v *Verifier) Verify(c *Candidate, image digest.Digest, imageRef string) (*Verified, error) {
	if c.Kind != KindSignature {
		return nil, reject(StepFormat, ErrMalformed, "%s is an attestation, not a signature", c.Location)
	}
	switch c.Format {
	case FormatLegacy:
		return v.verifyLegacy(c, image)
	case FormatBundle:
		return v.verifyBundle(c, image, imageRef)
	}
	return nil, reject(StepFormat, ErrMalformed, "unknown format %v", c.Format)
}

// verifyLegacy verifies a layer of the .sig tag, in the order of SPEC
// section 5. The signing time used for the chain comes from the SET,
// which the log step authenticates; a failure anywhere rejects.
func (v *Verifier) verifyLegacy(c *Candidate, image digest.Digest) (*Verified, error) {
	a := c.UntrustedAnnotations
	sigB64, ok := a[annotationSignature]
	if !ok {
		return nil, reject(StepFormat, ErrMalformed, "no %s annotation", annotationSignature)
	}
	untrustedSig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(untrustedSig) == 0 {
		return nil, reject(StepFormat, ErrMalformed, "%s is not base64", annotationSignature)
	}
	var set *rekorBundle
	if s, ok := a[annotationBundle]; ok {
		if set, err = parseRekorBundle(s); err != nil {
			return nil, reject(StepFormat, ErrMalformed, "%s: %v", annotationBundle, err)
		}
	}
	if !v.p.IgnoreTlog && set == nil {
		return nil, reject(StepTlog, ErrNoTlogEntry, "no %s annotation", annotationBundle)
	}
	out := &Verified{Candidate: c}
	var cert *x509.Certificate
	signer := v.p.Key
	if signer == nil {
		certPEM, ok := a[annotationCertificate]
		if !ok {
			return nil, reject(StepFormat, ErrMalformed, "no %s annotation", annotationCertificate)
		}
		if cert, err = parseCertificatePEM(certPEM); err != nil {
			return nil, reject(StepFormat, ErrMalformed, "%s: %v", annotationCertificate, err)
		}
		signingTime := v.now()
		if set != nil && !v.p.IgnoreTlog {
			signingTime = time.Unix(set.integratedTime, 0)
		}
		if out.Subject, out.Issuer, err = v.checkCertificate(cert, signingTime); err != nil {
			return nil, err
		}
		signer = cert.PublicKey
	}
	if !v.p.IgnoreTlog {
		t, err := verifySET(set, v.p.TrustedMaterial.RekorLogs())
		if err != nil {
			return nil, rejectErr(StepTlog, ErrTlogEntry, err)
		}
		if err := checkEntryBinding(set.body, c.UntrustedPayload, untrustedSig, cert, v.p.Key); err != nil {
			return nil, rejectErr(StepTlog, ErrTlogEntry, err)
		}
		if cert != nil && (t.Before(cert.NotBefore) || t.After(cert.NotAfter)) {
			return nil, reject(StepTlog, ErrCertificateNotValid, "integrated at %s", t.UTC().Format(time.RFC3339))
		}
		out.IntegratedTime = t
	}
	if err := verifySignature(signer, c.UntrustedPayload, untrustedSig); err != nil {
		return nil, rejectErr(StepSignature, ErrSignature, err)
	}
	// Authentic bytes; still untrusted content until the last checks pass.
	p, signed, err := parseSimpleSigning(c.UntrustedPayload)
	if err != nil {
		return nil, rejectErr(StepPayload, ErrPayload, err)
	}
	if signed != image {
		return nil, reject(StepDigest, ErrDigestMismatch, "payload is for %s, image is %s", signed, image)
	}
	if err := checkAnnotations(p.Optional, v.p.Annotations); err != nil {
		return nil, err
	}
	out.Payload = *p
	out.SignedDockerReference = p.Critical.Identity.DockerReference
	if cert != nil {
		out.Payload.addCertificate(out.Subject, out.Issuer)
	}
	if set != nil && !v.p.IgnoreTlog {
		if out.Payload.Optional == nil {
			out.Payload.Optional = map[string]any{}
		}
		out.Payload.Optional["Bundle"] = set.raw
	}
	return out, nil
}

// checkCertificate runs the keyless steps 1-3: chain at signingTime,
// issuer, identity.
func (v *Verifier) checkCertificate(cert *x509.Certificate, signingTime time.Time) (subject, issuer string, err error) {
	if err := checkChain(cert, v.p.TrustedMaterial.FulcioCertificateAuthorities(), signingTime); err != nil {
		return "", "", err
	}
	if issuer, err = checkIssuer(cert, v.p.Issuer); err != nil {
		return "", "", err
	}
	if subject, err = checkIdentity(cert, v.p.Identity, v.p.EmailIdentity); err != nil {
		return "", "", err
	}
	return subject, issuer, nil
}

func (p *Payload) addCertificate(subject, issuer string) {
	if p.Optional == nil {
		p.Optional = map[string]any{}
	}
	p.Optional["Subject"] = subject
	p.Optional["Issuer"] = issuer
	p.Optional[oidIssuerV1.String()] = issuer
}

func parseCertificatePEM(untrusted string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(untrusted))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// verifyBundle verifies a sigstore bundle referrer. sigstore-go checks the
// cryptography (log entry, chain, DSSE signature); the policy checks are
// the same as for the legacy format, in the same order.
func (v *Verifier) verifyBundle(c *Candidate, image digest.Digest, imageRef string) (*Verified, error) {
	b, err := parseBundle(c.UntrustedBundle)
	if err != nil {
		return nil, rejectErr(StepFormat, ErrMalformed, err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, reject(StepFormat, ErrMalformed, "bundle holds no DSSE envelope")
	}
	if env.PayloadType != inTotoPayloadType {
		return nil, reject(StepFormat, ErrMalformed, "DSSE payload type %q, want %q", env.PayloadType, inTotoPayloadType)
	}
	content, err := b.VerificationContent()
	if err != nil {
		return nil, rejectErr(StepFormat, ErrMalformed, err)
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return nil, rejectErr(StepFormat, ErrMalformed, err)
	}
	out := &Verified{Candidate: c}
	cert := content.Certificate()
	material := v.p.TrustedMaterial
	switch {
	case v.p.Key != nil && cert != nil:
		return nil, reject(StepSignature, ErrSignature, "bundle is signed with a certificate, not the key")
	case v.p.Key != nil:
		keyMaterial := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
			return root.NewExpiringKey(keyVerifier{v.p.Key}, time.Time{}, time.Time{}), nil
		})
		if material == nil {
			material = keyMaterial
		} else {
			material = root.TrustedMaterialCollection{material, keyMaterial}
		}
	case cert == nil:
		return nil, reject(StepSignature, ErrSignature, "bundle is signed with a key, not a certificate")
	default:
		signingTime := v.now()
		if !v.p.IgnoreTlog {
			if signingTime, err = untrustedIntegratedTime(entries); err != nil {
				return nil, err
			}
		}
		if out.Subject, out.Issuer, err = v.checkCertificate(cert, signingTime); err != nil {
			return nil, err
		}
	}
	var opts []verify.VerifierOption
	switch {
	case v.p.IgnoreTlog && v.p.Key != nil:
		opts = append(opts, verify.WithNoObserverTimestamps())
	case v.p.IgnoreTlog:
		opts = append(opts, verify.WithCurrentTime())
	case v.p.Key != nil:
		opts = append(opts, verify.WithTransparencyLog(1), verify.WithNoObserverTimestamps())
	default:
		opts = append(opts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	}
	sv, err := verify.NewVerifier(material, opts...)
	if err != nil {
		return nil, rejectErr(StepFormat, ErrPolicy, err)
	}
	if !v.p.IgnoreTlog {
		if len(entries) == 0 {
			return nil, reject(StepTlog, ErrNoTlogEntry, "bundle has no transparency log entry")
		}
		stamps, err := sv.VerifyTransparencyLogInclusion(b)
		if err != nil {
			return nil, rejectErr(StepTlog, ErrTlogEntry, err)
		}
		for _, s := range stamps {
			if cert != nil && (s.Timestamp.Before(cert.NotBefore) || s.Timestamp.After(cert.NotAfter)) {
				return nil, reject(StepTlog, ErrCertificateNotValid, "integrated at %s", s.Timestamp.UTC().Format(time.RFC3339))
			}
			out.IntegratedTime = s.Timestamp
		}
	}
	// The whole bundle, cryptographically: log again, chain at the
	// verified times, DSSE signature. Identities were matched above, with
	// anchored regexps, and the statement's subject is matched below,
	// strictly; sigstore-go is told not to, rather than twice differently.
	policy := []verify.PolicyOption{verify.WithoutIdentitiesUnsafe()}
	if v.p.Key != nil {
		policy = []verify.PolicyOption{verify.WithKey()}
	}
	if _, err := sv.Verify(b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), policy...)); err != nil {
		return nil, rejectErr(StepSignature, ErrSignature, err)
	}
	st, err := parseStatement(env.GetPayload())
	if err != nil {
		return nil, rejectErr(StepPayload, ErrPayload, err)
	}
	if st.predicateType != SignPredicateType {
		return nil, reject(StepPayload, ErrPayload, "predicate type %q is not a cosign signature (%s)", st.predicateType, SignPredicateType)
	}
	if image.Algorithm() != digest.SHA256 || st.sha256 != image.Encoded() {
		return nil, reject(StepDigest, ErrDigestMismatch, "statement is for sha256:%s, image is %s", st.sha256, image)
	}
	if err := checkAnnotations(st.annotations, v.p.Annotations); err != nil {
		return nil, err
	}
	var p Payload
	p.Critical.Identity.DockerReference = imageRef
	p.Critical.Image.DockerManifestDigest = image.String()
	p.Critical.Type = st.predicateType
	p.Optional = st.annotations
	if cert != nil {
		p.addCertificate(out.Subject, out.Issuer)
	}
	out.Payload = p
	return out, nil
}

// parseBundle rejects duplicate keys and invalid UTF-8 before
// sigstore-go's protojson parse (which rejects unknown fields), and only
// accepts the v0.3 media type that the referrer format uses.
func parseBundle(untrusted []byte) (*bundle.Bundle, error) {
	if len(untrusted) > maxBundleBytes {
		return nil, fmt.Errorf("bundle larger than %d bytes", maxBundleBytes)
	}
	if _, err := strictjson.Parse(untrusted); err != nil {
		return nil, err
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(untrusted); err != nil {
		return nil, fmt.Errorf("parse bundle: %w", err)
	}
	if b.GetMediaType() != MediaTypeBundle {
		return nil, fmt.Errorf("bundle media type %q, want %q", b.GetMediaType(), MediaTypeBundle)
	}
	return &b, nil
}

// untrustedIntegratedTime is the time a bundle's first Rekor v1 entry
// claims; the log step authenticates it.
func untrustedIntegratedTime(entries []*tlog.Entry) (time.Time, error) {
	for _, e := range entries {
		if t := e.IntegratedTime(); !t.IsZero() {
			return t, nil
		}
	}
	return time.Time{}, reject(StepTlog, ErrNoTlogEntry, "bundle has no transparency log entry with an integrated time")
}

// keyVerifier adapts a public key to sigstore's signature.Verifier with
// the same rules as the legacy format (verifySignature).
type keyVerifier struct{ pub crypto.PublicKey }

var _ signature.Verifier = keyVerifier{}

func (k keyVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return k.pub, nil
}

func (k keyVerifier) VerifySignature(sig, message io.Reader, _ ...signature.VerifyOption) error {
	s, err := io.ReadAll(io.LimitReader(sig, 64<<10))
	if err != nil {
		return err
	}
	m, err := io.ReadAll(io.LimitReader(message, maxBundleBytes+1))
	if err != nil {
		return err
	}
	if len(m) > maxBundleBytes {
		return errors.New("signed message too large")
	}
	return verifySignature(k.pub, m, s)
}
