package lookaside

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/signet-registry/signet/signaturestore"
)

// Names the export owns inside the output directory. Both start with a
// dot, so no repository name can collide with them.
const (
	// stateFile, inside every image directory, lists the SHA-256 of each
	// signature file in order: what the export wrote last time.
	stateFile = ".signet-export"
	// workPrefix names temporary and retired directories and the lock at
	// the top of the output directory.
	workPrefix = ".signet-"
	lockFile   = workPrefix + "export.lock"
	stateMagic = "signet-export 1\n"
	// maxStateBytes bounds reading a state file: 1024 signatures (the
	// configuration's maximum per image) of 65 bytes each, and some.
	maxStateBytes = 128 << 10
)

// ExportStats counts what an export did.
type ExportStats struct {
	// Images is how many images with signatures matched; Signatures
	// their signature count.
	Images, Signatures int
	// Written image directories were new or changed, Unchanged ones were
	// left alone, Removed ones belonged to images that no longer have
	// signatures.
	Written, Unchanged, Removed int
}

// Export writes the lookaside tree of the images w holds into dir:
// dir/<repository>@sha256=<hex>/signature-<N>, numbered from 1 in the
// store's order, the layout /sigstore/ serves. match selects repositories
// (nil: all).
//
// It is incremental: an image whose signatures are what the last export
// wrote is not touched. It is atomic per image: the new set is written to
// a temporary directory inside dir and swapped in with one rename
// (renameat2 RENAME_EXCHANGE on Linux), so a web server serving dir shows
// either the old set or the new one, never a mix. Images that lost all
// their signatures are removed the same way. A directory it did not write
// (no state file) is never replaced or removed. Two exports into one
// directory at once are refused.
func Export(ctx context.Context, w signaturestore.Walker, dir string, match func(repository string) bool) (ExportStats, error) {
	var st ExportStats
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return st, fmt.Errorf("export to %s: %w", dir, err)
	}
	defer unlock()
	if err := removeLeftovers(dir); err != nil {
		return st, fmt.Errorf("export to %s: %w", dir, err)
	}
	exported := map[string]bool{}
	err = w.Walk(ctx, func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		if match != nil && !match(key.Repository) {
			return nil
		}
		var blobs [][]byte
		for _, s := range sigs {
			if s.Type == signaturestore.TypeAtomic {
				blobs = append(blobs, s.Content)
			}
		}
		if len(blobs) == 0 {
			return nil
		}
		rel := ImageDir(key.Repository, key.Digest)
		if _, _, ok := ParseImageDir(rel); !ok {
			return fmt.Errorf("image %s: not a name that is safe as a path", key)
		}
		exported[rel] = true
		st.Images++
		st.Signatures += len(blobs)
		changed, err := exportImage(dir, rel, blobs)
		if err != nil {
			return fmt.Errorf("image %s: %w", key, err)
		}
		if changed {
			st.Written++
		} else {
			st.Unchanged++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("export to %s: %w", dir, err)
	}
	st.Removed, err = prune(dir, exported, match)
	if err != nil {
		return st, fmt.Errorf("export to %s: %w", dir, err)
	}
	return st, nil
}

// state is the content of an image's state file for blobs.
func state(blobs [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	for _, blob := range blobs {
		sum := sha256.Sum256(blob)
		b.WriteString(hex.EncodeToString(sum[:]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// readState returns an image directory's state file, or nil when there is
// none (or it is unreadable: the directory is then rewritten).
func readState(imageDir string) []byte {
	f, err := os.Open(filepath.Join(imageDir, stateFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil || len(b) > maxStateBytes || !bytes.HasPrefix(b, []byte(stateMagic)) {
		return nil
	}
	return b
}

// exportImage brings dir/rel up to date and reports whether it changed.
func exportImage(dir, rel string, blobs [][]byte) (bool, error) {
	final := filepath.Join(dir, filepath.FromSlash(rel))
	want := state(blobs)
	have := readState(final)
	if bytes.Equal(have, want) {
		return false, nil
	}
	existing := false
	if info, err := os.Lstat(final); err == nil {
		if !info.IsDir() || have == nil {
			return false, fmt.Errorf("%s exists and was not written by export-sigstore; refusing to replace it", final)
		}
		existing = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	tmp, err := os.MkdirTemp(dir, workPrefix+"tmp-")
	if err != nil {
		return false, err
	}
	// After a swap tmp holds the old set; either way it goes.
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	for i, blob := range blobs {
		if err := writeSynced(filepath.Join(tmp, SignatureFile(i+1)), blob); err != nil {
			return false, err
		}
	}
	// The state file goes last: a set is only recorded once complete.
	if err := writeSynced(filepath.Join(tmp, stateFile), want); err != nil {
		return false, err
	}
	if err := syncDir(tmp); err != nil {
		return false, err
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return false, err
	}
	if !existing {
		if err := os.Rename(tmp, final); err != nil {
			return false, err
		}
	} else if err := swapDir(dir, tmp, final); err != nil {
		return false, err
	}
	return true, syncDir(parent)
}

// swapDir puts the directory tmp at final, which exists. With an atomic
// exchange final is never missing; without one (not Linux, or a file
// system that lacks it) final is missing for the instant between two
// renames, so a reader may see no signatures but never a mix of sets.
func swapDir(dir, tmp, final string) error {
	if err := exchange(tmp, final); err == nil {
		return nil
	}
	return swapDirFallback(dir, tmp, final)
}

// swapDirFallback replaces final by tmp with two renames.
func swapDirFallback(dir, tmp, final string) error {
	old, err := os.MkdirTemp(dir, workPrefix+"old-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(old)
	aside := filepath.Join(old, "set")
	if err := os.Rename(final, aside); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Put the old set back rather than leave nothing.
		return errors.Join(err, os.Rename(aside, final))
	}
	return nil
}

// prune removes the exported image directories of matching repositories
// that this export did not write, because their images have no
// signatures any more. Each goes with one rename out of the tree, then
// empty repository directories are removed.
func prune(dir string, exported map[string]bool, match func(string) bool) (int, error) {
	var stale []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir || !d.IsDir() {
			return nil
		}
		if filepath.Dir(path) == dir && strings.HasPrefix(d.Name(), workPrefix) {
			return fs.SkipDir
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		repo, _, ok := ParseImageDir(rel)
		if !ok {
			return nil
		}
		if !exported[rel] && (match == nil || match(repo)) && readState(path) != nil {
			stale = append(stale, path)
		}
		return fs.SkipDir
	})
	if err != nil {
		return 0, err
	}
	for _, path := range stale {
		old, err := os.MkdirTemp(dir, workPrefix+"old-")
		if err != nil {
			return 0, err
		}
		if err := os.Rename(path, filepath.Join(old, "set")); err != nil {
			_ = os.RemoveAll(old)
			return 0, err
		}
		if err := os.RemoveAll(old); err != nil {
			return 0, err
		}
		// Best effort: a parent still in use is not empty and stays.
		for p := filepath.Dir(path); p != dir && os.Remove(p) == nil; p = filepath.Dir(p) {
		}
	}
	return len(stale), nil
}

// removeLeftovers deletes temporary and retired directories an
// interrupted export left behind. The caller holds the lock.
func removeLeftovers(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() && (strings.HasPrefix(name, workPrefix+"tmp-") || strings.HasPrefix(name, workPrefix+"old-")) {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
