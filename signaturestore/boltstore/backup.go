package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Snapshot writes a consistent copy of the whole database, as of one read
// transaction, to a temporary file beside the database and returns it
// opened at offset 0 with its size. The file is unlinked before it is
// written, so it disappears when closed, and even after a crash.
//
// The copy is spooled to local disk rather than streamed to the caller:
// an open read transaction keeps bbolt from remapping a growing file, so
// a slow reader holding one would stall every signature write.
func (s *Store) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("snapshot signature database: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(s.path), ".snapshot-*")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot signature database: %w", noSpace(err))
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("snapshot signature database: unlink spool file: %w", err)
	}
	var n int64
	err = s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(f)
		return err
	})
	if err == nil {
		_, err = f.Seek(0, 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("snapshot signature database: %w", noSpace(err))
	}
	return f, n, nil
}

// CheckReport describes a database that passed CheckFile.
type CheckReport struct {
	Path          string
	Size          int64
	SchemaVersion uint32
	Signatures    uint64
	Repositories  int
	// PendingDeletes counts journaled manifest deletes that the next
	// start will settle.
	PendingDeletes int
}

// CheckFile checks the database file at path without starting a store:
// bbolt's page-level check, then the key layout and counters, as Check
// does. A schema-1 file (a backup from before the upgrade) is checked
// against the schema-1 layout and reported as schema 1. It opens the file
// read-only and never writes to it, so it is safe on a backup or on a
// copy taken for forensics. A database held open by a
// running server gives ErrLocked after timeout (bbolt takes an exclusive
// lock for writers and a shared one for readers).
func CheckFile(path string, timeout time.Duration) (CheckReport, error) {
	rep := CheckReport{Path: path}
	info, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("check signature database: %w", err)
	}
	if !info.Mode().IsRegular() {
		return rep, fmt.Errorf("check signature database: %s is not a regular file", path)
	}
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return rep, fmt.Errorf("check signature database %s: %w: still locked after %s", path, ErrLocked, timeout)
		}
		// bbolt refuses files whose meta pages are both invalid: that
		// is corruption too, not an I/O problem.
		if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
			return rep, fmt.Errorf("check signature database %s: %w: %w", path, ErrCorrupt, err)
		}
		return rep, fmt.Errorf("check signature database %s: %w", path, err)
	}
	defer func() { _ = db.Close() }()
	err = db.View(func(tx *bbolt.Tx) error {
		rep.Size = tx.Size()
		var err error
		if rep.SchemaVersion, rep.Repositories, err = checkTx(tx); err != nil {
			return err
		}
		if rep.Signatures, err = readTotal(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketJournal).ForEach(func(_, _ []byte) error {
			rep.PendingDeletes++
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("check signature database %s: %w", path, err)
	}
	return rep, nil
}
