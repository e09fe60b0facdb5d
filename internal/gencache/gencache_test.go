package gencache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPutGet(t *testing.T) {
	c := New[string, string](10, 1<<20)
	if _, ok := c.Get("a"); ok {
		t.Fatal("hit on an empty cache")
	}
	if !c.Put("a", "x", 1, c.Gen()) {
		t.Fatal("Put refused with a current generation")
	}
	if v, ok := c.Get("a"); !ok || v != "x" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
}

// The race the package exists for: a value read before a change and
// offered after the change's invalidation must not be cached.
func TestStaleFillDropped(t *testing.T) {
	c := New[string, string](10, 1<<20)
	gen := c.Gen()    // reader starts, reads "old"
	c.Invalidate("a") // writer commits "new", invalidates
	if c.Put("a", "old", 3, gen) {
		t.Fatal("a fill that began before an invalidation was cached")
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("stale value served")
	}
	// An invalidation of another key also fails the fill: the
	// generation is cache-wide.
	gen = c.Gen()
	c.Invalidate("b")
	if c.Put("a", "old", 3, gen) {
		t.Fatal("fill survived an invalidation")
	}
	gen = c.Gen()
	c.Purge()
	if c.Put("a", "old", 3, gen) {
		t.Fatal("fill survived a purge")
	}
}

func TestInvalidateDrops(t *testing.T) {
	c := New[string, string](10, 1<<20)
	c.Put("a", "x", 1, c.Gen())
	c.Put("b", "y", 1, c.Gen())
	c.Invalidate("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("invalidated key still served")
	}
	if _, ok := c.Get("b"); !ok {
		t.Fatal("another key was dropped")
	}
	c.Purge()
	if _, ok := c.Get("b"); ok {
		t.Fatal("purged key still served")
	}
	if _, _, entries, bytes := c.Stats(); entries != 0 || bytes != 0 {
		t.Fatalf("after purge: %d entries, %d bytes", entries, bytes)
	}
}

func TestBounds(t *testing.T) {
	c := New[string, int](5, 800)
	for i := range 100 {
		c.Put(fmt.Sprint(i), i, 100, c.Gen())
		_, _, entries, bytes := c.Stats()
		if entries > 5 || bytes > 800 {
			t.Fatalf("after %d puts: %d entries, %d bytes", i+1, entries, bytes)
		}
	}
	if c.Put("big", 0, 101, c.Gen()) {
		t.Fatal("a value over maxBytes/8 was cached")
	}
	// Replacing a key does not count it twice.
	c.Purge()
	for range 10 {
		c.Put("k", 1, 100, c.Gen())
	}
	if _, _, entries, bytes := c.Stats(); entries != 1 || bytes != 100 {
		t.Fatalf("replacing one key: %d entries, %d bytes", entries, bytes)
	}
}

// Under concurrent fills and invalidations (go test -race), a reader that
// saw the version current at its Gen never caches an older one.
func TestConcurrentNoStale(t *testing.T) {
	c := New[string, int](100, 1<<20)
	var mu sync.Mutex
	version := 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 2000 {
			mu.Lock()
			version++
			mu.Unlock()
			c.Invalidate("k")
		}
		close(stop)
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := c.Get("k"); ok {
					continue
				}
				gen := c.Gen()
				mu.Lock()
				v := version
				mu.Unlock()
				c.Put("k", v, 1, gen)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	final := version
	mu.Unlock()
	if v, ok := c.Get("k"); ok && v != final {
		t.Fatalf("cache holds version %d after the last change made it %d", v, final)
	}
}

func TestLease(t *testing.T) {
	c := New[string, string](10, 1<<20)
	c.Put("a", "x", 1, c.Gen())
	c.RequireLease()
	if _, ok := c.Get("a"); ok {
		t.Fatal("a leased cache served before its first Extend")
	}
	if c.Put("b", "y", 1, c.Gen()) {
		t.Fatal("a leased cache took a value before its first Extend")
	}
	c.Extend(time.Now().Add(time.Hour))
	if _, ok := c.Get("a"); !ok {
		t.Fatal("an extended lease does not serve")
	}
	if !c.Put("b", "y", 1, c.Gen()) {
		t.Fatal("an extended lease does not take values")
	}
	c.Extend(time.Now().Add(-time.Millisecond))
	if _, ok := c.Get("a"); ok {
		t.Fatal("an expired lease still serves")
	}
	if c.Put("c", "z", 1, c.Gen()) {
		t.Fatal("an expired lease still takes values")
	}
}
