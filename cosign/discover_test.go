package cosign_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
)

// TestMoreThanMaxSignatures: an image with 150 legacy signatures and 30
// bundle referrers is examined up to MaxSignatures, the rest counted, and
// every examined one still verifies.
func TestMoreThanMaxSignatures(t *testing.T) {
	f := newFixture(t)
	signer := newSigner(t, "P-256")
	for i := 0; i < 30; i++ {
		b, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(f.image, cosign.SignPredicateType, map[string]string{"n": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
		f.reg.PushBundle("org/app", f.image, b, cosign.SignPredicateType)
	}
	var layers []cosigntest.Layer
	for i := 0; i < 150; i++ {
		l, err := f.auth.LegacyKeyed(signer, cosigntest.SimpleSigningPayload("r", f.image, map[string]string{"n": fmt.Sprint(i)}), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	f.reg.PushLegacy("org/app", f.image, layers...)

	found, err := cosign.Discover(context.Background(), f.reg, "org/app", f.image, cosign.DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Candidates) != cosign.MaxSignatures || found.Skipped != 180-cosign.MaxSignatures || len(found.Problems) != 0 {
		t.Fatalf("%d candidates, %d skipped, %d problems; want %d, %d, 0",
			len(found.Candidates), found.Skipped, len(found.Problems), cosign.MaxSignatures, 180-cosign.MaxSignatures)
	}
	ok, errs := f.verifyAll("org/app", cosign.Policy{Key: parseKey(t, signer), IgnoreTlog: true})
	if len(ok) != cosign.MaxSignatures || len(errs) != 0 {
		t.Fatalf("%d verified, errors %v", len(ok), errs)
	}
}

// TestSignatureRepository: signatures stored in another repository
// (COSIGN_REPOSITORY) are found there and only there.
func TestSignatureRepository(t *testing.T) {
	for _, noReferrers := range []bool{false, true} {
		t.Run(fmt.Sprintf("referrers API %v", !noReferrers), func(t *testing.T) {
			f := newFixture(t)
			f.reg.NoReferrersAPI = noReferrers
			f.push(cosign.FormatLegacy, "org/notary", sigSpec{})
			f.push(cosign.FormatBundle, "org/notary", sigSpec{})
			ok, errs := f.verifyAll("org/notary", f.keylessPolicy())
			if len(ok) != 2 || len(errs) != 0 {
				t.Fatalf("%d verified, errors %v", len(ok), errs)
			}
			formats := map[cosign.Format]bool{}
			for _, v := range ok {
				formats[v.Candidate.Format] = true
			}
			if !formats[cosign.FormatLegacy] || !formats[cosign.FormatBundle] {
				t.Fatalf("formats found: %v", formats)
			}
			found, err := cosign.Discover(context.Background(), f.reg, "org/app", f.image, cosign.DiscoverOptions{})
			if err != nil || len(found.Candidates) != 0 {
				t.Fatalf("image repository: %v, %+v", err, found)
			}
		})
	}
}

// TestDiscoveryProblems: malformed entries are reported, not fatal, and
// do not stop the good ones.
func TestDiscoveryProblems(t *testing.T) {
	f := newFixture(t)
	f.push(cosign.FormatLegacy, "org/app", sigSpec{})
	// A referrer whose own subject is another image.
	b, err := cosigntest.BundleKeyed(newSigner(t, "P-256"), cosigntest.Statement(f.image, cosign.SignPredicateType, nil))
	if err != nil {
		t.Fatal(err)
	}
	d := f.reg.PushBundle("org/app", f.other2, b, cosign.SignPredicateType)
	index, _ := f.reg.Referrers(context.Background(), "org/app", f.other2, "")
	// Serve it as a referrer of f.image too: a lying index.
	liar := &lyingRegistry{Registry: f.reg, index: index}
	// An over-long legacy layer.
	big := cosigntest.Layer{Payload: []byte(strings.Repeat("x", 2<<20)), Annotations: map[string]string{}}
	f.reg.PushLegacy("org/app", f.image, big)

	found, err := cosign.Discover(context.Background(), liar, "org/app", f.image, cosign.DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Candidates) != 1 || len(found.Problems) != 2 {
		t.Fatalf("%d candidates, problems %+v", len(found.Candidates), found.Problems)
	}
	for _, p := range found.Problems {
		if !errors.Is(p.Err, cosign.ErrMalformed) {
			t.Errorf("problem at %s: %v", p.Location, p.Err)
		}
	}
	if !strings.Contains(found.Problems[0].Location, d.String()) {
		t.Errorf("problem location %q does not name the referrer", found.Problems[0].Location)
	}
}

type lyingRegistry struct {
	*cosigntest.Registry
	index []byte
}

func (l *lyingRegistry) Referrers(context.Context, string, digest.Digest, string) ([]byte, error) {
	return l.index, nil
}

// TestVerifiedOutput: the cosign-style output of a keyless legacy
// signature carries critical, the optional annotations, Subject, Issuer
// and the Rekor Bundle.
func TestVerifiedOutput(t *testing.T) {
	f := newFixture(t)
	f.push(cosign.FormatLegacy, "org/app", sigSpec{annotations: map[string]string{"repo": "Kong/kong-mesh"}})
	f.push(cosign.FormatBundle, "org/app", sigSpec{annotations: map[string]string{"repo": "Kong/kong-mesh"}})
	ok, errs := f.verifyAll("org/app", f.keylessPolicy())
	if len(ok) != 2 || len(errs) != 0 {
		t.Fatalf("%d verified, errors %v", len(ok), errs)
	}
	for _, v := range ok {
		b, err := json.Marshal(v.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Critical struct {
				Identity struct {
					DockerReference string `json:"docker-reference"`
				} `json:"identity"`
				Image struct {
					DockerManifestDigest string `json:"docker-manifest-digest"`
				} `json:"image"`
				Type string `json:"type"`
			} `json:"critical"`
			Optional map[string]json.RawMessage `json:"optional"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Critical.Image.DockerManifestDigest != f.image.String() {
			t.Errorf("%v: digest %q", v.Candidate.Format, got.Critical.Image.DockerManifestDigest)
		}
		if string(got.Optional["repo"]) != `"Kong/kong-mesh"` || string(got.Optional["Subject"]) != `"`+workflow+`"` ||
			string(got.Optional["Issuer"]) != `"`+githubIssuer+`"` {
			t.Errorf("%v: optional %s", v.Candidate.Format, b)
		}
		switch v.Candidate.Format {
		case cosign.FormatLegacy:
			if got.Critical.Type != cosign.SimpleSigningType || !strings.Contains(string(got.Optional["Bundle"]), `"SignedEntryTimestamp"`) {
				t.Errorf("legacy output %s", b)
			}
		case cosign.FormatBundle:
			if got.Critical.Type != cosign.SignPredicateType || got.Critical.Identity.DockerReference != "127.0.0.1/org/app@"+f.image.String() {
				t.Errorf("bundle output %s", b)
			}
		}
	}
}

// TestUntrustedClaims: describe's view of signatures and attestations,
// read without verification.
func TestUntrustedClaims(t *testing.T) {
	f := newFixture(t)
	f.push(cosign.FormatLegacy, "org/app", sigSpec{})
	signer := newSigner(t, "P-256")
	b, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(f.image, cosign.SignPredicateType, nil))
	if err != nil {
		t.Fatal(err)
	}
	f.reg.PushBundle("org/app", f.image, b, cosign.SignPredicateType)
	att, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(f.image, "https://slsa.dev/provenance/v1", nil))
	if err != nil {
		t.Fatal(err)
	}
	f.reg.PushBundle("org/app", f.image, att, "https://slsa.dev/provenance/v1")

	sigsOnly, err := cosign.Discover(context.Background(), f.reg, "org/app", f.image, cosign.DiscoverOptions{})
	if err != nil || len(sigsOnly.Candidates) != 2 {
		t.Fatalf("signatures: %v, %+v", err, sigsOnly)
	}
	found, err := cosign.Discover(context.Background(), f.reg, "org/app", f.image, cosign.DiscoverOptions{Attestations: true})
	if err != nil || len(found.Candidates) != 3 {
		t.Fatalf("with attestations: %v, %+v", err, found)
	}
	attestations := 0
	for i := range found.Candidates {
		cl := cosign.UntrustedClaims(&found.Candidates[i])
		if cl.Problem != "" {
			t.Errorf("%s: %s", cl.Location, cl.Problem)
		}
		switch {
		case cl.Format == cosign.FormatLegacy:
			if cl.UntrustedIdentity != workflow || cl.UntrustedIssuer != githubIssuer || !cl.Logged || cl.KeySigned {
				t.Errorf("legacy keyless claims %+v", cl)
			}
		case cl.Kind == cosign.KindAttestation:
			if cl.PredicateType != "https://slsa.dev/provenance/v1" || !cl.KeySigned {
				t.Errorf("attestation claims %+v", cl)
			}
		default:
			if !cl.KeySigned || cl.KeyHint != "test-key" || cl.Logged || cl.UntrustedIdentity != "" {
				t.Errorf("keyed bundle claims %+v", cl)
			}
		}
		if cl.Kind == cosign.KindAttestation {
			attestations++
		}
	}
	if attestations != 1 {
		t.Fatalf("%d attestations, want 1", attestations)
	}
}

// TestUntrustedAttestationClaims: describe's view of attestations in both
// formats, keyed and keyless, with the predicate type read from the
// statement when no annotation names it, and problems for an annotation
// that contradicts the statement or a statement about another image.
func TestUntrustedAttestationClaims(t *testing.T) {
	const slsa = "https://slsa.dev/provenance/v0.2"
	const name = "127.0.0.1/org/app"
	for _, c := range []struct {
		name    string
		push    func(f *fixture)
		storage string
		kind    cosign.Kind
		pt      string
		keyless bool
		logged  bool
		problem string
	}{
		{name: "legacy keyed", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa,
			push: func(f *fixture) {
				l, err := f.auth.LegacyAttestation(newSigner(t, "P-256"), nil, cosigntest.StatementV01(name, f.image, slsa, nil), slsa, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "legacy keyless", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa, keyless: true, logged: true,
			push: func(f *fixture) {
				cert, key, err := f.auth.Certificate(goodLeaf())
				if err != nil {
					t.Fatal(err)
				}
				l, err := f.auth.LegacyAttestation(key, cert, cosigntest.StatementV01(name, f.image, slsa, nil), slsa, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "legacy without predicateType annotation", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa,
			push: func(f *fixture) {
				l, err := f.auth.LegacyAttestation(newSigner(t, "P-256"), nil, cosigntest.StatementV01(name, f.image, slsa, nil), "", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "legacy annotation contradicts the statement", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa,
			problem: `annotation "https://example.com/harmless/v1" differs from the statement's`,
			push: func(f *fixture) {
				l, err := f.auth.LegacyAttestation(newSigner(t, "P-256"), nil, cosigntest.StatementV01(name, f.image, slsa, nil), "https://example.com/harmless/v1", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "legacy statement about another image", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa,
			problem: "do not include this image",
			push: func(f *fixture) {
				l, err := f.auth.LegacyAttestation(newSigner(t, "P-256"), nil, cosigntest.StatementV01(name, f.other2, slsa, nil), slsa, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "legacy envelope not in-toto", storage: "legacy .att tag", kind: cosign.KindAttestation, pt: slsa, problem: "envelope: payload type",
			push: func(f *fixture) {
				l, err := f.auth.LegacyAttestation(newSigner(t, "P-256"), nil, cosigntest.StatementV01(name, f.image, slsa, nil), slsa, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				l.Payload = []byte(strings.Replace(string(l.Payload), "application/vnd.in-toto+json", "text/plain", 1))
				f.reg.PushAttestation("org/app", f.image, l)
			}},
		{name: "bundle keyless", storage: "bundle v0.3 referrer", kind: cosign.KindAttestation, pt: slsa, keyless: true, logged: true,
			push: func(f *fixture) {
				cert, key, err := f.auth.Certificate(goodLeaf())
				if err != nil {
					t.Fatal(err)
				}
				b, err := f.auth.BundleKeyless(cert, key, cosigntest.Statement(f.image, slsa, nil), time.Now())
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushBundle("org/app", f.image, b, slsa)
			}},
		{name: "bundle without predicateType annotation", storage: "bundle v0.3 referrer", kind: cosign.KindAttestation, pt: slsa,
			push: func(f *fixture) {
				b, err := cosigntest.BundleKeyed(newSigner(t, "P-256"), cosigntest.Statement(f.image, slsa, nil))
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushBundle("org/app", f.image, b, "")
			}},
		{name: "bundle claiming to be a signature", storage: "bundle v0.3 referrer", kind: cosign.KindAttestation, pt: slsa,
			problem: "differs from the statement's",
			push: func(f *fixture) {
				b, err := cosigntest.BundleKeyed(newSigner(t, "P-256"), cosigntest.Statement(f.image, slsa, nil))
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushBundle("org/app", f.image, b, cosign.SignPredicateType)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			c.push(f)
			found, err := cosign.Discover(context.Background(), f.reg, "org/app", f.image, cosign.DiscoverOptions{Attestations: true})
			if err != nil || len(found.Candidates) != 1 || len(found.Problems) != 0 {
				t.Fatalf("discover: %v %+v", err, found)
			}
			cl := cosign.UntrustedClaims(&found.Candidates[0])
			if cl.Storage() != c.storage || cl.Kind != c.kind || cl.PredicateType != c.pt || cl.Content != "DSSE envelope (in-toto statement)" || cl.Logged != c.logged {
				t.Fatalf("claims %+v (storage %q)", cl, cl.Storage())
			}
			if c.keyless != (cl.UntrustedIdentity == workflow && cl.UntrustedIssuer == githubIssuer) || c.keyless == cl.KeySigned {
				t.Fatalf("signer claims %+v", cl)
			}
			if c.problem == "" && cl.Problem != "" || !strings.Contains(cl.Problem, c.problem) {
				t.Fatalf("problem %q, want %q", cl.Problem, c.problem)
			}
		})
	}
}
