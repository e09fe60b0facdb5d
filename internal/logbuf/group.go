package logbuf

import (
	"io"
	"sync"
)

// Group serializes writes to w and coalesces concurrent ones: while one
// write is in progress, the records that arrive queue up, and the next
// writer writes them all at once. Unlike Writer it buffers nothing past
// the call: each Write returns only after its record reached w. It is
// for records that must be out before the caller goes on (audit records
// are written before a change is acknowledged), where a group of
// requests finishing together (one group commit) would otherwise cost
// a write(2) each. Each Write must be one or more whole lines.
type Group struct {
	w io.Writer

	mu   sync.Mutex
	cond sync.Cond
	// pending holds the records of batch next, not yet taken by a
	// writer; spare is the buffer the last writer gave back.
	pending, spare []byte
	next           uint64
	// written is the last batch written, err what its write returned.
	written uint64
	err     error
	writing bool
}

// NewGroup returns a Group over w.
func NewGroup(w io.Writer) *Group {
	g := &Group{w: w, next: 1}
	g.cond.L = &g.mu
	return g
}

// Write queues p and returns once it is written, reporting the error of
// the write that carried it (or of a later one).
func (g *Group) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, p...)
	mine := g.next
	for g.writing {
		g.cond.Wait()
		if g.written >= mine {
			return g.result(len(p))
		}
	}
	// Nobody is writing and this record is still pending: write the
	// whole batch.
	buf, batch := g.pending, g.next
	g.pending, g.spare = g.spare[:0], nil
	g.next++
	g.writing = true
	g.mu.Unlock()
	_, err := g.w.Write(buf)
	g.mu.Lock()
	g.writing = false
	g.written, g.err = batch, err
	if cap(buf) <= 64<<10 {
		g.spare = buf[:0]
	}
	g.cond.Broadcast()
	return g.result(len(p))
}

func (g *Group) result(n int) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	return n, nil
}
