package boltstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// Every write operation below has two phases. The check phase only reads
// and returns domain errors (ErrExists, ErrNotFound, ErrLimit) or
// corruption errors; it leaves the transaction untouched, so the writer
// can answer the error and carry on with the rest of the batch. The write
// phase starts at the first bucket mutation; any failure from there on is
// wrapped by wrote() and makes the writer roll back the whole transaction
// and retry the batch without that request.

// image is an open image bucket with its sub-buckets and stat.
type image struct {
	b      *bbolt.Bucket
	sigs   *bbolt.Bucket
	names  *bbolt.Bucket
	hashes *bbolt.Bucket
	count  uint64
	bytes  uint64
}

// openImage returns the image bucket for key, or nil (and no error) when
// the image has no signatures.
func openImage(tx *bbolt.Tx, key signaturestore.ImageKey) (*image, error) {
	repo := tx.Bucket(bucketRepos).Bucket([]byte(key.Repository))
	if repo == nil {
		return nil, nil
	}
	b := repo.Bucket([]byte(key.Digest))
	if b == nil {
		return nil, nil
	}
	img := &image{
		b:      b,
		sigs:   b.Bucket(bucketSigs),
		names:  b.Bucket(bucketNames),
		hashes: b.Bucket(bucketHashes),
	}
	stat := b.Get(keyStat)
	if img.sigs == nil || img.names == nil || img.hashes == nil || len(stat) != 16 {
		return nil, fmt.Errorf("%w: image bucket %s is incomplete", ErrCorrupt, key)
	}
	img.count = binary.BigEndian.Uint64(stat[:8])
	img.bytes = binary.BigEndian.Uint64(stat[8:])
	return img, nil
}

// createImage creates the buckets of a new image. Write phase.
func createImage(tx *bbolt.Tx, key signaturestore.ImageKey) (*image, error) {
	repo, err := tx.Bucket(bucketRepos).CreateBucketIfNotExists([]byte(key.Repository))
	if err != nil {
		return nil, fmt.Errorf("create repository bucket: %w", err)
	}
	b, err := repo.CreateBucket([]byte(key.Digest))
	if err != nil {
		return nil, fmt.Errorf("create image bucket: %w", err)
	}
	img := &image{b: b}
	for _, sub := range []struct {
		name []byte
		dst  **bbolt.Bucket
	}{{bucketSigs, &img.sigs}, {bucketNames, &img.names}, {bucketHashes, &img.hashes}} {
		if *sub.dst, err = b.CreateBucket(sub.name); err != nil {
			return nil, fmt.Errorf("create %s bucket: %w", sub.name, err)
		}
	}
	return img, nil
}

// setStat records the image's new totals. Write phase.
func (img *image) setStat(count, size uint64) error {
	img.count, img.bytes = count, size
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], count)
	binary.BigEndian.PutUint64(v[8:], size)
	if err := img.b.Put(keyStat, v[:]); err != nil {
		return fmt.Errorf("write image stat: %w", err)
	}
	return nil
}

// removeImageBucket deletes the image bucket, and the repository bucket
// when that was its last image. Write phase.
func removeImageBucket(tx *bbolt.Tx, key signaturestore.ImageKey) error {
	repos := tx.Bucket(bucketRepos)
	repo := repos.Bucket([]byte(key.Repository))
	if err := repo.DeleteBucket([]byte(key.Digest)); err != nil {
		return fmt.Errorf("delete image bucket: %w", err)
	}
	if k, _ := repo.Cursor().First(); k == nil {
		if err := repos.DeleteBucket([]byte(key.Repository)); err != nil {
			return fmt.Errorf("delete repository bucket: %w", err)
		}
	}
	return nil
}

func readTotal(tx *bbolt.Tx) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(keyCount)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: count key missing or malformed", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// addTotal adjusts meta/count. Write phase.
func addTotal(tx *bbolt.Tx, delta int64) error {
	n, err := readTotal(tx)
	if err != nil {
		return err
	}
	if delta < 0 && uint64(-delta) > n {
		return fmt.Errorf("%w: count %d would drop below zero", ErrCorrupt, n)
	}
	if err := tx.Bucket(bucketMeta).Put(keyCount, binary.BigEndian.AppendUint64(nil, n+uint64(delta))); err != nil {
		return fmt.Errorf("write count: %w", err)
	}
	return nil
}

// putOp is a validated, encoded Put. Everything that does not need the
// transaction (validation, hashing, encoding) is done in the caller's
// goroutine so the single writer does only tree work.
type putOp struct {
	limits signaturestore.Limits
	key    signaturestore.ImageKey
	name   []byte
	hash   []byte
	size   uint64
	record []byte
}

func (s *Store) preparePut(key signaturestore.ImageKey, sig signaturestore.Signature) (*putOp, error) {
	if err := validateKeyAndName(key, sig.Name); err != nil {
		return nil, err
	}
	if sig.Type == "" {
		return nil, fmt.Errorf("%w: empty type", signaturestore.ErrInvalid)
	}
	if len(sig.Type) > maxKeyLen {
		return nil, fmt.Errorf("%w: type longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	if len(sig.Content) == 0 {
		return nil, fmt.Errorf("%w: empty content", signaturestore.ErrInvalid)
	}
	if len(sig.Content) > maxContentLen {
		return nil, fmt.Errorf("%w: content larger than %d bytes", signaturestore.ErrLimit, maxContentLen)
	}
	created := sig.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	status, err := encodeStatus(sig.Status)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, recordSize(sig.Name, sig.Type, sig.Content, status))
	return &putOp{
		limits: s.limits,
		key:    key,
		name:   []byte(sig.Name),
		hash:   contentHash(sig.Type, sig.Content),
		size:   uint64(len(sig.Content)),
		record: appendRecord(rec, sig.Name, sig.Type, sig.Content, created, status),
	}, nil
}

func (p *putOp) apply(tx *bbolt.Tx) error {
	img, err := openImage(tx, p.key)
	if err != nil {
		return err
	}
	var count, size uint64
	if img != nil {
		if img.names.Get(p.name) != nil {
			return fmt.Errorf("%w: same name", signaturestore.ErrExists)
		}
		if img.hashes.Get(p.hash) != nil {
			return fmt.Errorf("%w: same type and content", signaturestore.ErrExists)
		}
		count, size = img.count, img.bytes
	}
	if limit := p.limits.MaxPerImage; limit > 0 && count+1 > uint64(limit) {
		return fmt.Errorf("%w: image already has %d signatures (limit %d)", signaturestore.ErrLimit, count, limit)
	}
	if limit := p.limits.MaxBytesPerImage; limit > 0 && size+p.size > uint64(limit) {
		return fmt.Errorf("%w: image would hold %d bytes of signatures (limit %d)", signaturestore.ErrLimit, size+p.size, limit)
	}

	// Write phase.
	if img == nil {
		if img, err = createImage(tx, p.key); err != nil {
			return wrote(err)
		}
	}
	seq, err := img.sigs.NextSequence()
	if err != nil {
		return wrote(fmt.Errorf("next sequence: %w", err))
	}
	k := binary.BigEndian.AppendUint64(nil, seq)
	if err := img.sigs.Put(k, p.record); err != nil {
		return wrote(fmt.Errorf("write signature: %w", err))
	}
	if err := img.names.Put(p.name, k); err != nil {
		return wrote(fmt.Errorf("write name index: %w", err))
	}
	if err := img.hashes.Put(p.hash, k); err != nil {
		return wrote(fmt.Errorf("write content index: %w", err))
	}
	if err := img.setStat(count+1, size+p.size); err != nil {
		return wrote(err)
	}
	return wrote(addTotal(tx, 1))
}

// lookup finds a signature by name: its sequence key and decoded record.
// Check phase.
func lookup(tx *bbolt.Tx, key signaturestore.ImageKey, name string) (*image, []byte, signaturestore.Signature, error) {
	img, err := openImage(tx, key)
	if err != nil {
		return nil, nil, signaturestore.Signature{}, err
	}
	if img == nil {
		return nil, nil, signaturestore.Signature{}, signaturestore.ErrNotFound
	}
	seq := img.names.Get([]byte(name))
	if seq == nil {
		return nil, nil, signaturestore.Signature{}, signaturestore.ErrNotFound
	}
	v := img.sigs.Get(seq)
	if v == nil {
		return nil, nil, signaturestore.Signature{}, fmt.Errorf("%w: name index points to missing signature %x", ErrCorrupt, seq)
	}
	sig, err := decodeRecord(v)
	if err != nil {
		return nil, nil, signaturestore.Signature{}, fmt.Errorf("signature %x: %w", seq, err)
	}
	if sig.Name != name {
		return nil, nil, signaturestore.Signature{}, fmt.Errorf("%w: name index for %q points to signature %q", ErrCorrupt, name, sig.Name)
	}
	// seq aliases the transaction's pages; it is only used inside it.
	return img, seq, sig, nil
}

func setStatusOp(key signaturestore.ImageKey, name string, status []byte) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		img, seq, sig, err := lookup(tx, key, name)
		if err != nil {
			return err
		}
		rec := make([]byte, 0, recordSize(sig.Name, sig.Type, sig.Content, status))
		rec = appendRecord(rec, sig.Name, sig.Type, sig.Content, sig.Created, status)
		if err := img.sigs.Put(append([]byte(nil), seq...), rec); err != nil {
			return wrote(fmt.Errorf("write signature: %w", err))
		}
		return nil
	}
}

func deleteOp(key signaturestore.ImageKey, name string) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		img, seq, sig, err := lookup(tx, key, name)
		if err != nil {
			return err
		}
		hash := contentHash(sig.Type, sig.Content)
		if string(img.hashes.Get(hash)) != string(seq) {
			return fmt.Errorf("%w: content index disagrees for %q", ErrCorrupt, name)
		}
		size := uint64(len(sig.Content))
		if img.count == 0 || img.bytes < size {
			return fmt.Errorf("%w: image stat %d/%d cannot cover signature %q", ErrCorrupt, img.count, img.bytes, name)
		}

		// Write phase.
		if img.count == 1 {
			if err := removeImageBucket(tx, key); err != nil {
				return wrote(err)
			}
			return wrote(addTotal(tx, -1))
		}
		// Copy seq: deleting from the bucket may reuse its page memory.
		k := append([]byte(nil), seq...)
		if err := img.sigs.Delete(k); err != nil {
			return wrote(fmt.Errorf("delete signature: %w", err))
		}
		if err := img.names.Delete([]byte(name)); err != nil {
			return wrote(fmt.Errorf("delete name index: %w", err))
		}
		if err := img.hashes.Delete(hash); err != nil {
			return wrote(fmt.Errorf("delete content index: %w", err))
		}
		if err := img.setStat(img.count-1, img.bytes-size); err != nil {
			return wrote(err)
		}
		return wrote(addTotal(tx, -1))
	}
}

// deleteImage removes every signature of key and reports how many there
// were. A missing image is not an error.
func deleteImage(tx *bbolt.Tx, key signaturestore.ImageKey) (int, error) {
	img, err := openImage(tx, key)
	if err != nil || img == nil {
		return 0, err
	}
	n := img.count
	if err := removeImageBucket(tx, key); err != nil {
		return 0, wrote(err)
	}
	if err := addTotal(tx, -int64(n)); err != nil {
		return 0, wrote(err)
	}
	return int(n), nil
}

func beginDeleteOp(key signaturestore.ImageKey, now time.Time) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		v := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
		if err := tx.Bucket(bucketJournal).Put(journalKey(key), v); err != nil {
			return wrote(fmt.Errorf("write journal: %w", err))
		}
		return nil
	}
}

func endDeleteOp(key signaturestore.ImageKey, deleted bool) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		if deleted {
			// The signatures and the intent go in the same commit: a
			// crash leaves either both or neither.
			if _, err := deleteImage(tx, key); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketJournal).Delete(journalKey(key)); err != nil {
			return wrote(fmt.Errorf("delete journal entry: %w", err))
		}
		return nil
	}
}

// journalKey encodes key unambiguously: the repository is length-prefixed,
// so no repository/digest split of one key is possible but the right one.
func journalKey(key signaturestore.ImageKey) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(key.Repository)+len(key.Digest))
	k = binary.AppendUvarint(k, uint64(len(key.Repository)))
	k = append(k, key.Repository...)
	return append(k, key.Digest...)
}

func decodeJournalKey(k []byte) (signaturestore.ImageKey, error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(k)-w) {
		return signaturestore.ImageKey{}, fmt.Errorf("%w: malformed journal key %q", ErrCorrupt, k)
	}
	key := signaturestore.ImageKey{
		Repository: string(k[w : w+int(n)]),
		Digest:     digest.Digest(k[w+int(n):]),
	}
	if err := validateKey(key); err != nil {
		return signaturestore.ImageKey{}, fmt.Errorf("%w: journal key %q: %w", ErrCorrupt, k, err)
	}
	return key, nil
}
