package lookaside

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

func mustNamed(t *testing.T, s string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBaseURL pins the containers/image scope rules the import relies on.
func TestBaseURL(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		image string
		want  string
	}{
		{"registry.example.com/ns/app:v1", "https://repo.example.net/sigs/ns/app"},
		{"registry.example.com/ns/app@" + dgst, "https://repo.example.net/sigs/ns/app"},
		{"registry.example.com/ns/app:pinned", "https://tag.example.net/sigs/ns/app"},
		{"registry.example.com/ns/other:v1", "https://namespace.example.net/sigs/ns/other"},
		{"registry.example.com/ns/deep/er:v1", "https://namespace.example.net/sigs/ns/deep/er"},
		{"registry.example.com/nsx/app:v1", "https://host.example.net/sigs/nsx/app"},
		{"registry.example.com/ns/staged:v1", "https://namespace.example.net/sigs/ns/staged"},
		{"legacy.example.com/a/b:v1", "https://legacy.example.net/sigstore/a/b"},
		{"both.example.com/a:v1", "https://new.example.net/sigs/a"},
		{"sub.wild.example.com/a:v1", "https://wild.example.net/sigs/a"},
		{"nginx:latest", "http://127.0.0.1:8080/sigstore/docker.io/library/nginx"},
		{"docker.io/someone/app:v1", "https://default.example.net/sigs/someone/app"},
		{"127.0.0.1:5000/ns/app:v1", "https://default.example.net/sigs/ns/app"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			u, err := BaseURL("testdata/registries.d", mustNamed(t, tt.image))
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Fatalf("BaseURL = %s, want %s", u, tt.want)
			}
			sig := SignatureURL(u, digest.Digest(dgst), 3).String()
			if want := tt.want + "@sha256=" + dgst[len("sha256:"):] + "/signature-3"; sig != want {
				t.Fatalf("SignatureURL = %s, want %s", sig, want)
			}
		})
	}
}

func TestBaseURLErrors(t *testing.T) {
	dup := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dup, f), []byte("docker:\n  registry.example.com:\n    lookaside: https://x.example.net\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "bad.yaml"), []byte("docker: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{dup: "defined both", bad: "bad.yaml"}
	for dir, want := range tests {
		if _, err := BaseURL(dir, mustNamed(t, "registry.example.com/ns/app:v1")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("BaseURL(%s): %v, want an error mentioning %q", dir, err, want)
		}
	}
}
