package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// Upgrading schema 1 to schema 2.
//
// The schema-2 database is written as a new file beside the old one
// (<file>.upgrade), checked, synced, and renamed over the old file; the
// directory is synced last. The old file is never written, and rename is
// atomic, so a crash at any point leaves either the untouched schema-1
// file (and perhaps a partial .upgrade file, removed by the next attempt)
// or the complete schema-2 file under the database's name, never a mix.
// Writing a new file rather than rewriting in place also leaves the
// result compact: bbolt never shrinks a file, so an in-place rewrite
// would keep every schema-1 page as free space.
//
// The old file stays locked until the new one is in its place, and the
// new one is locked (opened) before the rename, so no other process can
// open either in between.

// upgradeSuffix names the schema-2 file while it is being written.
const upgradeSuffix = ".upgrade"

// upgradeBatchBytes bounds the signature bytes of one write transaction
// of the upgrade, which bbolt holds in memory until it commits.
const upgradeBatchBytes = 32 << 20

// upgradeHooks let tests stop an upgrade at a chosen point.
type upgradeHooks struct {
	// step, when not nil, is called after each committed batch ("batch"),
	// once the new file is complete and checked ("built"), synced
	// ("synced"), and renamed over the old one ("renamed").
	step func(name string)
	// batchBytes overrides upgradeBatchBytes when positive.
	batchBytes int
}

func (h upgradeHooks) at(name string) {
	if h.step != nil {
		h.step(name)
	}
}

// upgradeV1 writes old (the schema-1 database at path, open and locked)
// as a schema-2 database, puts it in old's place and returns it open, and
// closes old. On failure the caller closes old (bbolt's Close may be
// called twice); a failure before the rename leaves the file unchanged.
func upgradeV1(path string, old *bbolt.DB, timeout time.Duration, hooks upgradeHooks) (*bbolt.DB, error) {
	// A symlinked database is upgraded where the file really is.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}
	info, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}
	tmp := real + upgradeSuffix
	// Left by an upgrade that crashed; the lock on old says no other
	// process is writing it.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("upgrade schema 1: remove stale %s: %w", tmp, err)
	}
	nw, err := bbolt.Open(tmp, info.Mode().Perm(), &bbolt.Options{Timeout: timeout})
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("upgrade schema 1: create %s: %w", tmp, noSpace(err))
	}
	done := false
	defer func() {
		if !done {
			_ = nw.Close()
			_ = os.Remove(tmp)
		}
	}()
	// Durability comes from one Sync before the rename; until then the
	// file is scratch.
	nw.NoSync = true
	// The mode bbolt created it with went through the umask.
	if err := os.Chmod(tmp, info.Mode().Perm()); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}
	if err := sameOwner(tmp, info); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}

	if err := copyV1(old, nw, hooks); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", noSpace(err))
	}
	if err := nw.View(func(tx *bbolt.Tx) error {
		_, _, err := checkTx(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: the schema-2 copy fails its check: %w", err)
	}
	hooks.at("built")
	if err := nw.Sync(); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: sync %s: %w", tmp, noSpace(err))
	}
	nw.NoSync = false
	hooks.at("synced")
	if err := os.Rename(tmp, real); err != nil {
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}
	done = true
	hooks.at("renamed")
	// Either name resolves to a complete database now; syncing the
	// directory makes the new one stick.
	if err := syncDir(filepath.Dir(real)); err != nil {
		_ = nw.Close()
		return nil, fmt.Errorf("upgrade schema 1: %w", err)
	}
	if err := old.Close(); err != nil {
		_ = nw.Close()
		return nil, fmt.Errorf("upgrade schema 1: close the schema-1 database: %w", err)
	}
	return nw, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// copyV1 copies every signature, the journal and the referrers index of
// the schema-1 database src into the empty database dst as schema 2, in
// transactions of about batchBytes of signatures, all read in one read
// transaction of src.
func copyV1(src, dst *bbolt.DB, hooks upgradeHooks) error {
	limit := hooks.batchBytes
	if limit <= 0 {
		limit = upgradeBatchBytes
	}
	type image struct {
		key  signaturestore.ImageKey
		sigs []signaturestore.Signature
	}
	var (
		batch []image
		size  int
		total uint64
	)
	flush := func() error {
		err := dst.Update(func(tx *bbolt.Tx) error {
			for _, img := range batch {
				if err := insertV1Image(tx, img.key, img.sigs); err != nil {
					return fmt.Errorf("image %s: %w", img.key, err)
				}
				total += uint64(len(img.sigs))
			}
			return nil
		})
		if err != nil {
			return err
		}
		batch, size = batch[:0], 0
		hooks.at("batch")
		return nil
	}
	if err := dst.Update(initSchema); err != nil {
		return err
	}
	return src.View(func(stx *bbolt.Tx) error {
		// Images come in key order, which is schema 2's order too, so
		// every bucket of dst is appended to.
		err := walkV1(context.Background(), stx, func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
			batch = append(batch, image{key, sigs})
			for _, sig := range sigs {
				size += len(sig.Content)
			}
			if size < limit {
				return nil
			}
			return flush()
		})
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		want, err := readTotal(stx)
		if err != nil {
			return err
		}
		if want != total {
			return fmt.Errorf("%w: schema-1 meta count is %d but %d signatures are stored; run signet check", ErrCorrupt, want, total)
		}
		return dst.Update(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put(keyCount, u64(total)); err != nil {
				return err
			}
			// The journal's keys and values are the same in both
			// schemas, and so is the referrers index.
			if err := copyBucket(tx.Bucket(bucketJournal), stx.Bucket(bucketJournal)); err != nil {
				return fmt.Errorf("copy journal: %w", err)
			}
			if refs := stx.Bucket(bucketReferrers); refs != nil {
				b, err := tx.CreateBucket(bucketReferrers)
				if err != nil {
					return err
				}
				if err := copyBucket(b, refs); err != nil {
					return fmt.Errorf("copy referrers: %w", err)
				}
			}
			return nil
		})
	})
}

// insertV1Image stores one schema-1 image's signatures, in their order,
// as schema 2. Two signatures with one name, or with one type and
// content, mean the schema-1 file was corrupt: the upgrade stops rather
// than drop one.
func insertV1Image(tx *bbolt.Tx, key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
	t, err := openTree(tx)
	if err != nil {
		return err
	}
	// Keys arrive in order, and every index is written whole: full pages.
	for _, b := range []*bbolt.Bucket{t.images, t.index, t.sigs} {
		b.FillPercent = fillAppend
	}
	id, err := t.images.NextSequence()
	if err != nil {
		return err
	}
	img := &image{key: imageKeyBytes(key), d: key.Digest, id: id, idKey: u64(id)}
	if err := t.images.Put(img.key, img.idKey); err != nil {
		return err
	}
	var size uint64
	entries := make([][]byte, 0, len(sigs))
	seen := map[string]bool{}
	for _, sig := range sigs {
		status, err := encodeStatus(sig.Status)
		if err != nil {
			return err
		}
		nk := appendNameKey(nil, key.Digest, sig.Name)
		ck := contentKey(sig.Type, sig.Content)
		if seen["n"+string(nk)] {
			return fmt.Errorf("%w: two signatures named %q", ErrCorrupt, sig.Name)
		}
		if seen["c"+string(ck)] {
			return fmt.Errorf("%w: signature %q repeats the type and content of another", ErrCorrupt, sig.Name)
		}
		seen["n"+string(nk)], seen["c"+string(ck)] = true, true
		seq, err := t.sigs.NextSequence()
		if err != nil {
			return err
		}
		rec := appendRecord(make([]byte, 0, recordCap(sig.Name, sig.Type, sig.Content, status)), id, key.Digest, sig.Name, sig.Type, sig.Content, sig.Created, status)
		if err := t.sigs.Put(u64(seq), rec); err != nil {
			return err
		}
		entries = append(entries, appendEntry(nil, ck, seq, nk))
		size += uint64(len(sig.Content))
	}
	return t.writeIndex(img, size, entries...)
}

// copyBucket copies src into dst, nested buckets and sequences included.
func copyBucket(dst, src *bbolt.Bucket) error {
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEach(func(k, v []byte) error {
		if v != nil {
			return dst.Put(bytes.Clone(k), bytes.Clone(v))
		}
		sub, err := dst.CreateBucket(bytes.Clone(k))
		if err != nil {
			return err
		}
		return copyBucket(sub, src.Bucket(k))
	})
}
