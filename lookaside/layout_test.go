package lookaside

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// sigBlob is a stand-in signature: an old-format compressed-data packet
// header (what gpg --sign writes first) and a recognisable body.
func sigBlob(s string) []byte { return append([]byte{0xa3, 0x01}, s...) }

func TestCheckBlob(t *testing.T) {
	tests := []struct {
		name string
		blob []byte
		want error
	}{
		{"gpg compressed, old format", []byte{0xa3, 0x01, 0x02}, nil},
		{"compressed, new format", []byte{0xc8, 0x05}, nil},
		{"one-pass signature, old format", []byte{0x90, 0x0d}, nil},
		{"one-pass signature, new format", []byte{0xc4, 0x0d}, nil},
		{"signature first, old format", []byte{0x89, 0x01}, nil},
		{"signature first, new format", []byte{0xc2, 0x01}, nil},
		{"html error page", []byte("<!DOCTYPE html><html><body>Not here</body></html>"), ErrNotOpenPGP},
		{"ascii armor", []byte("-----BEGIN PGP MESSAGE-----\n"), ErrNotOpenPGP},
		{"json", []byte(`{"errors":[]}`), ErrNotOpenPGP},
		{"empty", nil, ErrNotOpenPGP},
		{"bare literal packet", []byte{0xac, 0x05}, ErrNotOpenPGP},
		{"public key", []byte{0x99, 0x01, 0x0d}, ErrNotOpenPGP},
		{"encrypted session key", []byte{0xc1, 0x01}, ErrNotOpenPGP},
		{"over 4 MiB", append([]byte{0xa3}, bytes.Repeat([]byte{0}, MaxSignatureBytes)...), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBlob(tt.blob)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("CheckBlob = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseImageDir(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		rel, repo string
		ok        bool
	}{
		{"ns/app@sha256=" + hex, "ns/app", true},
		{"docker.io/library/nginx@sha256=" + hex, "docker.io/library/nginx", true},
		{"127.0.0.1:5000/ns/app@sha256=" + hex, "127.0.0.1:5000/ns/app", true},
		{"single@sha256=" + hex, "single", true},
		{"ns/app@sha256=" + hex[:63], "", false},
		{"ns/app@sha256=" + hex + "0", "", false},
		{"ns/app@sha256=" + hex[:63] + "G", "", false},
		{"ns/app@sha512=" + hex, "", false},
		{"ns/app", "", false},
		{"../ns/app@sha256=" + hex, "", false},
		{"ns/../app@sha256=" + hex, "", false},
		{"ns/APP@sha256=" + hex, "", false},
		{"ns//app@sha256=" + hex, "", false},
		{"@sha256=" + hex, "", false},
		{".signet-tmp-1/ns@sha256=" + hex, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			repo, dgst, ok := ParseImageDir(tt.rel)
			if ok != tt.ok || repo != tt.repo {
				t.Fatalf("ParseImageDir = %q, %v, want %q, %v", repo, ok, tt.repo, tt.ok)
			}
			if ok && ImageDir(repo, dgst) != tt.rel {
				t.Fatalf("ImageDir(%q, %s) = %q, not the input", repo, dgst, ImageDir(repo, dgst))
			}
		})
	}
}

// FuzzParseImageDir: whatever the input, an accepted directory name
// round-trips through ImageDir and names nothing outside the tree.
func FuzzParseImageDir(f *testing.F) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, seed := range []string{"ns/app@sha256=" + hex, "127.0.0.1:5000/a@sha256=" + hex, "../x@sha256=" + hex, "a@sha256=", "@", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		repo, dgst, ok := ParseImageDir(rel)
		if !ok {
			return
		}
		if ImageDir(repo, dgst) != rel {
			t.Fatalf("ParseImageDir(%q) = %q, %q does not round-trip", rel, repo, dgst)
		}
		if err := dgst.Validate(); err != nil {
			t.Fatalf("ParseImageDir(%q) gave digest %q: %v", rel, dgst, err)
		}
		for _, part := range strings.Split(rel, "/") {
			if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\\\x00") {
				t.Fatalf("ParseImageDir accepted %q with component %q", rel, part)
			}
		}
	})
}
