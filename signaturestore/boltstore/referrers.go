package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// Referrers layout, the same in schemas 1 and 2 (it was added to schema 1
// without a version bump: the bucket is created when missing and older
// builds never look at it; the upgrade copies it as it is):
//
//	referrers/
//	└── <repository>/
//	    ├── s/<subject digest>/<referrer digest>  -> referrer record (JSON)
//	    └── r/<referrer digest>                   -> subject digest
//
// The r bucket finds a referrer's subject for EndReferrer and
// RemoveReferrer; the s buckets list a subject's referrers in digest order.
var (
	bucketReferrers = []byte("referrers")
	bucketBySubject = []byte("s")
	bucketSubjectOf = []byte("r")
)

// referrerRecord is the stored value of one referrer.
type referrerRecord struct {
	Descriptor signaturestore.Descriptor `json:"descriptor"`
	Pending    bool                      `json:"pending,omitempty"`
}

var _ signaturestore.ReferrersIndex = (*Store)(nil)

func validateReferrer(repository string, dgst digest.Digest) error {
	if repository == "" || len(repository) > maxKeyLen {
		return fmt.Errorf("%w: repository name", signaturestore.ErrInvalid)
	}
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", signaturestore.ErrInvalid, dgst, err)
	}
	return nil
}

// BeginReferrer implements signaturestore.ReferrersIndex.
func (s *Store) BeginReferrer(ctx context.Context, repository string, subject digest.Digest, desc signaturestore.Descriptor) error {
	if err := validateReferrer(repository, subject); err != nil {
		return fmt.Errorf("begin referrer: %w", err)
	}
	if err := validateReferrer(repository, desc.Digest); err != nil {
		return fmt.Errorf("begin referrer: %w", err)
	}
	val, err := json.Marshal(referrerRecord{Descriptor: desc, Pending: true})
	if err != nil {
		return fmt.Errorf("begin referrer: %w", err)
	}
	err = s.submit(ctx, func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketReferrers)
		if err != nil {
			return wrote(err)
		}
		repo, err := root.CreateBucketIfNotExists([]byte(repository))
		if err != nil {
			return wrote(err)
		}
		of, err := repo.CreateBucketIfNotExists(bucketSubjectOf)
		if err != nil {
			return wrote(err)
		}
		// A manifest re-pushed with another subject cannot happen (the
		// digest fixes the content), but a stale record must not linger.
		if old := of.Get([]byte(desc.Digest)); old != nil && !bytes.Equal(old, []byte(subject)) {
			if err := removeFromSubject(repo, digest.Digest(old), desc.Digest); err != nil {
				return wrote(err)
			}
		}
		if err := of.Put([]byte(desc.Digest), []byte(subject)); err != nil {
			return wrote(err)
		}
		by, err := repo.CreateBucketIfNotExists(bucketBySubject)
		if err != nil {
			return wrote(err)
		}
		sb, err := by.CreateBucketIfNotExists([]byte(subject))
		if err != nil {
			return wrote(err)
		}
		if cur := sb.Get([]byte(desc.Digest)); cur != nil {
			var rec referrerRecord
			if json.Unmarshal(cur, &rec) == nil && !rec.Pending {
				// Already confirmed: a re-push keeps it listed.
				return nil
			}
		}
		return wrote(sb.Put([]byte(desc.Digest), val))
	})
	if err != nil {
		return fmt.Errorf("begin referrer %s@%s: %w", repository, desc.Digest, err)
	}
	return nil
}

func removeFromSubject(repo *bbolt.Bucket, subject, referrer digest.Digest) error {
	by := repo.Bucket(bucketBySubject)
	if by == nil {
		return nil
	}
	sb := by.Bucket([]byte(subject))
	if sb == nil {
		return nil
	}
	if err := sb.Delete([]byte(referrer)); err != nil {
		return err
	}
	if k, _ := sb.Cursor().First(); k == nil {
		return by.DeleteBucket([]byte(subject))
	}
	return nil
}

// nested walks down a chain of buckets from the referrers root and returns
// nil as soon as one is missing.
func nested(tx *bbolt.Tx, names ...[]byte) *bbolt.Bucket {
	b := tx.Bucket(bucketReferrers)
	for _, n := range names {
		if b == nil {
			return nil
		}
		b = b.Bucket(n)
	}
	return b
}

// settle confirms or removes one referrer record inside a transaction.
func settleReferrer(tx *bbolt.Tx, key signaturestore.ReferrerKey, keep bool) error {
	root := tx.Bucket(bucketReferrers)
	if root == nil {
		return nil
	}
	repo := root.Bucket([]byte(key.Repository))
	if repo == nil {
		return nil
	}
	of := repo.Bucket(bucketSubjectOf)
	if of == nil {
		return nil
	}
	subject := of.Get([]byte(key.Digest))
	if subject == nil {
		return nil
	}
	subject = bytes.Clone(subject)
	if keep {
		sb := nested(tx, []byte(key.Repository), bucketBySubject, subject)
		if sb == nil {
			return nil
		}
		cur := sb.Get([]byte(key.Digest))
		var rec referrerRecord
		if err := json.Unmarshal(cur, &rec); err != nil {
			return fmt.Errorf("%w: referrer record of %s: %v", ErrCorrupt, key.Digest, err)
		}
		if !rec.Pending {
			return nil
		}
		rec.Pending = false
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return wrote(sb.Put([]byte(key.Digest), val))
	}
	if err := of.Delete([]byte(key.Digest)); err != nil {
		return wrote(err)
	}
	if err := removeFromSubject(repo, digest.Digest(subject), key.Digest); err != nil {
		return wrote(err)
	}
	if k, _ := of.Cursor().First(); k == nil {
		return wrote(root.DeleteBucket([]byte(key.Repository)))
	}
	return nil
}

// EndReferrer implements signaturestore.ReferrersIndex.
func (s *Store) EndReferrer(ctx context.Context, key signaturestore.ReferrerKey, stored bool) error {
	if err := validateReferrer(key.Repository, key.Digest); err != nil {
		return fmt.Errorf("end referrer: %w", err)
	}
	if err := s.submit(ctx, func(tx *bbolt.Tx) error { return settleReferrer(tx, key, stored) }); err != nil {
		return fmt.Errorf("end referrer %s@%s: %w", key.Repository, key.Digest, err)
	}
	return nil
}

// RemoveReferrer implements signaturestore.ReferrersIndex.
func (s *Store) RemoveReferrer(ctx context.Context, key signaturestore.ReferrerKey) error {
	return s.EndReferrer(ctx, key, false)
}

// Referrers implements signaturestore.ReferrersIndex.
func (s *Store) Referrers(ctx context.Context, repository string, subject, last digest.Digest, limit int) ([]signaturestore.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list referrers: %w", err)
	}
	out := []signaturestore.Descriptor{}
	err := s.view(func(tx *bbolt.Tx) error {
		sb := nested(tx, []byte(repository), bucketBySubject, []byte(subject))
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		k, v := c.First()
		if last != "" {
			k, v = c.Seek([]byte(last))
			if k != nil && bytes.Equal(k, []byte(last)) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			var rec referrerRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: referrer record of %s: %v", ErrCorrupt, k, err)
			}
			if rec.Pending {
				continue
			}
			out = append(out, rec.Descriptor)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s: %w", repository, subject, err)
	}
	return out, nil
}

// PendingReferrers implements signaturestore.ReferrersIndex.
func (s *Store) PendingReferrers(ctx context.Context) ([]signaturestore.ReferrerKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list pending referrers: %w", err)
	}
	out := []signaturestore.ReferrerKey{}
	err := s.view(func(tx *bbolt.Tx) error {
		root := tx.Bucket(bucketReferrers)
		if root == nil {
			return nil
		}
		return root.ForEach(func(repoName, _ []byte) error {
			by := root.Bucket(repoName).Bucket(bucketBySubject)
			if by == nil {
				return nil
			}
			return by.ForEach(func(subject, _ []byte) error {
				return by.Bucket(subject).ForEach(func(ref, v []byte) error {
					var rec referrerRecord
					if err := json.Unmarshal(v, &rec); err != nil {
						return fmt.Errorf("%w: referrer record of %s: %v", ErrCorrupt, ref, err)
					}
					if rec.Pending {
						out = append(out, signaturestore.ReferrerKey{Repository: string(repoName), Digest: digest.Digest(ref)})
					}
					return nil
				})
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending referrers: %w", err)
	}
	return out, nil
}
