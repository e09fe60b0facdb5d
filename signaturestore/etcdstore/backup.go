package etcdstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// exportWorkers is how many images Snapshot writes at once; boltstore's
// group commit shares one fsync among them.
const exportWorkers = 16

// Snapshot implements registry.Snapshotter with a logical export: every
// signature (with its creation time and status), the pending manifest
// deletes and the referrers index, all as of one etcd revision, written
// into a new bbolt database in SpoolDir. The result is exactly what
// `signet backup` downloads from a bbolt server, so the same checks and
// tools apply: `signet check --file`, a bbolt data directory, or
// `signet migrate --from bbolt:FILE --to etcd:…` to load it back into
// etcd. An etcd snapshot (etcdctl snapshot save) remains the etcd
// operator's tool for the cluster as a whole.
//
// The file is unlinked before it is returned, so it disappears when
// closed.
func (s *Store) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	f, size, err := s.snapshot(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot etcd signature store: %w", err)
	}
	return f, size, nil
}

func (s *Store) snapshot(ctx context.Context) (*os.File, int64, error) {
	dir, err := os.MkdirTemp(s.spoolDir, ".signet-export-*")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "signatures.db")
	if err := s.ExportBolt(ctx, path); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, info.Size(), nil
}

// ExportBolt writes the whole store, as of one revision, into a new bbolt
// database at path (which must not exist).
func (s *Store) ExportBolt(ctx context.Context, path string) (err error) {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("export to %s: file exists", path)
	}
	dst, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	type image struct {
		key  signaturestore.ImageKey
		sigs []signaturestore.Signature
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan image)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for range exportWorkers {
		wg.Go(func() {
			for im := range work {
				// In order: the copy keeps insertion order.
				for _, sig := range im.sigs {
					if err := dst.Put(ctx, im.key, sig); err != nil {
						fail(err)
						break
					}
				}
			}
		})
	}
	rev, walkErr := s.walkAt(ctx, 0, func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		select {
		case work <- image{key, sigs}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if walkErr != nil {
		return walkErr
	}
	return s.exportRest(ctx, rev, dst)
}

// exportRest copies the journal and the referrers index at rev.
func (s *Store) exportRest(ctx context.Context, rev int64, dst *boltstore.Store) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return signaturestore.ErrClosed
	}
	jtree := s.k.tree(treeJournal)
	err := s.scan(ctx, jtree, clientv3.GetPrefixRangeEnd(jtree), rev, func(k, _ []byte) (bool, error) {
		repo, dgst, rest, err := parseImagePart(strings.TrimPrefix(string(k), jtree))
		if err != nil || rest != "" {
			return false, fmt.Errorf("%w: journal key %q", ErrCorrupt, k)
		}
		return true, dst.BeginImageDelete(ctx, signaturestore.ImageKey{Repository: repo, Digest: dgst})
	})
	if err != nil {
		return classify(ctx, err)
	}
	rtree := s.k.tree(treeRefBySub)
	err = s.scan(ctx, rtree, clientv3.GetPrefixRangeEnd(rtree), rev, func(k, v []byte) (bool, error) {
		repo, subject, rest, err := parseImagePart(strings.TrimPrefix(string(k), rtree))
		if err != nil {
			return false, fmt.Errorf("%w: referrer key %q", ErrCorrupt, k)
		}
		var r referrerRecord
		if err := strictDecode(v, &r); err != nil {
			return false, fmt.Errorf("%w: referrer record %q: %w", ErrCorrupt, k, err)
		}
		if r.Descriptor.Digest != digest.Digest(rest) {
			return false, fmt.Errorf("%w: referrer record %q describes %s", ErrCorrupt, k, r.Descriptor.Digest)
		}
		if err := dst.BeginReferrer(ctx, repo, subject, r.Descriptor); err != nil {
			return false, err
		}
		if !r.Pending {
			if err := dst.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: repo, Digest: r.Descriptor.Digest}, true); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	return classify(ctx, err)
}
