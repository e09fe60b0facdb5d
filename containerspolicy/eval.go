package containerspolicy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/root"
	"go.podman.io/image/v5/docker/reference"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/gpg/policy"
)

// Limits on key material read for one evaluation.
const (
	maxKeyringBytes   = 16 << 20 // one GPG keyring file
	maxPEMKeyBytes    = 64 << 10 // one PEM public key
	maxCABytes        = 1 << 20  // one file of CA certificates
	maxLoadTotalBytes = 64 << 20 // everything one scope's requirements read
)

// ErrKeyMaterial: a key, keyring or certificate the applicable
// requirements name cannot be read or used. containers/image rejects the
// image in that case; Signet says so before looking at any signature.
var ErrKeyMaterial = errors.New("policy key material unusable")

// GPGSignature is one GPG simple-signing signature of the image.
type GPGSignature struct {
	Name    string
	Content []byte
}

// Signatures gives the evaluation an image's signatures. Each method is
// called at most once per evaluation, and only if a requirement needs it.
type Signatures interface {
	// GPG returns the image's GPG simple-signing ("atomic") signatures.
	GPG(ctx context.Context) ([]GPGSignature, error)
	// Cosign returns the image's cosign signatures (not attestations),
	// as cosign.Discover finds them.
	Cosign(ctx context.Context) (*cosign.Found, error)
}

// Image is what a policy is evaluated for.
type Image struct {
	// Ref is the image as named (from ImageReference): it selects the
	// scope and is the expected identity of every signature.
	Ref reference.Named
	// Digest and Manifest are the manifest as served.
	Digest   digest.Digest
	Manifest []byte
}

// Options tune Prepare.
type Options struct {
	// ReadFile reads at most limit bytes of a key file; nil reads the file
	// system, refusing anything but regular files.
	ReadFile func(path string, limit int64) ([]byte, error)
	// Now is the clock for key expiry and certificate validity; nil is
	// time.Now.
	Now func() time.Time
}

// Outcome is one requirement's verdict.
type Outcome struct {
	Requirement string
	Allowed     bool
	// Reason says what satisfied the requirement, or why it did not.
	Reason string
	// Rejections lists each signature examined that did not satisfy it.
	Rejections []string
}

// Result is a policy's verdict for one image.
type Result struct {
	Image    string
	Scope    Scope
	Outcomes []Outcome
	// Allowed is true when every requirement allowed the image.
	Allowed bool
}

// Prepared is a policy's applicable requirements with their key material
// loaded, ready to evaluate an image.
type Prepared struct {
	ref   reference.Named
	scope Scope
	reqs  []evaluator
	mechs []*gpg.Mechanism
}

type evaluator interface {
	describe() string
	evaluate(ctx context.Context, img Image, sigs *signatureCache) (Outcome, error)
}

// Prepare selects the requirements that apply to ref and loads the key
// material they name. It fails (ErrKeyMaterial) when any of it is
// unusable.
func Prepare(p *Policy, ref reference.Named, opts Options) (*Prepared, error) {
	scope, reqs := p.RequirementsFor(ref)
	l := &loader{read: opts.ReadFile, now: opts.Now}
	if l.read == nil {
		l.read = readRegularFile
	}
	out := &Prepared{ref: ref, scope: scope}
	for i, r := range reqs {
		e, err := l.prepare(r)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("%w: %s[%d] %s: %w", ErrKeyMaterial, scope, i, r, err)
		}
		if sb, ok := e.(*signedByEval); ok {
			out.mechs = append(out.mechs, sb.mech)
		}
		out.reqs = append(out.reqs, e)
	}
	return out, nil
}

// Scope is the section whose requirements apply.
func (p *Prepared) Scope() Scope { return p.scope }

// Requirements describes the applicable requirements, in order.
func (p *Prepared) Requirements() []string {
	out := make([]string, 0, len(p.reqs))
	for _, r := range p.reqs {
		out = append(out, r.describe())
	}
	return out
}

// Close releases the GPG mechanisms.
func (p *Prepared) Close() {
	for _, m := range p.mechs {
		_ = m.Close()
	}
	p.mechs = nil
}

// Evaluate evaluates every applicable requirement for img; the image is
// allowed only if all of them allow it. img.Ref must be the reference
// Prepare was given. An error means the signatures could not be read, so
// there is no verdict.
func (p *Prepared) Evaluate(ctx context.Context, img Image, sigs Signatures) (*Result, error) {
	if img.Ref == nil || img.Ref.String() != p.ref.String() {
		return nil, fmt.Errorf("%w: evaluating %v with requirements prepared for %s", ErrImageReference, img.Ref, p.ref)
	}
	if err := img.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	cache := &signatureCache{sigs: sigs}
	res := &Result{Image: p.ref.String(), Scope: p.scope, Allowed: len(p.reqs) > 0}
	for _, r := range p.reqs {
		o, err := r.evaluate(ctx, img, cache)
		if err != nil {
			return nil, err
		}
		o.Requirement = r.describe()
		res.Outcomes = append(res.Outcomes, o)
		res.Allowed = res.Allowed && o.Allowed
	}
	return res, nil
}

// signatureCache reads each kind of signature once.
type signatureCache struct {
	sigs           Signatures
	gpg            []GPGSignature
	gpgRead        bool
	cosign         *cosign.Found
	cosignRead     bool
	gpgErr, cosErr error
}

func (c *signatureCache) gpgSignatures(ctx context.Context) ([]GPGSignature, error) {
	if !c.gpgRead {
		c.gpg, c.gpgErr = c.sigs.GPG(ctx)
		c.gpgRead = true
	}
	return c.gpg, c.gpgErr
}

func (c *signatureCache) cosignSignatures(ctx context.Context) (*cosign.Found, error) {
	if !c.cosignRead {
		c.cosign, c.cosErr = c.sigs.Cosign(ctx)
		c.cosignRead = true
		if c.cosErr == nil && c.cosign == nil {
			c.cosign = &cosign.Found{}
		}
	}
	return c.cosign, c.cosErr
}

// loader reads key material within a total budget.
type loader struct {
	read  func(path string, limit int64) ([]byte, error)
	now   func() time.Time
	total int64
}

func (l *loader) load(src Source, limit int64) ([][]byte, error) {
	if len(src.Paths) == 0 {
		return src.Data, nil
	}
	out := make([][]byte, 0, len(src.Paths))
	for _, p := range src.Paths {
		b, err := l.read(p, limit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Field, err)
		}
		l.total += int64(len(b))
		if l.total > maxLoadTotalBytes {
			return nil, fmt.Errorf("%s: key material over %d bytes in all", src.Field, maxLoadTotalBytes)
		}
		out = append(out, b)
	}
	return out, nil
}

func (l *loader) prepare(r Requirement) (evaluator, error) {
	switch r := r.(type) {
	case *InsecureAcceptAnything:
		return acceptEval{}, nil
	case *Reject:
		return rejectEval{}, nil
	case *SignedBy:
		blobs, err := l.load(r.Keys, maxKeyringBytes)
		if err != nil {
			return nil, err
		}
		m, err := gpg.NewMechanismWithOptions(gpg.Options{Now: l.now}, blobs...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Keys.Field, err)
		}
		return &signedByEval{req: r, mech: m}, nil
	case *SigstoreSigned:
		return l.prepareSigstore(r)
	}
	return nil, fmt.Errorf("unknown requirement %T", r)
}

func (l *loader) prepareSigstore(r *SigstoreSigned) (evaluator, error) {
	var rekorKeys []*ecdsa.PublicKey
	if !r.Rekor.isZero() {
		pems, err := l.load(r.Rekor, maxPEMKeyBytes)
		if err != nil {
			return nil, err
		}
		for i, b := range pems {
			k, err := cosign.ParseRekorPublicKey(b)
			if err != nil {
				return nil, fmt.Errorf("%s, key %d: %w", r.Rekor.Field, i+1, err)
			}
			rekorKeys = append(rekorKeys, k)
		}
	}
	var cas []*x509.Certificate
	if r.Fulcio != nil {
		pems, err := l.load(r.Fulcio.CA, maxCABytes)
		if err != nil {
			return nil, err
		}
		if cas, err = cosign.ParseCertificatesPEM(pems[0]); err != nil {
			return nil, fmt.Errorf("fulcio.%s: %w", r.Fulcio.CA.Field, err)
		}
	}
	var trusted root.TrustedMaterial
	if len(rekorKeys) > 0 || len(cas) > 0 {
		tm, err := cosign.NewTrustedMaterial(cas, rekorKeys)
		if err != nil {
			return nil, err
		}
		trusted = tm
	}
	ignoreTlog := len(rekorKeys) == 0
	e := &sigstoreEval{req: r}
	if r.Fulcio != nil {
		v, err := cosign.NewVerifier(cosign.Policy{
			Identity: cosign.Exact(r.Fulcio.SubjectEmail), EmailIdentity: true,
			Issuer: cosign.Exact(r.Fulcio.OIDCIssuer), TrustedMaterial: trusted, Now: l.now,
		})
		if err != nil {
			return nil, err
		}
		e.verifiers = append(e.verifiers, v)
		return e, nil
	}
	pems, err := l.load(r.Keys, maxPEMKeyBytes)
	if err != nil {
		return nil, err
	}
	for i, b := range pems {
		var k crypto.PublicKey
		if k, err = cosign.ParsePublicKey(b); err != nil {
			return nil, fmt.Errorf("%s, key %d: %w", r.Keys.Field, i+1, err)
		}
		v, err := cosign.NewVerifier(cosign.Policy{Key: k, TrustedMaterial: trusted, IgnoreTlog: ignoreTlog, Now: l.now})
		if err != nil {
			return nil, err
		}
		e.verifiers = append(e.verifiers, v)
	}
	return e, nil
}

// readRegularFile reads at most limit bytes of a regular file: a key path
// naming a FIFO or a device would otherwise block or never end.
func readRegularFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

type acceptEval struct{}

func (acceptEval) describe() string { return (&InsecureAcceptAnything{}).String() }

func (acceptEval) evaluate(context.Context, Image, *signatureCache) (Outcome, error) {
	return Outcome{Allowed: true, Reason: "every image is accepted (no signature checked)"}, nil
}

type rejectEval struct{}

func (rejectEval) describe() string { return (&Reject{}).String() }

func (rejectEval) evaluate(context.Context, Image, *signatureCache) (Outcome, error) {
	return Outcome{Reason: "the policy rejects every image in this scope"}, nil
}

type signedByEval struct {
	req  *SignedBy
	mech *gpg.Mechanism
}

func (e *signedByEval) describe() string { return e.req.String() }

// evaluate accepts the image when one GPG signature passes every step of
// gpg/payload (signature by a key of the keyring, strict payload, the
// served manifest's digest, the identity rule against the image as named).
func (e *signedByEval) evaluate(ctx context.Context, img Image, c *signatureCache) (Outcome, error) {
	sigs, err := c.gpgSignatures(ctx)
	if err != nil {
		return Outcome{}, fmt.Errorf("reading the GPG signatures of %s: %w", img.Ref, err)
	}
	var o Outcome
	for _, s := range sigs {
		vs, err := payload.VerifyImageSignature(e.mech, s.Content, img.Manifest, img.Ref.String(), e.req.Identity)
		if err != nil {
			o.Rejections = append(o.Rejections, fmt.Sprintf("GPG signature %s: %v", s.Name, err))
			continue
		}
		o.Allowed = true
		o.Reason = fmt.Sprintf("GPG signature %s by key %s (%s), signed identity %q", s.Name, vs.Signer.KeyID, vs.Signer.Fingerprint, vs.Payload.DockerReference)
		return o, nil
	}
	o.Reason = noneAccepted(len(sigs), "GPG")
	return o, nil
}

func noneAccepted(n int, kind string) string {
	if n == 0 {
		return "a " + kind + " signature was required, but the image has none"
	}
	return fmt.Sprintf("none of the %d %s signatures was accepted", n, kind)
}

type sigstoreEval struct {
	req       *SigstoreSigned
	verifiers []*cosign.Verifier
}

func (e *sigstoreEval) describe() string { return e.req.String() }

// evaluate accepts the image when one cosign signature passes the cosign
// verifier for one of the keys (or the Fulcio identity) and its signed
// docker-reference satisfies the identity rule. Only the legacy format
// signs a docker-reference; a sigstore bundle's statement names the
// digest alone, so a bundle cannot satisfy signedIdentity and is
// reported, not accepted (containers/image does not read bundles at all).
func (e *sigstoreEval) evaluate(ctx context.Context, img Image, c *signatureCache) (Outcome, error) {
	found, err := c.cosignSignatures(ctx)
	if err != nil {
		return Outcome{}, fmt.Errorf("reading the cosign signatures of %s: %w", img.Ref, err)
	}
	var o Outcome
	for _, p := range found.Problems {
		o.Rejections = append(o.Rejections, fmt.Sprintf("cosign signature %s unreadable: %v", p.Location, p.Err))
	}
	if found.Skipped > 0 {
		o.Rejections = append(o.Rejections, fmt.Sprintf("%d more cosign signatures not examined (limit %d)", found.Skipped, cosign.MaxSignatures))
	}
	for i := range found.Candidates {
		cand := &found.Candidates[i]
		if cand.Kind != cosign.KindSignature {
			continue
		}
		if cand.Format != cosign.FormatLegacy {
			o.Rejections = append(o.Rejections, fmt.Sprintf("cosign signature %s (%s): signs no docker-reference, so signedIdentity cannot be checked; sign with --new-bundle-format=false for policy use", cand.Location, cand.Format))
			continue
		}
		var why []string
		for k, v := range e.verifiers {
			got, err := v.Verify(cand, img.Digest, img.Ref.String())
			if err == nil {
				err = checkIdentity(e.req.Identity, img.Ref.String(), got.SignedDockerReference)
			}
			if err != nil {
				if len(e.verifiers) > 1 {
					err = fmt.Errorf("key %d: %w", k+1, err)
				}
				why = append(why, err.Error())
				continue
			}
			o.Allowed = true
			signer := "the key"
			if len(e.verifiers) > 1 {
				signer = fmt.Sprintf("key %d", k+1)
			}
			if got.Subject != "" {
				signer = fmt.Sprintf("%s from %s", got.Subject, got.Issuer)
			}
			o.Reason = fmt.Sprintf("cosign signature %s signed by %s, signed identity %q", cand.Location, signer, got.SignedDockerReference)
			return o, nil
		}
		o.Rejections = append(o.Rejections, fmt.Sprintf("cosign signature %s (%s): %s", cand.Location, cand.Format, strings.Join(why, "; ")))
	}
	o.Reason = noneAccepted(len(found.Candidates)+len(found.Problems), "cosign")
	return o, nil
}

// checkIdentity applies signedIdentity to a verified signature's
// docker-reference.
func checkIdentity(rule policy.Rule, expected, signed string) error {
	if err := rule.Match(expected, signed); err != nil {
		return fmt.Errorf("signed identity rejected under %s: %w", ruleName(rule), err)
	}
	return nil
}
