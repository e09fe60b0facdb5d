package lookaside

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// mapSource serves blobs per image name; failing names error out.
type mapSource struct {
	blobs map[string][][]byte
	fail  map[string]error
}

func (m mapSource) Signatures(_ context.Context, image reference.Named, _ digest.Digest) ([][]byte, error) {
	if err := m.fail[image.Name()]; err != nil {
		return nil, err
	}
	return m.blobs[image.Name()], nil
}

// memDestination keeps what was stored and refuses duplicates by content,
// as the extension API does.
type memDestination struct {
	stored map[string][][]byte
	fail   error
}

func (m *memDestination) Put(_ context.Context, repo string, dgst digest.Digest, blob []byte) error {
	if m.fail != nil {
		return m.fail
	}
	key := repo + "@" + dgst.String()
	for _, b := range m.stored[key] {
		if bytes.Equal(b, blob) {
			return ErrDuplicate
		}
	}
	m.stored[key] = append(m.stored[key], blob)
	return nil
}

func TestImporter(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	src := mapSource{
		blobs: map[string][][]byte{
			"registry.example.com/ns/app":   {sigBlob("a1"), sigBlob("a2")},
			"registry.example.com/ns/other": {sigBlob("o1")},
			"docker.io/library/nginx":       {sigBlob("n1")},
		},
		fail: map[string]error{"registry.example.com/ns/broken": errors.New("source answered 500 Internal Server Error")},
	}
	dst := &memDestination{stored: map[string][][]byte{}}
	var resolved []string
	var out bytes.Buffer
	images := []reference.Named{
		mustNamed(t, "registry.example.com/ns/app:v1"),
		mustNamed(t, "registry.example.com/ns/broken:v1"),
		mustNamed(t, "registry.example.com/ns/other@"+d("other").String()),
		mustNamed(t, "registry.example.com/ns/unknown:v1"),
		mustNamed(t, "nginx"),
		mustNamed(t, "registry.example.com/ns/app@"+d("registry.example.com/ns/app:v1").String()), // same image again
	}
	im := &Importer{
		Source:      src,
		Destination: dst,
		Resolve: func(_ context.Context, image reference.Named) (digest.Digest, error) {
			resolved = append(resolved, reference.FamiliarString(image))
			if strings.Contains(image.Name(), "unknown") {
				return "", errors.New("manifest unknown")
			}
			return d(image.String()), nil
		},
		Place: func(_ context.Context, image reference.Named, _ digest.Digest) (string, error) {
			return image.Name(), nil // everything external
		},
		Progress: NewProgress(&out, false, len(images)),
	}
	sum := im.Run(context.Background(), images)
	if sum.Added != 4 || sum.Skipped != 0 || sum.Failed != 2 || len(sum.Results) != 5 {
		t.Fatalf("summary %+v", sum)
	}
	if got := strings.Join(resolved, " "); got != "registry.example.com/ns/app:v1 registry.example.com/ns/broken:v1 registry.example.com/ns/unknown:v1 nginx:latest" {
		t.Fatalf("resolved %s; a digested reference must not be resolved", got)
	}
	app := dst.stored["registry.example.com/ns/app@"+d("registry.example.com/ns/app:v1").String()]
	if len(app) != 2 || string(app[0]) != string(sigBlob("a1")) || string(app[1]) != string(sigBlob("a2")) {
		t.Fatalf("stored %q, want a1 then a2", app)
	}
	if _, ok := dst.stored["registry.example.com/ns/broken@"+d("registry.example.com/ns/broken:v1").String()]; ok {
		t.Fatal("a failing source stored something")
	}
	for _, want := range []string{"[1/6] registry.example.com/ns/app:v1@sha256:", "2 found, 2 added, 0 skipped", "ns/broken:v1@", "error: read signatures: source answered 500",
		"ns/unknown:v1: error: resolve digest: manifest unknown", "total 4 added, 0 skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, out.String())
		}
	}

	// A second run finds everything already there.
	again := im
	again.Progress = nil
	sum = again.Run(context.Background(), images)
	if sum.Added != 0 || sum.Skipped != 4 {
		t.Fatalf("second run %+v, want everything skipped", sum)
	}

	// A destination failure is reported per image.
	dst.fail = errors.New("registry answered 404 MANIFEST_UNKNOWN")
	sum = (&Importer{Source: src, Destination: dst, Place: im.Place, Resolve: im.Resolve}).Run(context.Background(), images[:1])
	if sum.Failed != 1 || !strings.Contains(sum.Results[0].Err.Error(), "store signature 1 of 2") {
		t.Fatalf("destination failure: %+v", sum.Results)
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, true, 4)
	p.signature()
	p.image(Result{Image: "a", Digest: testDigest, Found: 1, Added: 1})
	p.image(Result{Image: "b", Err: errors.New("boom")})
	p.Finish()
	s := out.String()
	for _, want := range []string{"\r[", "] 0/4 images, 1 signatures", "[############............] 2/4 images", "\rb: error: boom\x1b[K\n", "1 added, 0 skipped, 1 failed images"} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q: %q", want, s)
		}
	}
	if !strings.HasSuffix(s, "\n") {
		t.Error("Finish did not end the line")
	}
}
