package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// request is one write waiting for the writer goroutine.
type request struct {
	ctx context.Context
	// apply runs inside the batch transaction. It must leave the
	// transaction untouched when it returns a plain error, and wrap any
	// error after its first write with wrote().
	apply func(tx *bbolt.Tx) error
	// done receives exactly one answer; buffered so the writer never
	// waits for a caller.
	done chan error
}

// writeError marks a failure after an operation has started writing: its
// partial writes are in the transaction, so the transaction must be
// rolled back.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// wrote marks err (if any) as a write-phase failure.
func wrote(err error) error {
	if err == nil {
		return nil
	}
	return &writeError{err: err}
}

// submit queues apply for the writer and waits for its answer. Once the
// request is queued the caller waits for the answer even if ctx ends,
// because the writer may already be applying it: the answer says exactly
// whether it was committed. The writer itself skips requests whose ctx has
// ended before they are applied.
func (s *Store) submit(ctx context.Context, apply func(tx *bbolt.Tx) error) error {
	r := &request{ctx: ctx, apply: apply, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return signaturestore.ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return fmt.Errorf("not queued: %w", ctx.Err())
	}
	s.mu.RUnlock()
	return <-r.done
}

// run is the writer goroutine: group commit without timers. It blocks for
// one request, takes whatever else is already queued (up to maxBatch), and
// commits them together. While that commit is being fsynced, new requests
// queue up and become the next batch, so the batch size follows the load.
func (s *Store) run() {
	defer close(s.writerDone)
	batch := make([]*request, 0, s.maxBatch)
	for r := range s.reqs {
		batch = append(batch[:0], r)
		// Let the goroutines that are already runnable queue their
		// writes first, and again as long as that brings more. A
		// channel send makes its receiver run next, so on one CPU
		// (GOMAXPROCS=1, a pinned server) the writer would otherwise
		// commit every request alone: measured, 1.16 requests per
		// commit from 64 concurrent clients, and 1,700 PUT/s. One yield
		// gave about 25 per commit; yielding while the batch grows
		// lets the requests already being decoded join too, and fewer
		// commits mean fewer fdatasyncs. A lone request waits for no
		// one: the first yield brings nothing and it commits.
		for len(batch) < s.maxBatch {
			runtime.Gosched()
			before := len(batch)
		drain:
			for len(batch) < s.maxBatch {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			if len(batch) == before {
				break
			}
		}
		s.commit(batch)
		clear(batch) // drop references to answered requests
	}
}

// commit applies batch in one transaction and answers every request. When
// an operation fails after it started writing, the transaction is rolled
// back, that request gets its error and the rest are tried again.
func (s *Store) commit(batch []*request) {
	for len(batch) > 0 {
		failed, err := s.commitOnce(batch)
		if failed < 0 {
			return
		}
		batch[failed].done <- err
		batch = slices.Delete(batch, failed, failed+1)
	}
}

// commitOnce tries batch in one transaction. It either answers every
// request and returns -1, or rolls back without answering anyone and
// returns the index and error of the request whose writes failed.
func (s *Store) commitOnce(batch []*request) (int, error) {
	start := time.Now()
	tx, err := s.db.Begin(true)
	if err != nil {
		answerAll(batch, fmt.Errorf("begin transaction: %w", noSpace(err)))
		return -1, nil
	}
	results := make([]error, len(batch))
	applied := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = fmt.Errorf("not applied: %w", err)
			continue
		}
		err := r.apply(tx)
		if we := (*writeError)(nil); errors.As(err, &we) {
			_ = tx.Rollback()
			return i, fmt.Errorf("transaction rolled back: %w", we.err)
		}
		results[i] = err
		if err == nil {
			applied++
		}
	}
	if applied == 0 {
		// Nothing was written: no commit, no fsync.
		_ = tx.Rollback()
		for i, r := range batch {
			r.done <- results[i]
		}
		return -1, nil
	}
	if err := tx.Commit(); err != nil {
		// A rejected request's verdict may rest on an earlier request
		// of this batch that is now lost, so everyone gets the error.
		answerAll(batch, fmt.Errorf("commit: %w", noSpace(err)))
		return -1, nil
	}
	if s.observer != nil {
		s.observer.ObserveCommit(time.Since(start), len(batch))
	}
	for i, r := range batch {
		r.done <- results[i]
	}
	return -1, nil
}

// noSpace marks a full disk (or exhausted quota) with
// signaturestore.ErrNoSpace, keeping the cause. bbolt rolls the
// transaction back when writing its pages fails, and the meta page that
// would publish them is written last, so nothing of the batch is visible
// and the next commit starts from the last good state.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", signaturestore.ErrNoSpace, err)
	}
	return err
}

func answerAll(batch []*request, err error) {
	for _, r := range batch {
		r.done <- err
	}
}
