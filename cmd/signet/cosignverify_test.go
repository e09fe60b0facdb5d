package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
)

const (
	testIssuer   = "https://token.actions.githubusercontent.com"
	testWorkflow = "https://github.com/org/repo/.github/workflows/release.yaml@refs/tags/v1"
	testEvil     = "https://evil.example/?https://github.com/org/repo/.github/workflows/release.yaml@refs/tags/v1"
	testRE       = `https://github\.com/org/repo/\.github/workflows/.*`
)

// runCLISplit runs the CLI in-process with stdout and stderr apart.
func runCLISplit(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := NewRootCmd(func(k string) string { return env[k] })
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

type cliFixture struct {
	auth        *cosigntest.Authority
	reg         *cosigntest.Registry
	host        string
	trustedRoot string
	dir         string
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	auth, err := cosigntest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	reg := cosigntest.NewRegistry()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tr, err := auth.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	f := &cliFixture{auth: auth, reg: reg, host: strings.TrimPrefix(srv.URL, "http://"), dir: dir, trustedRoot: filepath.Join(dir, "trusted_root.json")}
	if err := os.WriteFile(f.trustedRoot, tr, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// signKeyless pushes a legacy and a bundle keyless signature of image,
// by a certificate naming san, into sigRepo.
func (f *cliFixture) signKeyless(t *testing.T, sigRepo string, image digest.Digest, san string, annotations map[string]string) {
	t.Helper()
	for _, legacy := range []bool{true, false} {
		cert, key, err := f.auth.Certificate(cosigntest.Leaf{URIs: []string{san}, IssuerV1: testIssuer, IssuerV2: testIssuer})
		if err != nil {
			t.Fatal(err)
		}
		if legacy {
			l, err := f.auth.LegacyKeyless(cert, key, cosigntest.SimpleSigningPayload(f.host+"/org/app", image, annotations), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			f.reg.PushLegacy(sigRepo, image, l)
			continue
		}
		b, err := f.auth.BundleKeyless(cert, key, cosigntest.Statement(image, cosign.SignPredicateType, annotations), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.reg.PushBundle(sigRepo, image, b, cosign.SignPredicateType)
	}
}

func TestCosignVerifyKeylessCLI(t *testing.T) {
	f := newCLIFixture(t)
	good := f.reg.PushImage("org/app", "v1", "good")
	evil := f.reg.PushImage("org/app", "v2", "evil")
	separate := f.reg.PushImage("org/app", "v3", "separate")
	ann := map[string]string{"repo": "Kong/kong-mesh", "workflow": "build-test-distribute"}
	f.signKeyless(t, "org/app", good, testWorkflow, ann)
	f.signKeyless(t, "org/app", evil, testEvil, ann)
	f.signKeyless(t, "org/notary", separate, testWorkflow, ann)

	keyless := func(image string, extra ...string) []string {
		return append([]string{"verify", "--insecure", "--trusted-root", f.trustedRoot,
			"--certificate-identity-regexp", testRE, "--certificate-oidc-issuer", testIssuer,
			"-a", "repo=Kong/kong-mesh", "-a", "workflow=build-test-distribute", image}, extra...)
	}

	t.Run("both formats verify", func(t *testing.T) {
		stdout, stderr, err := runCLISplit(t, nil, keyless(f.host+"/org/app:v1")...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var payloads []cosign.Payload
		if err := json.Unmarshal([]byte(stdout), &payloads); err != nil {
			t.Fatalf("stdout is not the payload JSON: %v\n%s", err, stdout)
		}
		if len(payloads) != 2 {
			t.Fatalf("%d payloads:\n%s", len(payloads), stdout)
		}
		types := map[string]bool{}
		for _, p := range payloads {
			types[p.Critical.Type] = true
			if p.Critical.Image.DockerManifestDigest != good.String() || p.Optional["Subject"] != testWorkflow || p.Optional["Issuer"] != testIssuer {
				t.Errorf("payload %+v", p)
			}
		}
		if !types[cosign.SimpleSigningType] || !types[cosign.SignPredicateType] {
			t.Errorf("formats: %v", types)
		}
		for _, want := range []string{"Verification for " + f.host + "/org/app@" + good.String(),
			"The specified annotations were verified.",
			"Existence of the claims in the transparency log was verified offline",
			"The code-signing certificate was verified using trusted certificate authority certificates",
			"regexps anchored"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("unanchored-only identity rejected", func(t *testing.T) {
		stdout, stderr, err := runCLISplit(t, nil, keyless(f.host+"/org/app:v2")...)
		if err == nil || stdout != "" {
			t.Fatalf("verified an identity that only an unanchored regexp matches:\n%s", stdout)
		}
		if strings.Count(stderr, "rejected at identity check") != 2 {
			t.Fatalf("stderr:\n%s", stderr)
		}
	})

	t.Run("wrong annotation", func(t *testing.T) {
		_, stderr, err := runCLISplit(t, nil, append(keyless(f.host+"/org/app:v1"), "-a", "team=other")...)
		if err == nil || strings.Count(stderr, "rejected at annotations check") != 2 {
			t.Fatalf("err %v, stderr:\n%s", err, stderr)
		}
	})

	t.Run("COSIGN_REPOSITORY from the environment", func(t *testing.T) {
		if _, stderr, err := runCLISplit(t, nil, keyless(f.host+"/org/app:v3")...); err == nil || !strings.Contains(err.Error(), "no cosign signatures found") {
			t.Fatalf("found signatures in the image's repository: %v\n%s", err, stderr)
		}
		for _, repo := range []string{f.host + "/org/notary", "org/notary"} {
			stdout, stderr, err := runCLISplit(t, map[string]string{"COSIGN_REPOSITORY": repo}, keyless(f.host+"/org/app:v3")...)
			if err != nil || !strings.Contains(stdout, separate.String()) {
				t.Fatalf("COSIGN_REPOSITORY=%s: %v\n%s", repo, err, stderr)
			}
		}
		// The flag wins over the environment.
		stdout, stderr, err := runCLISplit(t, map[string]string{"COSIGN_REPOSITORY": "org/elsewhere"},
			keyless(f.host+"/org/app:v3", "--signature-repository", "org/notary")...)
		if err != nil || !strings.Contains(stdout, separate.String()) {
			t.Fatalf("--signature-repository: %v\n%s", err, stderr)
		}
	})

	t.Run("describe lists cosign signatures", func(t *testing.T) {
		cf := clientFlags{insecure: true, getenv: func(string) string { return "" }}
		tg, err := cf.resolve(context.Background(), f.host+"/org/app:v1")
		if err != nil {
			t.Fatal(err)
		}
		list, msg := describeCosign(context.Background(), &cf, tg, "")
		if msg != "" || len(list) != 2 {
			t.Fatalf("%q, %+v", msg, list)
		}
		formats := map[string]bool{}
		for _, d := range list {
			formats[d.Format] = true
			if d.Identity != testWorkflow || d.Issuer != testIssuer || d.KeySigned || !d.Logged || d.Kind != "signature" {
				t.Errorf("%+v", d)
			}
		}
		if !formats["legacy .sig tag"] || !formats["bundle v0.3 referrer"] {
			t.Errorf("formats %v", formats)
		}
		var buf bytes.Buffer
		if err := writeCosignDescription(&buf, describeOutput{Cosign: list}); err != nil {
			t.Fatal(err)
		}
		if strings.Count(buf.String(), "(claimed, unverified)") != 4 {
			t.Errorf("text output:\n%s", buf.String())
		}
	})
}

func TestCosignVerifyFlagErrors(t *testing.T) {
	f := newCLIFixture(t)
	pub := filepath.Join(f.dir, "cosign.pub")
	if err := os.WriteFile(pub, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := f.host + "/org/app:v1"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to verify with", []string{img}, "nothing to verify with"},
		{"key and identity", []string{"--key", pub, "--certificate-identity", "a", "--certificate-oidc-issuer", "b", img}, "--key"},
		{"identity without issuer", []string{"--certificate-identity", "a", "--trusted-root", f.trustedRoot, img}, "OIDC issuer"},
		{"exact and regexp", []string{"--certificate-identity", "a", "--certificate-identity-regexp", "a", "--certificate-oidc-issuer", "b", img}, "exclusive"},
		{"bad regexp", []string{"--certificate-identity-regexp", "(", "--certificate-oidc-issuer", "b", img}, "regular expression"},
		{"bad annotation", []string{"--certificate-identity", "a", "--certificate-oidc-issuer", "b", "-a", "novalue", img}, "key=value"},
		{"bad key file", []string{"--key", pub, "--insecure-ignore-tlog", img}, "PEM"},
		{"keyless without trusted root", []string{"--certificate-identity", "a", "--certificate-oidc-issuer", "b", img}, "--trusted-root"},
		{"gpg keyring without identity", []string{"--gpg-keyring", pub, img}, "go together"},
		{"annotations alone", []string{"-a", "k=v", "--gpg-keyring", pub, "--expected-identity", img, img}, "need --key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runCLISplit(t, nil, append([]string{"verify", "--insecure"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}
