package etcdstore

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
)

// Walk implements signaturestore.Walker: one pass over the sig/ tree in
// key order (repository, digest, insertion order), every page read at the
// revision of the first, so fn sees one consistent state. A walk that
// outlives etcd's compaction of that revision fails rather than mixing
// states. Unlike the other operations a walk is not bounded by
// RequestTimeout, only by ctx.
func (s *Store) Walk(ctx context.Context, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	if _, err := s.walkAt(ctx, 0, fn); err != nil {
		return fmt.Errorf("walk signatures: %w", err)
	}
	return nil
}

// walkAt walks at rev (0: now) and returns the revision it walked.
func (s *Store) walkAt(ctx context.Context, rev int64, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, signaturestore.ErrClosed
	}
	tree := s.k.tree(treeSig)
	var cur signaturestore.ImageKey
	var sigs []signaturestore.Signature
	// fnErr is fn's own error, returned as it is.
	var fnErr error
	flush := func() error {
		if len(sigs) == 0 {
			return nil
		}
		fnErr = fn(cur, sigs)
		sigs = nil
		return fnErr
	}
	rev, err := s.scanAt(ctx, tree, clientv3.GetPrefixRangeEnd(tree), rev, func(k, v []byte) (bool, error) {
		repo, dgst, rest, err := parseImagePart(strings.TrimPrefix(string(k), tree))
		if err != nil {
			return false, fmt.Errorf("%w: signature key %q: %w", ErrCorrupt, k, err)
		}
		if _, err := parseSeq(rest); err != nil {
			return false, fmt.Errorf("%w: signature key %q: %w", ErrCorrupt, k, err)
		}
		key := signaturestore.ImageKey{Repository: repo, Digest: dgst}
		if key != cur {
			if err := flush(); err != nil {
				return false, err
			}
			cur = key
		}
		sig, err := decodeRecord(v)
		if err != nil {
			return false, fmt.Errorf("%q: %w", k, err)
		}
		sigs = append(sigs, sig)
		return true, nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil && err == fnErr {
		return rev, err
	}
	return rev, classify(ctx, err)
}

// ImagesAfter lists up to limit images holding signatures that sort after
// after (by repository, then digest; the zero key starts at the first),
// reading only the stat keys: one short range read per page. The proxy
// mode's sweep pages through the store this way.
func (s *Store) ImagesAfter(ctx context.Context, after signaturestore.ImageKey, limit int) ([]signaturestore.ImageKey, error) {
	out := []signaturestore.ImageKey{}
	if limit <= 0 {
		return out, nil
	}
	tree := s.k.tree(treeStat)
	from := tree
	if after.Repository != "" {
		// Strictly after: the image's own key plus the lowest byte.
		from = tree + imagePart(after.Repository, after.Digest) + "\x00"
	}
	err := s.run(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(tree)), clientv3.WithLimit(int64(limit)), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			repo, dgst, rest, err := parseImagePart(strings.TrimPrefix(string(kv.Key), tree))
			if err != nil || rest != "" {
				return fmt.Errorf("%w: stat key %q", ErrCorrupt, kv.Key)
			}
			out = append(out, signaturestore.ImageKey{Repository: repo, Digest: dgst})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}
