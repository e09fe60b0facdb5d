package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/signet-registry/signet/signaturestore"
)

var (
	_ signaturestore.Walker = (*Store)(nil)
	_ signaturestore.Walker = (*Reader)(nil)
)

// Walk implements signaturestore.Walker in one read transaction. A long
// walk delays writes that need to grow the file (bbolt cannot remap while
// a reader holds the map), so the server itself never walks; the export
// walks a Reader.
func (s *Store) Walk(ctx context.Context, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	if err := s.view(func(tx *bbolt.Tx) error { return walkTx(ctx, tx, fn) }); err != nil {
		return fmt.Errorf("walk signatures: %w", err)
	}
	return nil
}

// Reader reads a database file without writing to it: no writer, no
// schema upgrade, a shared lock instead of an exclusive one. It is what
// tools that run beside the data (export-sigstore) use, on a stopped
// server's data directory or on a backup copy.
type Reader struct {
	db      *bbolt.DB
	path    string
	version uint32
}

// OpenReader opens the database at path read-only. The file must exist
// and carry a schema this build reads: schema 2, or schema 1 as an
// earlier release left it (read as it is; only Open upgrades it). While a
// server holds the file, bbolt's lock makes the open wait; after timeout
// (zero means DefaultOpenTimeout) it fails with ErrLocked.
func OpenReader(path string, timeout time.Duration) (*Reader, error) {
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	// bbolt would create a missing file even read-only; a typo in a
	// data directory must be an error instead.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open signature database read-only: %w", err)
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open signature database %s read-only: %w (waited %s)", path, ErrLocked, timeout)
	} else if err != nil {
		return nil, fmt.Errorf("open signature database %s read-only: %w", path, err)
	}
	var version uint32
	err = db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: no %q bucket; not a signet signature database", ErrCorrupt, bucketMeta)
		}
		var err error
		version, err = checkMeta(meta)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open signature database %s read-only: %w", path, err)
	}
	return &Reader{db: db, path: path, version: version}, nil
}

// Walk implements signaturestore.Walker.
func (r *Reader) Walk(ctx context.Context, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	walk := walkTx
	if r.version == schemaV1 {
		walk = walkV1
	}
	if err := r.db.View(func(tx *bbolt.Tx) error { return walk(ctx, tx, fn) }); err != nil {
		return fmt.Errorf("walk signatures: %w", err)
	}
	return nil
}

// Close releases the file and its lock.
func (r *Reader) Close() error {
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("close signature database %s: %w", r.path, err)
	}
	return nil
}
