package gpg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to the verifier. It must never panic
// (a recovered go-crypto panic surfaces as errPanic and fails the target),
// and it must never accept input whose signed contents no real seed
// signature covers: random or mutated input is never accepted as new data.
//
//	go test -tags containers_image_openpgp -run '^$' -fuzz FuzzVerify ./gpg/
func FuzzVerify(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.sig"))
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.podman.io/image/v5").Output(); err == nil {
		more, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "signature", "fixtures", "*.signature*"))
		seeds = append(seeds, more...)
	}
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n"))

	now := func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	m := newTestMechanism(f, now, -1, "rsa.pub.gpg", "ed25519.pub.gpg", "subkey.pub.gpg", "revoked-subkey.pub.gpg", "expired-key.pub.gpg")
	// The only contents that may ever verify are those the seeds' real
	// signatures cover: anything else accepted would be a forgery.
	authentic := map[string]bool{}
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			if res, err := m.VerifyDetailed(b); err == nil {
				authentic[string(res.Contents)] = true
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := m.VerifyDetailed(data)
		if errors.Is(err, errPanic) {
			t.Fatalf("panic: %v", err)
		}
		if err == nil && !slices.Contains(m.identities, res.Fingerprint) {
			t.Fatalf("verified by unknown key %s", res.Fingerprint)
		}
		if err == nil && !authentic[string(res.Contents)] {
			t.Fatalf("accepted contents no real signature covers: %q", res.Contents)
		}
		if _, _, err := m.UntrustedSignatureContents(data); errors.Is(err, errPanic) {
			t.Fatalf("panic: %v", err)
		}
	})
}
