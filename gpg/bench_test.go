package gpg_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.podman.io/image/v5/signature"

	"github.com/signet-registry/signet/gpg"
)

// BenchmarkVerify compares, on the same signatures in the same run, our
// mechanism (uncached and cached) with containers/image's openpgp mechanism
// and its full VerifyDockerManifestSignature (crypto, payload, digest,
// identity).
//
//	go test -tags containers_image_openpgp -run '^$' -bench BenchmarkVerify ./gpg/
func BenchmarkVerify(b *testing.B) {
	env := fixtureEnv(b)
	manifest := fixture(b, "manifest.json")
	for _, s := range []struct{ name, sig, key, fpr string }{
		{"rsa3072", "rsa.sig", "rsa.pub.gpg", env["RSA_FPR"]},
		{"ed25519", "ed25519.sig", "ed25519.pub.gpg", env["ED25519_FPR"]},
	} {
		sig, key := fixture(b, s.sig), fixture(b, s.key)
		report := func(b *testing.B) {
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		}
		b.Run(s.name+"/signet-uncached", func(b *testing.B) {
			m := newMech(b, gpg.Options{CacheSize: -1}, s.key)
			for b.Loop() {
				if _, _, err := m.Verify(sig); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(s.name+"/signet-cached", func(b *testing.B) {
			m := newMech(b, gpg.Options{}, s.key)
			for b.Loop() {
				if _, _, err := m.Verify(sig); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(s.name+"/containers-image-mechanism", func(b *testing.B) {
			m, _, err := signature.NewEphemeralGPGSigningMechanism(key)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			for b.Loop() {
				if _, _, err := m.Verify(sig); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(s.name+"/gnupg-subprocess", func(b *testing.B) {
			// What a shell script or an exec-based verifier pays: one
			// gpg --verify process per signature, keyring on disk.
			if _, err := exec.LookPath("gpg"); err != nil {
				b.Skip("gpg is not installed (make bench installs it)")
			}
			home, err := os.MkdirTemp("", "gpgb")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(home)
			sigFile, keyFile := filepath.Join(home, "sig"), filepath.Join(home, "key.gpg")
			if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(keyFile, key, 0o600); err != nil {
				b.Fatal(err)
			}
			if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--quiet", "--import", keyFile).CombinedOutput(); err != nil {
				b.Fatalf("gpg --import: %v\n%s", err, out)
			}
			for b.Loop() {
				if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--quiet", "--verify", sigFile).CombinedOutput(); err != nil {
					b.Fatalf("gpg --verify: %v\n%s", err, out)
				}
			}
			report(b)
		})
		b.Run(s.name+"/containers-image-VerifyDockerManifestSignature", func(b *testing.B) {
			m, _, err := signature.NewEphemeralGPGSigningMechanism(key)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			for b.Loop() {
				if _, err := signature.VerifyDockerManifestSignature(sig, manifest, env["IDENTITY"], m, s.fpr); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}
