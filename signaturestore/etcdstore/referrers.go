package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
)

// referrersPage is how many referrer records one range read fetches.
const referrersPage = 256

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
	ofKey := s.k.refOf(repository, desc.Digest)
	recKey := s.k.bySubject(repository, subject) + string(desc.Digest)
	err = s.run(ctx, func(ctx context.Context) error {
		return s.retry(ctx, func() (bool, error) {
			cur, err := s.cli.Txn(ctx).Then(clientv3.OpGet(ofKey), clientv3.OpGet(recKey)).Commit()
			if err != nil {
				return false, err
			}
			of := first(cur.Responses[0].GetResponseRange().Kvs)
			rec := first(cur.Responses[1].GetResponseRange().Kvs)
			if rec != nil {
				var r referrerRecord
				if json.Unmarshal(rec.Value, &r) == nil && !r.Pending {
					// Already confirmed: a re-push keeps it listed.
					return true, nil
				}
			}
			var ofRev, recRev int64
			ops := []clientv3.Op{
				clientv3.OpPut(ofKey, string(subject)),
				clientv3.OpPut(recKey, string(val)),
				clientv3.OpPut(s.k.refPending(repository, desc.Digest), ""),
			}
			if of != nil {
				ofRev = of.ModRevision
				// A manifest cannot change its subject (the digest fixes
				// the content), but a stale record must not linger.
				if old := digest.Digest(of.Value); old != subject {
					ops = append(ops, clientv3.OpDelete(s.k.bySubject(repository, old)+string(desc.Digest)))
				}
			}
			if rec != nil {
				recRev = rec.ModRevision
			}
			start := time.Now()
			txn, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(ofKey), "=", ofRev),
					clientv3.Compare(clientv3.ModRevision(recKey), "=", recRev)).
				Then(ops...).
				Commit()
			if err != nil {
				return false, err
			}
			if txn.Succeeded {
				s.observe(start)
			}
			return txn.Succeeded, nil
		})
	})
	if err != nil {
		return fmt.Errorf("begin referrer %s@%s: %w", repository, desc.Digest, err)
	}
	return nil
}

// EndReferrer implements signaturestore.ReferrersIndex.
func (s *Store) EndReferrer(ctx context.Context, key signaturestore.ReferrerKey, stored bool) error {
	if err := validateReferrer(key.Repository, key.Digest); err != nil {
		return fmt.Errorf("end referrer: %w", err)
	}
	ofKey := s.k.refOf(key.Repository, key.Digest)
	pendKey := s.k.refPending(key.Repository, key.Digest)
	err := s.run(ctx, func(ctx context.Context) error {
		return s.retry(ctx, func() (bool, error) {
			cur, err := s.cli.Get(ctx, ofKey)
			if err != nil {
				return false, err
			}
			of := first(cur.Kvs)
			if of == nil {
				// Not recorded: nothing to settle.
				return true, nil
			}
			recKey := s.k.bySubject(key.Repository, digest.Digest(of.Value)) + string(key.Digest)
			var ops []clientv3.Op
			var cmps []clientv3.Cmp
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(ofKey), "=", of.ModRevision))
			if stored {
				resp, err := s.cli.Get(ctx, recKey)
				if err != nil {
					return false, err
				}
				rec := first(resp.Kvs)
				if rec == nil {
					return false, errRaced
				}
				var r referrerRecord
				if err := strictDecode(rec.Value, &r); err != nil {
					return false, fmt.Errorf("%w: referrer record %q: %w", ErrCorrupt, rec.Key, err)
				}
				if !r.Pending {
					return true, nil
				}
				r.Pending = false
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(recKey), "=", rec.ModRevision))
				ops = append(ops, clientv3.OpPut(recKey, mustJSON(r)), clientv3.OpDelete(pendKey))
			} else {
				ops = append(ops, clientv3.OpDelete(ofKey), clientv3.OpDelete(recKey), clientv3.OpDelete(pendKey))
			}
			start := time.Now()
			txn, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
			if err != nil {
				return false, err
			}
			if txn.Succeeded {
				s.observe(start)
			}
			return txn.Succeeded, nil
		})
	})
	if err != nil {
		return fmt.Errorf("end referrer %s@%s: %w", key.Repository, key.Digest, err)
	}
	return nil
}

// RemoveReferrer implements signaturestore.ReferrersIndex.
func (s *Store) RemoveReferrer(ctx context.Context, key signaturestore.ReferrerKey) error {
	return s.EndReferrer(ctx, key, false)
}

// Referrers implements signaturestore.ReferrersIndex. Pages are read at
// the revision of the first, so one answer is one consistent state.
func (s *Store) Referrers(ctx context.Context, repository string, subject, last digest.Digest, limit int) ([]signaturestore.Descriptor, error) {
	if err := validateReferrer(repository, subject); err != nil {
		// An invalid name or digest holds no referrers.
		if ctx.Err() != nil {
			return nil, fmt.Errorf("list referrers: %w", ctx.Err())
		}
		return []signaturestore.Descriptor{}, nil
	}
	out := []signaturestore.Descriptor{}
	base := s.k.bySubject(repository, subject)
	from := base
	if last != "" {
		// Strictly after last.
		from = base + string(last) + "\x00"
	}
	err := s.run(ctx, func(ctx context.Context) error {
		return s.scan(ctx, from, clientv3.GetPrefixRangeEnd(base), 0, func(k, v []byte) (bool, error) {
			var r referrerRecord
			if err := strictDecode(v, &r); err != nil {
				return false, fmt.Errorf("%w: referrer record %q: %w", ErrCorrupt, k, err)
			}
			if r.Pending {
				return true, nil
			}
			out = append(out, r.Descriptor)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s: %w", repository, subject, err)
	}
	return out, nil
}

// PendingReferrers implements signaturestore.ReferrersIndex.
func (s *Store) PendingReferrers(ctx context.Context) ([]signaturestore.ReferrerKey, error) {
	out := []signaturestore.ReferrerKey{}
	tree := s.k.tree(treeRefPend)
	err := s.run(ctx, func(ctx context.Context) error {
		return s.scan(ctx, tree, clientv3.GetPrefixRangeEnd(tree), 0, func(k, _ []byte) (bool, error) {
			repo, dgst, rest, err := parseImagePart(strings.TrimPrefix(string(k), tree))
			if err != nil || rest != "" {
				return false, fmt.Errorf("%w: pending referrer key %q", ErrCorrupt, k)
			}
			out = append(out, signaturestore.ReferrerKey{Repository: repo, Digest: dgst})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending referrers: %w", err)
	}
	return out, nil
}

// scan visits the keys in [from, end) in key order, a page at a time, all
// at one revision: rev, or the revision of the first page when rev is 0.
// fn returns false to stop.
func (s *Store) scan(ctx context.Context, from, end string, rev int64, fn func(k, v []byte) (bool, error)) error {
	_, err := s.scanAt(ctx, from, end, rev, fn)
	return err
}

// scanAt is scan and reports the revision it read at.
func (s *Store) scanAt(ctx context.Context, from, end string, rev int64, fn func(k, v []byte) (bool, error)) (int64, error) {
	key := from
	for {
		if err := ctx.Err(); err != nil {
			return rev, err
		}
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(referrersPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return rev, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			more, err := fn(kv.Key, kv.Value)
			if err != nil || !more {
				return rev, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
