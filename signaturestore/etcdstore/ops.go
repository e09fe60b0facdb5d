package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
)

// lockKey names an image for the in-process writer lock.
func lockKey(key signaturestore.ImageKey) string { return key.String() }

// Put implements signaturestore.Store.
func (s *Store) Put(ctx context.Context, key signaturestore.ImageKey, sig signaturestore.Signature) error {
	if err := s.put(ctx, key, sig); err != nil {
		return fmt.Errorf("put signature %q for %s: %w", sig.Name, key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key signaturestore.ImageKey, sig signaturestore.Signature) error {
	img, err := checkArgs(ctx, key, sig.Name)
	if err != nil {
		return err
	}
	if sig.Type == "" {
		return fmt.Errorf("%w: empty type", signaturestore.ErrInvalid)
	}
	if len(sig.Type) > maxKeyLen {
		return fmt.Errorf("%w: type longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	if len(sig.Content) == 0 {
		return fmt.Errorf("%w: empty content", signaturestore.ErrInvalid)
	}
	if sig.Created.IsZero() {
		sig.Created = time.Now()
	}
	rec, err := encodeRecord(sig)
	if err != nil {
		return err
	}
	nameKey := s.k.name(img, sig.Name)
	hashKey := s.k.hash(img, contentHash(sig.Type, sig.Content))
	statKey := s.k.stat(img)
	size := uint64(len(sig.Content))

	unlock := s.locks.Lock(lockKey(key))
	defer unlock()
	return s.run(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, statKey)
		if err != nil {
			return err
		}
		statKV := first(resp.Kvs)
		for attempt := 0; ; attempt++ {
			var st stat
			var statRev int64
			if statKV != nil {
				if st, err = decodeStat(statKV.Value); err != nil {
					return err
				}
				statRev = statKV.ModRevision
			}
			if limit := s.limits.MaxPerImage; limit > 0 && st.Count+1 > uint64(limit) {
				return fmt.Errorf("%w: image already has %d signatures (limit %d)", signaturestore.ErrLimit, st.Count, limit)
			}
			if limit := s.limits.MaxBytesPerImage; limit > 0 && st.Bytes+size > uint64(limit) {
				return fmt.Errorf("%w: image would hold %d bytes of signatures (limit %d)", signaturestore.ErrLimit, st.Bytes+size, limit)
			}
			seq := st.Next
			next := stat{Count: st.Count + 1, Bytes: st.Bytes + size, Next: seq + 1}
			start := time.Now()
			txn, err := s.cli.Txn(ctx).
				// ModRevision 0 means "absent": a new image.
				If(clientv3.Compare(clientv3.ModRevision(statKey), "=", statRev),
					clientv3.Compare(clientv3.CreateRevision(nameKey), "=", 0),
					clientv3.Compare(clientv3.CreateRevision(hashKey), "=", 0)).
				Then(clientv3.OpPut(s.k.sig(img, seq), string(rec)),
					clientv3.OpPut(nameKey, seqString(seq)),
					clientv3.OpPut(hashKey, seqString(seq)),
					clientv3.OpPut(statKey, mustJSON(next))).
				Else(clientv3.OpGet(statKey), clientv3.OpGet(nameKey), clientv3.OpGet(hashKey)).
				Commit()
			if err != nil {
				return err
			}
			if txn.Succeeded {
				s.observe(start)
				return nil
			}
			if len(txn.Responses[1].GetResponseRange().Kvs) > 0 {
				return fmt.Errorf("%w: same name", signaturestore.ErrExists)
			}
			if len(txn.Responses[2].GetResponseRange().Kvs) > 0 {
				return fmt.Errorf("%w: same type and content", signaturestore.ErrExists)
			}
			// Another process changed the image: check again against
			// what it wrote.
			if attempt+1 >= maxAttempts {
				return errContention
			}
			statKV = first(txn.Responses[0].GetResponseRange().Kvs)
			if err := retryPause(ctx, attempt); err != nil {
				return err
			}
		}
	})
}

// checkArgs checks what every single-signature operation takes and
// returns the image part of its keys.
func checkArgs(ctx context.Context, key signaturestore.ImageKey, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := validateKey(key); err != nil {
		return "", err
	}
	if err := validateName(name); err != nil {
		return "", err
	}
	return imagePart(key.Repository, key.Digest), nil
}

func seqString(seq uint64) string { return fmt.Sprintf("%0*x", seqDigits, seq) }

func first(kvs []*mvccpb.KeyValue) *mvccpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	return kvs[0]
}

// List implements signaturestore.Store: one range read, so one revision.
func (s *Store) List(ctx context.Context, key signaturestore.ImageKey) ([]signaturestore.Signature, error) {
	sigs, _, err := s.ListAt(ctx, key)
	return sigs, err
}

// ListAt is List plus the etcd revision it read at. A cache that keeps the
// result can compare that revision with the ones Watch reports.
func (s *Store) ListAt(ctx context.Context, key signaturestore.ImageKey) ([]signaturestore.Signature, int64, error) {
	if err := validateKey(key); err != nil {
		return nil, 0, fmt.Errorf("list signatures of %s: %w", key, err)
	}
	var sigs []signaturestore.Signature
	var rev int64
	err := s.run(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.k.sigs(imagePart(key.Repository, key.Digest)), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		sigs = make([]signaturestore.Signature, 0, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			sig, err := decodeRecord(kv.Value)
			if err != nil {
				return fmt.Errorf("%q: %w", kv.Key, err)
			}
			sigs = append(sigs, sig)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list signatures of %s: %w", key, err)
	}
	return sigs, rev, nil
}

// lookup finds a signature by name in one read: the name index entry and
// the record it points to.
type found struct {
	seqKey  string
	sig     signaturestore.Signature
	sigRev  int64
	nameRev int64
	statKV  *mvccpb.KeyValue
}

func (s *Store) lookup(ctx context.Context, img, name string) (*found, error) {
	nameKey := s.k.name(img, name)
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(nameKey), clientv3.OpGet(s.k.stat(img))).Commit()
	if err != nil {
		return nil, err
	}
	nameKV := first(resp.Responses[0].GetResponseRange().Kvs)
	if nameKV == nil {
		return nil, signaturestore.ErrNotFound
	}
	seq, err := parseSeq(string(nameKV.Value))
	if err != nil {
		return nil, fmt.Errorf("%w: name index of %q: %w", ErrCorrupt, name, err)
	}
	f := &found{seqKey: s.k.sig(img, seq), nameRev: nameKV.ModRevision, statKV: first(resp.Responses[1].GetResponseRange().Kvs)}
	// The record is read at a later revision than the index; the
	// transaction that uses it compares both revisions, so a change in
	// between is caught there.
	rec, err := s.cli.Get(ctx, f.seqKey)
	if err != nil {
		return nil, err
	}
	recKV := first(rec.Kvs)
	if recKV == nil {
		return nil, errRaced
	}
	if f.sig, err = decodeRecord(recKV.Value); err != nil {
		return nil, fmt.Errorf("%q: %w", recKV.Key, err)
	}
	if f.sig.Name != name {
		return nil, errRaced
	}
	f.sigRev = recKV.ModRevision
	return f, nil
}

// errRaced: the index and the record read one after the other disagree,
// because another process changed the image in between; read again.
var errRaced = fmt.Errorf("image changed while reading")

// SetStatus implements signaturestore.Store. Only the record's status
// changes; name, type, content and creation time are written back as read.
func (s *Store) SetStatus(ctx context.Context, key signaturestore.ImageKey, name string, status *signaturestore.Status) error {
	if err := s.setStatus(ctx, key, name, status); err != nil {
		return fmt.Errorf("set status of signature %q for %s: %w", name, key, err)
	}
	return nil
}

func (s *Store) setStatus(ctx context.Context, key signaturestore.ImageKey, name string, status *signaturestore.Status) error {
	img, err := checkArgs(ctx, key, name)
	if err != nil {
		return err
	}
	unlock := s.locks.Lock(lockKey(key))
	defer unlock()
	return s.run(ctx, func(ctx context.Context) error {
		return s.retry(ctx, func() (bool, error) {
			f, err := s.lookup(ctx, img, name)
			if err != nil {
				return false, err
			}
			f.sig.Status = status
			rec, err := encodeRecord(f.sig)
			if err != nil {
				return false, err
			}
			start := time.Now()
			txn, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(f.seqKey), "=", f.sigRev),
					clientv3.Compare(clientv3.ModRevision(s.k.name(img, name)), "=", f.nameRev)).
				Then(clientv3.OpPut(f.seqKey, string(rec))).
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
}

// retry runs one optimistic attempt at a time until it commits, fails, or
// maxAttempts attempts lost to other processes.
func (s *Store) retry(ctx context.Context, attempt func() (committed bool, err error)) error {
	for n := 0; ; n++ {
		ok, err := attempt()
		if err == nil && ok {
			return nil
		}
		if err != nil && err != errRaced {
			return err
		}
		if n+1 >= maxAttempts {
			return errContention
		}
		if err := retryPause(ctx, n); err != nil {
			return err
		}
	}
}

// Delete implements signaturestore.Store.
func (s *Store) Delete(ctx context.Context, key signaturestore.ImageKey, name string) error {
	if err := s.deleteOne(ctx, key, name); err != nil {
		return fmt.Errorf("delete signature %q for %s: %w", name, key, err)
	}
	return nil
}

func (s *Store) deleteOne(ctx context.Context, key signaturestore.ImageKey, name string) error {
	img, err := checkArgs(ctx, key, name)
	if err != nil {
		return err
	}
	statKey := s.k.stat(img)
	unlock := s.locks.Lock(lockKey(key))
	defer unlock()
	return s.run(ctx, func(ctx context.Context) error {
		return s.retry(ctx, func() (bool, error) {
			f, err := s.lookup(ctx, img, name)
			if err != nil {
				return false, err
			}
			if f.statKV == nil {
				return false, fmt.Errorf("%w: image %s has signatures but no stat", ErrCorrupt, key)
			}
			st, err := decodeStat(f.statKV.Value)
			if err != nil {
				return false, err
			}
			size := uint64(len(f.sig.Content))
			if st.Count == 0 || st.Bytes < size {
				return false, fmt.Errorf("%w: image stat %d/%d cannot cover signature %q", ErrCorrupt, st.Count, st.Bytes, name)
			}
			ops := []clientv3.Op{
				clientv3.OpDelete(f.seqKey),
				clientv3.OpDelete(s.k.name(img, name)),
				clientv3.OpDelete(s.k.hash(img, contentHash(f.sig.Type, f.sig.Content))),
			}
			if st.Count == 1 {
				// The last one: leave nothing of the image behind.
				ops = append(ops, clientv3.OpDelete(statKey))
			} else {
				ops = append(ops, clientv3.OpPut(statKey, mustJSON(stat{Count: st.Count - 1, Bytes: st.Bytes - size, Next: st.Next})))
			}
			start := time.Now()
			txn, err := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(statKey), "=", f.statKV.ModRevision),
					clientv3.Compare(clientv3.ModRevision(f.seqKey), "=", f.sigRev)).
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
}

// imageDeleteOps remove every key of one image; they need no compare, as
// they leave the image empty whatever it held.
func (s *Store) imageDeleteOps(img string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpDelete(s.k.sigs(img), clientv3.WithPrefix()),
		clientv3.OpDelete(s.k.names(img), clientv3.WithPrefix()),
		clientv3.OpDelete(s.k.hashes(img), clientv3.WithPrefix()),
		clientv3.OpDelete(s.k.stat(img)),
	}
}

// DeleteAll implements signaturestore.Store in one transaction.
func (s *Store) DeleteAll(ctx context.Context, key signaturestore.ImageKey) (int, error) {
	if err := validateKey(key); err != nil {
		return 0, fmt.Errorf("delete all signatures of %s: %w", key, err)
	}
	var n int
	err := s.run(ctx, func(ctx context.Context) error {
		start := time.Now()
		txn, err := s.cli.Txn(ctx).Then(s.imageDeleteOps(imagePart(key.Repository, key.Digest))...).Commit()
		if err != nil {
			return err
		}
		s.observe(start)
		n = int(txn.Responses[0].GetResponseDeleteRange().Deleted)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete all signatures of %s: %w", key, err)
	}
	return n, nil
}

// Count implements signaturestore.Store: etcd counts the records, so there
// is no shared counter key for every write to contend on.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.run(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.k.tree(treeSig), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		n = resp.Count
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count signatures: %w", err)
	}
	return n, nil
}

// BeginImageDelete implements signaturestore.DeleteJournal.
func (s *Store) BeginImageDelete(ctx context.Context, key signaturestore.ImageKey) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("begin delete of %s: %w", key, err)
	}
	err := s.run(ctx, func(ctx context.Context) error {
		start := time.Now()
		if _, err := s.cli.Put(ctx, s.k.journal(imagePart(key.Repository, key.Digest)), mustJSON(journalEntry{Began: time.Now().UTC()})); err != nil {
			return err
		}
		s.observe(start)
		return nil
	})
	if err != nil {
		return fmt.Errorf("begin delete of %s: %w", key, err)
	}
	return nil
}

// EndImageDelete implements signaturestore.DeleteJournal: the intent and,
// when deleted, the signatures go in one transaction.
func (s *Store) EndImageDelete(ctx context.Context, key signaturestore.ImageKey, deleted bool) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("end delete of %s: %w", key, err)
	}
	img := imagePart(key.Repository, key.Digest)
	ops := []clientv3.Op{clientv3.OpDelete(s.k.journal(img))}
	if deleted {
		ops = append(ops, s.imageDeleteOps(img)...)
	}
	err := s.run(ctx, func(ctx context.Context) error {
		start := time.Now()
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return err
		}
		s.observe(start)
		return nil
	})
	if err != nil {
		return fmt.Errorf("end delete of %s: %w", key, err)
	}
	return nil
}

// PendingImageDeletes implements signaturestore.DeleteJournal.
func (s *Store) PendingImageDeletes(ctx context.Context) ([]signaturestore.ImageKey, error) {
	out := []signaturestore.ImageKey{}
	err := s.run(ctx, func(ctx context.Context) error {
		tree := s.k.tree(treeJournal)
		resp, err := s.cli.Get(ctx, tree, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			repo, dgst, rest, err := parseImagePart(strings.TrimPrefix(string(kv.Key), tree))
			if err != nil || rest != "" {
				return fmt.Errorf("%w: journal key %q", ErrCorrupt, kv.Key)
			}
			out = append(out, signaturestore.ImageKey{Repository: repo, Digest: dgst})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pending image deletes: %w", err)
	}
	return out, nil
}
