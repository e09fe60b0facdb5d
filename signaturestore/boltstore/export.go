package boltstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// What a Reader offers beyond Walk, for tools that copy a whole database
// elsewhere (signet migrate): the journal and the referrers index, read in
// one read-only transaction each.

// PendingImageDeletes lists the journaled manifest deletes. The result is
// never nil.
func (r *Reader) PendingImageDeletes(ctx context.Context) ([]signaturestore.ImageKey, error) {
	keys := []signaturestore.ImageKey{}
	err := r.db.View(func(tx *bbolt.Tx) error {
		j := tx.Bucket(bucketJournal)
		if j == nil {
			return fmt.Errorf("%w: missing journal bucket", ErrCorrupt)
		}
		return j.ForEach(func(k, _ []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			key, err := decodeJournalKey(k)
			if err != nil {
				return err
			}
			keys = append(keys, key)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending image deletes: %w", err)
	}
	return keys, nil
}

// WalkReferrers calls fn for every recorded referrer, confirmed or
// pending, in repository, subject and referrer digest order.
func (r *Reader) WalkReferrers(ctx context.Context, fn func(repository string, subject digest.Digest, desc signaturestore.Descriptor, pending bool) error) error {
	err := r.db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket(bucketReferrers)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(repo []byte) error {
			by := root.Bucket(repo).Bucket(bucketBySubject)
			if by == nil {
				return nil
			}
			return by.ForEachBucket(func(subject []byte) error {
				return by.Bucket(subject).ForEach(func(ref, v []byte) error {
					if err := ctx.Err(); err != nil {
						return err
					}
					var rec referrerRecord
					if err := json.Unmarshal(v, &rec); err != nil {
						return fmt.Errorf("%w: referrer record of %s: %v", ErrCorrupt, ref, err)
					}
					if string(rec.Descriptor.Digest) != string(ref) {
						return fmt.Errorf("%w: referrer record under %s describes %s", ErrCorrupt, ref, rec.Descriptor.Digest)
					}
					return fn(string(repo), digest.Digest(subject), rec.Descriptor, rec.Pending)
				})
			})
		})
	})
	if err != nil {
		return fmt.Errorf("walk referrers: %w", err)
	}
	return nil
}
