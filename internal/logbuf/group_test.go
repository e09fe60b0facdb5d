package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingWriter keeps each Write; the first one blocks until release
// is closed.
type recordingWriter struct {
	mu      sync.Mutex
	writes  []string
	release chan struct{}
	first   sync.Once
	err     error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	r.first.Do(func() { <-r.release })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), r.err
}

func (r *recordingWriter) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.writes, "")
}

// TestGroupCoalescesAndWaits: records that arrive while a write is in
// progress go out together in the next write; every record is written
// exactly once and whole; and no Write returns before its record is out.
func TestGroupCoalescesAndWaits(t *testing.T) {
	rw := &recordingWriter{release: make(chan struct{})}
	g := NewGroup(rw)
	const n = 50
	var wg sync.WaitGroup
	early := make(chan string, n)
	write := func(i int) {
		defer wg.Done()
		line := fmt.Sprintf("record %02d\n", i)
		if _, err := g.Write([]byte(line)); err != nil {
			t.Error(err)
		}
		if !strings.Contains(rw.all(), line) {
			early <- line
		}
	}
	wg.Add(1)
	go write(0) // its write blocks in the writer
	// Wait until record 0 is being written, then queue the rest.
	for deadline := time.Now().Add(5 * time.Second); ; {
		g.mu.Lock()
		w := g.writing
		g.mu.Unlock()
		if w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first write never started")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go write(i)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		g.mu.Lock()
		queued := bytes.Count(g.pending, []byte("\n"))
		g.mu.Unlock()
		if queued == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records queued", queued)
		}
		time.Sleep(time.Millisecond)
	}
	close(rw.release)
	wg.Wait()
	close(early)
	for line := range early {
		t.Errorf("Write of %q returned before it was written", line)
	}
	if len(rw.writes) != 2 {
		t.Errorf("%d writes for %d records queued behind one; want 2", len(rw.writes), n)
	}
	all := rw.all()
	for i := range n {
		if c := strings.Count(all, fmt.Sprintf("record %02d\n", i)); c != 1 {
			t.Errorf("record %d written %d times", i, c)
		}
	}
	for _, w := range rw.writes {
		if !strings.HasSuffix(w, "\n") {
			t.Errorf("a write ends mid-record: %q", w)
		}
	}
}

func TestGroupReportsWriteErrors(t *testing.T) {
	rw := &recordingWriter{release: make(chan struct{}), err: errors.New("disk on fire")}
	close(rw.release)
	g := NewGroup(rw)
	if _, err := g.Write([]byte("x\n")); err == nil || err.Error() != "disk on fire" {
		t.Fatalf("Write = %v, want the writer's error", err)
	}
}
