package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cosignVersion is what .ci/run installs.
const cosignVersion = "v3.1.3"

// cosignBin finds the cosign binary on PATH or where `go install` puts
// it, and fails (not skips) without it, like requireTools.
func cosignBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	dirs := []string{}
	if gobin, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && strings.TrimSpace(string(gobin)) != "" {
		dirs = append(dirs, strings.TrimSpace(string(gobin)))
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "cosign")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("cosign is not installed; run .ci/run or `go install github.com/sigstore/cosign/v3/cmd/cosign@%s`", cosignVersion)
	return ""
}

type cosignJSON []struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// TestCosignInterop: real cosign signs with a key pair against Signet, in
// the new bundle format and the legacy format, each in the image's own
// repository and in a separate one (COSIGN_REPOSITORY); cosign verify and
// signet verify both accept every signature, and signet verify rejects
// another key.
func TestCosignInterop(t *testing.T) {
	cosign := cosignBin(t)
	requireTools(t, "skopeo")
	tmp := t.TempDir()
	s := startServer(t, filepath.Join(tmp, "data"))
	// HOME and TUF_ROOT keep cosign's caches in the test's directory; with
	// --use-signing-config=false, --tlog-upload=false and a key, cosign
	// needs no network.
	base := []string{"COSIGN_PASSWORD=test-password", "HOME=" + tmp, "TUF_ROOT=" + filepath.Join(tmp, "tuf"), "COSIGN_REPOSITORY="}
	run(t, base, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(tmp, "signer"))
	run(t, base, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(tmp, "other"))
	pub, otherPub := filepath.Join(tmp, "signer.pub"), filepath.Join(tmp, "other.pub")
	notary := s.addr + "/notary"

	for _, c := range []struct {
		name      string
		legacy    bool
		separate  bool
		wantType  string
		wantShape string
	}{
		{name: "bundle", wantType: "https://sigstore.dev/cosign/sign/v1", wantShape: "bundle v0.3 referrer"},
		{name: "bundle-notary", separate: true, wantType: "https://sigstore.dev/cosign/sign/v1", wantShape: "bundle v0.3 referrer"},
		{name: "legacy", legacy: true, wantType: "cosign container image signature", wantShape: "legacy .sig tag"},
		{name: "legacy-notary", legacy: true, separate: true, wantType: "cosign container image signature", wantShape: "legacy .sig tag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := "cosign/" + c.name
			dgst := pushUnsigned(t, s, tmp, repo, "v1")
			ref := s.addr + "/" + repo + "@" + dgst
			env := append([]string{}, base...)
			if c.separate {
				env = append(env, "COSIGN_REPOSITORY="+notary)
			}
			sign := []string{"sign", "--key", filepath.Join(tmp, "signer.key"), "--allow-http-registry",
				"--use-signing-config=false", "--tlog-upload=false", "-y", "-a", "team=core"}
			if c.legacy {
				sign = append(sign, "--new-bundle-format=false")
			}
			run(t, env, cosign, append(sign, ref)...)

			out := run(t, env, cosign, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", ref)
			if !strings.Contains(out, dgst) {
				t.Fatalf("cosign verify output lacks the digest:\n%s", out)
			}

			// signet verify: COSIGN_REPOSITORY from the environment.
			out, err := signet(t, env, "verify", "--insecure", "--key", pub, "--insecure-ignore-tlog", "-a", "team=core", ref)
			if err != nil {
				t.Fatalf("signet verify: %v\n%s", err, out)
			}
			payloads := parseCosignOutput(t, out)
			if len(payloads) != 1 || payloads[0].Critical.Image.DockerManifestDigest != dgst || payloads[0].Critical.Type != c.wantType ||
				payloads[0].Optional["team"] != "core" {
				t.Fatalf("signet verify payloads %+v\n%s", payloads, out)
			}
			if !strings.Contains(out, "The signatures were verified against the specified public key") {
				t.Errorf("checks not listed:\n%s", out)
			}

			// Another key verifies nothing, and says why.
			out, err = signet(t, env, "verify", "--insecure", "--key", otherPub, "--insecure-ignore-tlog", ref)
			if err == nil || !strings.Contains(out, "rejected at signature check") {
				t.Fatalf("another key: err %v\n%s", err, out)
			}
			// A wrong annotation value verifies nothing.
			out, err = signet(t, env, "verify", "--insecure", "--key", pub, "--insecure-ignore-tlog", "-a", "team=other", ref)
			if err == nil || !strings.Contains(out, "rejected at annotations check") {
				t.Fatalf("wrong annotation: err %v\n%s", err, out)
			}
			// Without an explicit --insecure-ignore-tlog there is no log
			// entry to accept.
			if out, err := signet(t, env, "verify", "--insecure", "--key", pub, ref); err == nil {
				t.Fatalf("accepted without a transparency log entry:\n%s", out)
			}

			if c.separate {
				// Not in the image's repository...
				if out, err := signet(t, base, "verify", "--insecure", "--key", pub, "--insecure-ignore-tlog", ref); err == nil ||
					!strings.Contains(out, "no cosign signatures found") {
					t.Fatalf("found signatures in the image's repository: %v\n%s", err, out)
				}
				// ...and found through the flag as well as the variable.
				if out, err := signet(t, base, "verify", "--insecure", "--key", pub, "--insecure-ignore-tlog",
					"--signature-repository", notary, ref); err != nil {
					t.Fatalf("--signature-repository: %v\n%s", err, out)
				}
			}

			out, err = signet(t, env, "describe", "--insecure", "-o", "json", ref)
			if err != nil {
				t.Fatalf("describe: %v\n%s", err, out)
			}
			var d struct {
				Cosign []struct {
					Format    string `json:"format"`
					Kind      string `json:"kind"`
					KeySigned bool   `json:"keySigned"`
				} `json:"cosign"`
			}
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("describe output: %v\n%s", err, out)
			}
			if len(d.Cosign) != 1 || d.Cosign[0].Format != c.wantShape || d.Cosign[0].Kind != "signature" || !d.Cosign[0].KeySigned {
				t.Fatalf("describe lists %+v", d.Cosign)
			}
		})
	}
}

// parseCosignOutput reads the JSON line signet verify prints on stdout
// (combined here with the checks it prints on stderr).
func parseCosignOutput(t *testing.T, out string) cosignJSON {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[{") {
			var p cosignJSON
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("verified payloads %q: %v", line, err)
			}
			return p
		}
	}
	t.Fatalf("no verified payloads in:\n%s", out)
	return nil
}

// TestCosignAndGPGInOneCommand: one signet verify checks an image's
// cosign signature and its GPG signature.
func TestCosignAndGPGInOneCommand(t *testing.T) {
	cosign := cosignBin(t)
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	s := startServer(t, filepath.Join(tmp, "data"))
	g := newGnuPG(t, "Both <both@example.com>")
	env := []string{"COSIGN_PASSWORD=pw", "HOME=" + tmp, "TUF_ROOT=" + filepath.Join(tmp, "tuf"), "COSIGN_REPOSITORY="}
	run(t, env, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(tmp, "k"))
	dgst := pushUnsigned(t, s, tmp, "both/app", "v1")
	ref := s.addr + "/both/app@" + dgst
	run(t, env, cosign, "sign", "--key", filepath.Join(tmp, "k.key"), "--allow-http-registry",
		"--use-signing-config=false", "--tlog-upload=false", "-y", ref)
	keyring := filepath.Join(tmp, "pubring.gpg")
	g.exportPublic(t, keyring)
	identity := s.addr + "/both/app:v1"

	args := []string{"verify", "--insecure", "--key", filepath.Join(tmp, "k.pub"), "--insecure-ignore-tlog",
		"--gpg-keyring", keyring, "--expected-identity", identity, ref}
	// No GPG signature yet: the GPG half fails, so the command fails.
	if out, err := signet(t, env, args...); err == nil || !strings.Contains(out, "gpg:") {
		t.Fatalf("verified without a GPG signature: %v\n%s", err, out)
	}
	if out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, "--identity", identity, ref); err != nil {
		t.Fatalf("signet sign: %v\n%s", err, out)
	}
	out, err := signet(t, env, args...)
	if err != nil {
		t.Fatalf("signet verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, "identity is now confirmed") || len(parseCosignOutput(t, out)) != 1 {
		t.Fatalf("output:\n%s", out)
	}
	// GPG alone, through the same command.
	if out, err := signet(t, env, "verify", "--insecure", "--gpg-keyring", keyring, "--expected-identity", identity, ref); err != nil {
		t.Fatalf("GPG only: %v\n%s", err, out)
	}
}

// TestCosignAttestationsDescribed: attestations made by real cosign
// attest, in the bundle format and the legacy .att format, are listed by
// signet describe next to the GPG signature and the cosign signature,
// with format, content, predicate type and signer; the attestations never
// count as signatures for signet verify.
func TestCosignAttestationsDescribed(t *testing.T) {
	cosign := cosignBin(t)
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	s := startServer(t, filepath.Join(tmp, "data"))
	g := newGnuPG(t, "Describer <describe@example.com>")
	env := []string{"COSIGN_PASSWORD=pw", "HOME=" + tmp, "TUF_ROOT=" + filepath.Join(tmp, "tuf"), "COSIGN_REPOSITORY="}
	run(t, env, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(tmp, "k"))
	key := filepath.Join(tmp, "k.key")
	dgst := pushUnsigned(t, s, tmp, "att/app", "v1")
	ref := s.addr + "/att/app@" + dgst
	predicate := filepath.Join(tmp, "predicate.json")
	if err := os.WriteFile(predicate, []byte(`{"buildType":"https://example.com/build/v1","builder":{"id":"ci"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--key", key, "--allow-http-registry", "--use-signing-config=false", "--tlog-upload=false", "-y"}
	run(t, env, cosign, append(append([]string{"attest"}, common...), "--type", "slsaprovenance", "--predicate", predicate, ref)...)
	run(t, env, cosign, append(append([]string{"attest"}, common...), "--new-bundle-format=false", "--type", "https://example.com/custom/v1", "--predicate", predicate, ref)...)
	// Attestations alone are not signatures.
	if out, err := signet(t, env, "verify", "--insecure", "--key", filepath.Join(tmp, "k.pub"), "--insecure-ignore-tlog", ref); err == nil ||
		!strings.Contains(out, "no cosign signatures found") {
		t.Fatalf("verify with attestations only: %v\n%s", err, out)
	}
	run(t, env, cosign, append(append([]string{"sign"}, common...), ref)...)
	if out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, "--identity", s.addr+"/att/app:v1", ref); err != nil {
		t.Fatalf("signet sign: %v\n%s", err, out)
	}

	out, err := signet(t, env, "describe", "--insecure", "-o", "json", ref)
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	var d struct {
		Signatures []struct {
			Type string `json:"type"`
		} `json:"signatures"`
		Cosign []struct {
			Format        string `json:"format"`
			Kind          string `json:"kind"`
			Content       string `json:"content"`
			PredicateType string `json:"predicateType"`
			KeySigned     bool   `json:"keySigned"`
			Problem       string `json:"problem"`
		} `json:"cosign"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe output: %v\n%s", err, out)
	}
	if len(d.Signatures) != 1 || d.Signatures[0].Type != "atomic" {
		t.Fatalf("GPG signatures %+v", d.Signatures)
	}
	got := map[string]string{}
	for _, c := range d.Cosign {
		if !c.KeySigned || c.Problem != "" {
			t.Errorf("entry %+v", c)
		}
		got[c.Kind+" "+c.Format] = c.PredicateType + " | " + c.Content
	}
	want := map[string]string{
		"attestation bundle v0.3 referrer": "https://slsa.dev/provenance/v0.2 | DSSE envelope (in-toto statement)",
		"attestation legacy .att tag":      "https://example.com/custom/v1 | DSSE envelope (in-toto statement)",
		"signature bundle v0.3 referrer":   "https://sigstore.dev/cosign/sign/v1 | DSSE envelope (in-toto statement)",
	}
	if len(got) != len(want) || len(d.Cosign) != len(want) {
		t.Fatalf("describe lists %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	text, err := signet(t, env, "describe", "--insecure", ref)
	if err != nil || !strings.Contains(text, "Format:       legacy .att tag") || !strings.Contains(text, "Predicate:    https://slsa.dev/provenance/v0.2") {
		t.Fatalf("text describe: %v\n%s", err, text)
	}
}
