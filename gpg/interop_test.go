package gpg_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/signature"

	"github.com/signet-registry/signet/gpg"
)

// interopSigners are the keys our Mechanism signs with in the interop tests:
// secret keyring, public keyring, signing identity (env key), and the env
// keys of the expected primary and signing-key fingerprints.
var interopSigners = []struct {
	name, sec, pub, identity, primary, signing string
}{
	{"rsa", "rsa.sec.gpg", "rsa.pub.gpg", "RSA_FPR", "RSA_FPR", "RSA_FPR"},
	{"ed25519", "ed25519.sec.asc", "ed25519.pub.asc", "ED25519_FPR", "ED25519_FPR", "ED25519_FPR"},
	{"subkey", "subkey.sec.gpg", "subkey.pub.gpg", "SUBKEY_FPR", "SUBKEY_FPR", "SUBKEY_SUB_FPR"},
	{"passphrase", "passphrase.sec.gpg", "passphrase.pub.gpg", "PASSPHRASE_FPR", "PASSPHRASE_FPR", "PASSPHRASE_FPR"},
}

// TestInteropGnuPGVerify checks that GnuPG accepts what we sign.
func TestInteropGnuPGVerify(t *testing.T) {
	gpgBin, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("gpg not installed")
	}
	env := fixtureEnv(t)
	input := fixture(t, "payload.json")
	for _, s := range interopSigners {
		t.Run(s.name, func(t *testing.T) {
			home := t.TempDir()
			t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
			run := func(args ...string) (string, error) {
				cmd := exec.Command(gpgBin, append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...)
				var out, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &stderr
				err := cmd.Run()
				if err != nil {
					t.Logf("gpg %v stderr: %s", args, stderr.String())
				}
				return out.String(), err
			}
			if _, err := run("--import", filepath.Join("testdata", s.pub)); err != nil {
				t.Fatalf("gpg --import: %v", err)
			}
			m := newMech(t, gpg.Options{Passphrase: fixture(t, "passphrase.txt")}, s.sec)
			sig, err := m.Sign(input, env[s.identity])
			if err != nil {
				t.Fatal(err)
			}
			sigPath := filepath.Join(home, "payload.sig")
			if err := os.WriteFile(sigPath, sig, 0o600); err != nil {
				t.Fatal(err)
			}
			status, err := run("--status-fd", "1", "--verify", sigPath)
			if err != nil {
				t.Fatalf("gpg --verify: %v\n%s", err, status)
			}
			// VALIDSIG <signing-key fpr> ... <primary fpr> (GnuPG doc/DETAILS).
			var validsig []string
			for line := range strings.SplitSeq(status, "\n") {
				if f := strings.Fields(line); len(f) > 2 && f[1] == "VALIDSIG" {
					validsig = f
				}
			}
			if len(validsig) < 12 || validsig[2] != env[s.signing] || validsig[len(validsig)-1] != env[s.primary] {
				t.Fatalf("VALIDSIG = %v, want signing key %s of %s\n%s", validsig, env[s.signing], env[s.primary], status)
			}
			out, err := run("--decrypt", sigPath)
			if err != nil || out != string(input) {
				t.Fatalf("gpg --decrypt = %q, %v", out, err)
			}
		})
	}
}

// TestInteropContainersImage checks both directions against containers/image
// itself: its SignDockerManifest drives our Mechanism, and its
// VerifyDockerManifestSignature with its own openpgp mechanism accepts the
// result (and so does ours).
func TestInteropContainersImage(t *testing.T) {
	env := fixtureEnv(t)
	manifest := fixture(t, "manifest.json")
	const ref = "registry.example.com/signet/test:v1"
	for _, s := range interopSigners {
		t.Run(s.name, func(t *testing.T) {
			ours := newMech(t, gpg.Options{}, s.sec)
			opts := &signature.SignOptions{}
			if s.name == "passphrase" {
				// Exercises our SignWithPassphrase through containers/image.
				opts.Passphrase = string(fixture(t, "passphrase.txt"))
			}
			sig, err := signature.SignDockerManifestWithOptions(manifest, ref, ours, env[s.identity], opts)
			if err != nil {
				t.Fatalf("SignDockerManifestWithOptions: %v", err)
			}
			theirs, ids, err := signature.NewEphemeralGPGSigningMechanism(fixture(t, s.pub))
			if err != nil {
				t.Fatal(err)
			}
			defer theirs.Close()
			if len(ids) != 1 || ids[0] != env[s.primary] {
				t.Fatalf("containers/image key identities = %v", ids)
			}
			verified, err := signature.VerifyDockerManifestSignature(sig, manifest, ref, theirs, env[s.primary])
			if err != nil {
				t.Fatalf("containers/image VerifyDockerManifestSignature: %v", err)
			}
			if verified.DockerReference != ref || verified.DockerManifestDigest.String() != env["MANIFEST_DIGEST"] {
				t.Errorf("verified = %+v", verified)
			}
			// containers/image's verification driving our mechanism.
			verifier := newMech(t, gpg.Options{}, s.pub)
			if _, err := signature.VerifyDockerManifestSignature(sig, manifest, ref, verifier, env[s.primary]); err != nil {
				t.Fatalf("VerifyDockerManifestSignature with our mechanism: %v", err)
			}
			// A replay against another manifest fails in containers/image too.
			if _, err := signature.VerifyDockerManifestSignature(sig, fixture(t, "manifest-other.json"), ref, theirs, env[s.primary]); err == nil {
				t.Error("containers/image accepted a replayed signature")
			}
		})
	}
	t.Run("our mechanism verifies containers/image fixture through its API", func(t *testing.T) {
		dir := containersFixtures(t)
		m, err := gpg.NewMechanism(readFile(t, filepath.Join(dir, "public-key.gpg")))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := signature.VerifyDockerManifestSignature(readFile(t, filepath.Join(dir, "image.signature")),
			readFile(t, filepath.Join(dir, "image.manifest.json")), "testing/manifest", m, "08CD26E446E2E95249B7A405E932F44B23E8DD43")
		if err != nil {
			t.Fatal(err)
		}
		if sig.DockerReference != "testing/manifest" {
			t.Errorf("reference = %q", sig.DockerReference)
		}
	})
}
