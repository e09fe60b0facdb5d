package gpg_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-registry/signet/gpg"
)

// testNow is a fixed clock after every fixture's signing time (2024-01-01)
// and long after the expiring fixtures expired.
func testNow() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }

// fixture reads testdata/name (written by testdata/generate.sh).
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// fixtureEnv returns the NAME=VALUE pairs of testdata/fixtures.env.
func fixtureEnv(t testing.TB) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(fixture(t, "fixtures.env")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad fixtures.env line %q", line)
		}
		env[k] = v
	}
	return env
}

// newMech builds a Mechanism on the fixed test clock from testdata key files.
func newMech(t testing.TB, opts gpg.Options, keyFiles ...string) *gpg.Mechanism {
	t.Helper()
	if opts.Now == nil {
		opts.Now = testNow
	}
	blobs := make([][]byte, 0, len(keyFiles))
	for _, f := range keyFiles {
		blobs = append(blobs, fixture(t, f))
	}
	m, err := gpg.NewMechanismWithOptions(opts, blobs...)
	if err != nil {
		t.Fatalf("NewMechanismWithOptions(%v): %v", keyFiles, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// containersFixtures returns containers/image's signature/fixtures directory
// from the module cache, or skips the test.
func containersFixtures(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.podman.io/image/v5").Output()
	if err != nil {
		t.Skipf("locating go.podman.io/image/v5: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "signature", "fixtures")
	if _, err := os.Stat(filepath.Join(dir, "image.signature")); err != nil {
		t.Skipf("containers/image fixtures not found: %v", err)
	}
	return dir
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
