package payload_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"

	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/gpg/policy"
)

func testNow() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }

func mechanism(t testing.TB, opts gpg.Options, keyrings ...[]byte) *gpg.Mechanism {
	t.Helper()
	if opts.Now == nil {
		opts.Now = testNow
	}
	m, err := gpg.NewMechanismWithOptions(opts, keyrings...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertStep checks the failing step and the sentinel it wraps.
func assertStep(t *testing.T, err error, step payload.Step, want ...error) {
	t.Helper()
	var ve *payload.VerificationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *VerificationError", err)
	}
	if ve.Step != step {
		t.Fatalf("failed at step %v, want %v: %v", ve.Step, step, err)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("error %v does not wrap %v", err, w)
		}
	}
}

func TestVerifyImageSignatureGnuPGFixtures(t *testing.T) {
	env := fixtureEnv(t)
	keys := [][]byte{testdata(t, "rsa.pub.gpg"), testdata(t, "ed25519.pub.asc"), testdata(t, "subkey.pub.gpg"), testdata(t, "passphrase.pub.gpg")}
	m := mechanism(t, gpg.Options{}, keys...)
	manifestA, manifestB := testdata(t, "manifest.json"), testdata(t, "manifest-other.json")
	const ident = "registry.example.com/signet/test:v1"

	t.Run("accepted", func(t *testing.T) {
		for _, sig := range []string{"rsa.sig", "rsa-bzip2.sig", "ed25519.sig", "subkey.sig", "passphrase.sig"} {
			v, err := payload.VerifyImageSignature(m, testdata(t, sig), manifestA, ident, nil)
			if err != nil {
				t.Fatalf("%s: %v", sig, err)
			}
			if v.Payload.ManifestDigest.String() != env["MANIFEST_DIGEST"] || v.Payload.DockerReference != ident ||
				*v.Payload.Creator != "signet generate.sh" || v.Payload.Timestamp.Unix() != 1704067200 {
				t.Errorf("%s: payload %+v", sig, v.Payload)
			}
			if v.Signer.KeyID == "" || len(v.Signer.Fingerprint) != 40 {
				t.Errorf("%s: signer %+v", sig, v.Signer)
			}
		}
		if v, err := payload.VerifyImageSignatureForDigest(m, testdata(t, "rsa.sig"), digest.Digest(env["MANIFEST_DIGEST"]), ident, policy.MatchExact{}); err != nil || v.Signer.Fingerprint != env["RSA_FPR"] {
			t.Fatalf("VerifyImageSignatureForDigest = %+v, %v", v, err)
		}
	})

	tests := []struct {
		name     string
		sig      string
		manifest []byte
		expected string
		rule     payload.IdentityRule
		step     payload.Step
		want     []error
	}{
		{"bad signature stops at step 1", "expired-signature.sig", manifestB, "x", nil, payload.StepSignature, []error{gpg.ErrSignatureExpired}},
		{"unsigned", "literal.sig", manifestA, ident, nil, payload.StepSignature, []error{gpg.ErrUnsigned}},
		{"duplicate key in payload", "duplicate-key.sig", manifestA, ident, nil, payload.StepPayload, []error{payload.ErrInvalidPayload}},
		{"replay: signature for A checked against B", "rsa.sig", manifestB, ident, nil, payload.StepManifestDigest, []error{payload.ErrDigestMismatch}},
		{"replay with permissive rule", "ed25519.sig", manifestB, ident, policy.MatchRepository{}, payload.StepManifestDigest, []error{payload.ErrDigestMismatch}},
		{"tag differs", "rsa.sig", manifestA, "registry.example.com/signet/test:v2", nil, payload.StepIdentity, []error{payload.ErrIdentityMismatch, policy.ErrIdentityMismatch}},
		{"repository differs", "rsa.sig", manifestA, "registry.example.com/signet/other:v1", nil, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
		{"host differs", "rsa.sig", manifestA, "evil.example.com/signet/test:v1", nil, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
		{"port differs", "rsa.sig", manifestA, "registry.example.com:5000/signet/test:v1", policy.MatchExact{}, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
		{"name-only expectation", "rsa.sig", manifestA, "registry.example.com/signet/test", nil, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
		{"name-only signed identity, default rule", "name-only.sig", manifestA, ident, nil, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
		{"name-only signed identity, matchExact", "name-only.sig", manifestA, ident, policy.MatchExact{}, payload.StepIdentity, []error{payload.ErrIdentityMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := payload.VerifyImageSignature(m, testdata(t, tc.sig), tc.manifest, tc.expected, tc.rule)
			if v != nil {
				t.Fatalf("verified: %+v", v)
			}
			assertStep(t, err, tc.step, tc.want...)
		})
	}
	t.Run("name-only signed identity, matchRepository", func(t *testing.T) {
		if _, err := payload.VerifyImageSignature(m, testdata(t, "name-only.sig"), manifestA, ident, policy.MatchRepository{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("digest variant rejects replay and bad digests", func(t *testing.T) {
		_, err := payload.VerifyImageSignatureForDigest(m, testdata(t, "rsa.sig"), digest.Digest(env["MANIFEST_OTHER_DIGEST"]), ident, nil)
		assertStep(t, err, payload.StepManifestDigest, payload.ErrDigestMismatch)
		_, err = payload.VerifyImageSignatureForDigest(m, testdata(t, "rsa.sig"), "sha256:nothex", ident, nil)
		assertStep(t, err, payload.StepManifestDigest, payload.ErrDigestMismatch)
		_, err = payload.VerifyImageSignatureForDigest(m, testdata(t, "rsa.sig"), digest.SHA512.FromBytes(manifestA), ident, nil)
		assertStep(t, err, payload.StepManifestDigest, payload.ErrDigestMismatch)
	})
}

// TestVerifyImageSignatureContainersFixtures: image.signature signs identity
// "testing/manifest" (name-only), so only matchRepository accepts it.
func TestVerifyImageSignatureContainersFixtures(t *testing.T) {
	dir := filepath.Join(moduleDir(t), "signature", "fixtures")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m := mechanism(t, gpg.Options{Now: time.Now}, read("public-key.gpg"), read("public-key-with-subkey.gpg"))
	manifestBytes := read("image.manifest.json")
	const expected = "testing/manifest:latest"

	v, err := payload.VerifyImageSignature(m, read("image.signature"), manifestBytes, expected, policy.MatchRepository{})
	if err != nil {
		t.Fatalf("matchRepository: %v", err)
	}
	if v.Payload.DockerReference != "testing/manifest" || v.Payload.ManifestDigest != "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55" ||
		v.Signer.Fingerprint != "08CD26E446E2E95249B7A405E932F44B23E8DD43" || v.Signer.KeyID != "E932F44B23E8DD43" {
		t.Errorf("verified %+v", v)
	}
	for _, rule := range []payload.IdentityRule{nil, policy.MatchRepoDigestOrExact{}, policy.MatchExact{}} {
		_, err := payload.VerifyImageSignature(m, read("image.signature"), manifestBytes, expected, rule)
		assertStep(t, err, payload.StepIdentity, payload.ErrIdentityMismatch, policy.ErrIdentityMismatch)
	}
	// subkey.signature: identity testing/manifest:latest, exact match works.
	if _, err := payload.VerifyImageSignature(m, read("subkey.signature"), manifestBytes, expected, nil); err != nil {
		t.Fatalf("subkey.signature: %v", err)
	}
	_, err = payload.VerifyImageSignature(m, read("invalid-blob.signature"), manifestBytes, expected, policy.MatchRepository{})
	assertStep(t, err, payload.StepPayload, payload.ErrInvalidPayload)
	_, err = payload.VerifyImageSignature(m, read("image.signature"), read("v2s1-invalid-signatures.manifest.json"), expected, policy.MatchRepository{})
	assertStep(t, err, payload.StepManifestDigest)
	for name, want := range map[string]error{
		"corrupt.signature":            gpg.ErrInvalidSignature,
		"expired.signature":            gpg.ErrSignatureExpired,
		"unknown-key.signature":        gpg.ErrUnknownSigner,
		"unsigned-literal.signature":   gpg.ErrUnsigned,
		"unsigned-encrypted.signature": gpg.ErrEncrypted,
	} {
		_, err := payload.VerifyImageSignature(m, read(name), manifestBytes, expected, policy.MatchRepository{})
		assertStep(t, err, payload.StepSignature, want)
	}
}

// TestSignImageSchema1: digests of Docker schema1 manifests exclude their
// embedded JWS signatures; signing and verifying both go through
// containers/image's manifest package, so they agree.
func TestSignImageSchema1(t *testing.T) {
	schema1, err := os.ReadFile(filepath.Join(moduleDir(t), "internal", "manifest", "testdata", "v2s1.manifest.json"))
	if err != nil {
		t.Skipf("schema1 fixture: %v", err)
	}
	env := fixtureEnv(t)
	m := mechanism(t, gpg.Options{}, testdata(t, "ed25519.sec.gpg"))
	const ident = "registry.example.com/signet/legacy:v1"
	sig, err := payload.SignImage(m, schema1, ident, env["ED25519_FPR"], "signet test", testNow())
	if err != nil {
		t.Fatal(err)
	}
	v, err := payload.VerifyImageSignature(m, sig, schema1, ident, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := manifest.Digest(schema1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Payload.ManifestDigest != d || d == digest.FromBytes(schema1) {
		t.Errorf("signed digest %s, manifest.Digest %s, raw %s", v.Payload.ManifestDigest, d, digest.FromBytes(schema1))
	}
	if !v.Payload.Timestamp.Equal(testNow()) || *v.Payload.Creator != "signet test" {
		t.Errorf("claims %+v", v.Payload)
	}
}

// stubVerifier returns fixed results, to observe the order of the steps.
type stubVerifier struct {
	res gpg.Result
	err error
}

func (s stubVerifier) VerifyDetailed([]byte) (gpg.Result, error) { return s.res, s.err }

// failingRule records that it was called.
type failingRule struct{ called *bool }

func (r failingRule) Match(string, string) error {
	*r.called = true
	return errors.New("rule says no")
}

// TestVerificationOrder: each step runs only after the previous one passed.
func TestVerificationOrder(t *testing.T) {
	manifestA := testdata(t, "manifest.json")
	wrongDigestPayload := []byte(`{"critical":{"identity":{"docker-reference":"other.example.com/x:y"},"image":{"docker-manifest-digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},"type":"atomic container signature"},"optional":{}}`)
	tests := []struct {
		name string
		v    payload.Verifier
		step payload.Step
	}{
		{"crypto failure hides an invalid payload", stubVerifier{res: gpg.Result{Contents: []byte("not json")}, err: gpg.ErrInvalidSignature}, payload.StepSignature},
		{"invalid payload before digest", stubVerifier{res: gpg.Result{Contents: []byte("not json")}}, payload.StepPayload},
		{"digest before identity", stubVerifier{res: gpg.Result{Contents: wrongDigestPayload}}, payload.StepManifestDigest},
		{"identity last", stubVerifier{res: gpg.Result{Contents: testdata(t, "payload.json")}}, payload.StepIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			_, err := payload.VerifyImageSignature(tc.v, nil, manifestA, "registry.example.com/signet/test:v1", failingRule{&called})
			assertStep(t, err, tc.step)
			if called != (tc.step == payload.StepIdentity) {
				t.Errorf("identity rule called = %v at step %v", called, tc.step)
			}
		})
	}
	if _, err := payload.VerifyImageSignature(nil, nil, manifestA, "x", nil); err == nil {
		t.Error("nil verifier accepted")
	}
}

// BenchmarkVerifyImageSignature measures the full SPEC section 3 pipeline
// (compare with BenchmarkVerify/*/containers-image-VerifyDockerManifestSignature
// in package gpg, which does the same four steps).
//
//	go test -tags containers_image_openpgp -run '^$' -bench . ./gpg/payload/
func BenchmarkVerifyImageSignature(b *testing.B) {
	manifestA := testdata(b, "manifest.json")
	for _, s := range []struct{ name, sig, key string }{
		{"rsa3072", "rsa.sig", "rsa.pub.gpg"},
		{"ed25519", "ed25519.sig", "ed25519.pub.gpg"},
	} {
		sig := testdata(b, s.sig)
		for _, c := range []struct {
			name string
			size int
		}{{"uncached", -1}, {"cached", 0}} {
			b.Run(s.name+"/"+c.name, func(b *testing.B) {
				m := mechanism(b, gpg.Options{CacheSize: c.size}, testdata(b, s.key))
				for b.Loop() {
					if _, err := payload.VerifyImageSignature(m, sig, manifestA, "registry.example.com/signet/test:v1", nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
			})
		}
	}
}
