package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/cosign/cosigntest"
)

// TestVerifyPolicyFulcioCLI: a sigstoreSigned requirement with fulcio
// (caPath, oidcIssuer, subjectEmail) and rekorPublicKeyPath, through the
// CLI, for keyless legacy signatures; and the image as written decides
// scope and identity when --registry-url points elsewhere.
func TestVerifyPolicyFulcioCLI(t *testing.T) {
	const email = "release@example.com"
	f := newCLIFixture(t)
	good := f.reg.PushImage("org/app", "v1", "good")
	wrongEmail := f.reg.PushImage("org/app", "v2", "wrong email")
	mirrored := f.reg.PushImage("org/app", "v3", "mirrored")
	sign := func(image digest.Digest, san, dockerRef string) {
		cert, key, err := f.auth.Certificate(cosigntest.Leaf{Emails: []string{san}, IssuerV1: testIssuer, IssuerV2: testIssuer})
		if err != nil {
			t.Fatal(err)
		}
		l, err := f.auth.LegacyKeyless(cert, key, cosigntest.SimpleSigningPayload(dockerRef, image, nil), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.reg.PushLegacy("org/app", image, l)
	}
	sign(good, email, f.host+"/org/app")
	sign(wrongEmail, "eve@example.com", f.host+"/org/app")
	sign(mirrored, email, "registry.example.com/org/app")

	caPath := filepath.Join(f.dir, "fulcio.pem")
	if err := os.WriteFile(caPath, []byte(f.auth.FulcioCAPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	rekor, err := f.auth.RekorPublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	rekorPath := filepath.Join(f.dir, "rekor.pub")
	if err := os.WriteFile(rekorPath, []byte(rekor), 0o600); err != nil {
		t.Fatal(err)
	}
	writePolicy := func(scope string) string {
		req := map[string]any{
			"type":               "sigstoreSigned",
			"fulcio":             map[string]any{"caPath": caPath, "oidcIssuer": testIssuer, "subjectEmail": email},
			"rekorPublicKeyPath": rekorPath,
			"signedIdentity":     map[string]any{"type": "matchRepository"},
		}
		b, err := json.Marshal(map[string]any{
			"default":    []any{map[string]any{"type": "reject"}},
			"transports": map[string]any{"docker": map[string]any{scope: []any{req}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(f.dir, strings.NewReplacer(":", "_", "/", "_").Replace(scope)+".json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	local := writePolicy(f.host + "/org")

	_, stderr, err := runCLISplit(t, nil, "verify", "--insecure", "--policy", local, f.host+"/org/app:v1")
	if err != nil || !strings.Contains(stderr, "signed by "+email+" from "+testIssuer) || !strings.Contains(stderr, "Policy accepts") {
		t.Fatalf("good: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLISplit(t, nil, "verify", "--insecure", "--policy", local, f.host+"/org/app:v2")
	if err == nil || !strings.Contains(stderr, "rejected at identity check") {
		t.Fatalf("wrong email: %v\n%s", err, stderr)
	}
	// A copy of registry.example.com/org/app held here: judged under the
	// original's scope and identity.
	mirror := writePolicy("registry.example.com")
	_, stderr, err = runCLISplit(t, nil, "verify", "--insecure", "--registry-url", "http://"+f.host, "--policy", mirror, "registry.example.com/org/app:v3")
	if err != nil || !strings.Contains(stderr, "Policy accepts registry.example.com/org/app:v3") || !strings.Contains(stderr, "served by "+f.host) {
		t.Fatalf("mirror: %v\n%s", err, stderr)
	}
	// The local name's scope is not the original's: default rejects.
	_, stderr, err = runCLISplit(t, nil, "verify", "--insecure", "--policy", mirror, f.host+"/org/app:v3")
	if err == nil || !strings.Contains(stderr, "1. reject: REJECTED") {
		t.Fatalf("local name under the mirror policy: %v\n%s", err, stderr)
	}
}

func TestPolicyImageName(t *testing.T) {
	d := digest.FromString("x")
	for _, c := range []struct {
		arg  string
		img  client.Image
		want string
	}{
		{"registry.example.com/ns/app:v1", client.Image{Host: "registry.example.com", Repository: "ns/app", Tag: "v1"}, "registry.example.com/ns/app:v1"},
		{"registry.example.com/ns/app:v1", client.Image{Host: "127.0.0.1:5000", Repository: "ns/app", Tag: "v1"}, "registry.example.com/ns/app:v1"},
		{"localhost/app", client.Image{Host: "localhost", Repository: "app"}, "localhost/app"},
		{"ns/app:v1", client.Image{Host: "127.0.0.1:5000", Repository: "ns/app", Tag: "v1"}, "127.0.0.1:5000/ns/app:v1"},
		{d.String(), client.Image{Host: "127.0.0.1:5000", Repository: "ns/app", Digest: d}, "127.0.0.1:5000/ns/app@" + d.String()},
	} {
		got, err := policyImageName(c.arg, &target{image: c.img, digest: d})
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.arg, got, err, c.want)
		}
	}
}

func TestVerifyPolicyFlagErrors(t *testing.T) {
	f := newCLIFixture(t)
	img := f.host + "/org/app:v1"
	bad := filepath.Join(f.dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"default":[{"type":"reject"}],"default":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	missingKey := filepath.Join(f.dir, "missing-key.json")
	if err := os.WriteFile(missingKey, []byte(`{"default":[{"type":"sigstoreSigned","keyPath":"`+filepath.Join(f.dir, "nope.pub")+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := f.reg.PushImage("org/app", "v1", "x")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no such policy", []string{"--policy", filepath.Join(f.dir, "nope.json"), img}, "no such file"},
		{"malformed policy", []string{"--policy", bad, img}, `duplicate key "default"`},
		{"trusted root with the policy only", []string{"--policy", bad, "--trusted-root", f.trustedRoot, img}, "need --key"},
		{"unusable key file", []string{"--policy", missingKey, img}, "policy key material unusable"},
		{"tag and digest", []string{"--policy", missingKey, img + "@" + d.String()}, "both a tag and a digest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runCLISplit(t, nil, append([]string{"verify", "--insecure"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}
