package registry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStoredCountBounded: signet_signatures_stored counts at most once at
// a time, and reuses a count for ten times as long as it took, so /metrics
// (which needs no credentials) cannot make an etcd store count all its
// keys over and over; a fast count (bbolt) is taken fresh every time.
func TestStoredCountBounded(t *testing.T) {
	var (
		mu    sync.Mutex
		now   = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		took  time.Duration
		calls atomic.Int32
		n     int64
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	c := newStoredCount(func(context.Context) (int64, error) {
		calls.Add(1)
		advance(took)
		return n, nil
	}, clock)

	took, n = 200*time.Millisecond, 7
	if v := c.value(); v != 7 || calls.Load() != 1 {
		t.Fatalf("first scrape: %v after %d counts", v, calls.Load())
	}
	n = 8
	advance(time.Second) // 1.2 s after the count began: within 10 x 200 ms
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := c.value(); v != 7 {
				t.Errorf("reused count: %v", v)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d counts for 51 scrapes within the reuse window, want 1", calls.Load())
	}
	advance(time.Second) // past 2.2 s
	if v := c.value(); v != 8 || calls.Load() != 2 {
		t.Fatalf("after the window: %v after %d counts", v, calls.Load())
	}

	// A count that takes no time is never reused.
	took, n = 0, 9
	advance(time.Hour)
	for i := range 3 {
		n++
		if v := c.value(); v != float64(n) {
			t.Fatalf("fast count %d: %v, want %d", i, v, n)
		}
	}
	// A failure is reported as -1, and reused like a count.
	took = time.Second
	fail := newStoredCount(func(context.Context) (int64, error) {
		calls.Add(1)
		advance(took)
		return 0, errors.New("etcd down")
	}, clock)
	before := calls.Load()
	first, second := fail.value(), fail.value()
	if first != -1 || second != -1 || calls.Load() != before+1 {
		t.Fatalf("failure: %d counts for two scrapes, want 1", calls.Load()-before)
	}
}
