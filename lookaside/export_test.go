package lookaside

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// memWalker is a signaturestore.Walker over a map, visited in key order.
type memWalker struct {
	mu     sync.Mutex
	images map[signaturestore.ImageKey][]signaturestore.Signature
}

func (m *memWalker) set(repo, seed string, contents ...string) signaturestore.ImageKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := signaturestore.ImageKey{Repository: repo, Digest: digest.FromString(seed)}
	var sigs []signaturestore.Signature
	for _, c := range contents {
		sigs = append(sigs, signaturestore.Signature{Type: signaturestore.TypeAtomic, Content: sigBlob(c)})
	}
	if m.images == nil {
		m.images = map[signaturestore.ImageKey][]signaturestore.Signature{}
	}
	m.images[key] = sigs
	return key
}

func (m *memWalker) Walk(ctx context.Context, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := slices.SortedFunc(func(yield func(signaturestore.ImageKey) bool) {
		for k := range m.images {
			if !yield(k) {
				return
			}
		}
	}, func(a, b signaturestore.ImageKey) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(m.images[k]) == 0 {
			continue
		}
		if err := fn(k, m.images[k]); err != nil {
			return err
		}
	}
	return nil
}

// tree lists the files under dir (slash paths) with their contents,
// leaving out the export's own lock file.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	w := &memWalker{}
	app := w.set("ns/app", "app", "a1", "a2")
	ext := w.set("docker.io/library/nginx", "nginx", "n1")
	voila := w.set("ns/app-voila", "voila", "v1")
	appDir := ImageDir(app.Repository, app.Digest)

	st, err := Export(t.Context(), w, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st != (ExportStats{Images: 3, Signatures: 4, Written: 3}) {
		t.Fatalf("first export %+v", st)
	}
	files := tree(t, dir)
	if len(files) != 7 {
		t.Fatalf("files %v", slices.Sorted(func(yield func(string) bool) {
			for k := range files {
				yield(k)
			}
		}))
	}
	if files[appDir+"/signature-1"] != string(sigBlob("a1")) || files[appDir+"/signature-2"] != string(sigBlob("a2")) {
		t.Fatalf("ns/app files %q %q", files[appDir+"/signature-1"], files[appDir+"/signature-2"])
	}
	if files[ImageDir(ext.Repository, ext.Digest)+"/signature-1"] != string(sigBlob("n1")) {
		t.Fatal("external repository not exported")
	}
	info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(appDir)))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Fatalf("image directory mode %v (%v); a web server must be able to read it", info.Mode(), err)
	}

	// Nothing changed: nothing is written.
	if st, err = Export(t.Context(), w, dir, nil); err != nil || st.Written != 0 || st.Unchanged != 3 {
		t.Fatalf("second export %+v %v", st, err)
	}

	// A new signature rewrites that image only; a deleted image goes,
	// and so does its now empty repository directory.
	w.set("ns/app", "app", "a1", "a2", "a3")
	w.set("docker.io/library/nginx", "nginx")
	if st, err = Export(t.Context(), w, dir, nil); err != nil || st != (ExportStats{Images: 2, Signatures: 4, Written: 1, Unchanged: 1, Removed: 1}) {
		t.Fatalf("third export %+v %v", st, err)
	}
	files = tree(t, dir)
	if files[appDir+"/signature-3"] != string(sigBlob("a3")) {
		t.Fatal("new signature not exported")
	}
	if _, err := os.Stat(filepath.Join(dir, "docker.io")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("emptied repository directories left behind: %v", err)
	}
	if _, ok := files[ImageDir(voila.Repository, voila.Digest)+"/signature-1"]; !ok {
		t.Fatal("ns/app-voila lost")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), workPrefix) && e.Name() != lockFile {
			t.Fatalf("work directory %s left behind", e.Name())
		}
	}
}

func TestExportFilter(t *testing.T) {
	dir := t.TempDir()
	w := &memWalker{}
	app := w.set("ns/app", "app", "a1")
	other := w.set("team/x", "x", "x1")
	if _, err := Export(t.Context(), w, dir, nil); err != nil {
		t.Fatal(err)
	}
	// Only ns/** is exported now, and other's signatures are gone from
	// the store: a filtered export must not prune outside its filter.
	w.set("team/x", "x")
	w.set("ns/app", "app", "a1", "a2")
	st, err := Export(t.Context(), w, dir, func(repo string) bool { return strings.HasPrefix(repo, "ns/") })
	if err != nil || st != (ExportStats{Images: 1, Signatures: 2, Written: 1}) {
		t.Fatalf("filtered export %+v %v", st, err)
	}
	files := tree(t, dir)
	if _, ok := files[ImageDir(other.Repository, other.Digest)+"/signature-1"]; !ok {
		t.Fatal("a filtered export removed a repository outside its filter")
	}
	if _, ok := files[ImageDir(app.Repository, app.Digest)+"/signature-2"]; !ok {
		t.Fatal("ns/app not updated")
	}
}

func TestExportRefusesForeignDirectories(t *testing.T) {
	dir := t.TempDir()
	w := &memWalker{}
	key := w.set("ns/app", "app", "a1")
	foreign := filepath.Join(dir, filepath.FromSlash(ImageDir(key.Repository, key.Digest)))
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "signature-1"), []byte("hand-made"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stale hand-made image directory is never pruned either.
	stray := filepath.Join(dir, "ns", "gone@sha256="+strings.Repeat("0", 64))
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(t.Context(), w, dir, nil); err == nil || !strings.Contains(err.Error(), "not written by export-sigstore") {
		t.Fatalf("export over a foreign directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "signature-1")); string(b) != "hand-made" {
		t.Fatal("foreign directory replaced")
	}
	w.set("ns/app", "app")
	if st, err := Export(t.Context(), w, dir, nil); err != nil || st.Removed != 0 {
		t.Fatalf("prune %+v %v", st, err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatal("a directory the export did not write was removed")
	}
}

func TestExportLeftoversAndLock(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, workPrefix+"tmp-123")
	if err := os.MkdirAll(filepath.Join(leftover, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &memWalker{}
	w.set("ns/app", "app", "a1")
	if _, err := Export(t.Context(), w, dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("leftover of an interrupted export kept: %v", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Export(t.Context(), w, dir, nil); err == nil || !strings.Contains(err.Error(), "another export-sigstore") {
		t.Fatalf("concurrent export: %v", err)
	}
}

// TestExportSwapIsAtomic: while exports alternate an image between a set
// of 3 and a set of 5 signatures, a reader listing the image directory
// always sees one whole set and never an absent directory.
func TestExportSwapIsAtomic(t *testing.T) {
	dir := t.TempDir()
	w := &memWalker{}
	key := w.set("ns/app", "app", "a1", "a2", "a3")
	if _, err := Export(t.Context(), w, dir, nil); err != nil {
		t.Fatal(err)
	}
	imageDir := filepath.Join(dir, filepath.FromSlash(ImageDir(key.Repository, key.Digest)))
	set3 := []string{stateFile, "signature-1", "signature-2", "signature-3"}
	set5 := append(slices.Clone(set3), "signature-4", "signature-5")
	var stop atomic.Bool
	var reads atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for !stop.Load() {
			// Opening resolves the path: it must always name a set.
			d, err := os.Open(imageDir)
			if err != nil {
				errc <- fmt.Errorf("open %s mid-swap: %w", imageDir, err)
				return
			}
			entries, err := d.ReadDir(-1)
			opened, statErr := d.Stat()
			d.Close()
			now, pathErr := os.Stat(imageDir)
			if statErr != nil || pathErr != nil {
				errc <- fmt.Errorf("stat %s mid-swap: %v, %v", imageDir, statErr, pathErr)
				return
			}
			if !os.SameFile(opened, now) {
				// The set this reader opened was retired (and is being
				// removed) while it read; a retired set never returns
				// to the path, which web servers resolve per request.
				continue
			}
			if err != nil {
				errc <- fmt.Errorf("read %s mid-swap: %w", imageDir, err)
				return
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			slices.Sort(names)
			if !slices.Equal(names, set3) && !slices.Equal(names, set5) {
				errc <- fmt.Errorf("reader saw a partial set %v", names)
				return
			}
			reads.Add(1)
		}
		errc <- nil
	}()
	for i := range 40 {
		if i%2 == 0 {
			w.set("ns/app", "app", "b1", "b2", "b3", "b4", "b5")
		} else {
			w.set("ns/app", "app", "a1", "a2", "a3")
		}
		if st, err := Export(t.Context(), w, dir, nil); err != nil || st.Written != 1 {
			stop.Store(true)
			t.Fatalf("export %d: %+v %v", i, st, err)
		}
	}
	stop.Store(true)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never ran")
	}
}

func TestSwapDirFallback(t *testing.T) {
	// The two-rename fallback, used where exchange is unsupported.
	dir := t.TempDir()
	final := filepath.Join(dir, "final")
	tmp := filepath.Join(dir, "tmp")
	for p, content := range map[string]string{final: "old", tmp: "new"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(final, filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	// final is missing now: swapDir's fallback fails its first rename
	// and must not lose tmp.
	if err := swapDirFallback(dir, tmp, final); err == nil {
		t.Fatal("swap onto a missing directory succeeded")
	}
	if err := os.Rename(filepath.Join(dir, "x"), final); err != nil {
		t.Fatal(err)
	}
	if err := swapDirFallback(dir, tmp, final); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "f")); string(b) != "new" {
		t.Fatalf("final holds %q", b)
	}
}
