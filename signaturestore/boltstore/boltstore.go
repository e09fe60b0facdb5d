// Package boltstore keeps image signatures in a bbolt database. It is the
// only package that imports bbolt; everything else sees a
// signaturestore.Store and a signaturestore.DeleteJournal, or, for tools
// that read a stopped server's file or a backup, a read-only Reader
// (a signaturestore.Walker).
//
// It must not know about HTTP or wire formats, and it does not enforce the
// signature-name rules of the extension API (handlers do). It validates
// only what its own layout depends on: non-empty keys and content, a
// well-formed digest, and key lengths bbolt can hold.
//
// # Key layout (schema version 2)
//
// All images share a few flat buckets, so pages are shared and mostly
// full: a 600-byte signature takes about 780 bytes of pages
// (BenchmarkBytesPerSignature) instead of pages of its image's own, and a
// write dirties the last pages of sigs and index rather than pages spread
// over its image's buckets.
//
//	<root>
//	├── meta/
//	│   ├── schema                 uint32 big-endian: schema version (2)
//	│   └── count                  uint64 big-endian: signatures stored in total
//	├── images/
//	│   └── <image key>            -> <id>: uint64 big-endian, from this bucket's sequence
//	├── index/
//	│   └── <id>                   -> the image's index (layout.go): content bytes, then
//	│                                 per signature in insertion order its content key
//	│                                 (16 bytes of a sha256 of type and content), <seq>
//	│                                 and name
//	├── sigs/
//	│   └── <seq>                  uint64 big-endian, from this bucket's sequence
//	│                              -> signature record naming its image id (record.go)
//	├── journal/
//	│   └── <uvarint len(repository)><repository><digest>
//	│                              -> int64 big-endian unix nanoseconds of BeginImageDelete
//	└── referrers/                 (referrers.go; created by the first BeginReferrer)
//	    └── <repository>/
//	        ├── s/<subject digest>/<referrer digest>  -> referrer record (JSON)
//	        └── r/<referrer digest>                   -> subject digest
//
// An image key is the repository with each 0x00 byte written as 0x00 0xff,
// then 0x00 0x01, then the digest: no image key is a prefix of another
// ("ns/math", "ns/math-voila" and "ns/math/sub" never mix in a scan; "-"
// sorts before "/", SPEC section 6), and key order is repository, then
// digest order, the order Walk and ImagesAfter promise.
//
// Signatures are keyed by one sequence for the whole database, so a new
// record always goes at the end of sigs, whose pages are left full. An
// image's index lists its records in insertion order and holds what a
// write needs to refuse a duplicate: each name (16 bytes for the
// "<image digest>@<32 lowercase hex>" every client uses, in full
// otherwise) and content key. One value per image costs one bbolt entry
// header instead of two per signature, and the image ids of the images
// being signed are the last keys of index, so their writes share pages. A
// write reads and rewrites its image's index, which costs in proportion
// to the image's signatures: MaxPerImage bounds that (the configuration
// allows at most 1024).
//
// Image ids and sequence numbers are never reused. An image has entries
// in images and index only while it holds a signature, so an empty
// database is just the top-level buckets. meta/count and every index are
// updated in the same transaction as the signatures they count.
//
// Schema 1 (v1.go) nested buckets per repository and image. Open upgrades
// a schema-1 file by writing a schema-2 copy beside it and renaming it
// over the original (upgrade.go); a Reader and CheckFile read both.
//
// # Writes
//
// All writes go through one writer goroutine that groups whatever requests
// are queued into one transaction, so they share one commit and its
// fsyncs (group commit). A write returns only after its transaction is
// committed and synced (bbolt's default NoSync=false). Every
// operation checks its preconditions before it writes, so an operation
// rejected with a domain error changes nothing and does not disturb the
// other operations sharing its transaction.
//
// Reads run in their own read-only transactions and copy every byte out
// before the transaction ends.
//
// # Failures, checks and backups
//
// A commit that fails because the disk is full (ENOSPC, EDQUOT) is rolled
// back by bbolt before its meta page is written, so nothing of it is
// visible; every request in it gets an error wrapping
// signaturestore.ErrNoSpace, and the next commit works once space is
// freed. Snapshot copies the database online in one read transaction;
// CheckFile checks a file (a stopped server's or a backup) read-only.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/signet-registry/signet/signaturestore"
)

// SchemaVersion is the key layout this package writes. Open upgrades a
// schema-1 database and refuses a newer version instead of misreading it.
const SchemaVersion = 2

// Defaults for zero Options fields.
const (
	DefaultMaxBatch    = 256
	DefaultFileMode    = os.FileMode(0o600)
	DefaultOpenTimeout = 5 * time.Second
)

// maxKeyLen bounds repository and signature names. Handlers validate much
// tighter rules; this only keeps keys far below bbolt's MaxKeySize.
const maxKeyLen = 4096

// maxContentLen keeps a record below bbolt's MaxValueSize whatever the
// configured limits.
const maxContentLen = 1 << 30

var (
	// ErrUnsupportedSchema: the database was written by a newer (or
	// unknown) version of this package.
	ErrUnsupportedSchema = errors.New("unsupported signature database schema")
	// ErrCorrupt: the database does not follow the key layout.
	ErrCorrupt = errors.New("signature database corrupt")
	// ErrLocked: another process holds the database open (bbolt allows
	// one writer process per file) and did not let go within the open
	// timeout.
	ErrLocked = errors.New("signature database is locked by another process")
)

// Options configure Open.
type Options struct {
	// Limits bound what one image may hold. A zero field means no
	// limit; the configuration is expected to supply real bounds.
	Limits signaturestore.Limits
	// Observer, when not nil, is called once per committed write
	// transaction with its duration and the number of requests it
	// answered. It runs on the writer goroutine: keep it fast.
	Observer signaturestore.CommitObserver
	// MaxBatch caps how many requests share one commit. Zero means
	// DefaultMaxBatch.
	MaxBatch int
	// FileMode is used when the database file is created. Zero means
	// DefaultFileMode.
	FileMode os.FileMode
	// OpenTimeout is how long Open waits for another process to release
	// the database file lock. Zero means DefaultOpenTimeout.
	OpenTimeout time.Duration
}

// Store is a signaturestore.Store and signaturestore.DeleteJournal backed
// by one bbolt file. It is safe for concurrent use.
type Store struct {
	db       *bbolt.DB
	path     string
	limits   signaturestore.Limits
	observer signaturestore.CommitObserver
	maxBatch int

	// mu guards closed. Senders on reqs and readers hold it shared, so
	// once Close holds it exclusively nobody is sending and reqs can be
	// closed without a send on a closed channel.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	// writerDone is closed when the writer goroutine has answered every
	// request and exited.
	writerDone chan struct{}
}

var (
	_ signaturestore.Store         = (*Store)(nil)
	_ signaturestore.DeleteJournal = (*Store)(nil)
)

// Open opens (creating if needed) the database at path, checks or writes
// its schema version, upgrades a schema-1 database to schema 2 (see
// upgrade.go) and starts the writer.
func Open(path string, opts Options) (*Store, error) {
	return open(path, opts, upgradeHooks{})
}

func open(path string, opts Options, hooks upgradeHooks) (*Store, error) {
	mode := opts.FileMode
	if mode == 0 {
		mode = DefaultFileMode
	}
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	// bbolt's default NoSync=false is what makes a nil error from a write
	// mean "on stable storage"; never turn it off here.
	db, err := bbolt.Open(path, mode, &bbolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open signature database %s: %w: still locked after %s: %w", path, ErrLocked, timeout, err)
		}
		return nil, fmt.Errorf("open signature database %s: %w", path, err)
	}
	// Read first: a file that is refused or upgraded is never written.
	var version uint32
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		version, err = readSchema(tx)
		return err
	})
	switch {
	case err != nil:
	case version == 0:
		err = db.Update(initSchema)
	case version == schemaV1:
		var upgraded *bbolt.DB
		if upgraded, err = upgradeV1(path, db, timeout, hooks); err == nil {
			db = upgraded
		}
	default:
		err = db.View(func(tx *bbolt.Tx) error {
			_, err := openTree(tx)
			return err
		})
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open signature database %s: %w", path, err)
	}
	s := &Store{
		db:         db,
		path:       path,
		limits:     opts.Limits,
		observer:   opts.Observer,
		maxBatch:   maxBatch,
		reqs:       make(chan *request, maxBatch),
		writerDone: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// readSchema returns the schema version of a signature database: 0 for an
// empty file, 1 or SchemaVersion, or an error for anything else.
func readSchema(tx *bbolt.Tx) (uint32, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		// Only adopt an empty file: anything else is not ours.
		if k, _ := tx.Cursor().First(); k != nil {
			return 0, fmt.Errorf("%w: no %q bucket but other data present; not a signet signature database", ErrCorrupt, bucketMeta)
		}
		return 0, nil
	}
	return checkMeta(meta)
}

// initSchema lays out a new, empty database.
func initSchema(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return fmt.Errorf("create meta bucket: %w", err)
	}
	if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	if err := meta.Put(keyCount, make([]byte, 8)); err != nil {
		return fmt.Errorf("write count: %w", err)
	}
	for _, name := range schemaBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create %s bucket: %w", name, err)
		}
	}
	return nil
}

// checkMeta returns the schema version, which is 1 or SchemaVersion.
func checkMeta(meta *bbolt.Bucket) (uint32, error) {
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: schema version key missing or malformed", ErrCorrupt)
	}
	version := binary.BigEndian.Uint32(v)
	switch {
	case version > SchemaVersion:
		return 0, fmt.Errorf("%w: database has schema version %d, this build of signet supports version %d; upgrade signet", ErrUnsupportedSchema, version, SchemaVersion)
	case version != SchemaVersion && version != schemaV1:
		return 0, fmt.Errorf("%w: database has schema version %d, this build of signet supports version %d", ErrUnsupportedSchema, version, SchemaVersion)
	}
	if len(meta.Get(keyCount)) != 8 {
		return 0, fmt.Errorf("%w: count key missing or malformed", ErrCorrupt)
	}
	return version, nil
}

// Path is the database file, so a test or tool can reopen it.
func (s *Store) Path() string { return s.path }

// Close stops accepting requests, commits everything already queued, stops
// the writer and closes the database. A second Close returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("close signature database: %w", signaturestore.ErrClosed)
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.writerDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close signature database: %w", err)
	}
	return nil
}

// view runs fn in a read-only transaction unless the store is closed.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return signaturestore.ErrClosed
	}
	return s.db.View(fn)
}

// Put implements signaturestore.Store.
func (s *Store) Put(ctx context.Context, key signaturestore.ImageKey, sig signaturestore.Signature) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put signature: %w", err)
	}
	op, err := s.preparePut(key, sig)
	if err != nil {
		return fmt.Errorf("put signature %q for %s: %w", sig.Name, key, err)
	}
	if err := s.submit(ctx, op.apply); err != nil {
		return fmt.Errorf("put signature %q for %s: %w", sig.Name, key, err)
	}
	return nil
}

// List implements signaturestore.Store.
func (s *Store) List(ctx context.Context, key signaturestore.ImageKey) ([]signaturestore.Signature, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list signatures: %w", err)
	}
	if err := validateKey(key); err != nil {
		return nil, fmt.Errorf("list signatures of %s: %w", key, err)
	}
	var sigs []signaturestore.Signature
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		sigs, err = listTx(tx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s: %w", key, err)
	}
	return sigs, nil
}

// VisitList implements signaturestore.ListVisitor: List without copying.
// The fields it does not show (creation time, status) are framed and
// checked but not decoded.
func (s *Store) VisitList(ctx context.Context, key signaturestore.ImageKey, size func(n int, contentBytes int64), each func(signaturestore.SignatureView) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list signatures: %w", err)
	}
	if err := validateKey(key); err != nil {
		return fmt.Errorf("list signatures of %s: %w", key, err)
	}
	err := s.view(func(tx *bbolt.Tx) error {
		t, err := openListTree(tx)
		if err != nil {
			return err
		}
		return t.visit(key, size, each)
	})
	if err != nil {
		return fmt.Errorf("list signatures of %s: %w", key, err)
	}
	return nil
}

// listTx reads one image's signatures in insertion order; no signatures is
// an empty, non-nil slice.
func listTx(tx *bbolt.Tx, key signaturestore.ImageKey) ([]signaturestore.Signature, error) {
	t, err := openListTree(tx)
	if err != nil {
		return nil, err
	}
	img, err := t.image(imageKeyBytes(key), key.Digest)
	if err != nil {
		return nil, err
	}
	if img == nil {
		return []signaturestore.Signature{}, nil
	}
	return t.list(img)
}

// SetStatus implements signaturestore.Store.
func (s *Store) SetStatus(ctx context.Context, key signaturestore.ImageKey, name string, status *signaturestore.Status) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set signature status: %w", err)
	}
	if err := validateKeyAndName(key, name); err != nil {
		return fmt.Errorf("set status of signature %q for %s: %w", name, key, err)
	}
	st, err := encodeStatus(status)
	if err != nil {
		return fmt.Errorf("set status of signature %q for %s: %w", name, key, err)
	}
	if err := s.submit(ctx, setStatusOp(key, name, st)); err != nil {
		return fmt.Errorf("set status of signature %q for %s: %w", name, key, err)
	}
	return nil
}

// Delete implements signaturestore.Store.
func (s *Store) Delete(ctx context.Context, key signaturestore.ImageKey, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete signature: %w", err)
	}
	if err := validateKeyAndName(key, name); err != nil {
		return fmt.Errorf("delete signature %q for %s: %w", name, key, err)
	}
	if err := s.submit(ctx, deleteOp(key, name)); err != nil {
		return fmt.Errorf("delete signature %q for %s: %w", name, key, err)
	}
	return nil
}

// DeleteAll implements signaturestore.Store.
func (s *Store) DeleteAll(ctx context.Context, key signaturestore.ImageKey) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("delete all signatures: %w", err)
	}
	if err := validateKey(key); err != nil {
		return 0, fmt.Errorf("delete all signatures of %s: %w", key, err)
	}
	// n is written by the writer goroutine before it answers, and read
	// here only after the answer: the channel orders the two.
	var n int
	err := s.submit(ctx, func(tx *bbolt.Tx) error {
		var err error
		n, err = deleteImage(tx, key)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete all signatures of %s: %w", key, err)
	}
	return n, nil
}

// Count implements signaturestore.Store.
func (s *Store) Count(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count signatures: %w", err)
	}
	var n uint64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = readTotal(tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count signatures: %w", err)
	}
	return int64(n), nil
}

// BeginImageDelete implements signaturestore.DeleteJournal.
func (s *Store) BeginImageDelete(ctx context.Context, key signaturestore.ImageKey) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin image delete: %w", err)
	}
	if err := validateKey(key); err != nil {
		return fmt.Errorf("begin delete of %s: %w", key, err)
	}
	if err := s.submit(ctx, beginDeleteOp(key, time.Now())); err != nil {
		return fmt.Errorf("begin delete of %s: %w", key, err)
	}
	return nil
}

// EndImageDelete implements signaturestore.DeleteJournal. Settling an
// intent that is not recorded is not an error (recovery may settle an
// intent twice); with deleted=true the signatures are removed either way.
func (s *Store) EndImageDelete(ctx context.Context, key signaturestore.ImageKey, deleted bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("end image delete: %w", err)
	}
	if err := validateKey(key); err != nil {
		return fmt.Errorf("end delete of %s: %w", key, err)
	}
	if err := s.submit(ctx, endDeleteOp(key, deleted)); err != nil {
		return fmt.Errorf("end delete of %s: %w", key, err)
	}
	return nil
}

// PendingImageDeletes implements signaturestore.DeleteJournal. The result
// is never nil.
func (s *Store) PendingImageDeletes(ctx context.Context) ([]signaturestore.ImageKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list pending image deletes: %w", err)
	}
	keys := []signaturestore.ImageKey{}
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, _ []byte) error {
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

// Check verifies the database: bbolt's own page-level consistency check
// first, then this package's key layout and counters. It returns the first
// problem found. It holds the write lock while it runs, so writes wait.
func (s *Store) Check() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("check signature database: %w", signaturestore.ErrClosed)
	}
	// bbolt documents tx.Check as safe alongside other writers only on a
	// writable transaction; this one is rolled back, never committed.
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("check signature database: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, _, err := checkTx(tx); err != nil {
		return fmt.Errorf("check signature database: %w", err)
	}
	return nil
}

// checkTx runs bbolt's page-level check, then the layout check of the
// database's schema. It returns the schema version and the number of
// repositories.
func checkTx(tx *bbolt.Tx) (version uint32, repositories int, err error) {
	var first error
	for err := range tx.Check() {
		// Drain the channel so bbolt's checking goroutine finishes.
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, 0, fmt.Errorf("%w: bbolt: %w", ErrCorrupt, first)
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, 0, fmt.Errorf("%w: missing meta bucket", ErrCorrupt)
	}
	if version, err = checkMeta(meta); err != nil {
		return 0, 0, err
	}
	if version == schemaV1 {
		repositories, err = checkLayoutV1(tx)
	} else {
		repositories, err = checkLayout(tx)
	}
	return version, repositories, err
}

func validateKey(key signaturestore.ImageKey) error {
	if key.Repository == "" {
		return fmt.Errorf("%w: empty repository", signaturestore.ErrInvalid)
	}
	if len(key.Repository) > maxKeyLen {
		return fmt.Errorf("%w: repository longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	if err := validateDigest(key.Digest); err != nil {
		return fmt.Errorf("%w: digest %q: %v", signaturestore.ErrInvalid, key.Digest, err)
	}
	return nil
}

// validateDigest is go-digest's Validate, without its regexp for the
// digests Signet stores: a sha256, sha384 or sha512 digest of lowercase
// hex of the right length is valid, and anything else is left to
// Validate (FuzzValidateDigest holds the two together).
func validateDigest(d digest.Digest) error {
	s := string(d)
	if i := strings.IndexByte(s, ':'); i > 0 {
		n := 0
		switch s[:i] {
		case "sha256":
			n = 64
		case "sha384":
			n = 96
		case "sha512":
			n = 128
		}
		if n > 0 && len(s)-i-1 == n && lowerHexOnly(s[i+1:]) {
			return nil
		}
	}
	return d.Validate()
}

func lowerHexOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validateKeyAndName(key signaturestore.ImageKey, name string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	return validateName(name)
}

func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", signaturestore.ErrInvalid)
	}
	if len(name) > maxKeyLen {
		return fmt.Errorf("%w: name longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	return nil
}
