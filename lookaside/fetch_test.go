package lookaside

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
)

var testDigest = digest.Digest("sha256:" + strings.Repeat("ab", 32))

// staticStore is a lookaside web server: signature n of testDigest in
// ns/app answers reply(n).
type staticStore struct {
	srv      *httptest.Server
	requests atomic.Int32
}

func newStaticStore(t *testing.T, reply func(n int) (int, []byte)) *staticStore {
	t.Helper()
	s := &staticStore{}
	prefix := "/sigs/ns/app@sha256=" + testDigest.Encoded() + "/signature-"
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(r.URL.Path, prefix), "%d", &n); err != nil || !strings.HasPrefix(r.URL.Path, prefix) {
			http.NotFound(w, r)
			return
		}
		status, body := reply(n)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// registriesD writes a registries.d whose default lookaside is base.
func registriesD(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.yaml"), []byte("default-docker:\n  lookaside: "+base+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// upTo serves signatures 1..n and 404 after.
func upTo(n int) func(int) (int, []byte) {
	return func(i int) (int, []byte) {
		if i > n {
			return http.StatusNotFound, []byte("<html>404</html>")
		}
		return http.StatusOK, sigBlob(fmt.Sprint("sig ", i))
	}
}

func TestLookasideSource(t *testing.T) {
	tests := []struct {
		name         string
		reply        func(int) (int, []byte)
		want         int
		wantErr      error
		wantErrText  string
		maxRequests  int32
		wantRequests int32
	}{
		{name: "three", reply: upTo(3), want: 3, wantRequests: 4},
		{name: "none", reply: upTo(0), want: 0, wantRequests: 1},
		{name: "gap stops the list", want: 1, wantRequests: 2, reply: func(i int) (int, []byte) {
			if i == 2 {
				return http.StatusNotFound, nil
			}
			return http.StatusOK, sigBlob(fmt.Sprint(i))
		}},
		{name: "exactly the limit", reply: upTo(MaxSignatures), want: MaxSignatures, wantRequests: MaxSignatures + 1},
		{name: "over the limit", reply: upTo(1000), wantErr: ErrTooMany, wantRequests: MaxSignatures + 1},
		{name: "html error page", wantErr: ErrNotOpenPGP, reply: func(i int) (int, []byte) {
			if i == 2 {
				return http.StatusOK, []byte("<!DOCTYPE html><title>Sign in</title>")
			}
			return upTo(5)(i)
		}},
		{name: "server error half-way", wantErrText: "500", reply: func(i int) (int, []byte) {
			if i == 3 {
				return http.StatusInternalServerError, nil
			}
			return upTo(5)(i)
		}},
		{name: "forbidden", wantErrText: "403", reply: func(int) (int, []byte) { return http.StatusForbidden, nil }},
		{name: "oversized", wantErr: ErrTooLarge, reply: func(int) (int, []byte) {
			return http.StatusOK, sigBlob(strings.Repeat("x", MaxSignatureBytes))
		}},
		{name: "too much in total", wantErr: ErrTooLarge, reply: func(int) (int, []byte) {
			return http.StatusOK, sigBlob(strings.Repeat("x", MaxSignatureBytes-2))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStaticStore(t, tt.reply)
			src := &Lookaside{RegistriesDir: registriesD(t, s.srv.URL+"/sigs")}
			blobs, err := src.Signatures(context.Background(), mustNamed(t, "registry.example.com/ns/app:v1"), testDigest)
			switch {
			case tt.wantErr != nil || tt.wantErrText != "":
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrText) {
					t.Fatalf("err %v, want %v %q", err, tt.wantErr, tt.wantErrText)
				}
				if blobs != nil {
					t.Fatalf("blobs returned with an error")
				}
			case err != nil:
				t.Fatal(err)
			case len(blobs) != tt.want:
				t.Fatalf("%d signatures, want %d", len(blobs), tt.want)
			}
			if tt.wantRequests != 0 && s.requests.Load() != tt.wantRequests {
				t.Fatalf("%d requests, want %d", s.requests.Load(), tt.wantRequests)
			}
			if s.requests.Load() > MaxSignatures+1 {
				t.Fatalf("%d requests: unbounded", s.requests.Load())
			}
			for i, b := range blobs {
				if string(b) != string(sigBlob(fmt.Sprint("sig ", i+1))) && tt.name != "gap stops the list" {
					t.Fatalf("signature %d is %q", i+1, b)
				}
			}
		})
	}
}

func TestLookasideSourceFile(t *testing.T) {
	root := t.TempDir()
	imageDir := filepath.Join(root, "ns", "app@sha256="+testDigest.Encoded())
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 4} {
		if err := os.WriteFile(filepath.Join(imageDir, SignatureFile(n)), sigBlob(fmt.Sprint(n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := &Lookaside{RegistriesDir: registriesD(t, (&url.URL{Scheme: "file", Path: root}).String())}
	blobs, err := src.Signatures(context.Background(), mustNamed(t, "registry.example.com/ns/app:v1"), testDigest)
	if err != nil || len(blobs) != 2 || string(blobs[1]) != string(sigBlob("2")) {
		t.Fatalf("file lookaside: %q %v", blobs, err)
	}

	ftp := &Lookaside{RegistriesDir: registriesD(t, "ftp://example.com/sigs")}
	if _, err := ftp.Signatures(context.Background(), mustNamed(t, "registry.example.com/ns/app:v1"), testDigest); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("ftp lookaside: %v", err)
	}
}

type fakeLister struct {
	sigs []extensions.Signature
	err  error
	got  string
}

func (f *fakeLister) Signatures(_ context.Context, repo string, dgst digest.Digest) ([]extensions.Signature, error) {
	f.got = repo + "@" + dgst.String()
	return f.sigs, f.err
}

func TestExtensionSource(t *testing.T) {
	wire := func(typ string, content []byte) extensions.Signature {
		return extensions.Signature{SchemaVersion: 2, Name: testDigest.String() + "@" + strings.Repeat("0", 32), Type: typ, Content: content}
	}
	many := make([]extensions.Signature, MaxSignatures+1)
	for i := range many {
		many[i] = wire("atomic", sigBlob(fmt.Sprint(i)))
	}
	tests := []struct {
		name    string
		lister  *fakeLister
		want    int
		wantErr error
	}{
		{"atomic only", &fakeLister{sigs: []extensions.Signature{wire("atomic", sigBlob("a")), wire("cosign", []byte("x")), wire("atomic", sigBlob("b"))}}, 2, nil},
		{"html content", &fakeLister{sigs: []extensions.Signature{wire("atomic", []byte("<html>"))}}, 0, ErrNotOpenPGP},
		{"too many", &fakeLister{sigs: many}, 0, ErrTooMany},
		{"registry error", &fakeLister{err: errors.New("boom")}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var host string
			src := &Extension{Registry: func(h string) (ExtensionLister, error) { host = h; return tt.lister, nil }}
			blobs, err := src.Signatures(context.Background(), mustNamed(t, "registry.example.com:5000/ns/app@"+testDigest.String()), testDigest)
			if tt.lister.err != nil {
				if err == nil {
					t.Fatal("lister error swallowed")
				}
				return
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if len(blobs) != tt.want {
				t.Fatalf("%d blobs, want %d", len(blobs), tt.want)
			}
			if host != "registry.example.com:5000" || tt.lister.got != "ns/app@"+testDigest.String() {
				t.Fatalf("asked %s for %s", host, tt.lister.got)
			}
		})
	}
}
