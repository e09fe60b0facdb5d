package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each write it receives.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) snapshot() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.buf.String()
}

func TestBatchesAndKeepsOrder(t *testing.T) {
	var c countingWriter
	b := New(&c, 1024, time.Hour)
	var want strings.Builder
	for i := range 100 {
		line := strings.Repeat("x", i%50) + "\n"
		want.WriteString(line)
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	writes, got := c.snapshot()
	if got != want.String() {
		t.Fatal("lines lost, reordered or split")
	}
	if writes >= 100 || writes < 2 {
		t.Fatalf("%d writes for 100 lines over a 1 KiB buffer", writes)
	}
}

func TestFlushesOnInterval(t *testing.T) {
	var c countingWriter
	b := New(&c, 1<<20, 20*time.Millisecond)
	defer b.Close()
	_, _ = b.Write([]byte("one line\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, got := c.snapshot(); got == "one line\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was never flushed by the timer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLargeRecordWrittenThrough(t *testing.T) {
	var c countingWriter
	b := New(&c, 16, time.Hour)
	_, _ = b.Write([]byte("short\n"))
	big := strings.Repeat("y", 100) + "\n"
	_, _ = b.Write([]byte(big))
	if _, got := c.snapshot(); got != "short\n"+big {
		t.Fatalf("before close: %q", got)
	}
	_ = b.Close()
}
