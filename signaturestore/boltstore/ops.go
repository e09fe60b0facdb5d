package boltstore

import (
	"bytes"
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

// putOp is a validated, encoded Put. Everything that does not need the
// transaction (validation, hashing, encoding) is done in the caller's
// goroutine so the single writer does only tree work.
type putOp struct {
	limits  signaturestore.Limits
	key     signaturestore.ImageKey
	ik      []byte // images key
	nameKey []byte
	content []byte // content key
	size    uint64
	// record is the record without its image id; its capacity has room
	// for the id, which apply appends.
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
	rec := make([]byte, 0, recordCap(sig.Name, sig.Type, sig.Content, status))
	return &putOp{
		limits:  s.limits,
		key:     key,
		ik:      imageKeyBytes(key),
		nameKey: appendNameKey(nil, key.Digest, sig.Name),
		content: contentKey(sig.Type, sig.Content),
		size:    uint64(len(sig.Content)),
		record:  appendRecordBody(rec, key.Digest, sig.Name, sig.Type, sig.Content, created, status),
	}, nil
}

func (p *putOp) apply(tx *bbolt.Tx) error {
	t, err := openTree(tx)
	if err != nil {
		return err
	}
	img, err := t.imageHead(p.ik, p.key.Digest)
	if err != nil {
		return err
	}
	var count, size uint64
	if img != nil {
		var dup error
		err := eachEntry(img.raw, func(e entry) bool {
			switch {
			case bytes.Equal(e.name, p.nameKey):
				dup = fmt.Errorf("%w: same name", signaturestore.ErrExists)
			case bytes.Equal(e.content, p.content):
				dup = fmt.Errorf("%w: same type and content", signaturestore.ErrExists)
			default:
				count++
				return true
			}
			return false
		})
		if err != nil {
			return fmt.Errorf("image %q (id %d): %w", p.ik, img.id, err)
		}
		if dup != nil {
			return dup
		}
		size = img.bytes
	}
	if limit := p.limits.MaxPerImage; limit > 0 && count+1 > uint64(limit) {
		return fmt.Errorf("%w: image already has %d signatures (limit %d)", signaturestore.ErrLimit, count, limit)
	}
	if limit := p.limits.MaxBytesPerImage; limit > 0 && size+p.size > uint64(limit) {
		return fmt.Errorf("%w: image would hold %d bytes of signatures (limit %d)", signaturestore.ErrLimit, size+p.size, limit)
	}

	// Write phase.
	var old []byte // the existing entries
	if img == nil {
		id, err := t.images.NextSequence()
		if err != nil {
			return wrote(fmt.Errorf("next image id: %w", err))
		}
		img = &image{key: p.ik, d: p.key.Digest, id: id, idKey: u64(id)}
		if err := t.images.Put(p.ik, img.idKey); err != nil {
			return wrote(fmt.Errorf("write image: %w", err))
		}
	} else {
		old = img.raw
	}
	seq, err := t.sigs.NextSequence()
	if err != nil {
		return wrote(fmt.Errorf("next sequence: %w", err))
	}
	// Appending writes past len(p.record) only, so a retry of this
	// request (after another one's failure rolled the batch back)
	// starts from the same body.
	if err := t.sigs.Put(u64(seq), binary.AppendUvarint(p.record, img.id)); err != nil {
		return wrote(fmt.Errorf("write signature: %w", err))
	}
	if err := t.writeIndex(img, size+p.size, old, appendEntry(nil, p.content, seq, p.nameKey)); err != nil {
		return wrote(err)
	}
	return wrote(addTotal(tx, 1))
}

// found is a signature located by name. Check phase.
type found struct {
	t   *tree
	img *image
	at  int // its index entry
	sig signaturestore.Signature
}

func lookup(tx *bbolt.Tx, key signaturestore.ImageKey, name string) (*found, error) {
	t, err := openTree(tx)
	if err != nil {
		return nil, err
	}
	img, err := t.image(imageKeyBytes(key), key.Digest)
	if err != nil {
		return nil, err
	}
	if img == nil {
		return nil, signaturestore.ErrNotFound
	}
	at := img.find(appendNameKey(nil, key.Digest, name))
	if at < 0 {
		return nil, signaturestore.ErrNotFound
	}
	sig, err := t.record(img, img.entries[at].seq)
	if err != nil {
		return nil, err
	}
	if sig.Name != name {
		return nil, fmt.Errorf("%w: index entry for %q leads to signature %q", ErrCorrupt, name, sig.Name)
	}
	return &found{t: t, img: img, at: at, sig: sig}, nil
}

func setStatusOp(key signaturestore.ImageKey, name string, status []byte) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		f, err := lookup(tx, key, name)
		if err != nil {
			return err
		}
		sig := f.sig
		rec := make([]byte, 0, recordCap(sig.Name, sig.Type, sig.Content, status))
		rec = appendRecord(rec, f.img.id, key.Digest, sig.Name, sig.Type, sig.Content, sig.Created, status)
		if err := f.t.sigs.Put(u64(f.img.entries[f.at].seq), rec); err != nil {
			return wrote(fmt.Errorf("write signature: %w", err))
		}
		return nil
	}
}

func deleteOp(key signaturestore.ImageKey, name string) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		f, err := lookup(tx, key, name)
		if err != nil {
			return err
		}
		t, img, e := f.t, f.img, f.img.entries[f.at]
		if !bytes.Equal(e.content, contentKey(f.sig.Type, f.sig.Content)) {
			return fmt.Errorf("%w: index has the wrong content key for %q", ErrCorrupt, name)
		}
		size := uint64(len(f.sig.Content))
		if img.bytes < size {
			return fmt.Errorf("%w: index counts %d content bytes, cannot cover signature %q", ErrCorrupt, img.bytes, name)
		}
		// Copied before the write phase: the entries alias the index
		// value, which the writes below may move.
		rest := make([][]byte, 0, len(img.entries)-1)
		for i, e := range img.entries {
			if i != f.at {
				rest = append(rest, bytes.Clone(e.raw))
			}
		}

		// Write phase.
		if err := t.sigs.Delete(u64(e.seq)); err != nil {
			return wrote(fmt.Errorf("delete signature: %w", err))
		}
		if len(rest) == 0 {
			if err := t.remove(img); err != nil {
				return wrote(err)
			}
		} else if err := t.writeIndex(img, img.bytes-size, rest...); err != nil {
			return wrote(err)
		}
		return wrote(addTotal(tx, -1))
	}
}

// deleteImage removes every signature of key and reports how many there
// were. A missing image is not an error.
func deleteImage(tx *bbolt.Tx, key signaturestore.ImageKey) (int, error) {
	t, err := openTree(tx)
	if err != nil {
		return 0, err
	}
	img, err := t.image(imageKeyBytes(key), key.Digest)
	if err != nil || img == nil {
		return 0, err
	}
	seqs := make([]uint64, len(img.entries))
	for i, e := range img.entries {
		seqs[i] = e.seq
	}

	// Write phase.
	for _, seq := range seqs {
		if err := t.sigs.Delete(u64(seq)); err != nil {
			return 0, wrote(fmt.Errorf("delete signature: %w", err))
		}
	}
	if err := t.remove(img); err != nil {
		return 0, wrote(err)
	}
	if err := addTotal(tx, -int64(len(seqs))); err != nil {
		return 0, wrote(err)
	}
	return len(seqs), nil
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
