package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// Schema 1, read-only: what Open upgrades from (upgrade.go), and what a
// Reader and CheckFile still read, so that a backup taken before the
// upgrade can be checked and exported without starting a server on it.
//
//	<root>
//	├── meta/                         as in schema 2, with schema = 1
//	├── repos/
//	│   └── <repository>/             exact repository name, e.g. "ns/math"
//	│       └── <digest>/             one image, e.g. "sha256:4f5e…"
//	│           ├── stat              uint64 signatures | uint64 content bytes
//	│           ├── sigs/
//	│           │   └── <seq>         uint64 big-endian -> signature record, version 1
//	│           ├── names/
//	│           │   └── <name>        -> <seq>
//	│           └── hashes/
//	│               └── <sha256>      hash of (type, content) -> <seq>
//	├── journal/                      as in schema 2
//	└── referrers/                    as in schema 2
//
// Every image had four nested buckets; past bbolt's inline limit each of
// them takes pages of its own, which is what made schema 1 large.
const schemaV1 = 1

var (
	bucketReposV1  = []byte("repos")
	bucketSigsV1   = []byte("sigs")
	bucketNamesV1  = []byte("names")
	bucketHashesV1 = []byte("hashes")
	keyStatV1      = []byte("stat")
)

// recordVersionV1 is the first byte of a schema-1 record:
//
//	1 byte    version (1)
//	uvarint   len(name),    name bytes
//	uvarint   len(type),    type bytes
//	uvarint   len(content), content bytes
//	8 bytes   created, seconds since the Unix epoch (int64, two's complement)
//	4 bytes   created, nanoseconds within the second (uint32, < 1e9)
//	uvarint   len(status),  status as JSON; length 0 means no status
const recordVersionV1 = 1

// decodeRecordV1 parses a schema-1 record strictly and copies every field
// out of b.
func decodeRecordV1(b []byte) (signaturestore.Signature, error) {
	if len(b) == 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: empty", ErrCorrupt)
	}
	if b[0] != recordVersionV1 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: unknown version %d", ErrCorrupt, b[0])
	}
	r := &recordReader{b: b[1:]}
	name := r.bytes("name")
	typ := r.bytes("type")
	content := r.bytes("content")
	secs := r.fixed(8, "created seconds")
	nanos := r.fixed(4, "created nanoseconds")
	status := r.bytes("status")
	if r.err != nil {
		return signaturestore.Signature{}, r.err
	}
	if len(r.b) != 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if len(name) == 0 || len(typ) == 0 || len(content) == 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: empty name, type or content", ErrCorrupt)
	}
	if err := checkNanos(nanos); err != nil {
		return signaturestore.Signature{}, err
	}
	return finishRecord(string(name), string(typ), content, secs, nanos, status)
}

// imageV1 is an open schema-1 image bucket with its sub-buckets and stat.
type imageV1 struct {
	sigs, names, hashes *bbolt.Bucket
	count, bytes        uint64
}

func openImageV1(repo *bbolt.Bucket, key signaturestore.ImageKey) (*imageV1, error) {
	b := repo.Bucket([]byte(key.Digest))
	if b == nil {
		return nil, fmt.Errorf("%w: image bucket %s missing", ErrCorrupt, key)
	}
	img := &imageV1{sigs: b.Bucket(bucketSigsV1), names: b.Bucket(bucketNamesV1), hashes: b.Bucket(bucketHashesV1)}
	stat := b.Get(keyStatV1)
	if img.sigs == nil || img.names == nil || img.hashes == nil || len(stat) != 16 {
		return nil, fmt.Errorf("%w: image bucket %s is incomplete", ErrCorrupt, key)
	}
	img.count = binary.BigEndian.Uint64(stat[:8])
	img.bytes = binary.BigEndian.Uint64(stat[8:])
	return img, nil
}

func (img *imageV1) list() ([]signaturestore.Signature, error) {
	sigs := make([]signaturestore.Signature, 0, min(img.count, 1024))
	c := img.sigs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		sig, err := decodeRecordV1(v)
		if err != nil {
			return nil, fmt.Errorf("signature %x: %w", k, err)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// walkV1 visits repos/<repository>/<digest> in key order, which is
// repository then digest order, as schema 2's walk.
func walkV1(ctx context.Context, tx *bbolt.Tx, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	repos := tx.Bucket(bucketReposV1)
	if repos == nil {
		return fmt.Errorf("%w: missing repos bucket", ErrCorrupt)
	}
	return repos.ForEachBucket(func(repoName []byte) error {
		repo := repos.Bucket(repoName)
		return repo.ForEachBucket(func(d []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := signaturestore.ImageKey{Repository: string(repoName), Digest: digest.Digest(d)}
			if err := validateKey(key); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
			}
			img, err := openImageV1(repo, key)
			if err != nil {
				return err
			}
			sigs, err := img.list()
			if err != nil {
				return fmt.Errorf("image %s: %w", key, err)
			}
			if len(sigs) == 0 {
				return nil
			}
			return fn(key, sigs)
		})
	})
}

// checkLayoutV1 checks every invariant of the schema-1 layout: records
// decode, the indexes and stat agree with the records, and the per-image
// counts add up to meta/count.
func checkLayoutV1(tx *bbolt.Tx) (repositories int, err error) {
	repos := tx.Bucket(bucketReposV1)
	if repos == nil || tx.Bucket(bucketJournal) == nil {
		return 0, fmt.Errorf("%w: missing repos or journal bucket", ErrCorrupt)
	}
	var total uint64
	err = repos.ForEach(func(repoName, v []byte) error {
		if v != nil {
			return fmt.Errorf("%w: value %q where a repository bucket belongs", ErrCorrupt, repoName)
		}
		repositories++
		repo := repos.Bucket(repoName)
		images := 0
		err := repo.ForEach(func(d, v []byte) error {
			key := signaturestore.ImageKey{Repository: string(repoName), Digest: digest.Digest(d)}
			if v != nil {
				return fmt.Errorf("%w: %s: value where an image bucket belongs", ErrCorrupt, key)
			}
			if err := validateKey(key); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
			}
			images++
			n, err := checkImageV1(repo, key)
			total += n
			if err != nil {
				return fmt.Errorf("image %s: %w", key, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if images == 0 {
			return fmt.Errorf("%w: repository %q: empty bucket left behind", ErrCorrupt, repoName)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := checkTotal(tx, total); err != nil {
		return 0, err
	}
	return repositories, checkJournal(tx)
}

func checkImageV1(repo *bbolt.Bucket, key signaturestore.ImageKey) (uint64, error) {
	img, err := openImageV1(repo, key)
	if err != nil {
		return 0, err
	}
	var n, size uint64
	c := img.sigs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || v == nil {
			return n, fmt.Errorf("%w: malformed sigs entry %x", ErrCorrupt, k)
		}
		sig, err := decodeRecordV1(v)
		if err != nil {
			return n, fmt.Errorf("signature %x: %w", k, err)
		}
		n++
		size += uint64(len(sig.Content))
		if got := img.names.Get([]byte(sig.Name)); string(got) != string(k) {
			return n, fmt.Errorf("%w: name index for %q points to %x, want %x", ErrCorrupt, sig.Name, got, k)
		}
		if got := img.hashes.Get(contentHash(sig.Type, sig.Content)); string(got) != string(k) {
			return n, fmt.Errorf("%w: content index for %q points to %x, want %x", ErrCorrupt, sig.Name, got, k)
		}
	}
	if n == 0 {
		return n, fmt.Errorf("%w: empty image bucket left behind", ErrCorrupt)
	}
	if img.count != n || img.bytes != size {
		return n, fmt.Errorf("%w: stat says %d signatures of %d bytes, found %d of %d", ErrCorrupt, img.count, img.bytes, n, size)
	}
	// Every index entry was matched by a record above; equal sizes rule
	// out extra entries.
	if names, hashes := img.names.Stats().KeyN, img.hashes.Stats().KeyN; uint64(names) != n || uint64(hashes) != n {
		return n, fmt.Errorf("%w: %d signatures but %d names and %d hashes indexed", ErrCorrupt, n, names, hashes)
	}
	return n, nil
}
