package cosign_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
)

const (
	githubIssuer = "https://token.actions.githubusercontent.com"
	workflow     = "https://github.com/org/repo/.github/workflows/release.yaml@refs/tags/v1"
	// evilWorkflow contains workflow, so an unanchored regexp for the
	// org's workflows matches it (the cosign trap).
	evilWorkflow = "https://evil.example/?https://github.com/org/repo/.github/workflows/release.yaml@refs/tags/v1"
	workflowRE   = `https://github\.com/org/repo/\.github/workflows/.*`
)

// sigSpec describes one signature to mint; the zero value is a good
// keyless signature for the image.
type sigSpec struct {
	leaf           cosigntest.Leaf
	forImage       *digest.Digest // the digest the payload names (default: the image)
	annotations    map[string]string
	integratedTime time.Time // default: now
	predicateType  string    // bundles; default: cosign's sign predicate
	otherAuthority bool      // certificate from an untrusted Fulcio
	tamperLegacy   func(*cosigntest.Layer)
	tamperBundle   func(map[string]any)
}

type fixture struct {
	t      *testing.T
	auth   *cosigntest.Authority
	other  *cosigntest.Authority
	reg    *cosigntest.Registry
	image  digest.Digest
	other2 digest.Digest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	auth, err := cosigntest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	other, err := cosigntest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	reg := cosigntest.NewRegistry()
	return &fixture{
		t: t, auth: auth, other: other, reg: reg,
		image:  reg.PushImage("org/app", "v1", "one"),
		other2: reg.PushImage("org/app", "v2", "two"),
	}
}

func goodLeaf() cosigntest.Leaf {
	return cosigntest.Leaf{URIs: []string{workflow}, IssuerV1: githubIssuer, IssuerV2: githubIssuer}
}

// push mints spec in format and pushes it to repo for the image.
func (f *fixture) push(format cosign.Format, repo string, spec sigSpec) {
	t := f.t
	t.Helper()
	if spec.leaf.URIs == nil && spec.leaf.Emails == nil && spec.leaf.IssuerV1 == "" && spec.leaf.IssuerV2 == "" {
		spec.leaf = goodLeaf()
	}
	if spec.integratedTime.IsZero() {
		spec.integratedTime = time.Now()
	}
	signedFor := f.image
	if spec.forImage != nil {
		signedFor = *spec.forImage
	}
	auth := f.auth
	if spec.otherAuthority {
		auth = f.other
	}
	cert, key, err := auth.Certificate(spec.leaf)
	if err != nil {
		t.Fatal(err)
	}
	switch format {
	case cosign.FormatLegacy:
		layer, err := auth.LegacyKeyless(cert, key, cosigntest.SimpleSigningPayload("127.0.0.1/org/app", signedFor, spec.annotations), spec.integratedTime)
		if err != nil {
			t.Fatal(err)
		}
		if spec.tamperLegacy != nil {
			spec.tamperLegacy(&layer)
		}
		f.reg.PushLegacy(repo, f.image, layer)
	case cosign.FormatBundle:
		pt := spec.predicateType
		if pt == "" {
			pt = cosign.SignPredicateType
		}
		b, err := auth.BundleKeyless(cert, key, cosigntest.Statement(signedFor, pt, spec.annotations), spec.integratedTime)
		if err != nil {
			t.Fatal(err)
		}
		if spec.tamperBundle != nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			spec.tamperBundle(m)
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		// The referrer's annotation always claims a signature; only the
		// signed statement says what it is.
		f.reg.PushBundle(repo, f.image, b, cosign.SignPredicateType)
	}
}

// verifyAll discovers the image's signatures in repo and verifies each.
func (f *fixture) verifyAll(repo string, p cosign.Policy) ([]*cosign.Verified, []error) {
	t := f.t
	t.Helper()
	found, err := cosign.Discover(context.Background(), f.reg, repo, f.image, cosign.DiscoverOptions{})
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	for _, p := range found.Problems {
		t.Fatalf("discovery problem at %s: %v", p.Location, p.Err)
	}
	v, err := cosign.NewVerifier(p)
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	var ok []*cosign.Verified
	var errs []error
	for i := range found.Candidates {
		got, err := v.Verify(&found.Candidates[i], f.image, "127.0.0.1/org/app@"+f.image.String())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, got)
	}
	return ok, errs
}

func (f *fixture) keylessPolicy() cosign.Policy {
	return cosign.Policy{Identity: cosign.Exact(workflow), Issuer: cosign.Exact(githubIssuer), TrustedMaterial: f.auth.Trusted}
}

func mustRegexp(t *testing.T, expr string) cosign.Matcher {
	t.Helper()
	m, err := cosign.Regexp(expr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// flipBase64 changes one byte of a base64 string's decoded value.
func flipBase64(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	if len(b) == 0 {
		return "AA=="
	}
	b[len(b)/2] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

// TestKeyless runs every keyless case on both storage formats, each
// asserting the specific check that rejects it.
func TestKeyless(t *testing.T) {
	type tc struct {
		name   string
		spec   func(f *fixture) sigSpec
		policy func(t *testing.T, f *fixture) cosign.Policy
		// legacyOnly and bundleOnly restrict a case to one format.
		legacyOnly, bundleOnly bool
		wantStep               cosign.Step
		wantErr                error // nil: verifies
	}
	base := func(*fixture) sigSpec { return sigSpec{} }
	basePolicy := func(_ *testing.T, f *fixture) cosign.Policy { return f.keylessPolicy() }
	cases := []tc{
		{name: "matching identity and issuer", spec: base, policy: basePolicy},
		{name: "identity regexp matching the whole SAN", spec: base, policy: func(t *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Identity = mustRegexp(t, workflowRE)
			p.Issuer = mustRegexp(t, `https://token\.actions\.githubusercontent\.com`)
			return p
		}},
		{name: "identity matching only an unanchored regexp", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{evilWorkflow}, IssuerV1: githubIssuer, IssuerV2: githubIssuer}}
		}, policy: func(t *testing.T, f *fixture) cosign.Policy {
			// The trap is real: cosign's unanchored match accepts it.
			if !regexp.MustCompile(workflowRE).MatchString(evilWorkflow) {
				t.Fatal("test premise: the unanchored regexp should match")
			}
			p := f.keylessPolicy()
			p.Identity = mustRegexp(t, workflowRE)
			return p
		}, wantStep: cosign.StepIdentity, wantErr: cosign.ErrIdentityMismatch},
		{name: "exact identity with a longer SAN", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{evilWorkflow}, IssuerV1: githubIssuer, IssuerV2: githubIssuer}}
		}, policy: basePolicy, wantStep: cosign.StepIdentity, wantErr: cosign.ErrIdentityMismatch},
		{name: "email identity", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{Emails: []string{"dev@example.com"}, IssuerV1: "https://accounts.google.com"}}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Identity, p.Issuer = cosign.Exact("dev@example.com"), cosign.Exact("https://accounts.google.com")
			return p
		}},
		{name: "wrong issuer", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{workflow}, IssuerV1: "https://accounts.google.com", IssuerV2: "https://accounts.google.com"}}
		}, policy: basePolicy, wantStep: cosign.StepIssuer, wantErr: cosign.ErrIssuerMismatch},
		{name: "issuer regexp matching only a prefix", spec: func(*fixture) sigSpec {
			evil := githubIssuer + ".evil.example"
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{workflow}, IssuerV1: evil, IssuerV2: evil}}
		}, policy: func(t *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Issuer = mustRegexp(t, `https://token\.actions\.githubusercontent\.com`)
			return p
		}, wantStep: cosign.StepIssuer, wantErr: cosign.ErrIssuerMismatch},
		{name: "v1 and v2 issuers disagree", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{workflow}, IssuerV1: githubIssuer, IssuerV2: "https://evil.example"}}
		}, policy: basePolicy, wantStep: cosign.StepIssuer, wantErr: cosign.ErrIssuerConflict},
		{name: "v2 issuer only", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{workflow}, IssuerV2: githubIssuer}}
		}, policy: basePolicy},
		{name: "no issuer extension", spec: func(*fixture) sigSpec {
			return sigSpec{leaf: cosigntest.Leaf{URIs: []string{workflow}}}
		}, policy: basePolicy, wantStep: cosign.StepIssuer, wantErr: cosign.ErrIssuerMismatch},
		{name: "annotations match", spec: func(*fixture) sigSpec {
			return sigSpec{annotations: map[string]string{"repo": "Kong/kong-mesh", "workflow": "build-test-distribute"}}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Annotations = map[string]string{"repo": "Kong/kong-mesh", "workflow": "build-test-distribute"}
			return p
		}},
		{name: "wrong annotation value", spec: func(*fixture) sigSpec {
			return sigSpec{annotations: map[string]string{"repo": "Kong/kong"}}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Annotations = map[string]string{"repo": "Kong/kong-mesh"}
			return p
		}, wantStep: cosign.StepAnnotations, wantErr: cosign.ErrAnnotationMismatch},
		{name: "missing annotation", spec: func(*fixture) sigSpec {
			return sigSpec{annotations: map[string]string{"repo": "Kong/kong-mesh"}}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.Annotations = map[string]string{"repo": "Kong/kong-mesh", "workflow": "build-test-distribute"}
			return p
		}, wantStep: cosign.StepAnnotations, wantErr: cosign.ErrAnnotationMissing},
		{name: "payload digest for another image", spec: func(f *fixture) sigSpec {
			return sigSpec{forImage: &f.other2}
		}, policy: basePolicy, wantStep: cosign.StepDigest, wantErr: cosign.ErrDigestMismatch},
		{name: "certificate from an untrusted Fulcio", spec: func(*fixture) sigSpec {
			return sigSpec{otherAuthority: true}
		}, policy: basePolicy, wantStep: cosign.StepCertificateChain, wantErr: cosign.ErrCertificateChain},
		{name: "certificate expired at integrated time", spec: func(*fixture) sigSpec {
			return sigSpec{integratedTime: time.Now().Add(30 * time.Minute)}
		}, policy: basePolicy, wantStep: cosign.StepCertificateChain, wantErr: cosign.ErrCertificateNotValid},
		{name: "tampered SET", legacyOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) {
				var b map[string]any
				_ = json.Unmarshal([]byte(l.Annotations["dev.sigstore.cosign/bundle"]), &b)
				b["SignedEntryTimestamp"] = flipBase64(b["SignedEntryTimestamp"].(string))
				out, _ := json.Marshal(b)
				l.Annotations["dev.sigstore.cosign/bundle"] = string(out)
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrTlogEntry},
		{name: "SET with a changed integrated time", legacyOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) {
				var b map[string]any
				_ = json.Unmarshal([]byte(l.Annotations["dev.sigstore.cosign/bundle"]), &b)
				p := b["Payload"].(map[string]any)
				p["integratedTime"] = p["integratedTime"].(float64) + 60
				out, _ := json.Marshal(b)
				l.Annotations["dev.sigstore.cosign/bundle"] = string(out)
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrTlogEntry},
		{name: "tampered SET", bundleOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperBundle: func(b map[string]any) {
				tle := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
				promise := tle["inclusionPromise"].(map[string]any)
				promise["signedEntryTimestamp"] = flipBase64(promise["signedEntryTimestamp"].(string))
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrTlogEntry},
		{name: "no SET", legacyOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) { delete(l.Annotations, "dev.sigstore.cosign/bundle") }}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrNoTlogEntry},
		{name: "no log entry", bundleOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperBundle: func(b map[string]any) {
				delete(b["verificationMaterial"].(map[string]any), "tlogEntries")
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrNoTlogEntry},
		{name: "tampered payload", legacyOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) {
				l.Payload = []byte(strings.Replace(string(l.Payload), "127.0.0.1/org/app", "127.0.0.1/org/evil", 1))
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrTlogEntry},
		{name: "tampered payload, log ignored", legacyOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) {
				l.Payload = []byte(strings.Replace(string(l.Payload), "127.0.0.1/org/app", "127.0.0.1/org/evil", 1))
			}}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.IgnoreTlog = true
			return p
		}, wantStep: cosign.StepSignature, wantErr: cosign.ErrSignature},
		{name: "tampered statement", bundleOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{tamperBundle: func(b map[string]any) {
				env := b["dsseEnvelope"].(map[string]any)
				env["payload"] = flipBase64(env["payload"].(string))
			}}
		}, policy: basePolicy, wantStep: cosign.StepTlog, wantErr: cosign.ErrTlogEntry},
		{name: "signed statement is an attestation", bundleOnly: true, spec: func(*fixture) sigSpec {
			return sigSpec{predicateType: "https://slsa.dev/provenance/v1"}
		}, policy: basePolicy, wantStep: cosign.StepPayload, wantErr: cosign.ErrPayload},
		{name: "ignore tlog: checked at the current time", spec: func(*fixture) sigSpec {
			return sigSpec{tamperLegacy: func(l *cosigntest.Layer) { delete(l.Annotations, "dev.sigstore.cosign/bundle") }}
		}, policy: func(_ *testing.T, f *fixture) cosign.Policy {
			p := f.keylessPolicy()
			p.IgnoreTlog = true
			return p
		}},
	}
	for _, format := range []cosign.Format{cosign.FormatLegacy, cosign.FormatBundle} {
		for _, c := range cases {
			if c.legacyOnly && format != cosign.FormatLegacy || c.bundleOnly && format != cosign.FormatBundle {
				continue
			}
			t.Run(format.String()+"/"+c.name, func(t *testing.T) {
				f := newFixture(t)
				f.push(format, "org/app", c.spec(f))
				ok, errs := f.verifyAll("org/app", c.policy(t, f))
				if len(ok)+len(errs) != 1 {
					t.Fatalf("%d verified, %d rejected; want one signature", len(ok), len(errs))
				}
				if c.wantErr == nil {
					if len(errs) > 0 {
						t.Fatalf("rejected: %v", errs[0])
					}
					if ok[0].Candidate.Format != format {
						t.Fatalf("format %v", ok[0].Candidate.Format)
					}
					return
				}
				if len(ok) > 0 {
					t.Fatalf("verified, want %v", c.wantErr)
				}
				t.Log(errs[0])
				var ve *cosign.VerificationError
				if !errors.As(errs[0], &ve) || !errors.Is(errs[0], c.wantErr) || ve.Step != c.wantStep {
					t.Fatalf("got %v, want %v at the %v check", errs[0], c.wantErr, c.wantStep)
				}
			})
		}
	}
}
