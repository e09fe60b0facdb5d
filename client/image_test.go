package client

import (
	"strings"
	"testing"
)

func TestParseImage(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in, registryURL string
		want            Image
		wantErr         string
	}{
		{in: "127.0.0.1:5000/ns/app:v1", want: Image{Host: "127.0.0.1:5000", Repository: "ns/app", Tag: "v1"}},
		{in: "localhost/ns/app@" + d, want: Image{Host: "localhost", Repository: "ns/app", Digest: d}},
		{in: "registry.example.com/a/b/c:v1@" + d, want: Image{Host: "registry.example.com", Repository: "a/b/c", Tag: "v1", Digest: d}},
		{in: "registry.example.com/app", want: Image{Host: "registry.example.com", Repository: "app"}},
		{in: "ns/app:v1", registryURL: "http://127.0.0.1:5000", want: Image{Host: "127.0.0.1:5000", Repository: "ns/app", Tag: "v1"}},
		{in: "other.example.com/ns/app:v1", registryURL: "127.0.0.1:5000", want: Image{Host: "127.0.0.1:5000", Repository: "ns/app", Tag: "v1"}},
		{in: d, registryURL: "127.0.0.1:5000", want: Image{Host: "127.0.0.1:5000", Digest: d}},
		{in: d, wantErr: "--registry-url"},
		{in: "ns/app:v1", wantErr: "no registry host"},
		{in: "localhost:5000", wantErr: "no registry host"},
		{in: "Registry.example.com/NS/app", wantErr: "invalid image reference"},
		{in: "sha256:abc", registryURL: "x:1", wantErr: "invalid digest"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseImage(tt.in, tt.registryURL)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestImageRef(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if got := (Image{Host: "h:1", Repository: "r", Tag: "t", Digest: d}).Ref(); got != "h:1/r@"+d {
		t.Fatal(got)
	}
	if got := (Image{Host: "h:1", Repository: "r", Tag: "t"}).Ref(); got != "h:1/r:t" {
		t.Fatal(got)
	}
	if got := (Image{Host: "h", Repository: "r"}).Reference(); got != "latest" {
		t.Fatal(got)
	}
}
