// Package gencache is a bounded in-memory cache whose fills cannot race
// with invalidations. It owns no knowledge of what it caches: callers
// decide what a key means and when it is invalid.
//
// A reader that misses takes Gen before it reads the source of truth and
// passes it to Put with what it read. Every Invalidate and Purge advances
// the generation, so a value read before a change committed, but offered
// after the change invalidated its key, is dropped instead of cached.
// Writers must therefore invalidate after their change is durable.
//
// The generation is one counter for the whole cache: a write anywhere
// makes concurrent fills everywhere retry later. That costs hit rate only
// under heavy writes, never correctness.
package gencache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Cache maps keys to immutable values, bounded in entries and in bytes.
// The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	mu         sync.RWMutex
	m          map[K]entry[V]
	bytes      int64
	maxBytes   int64
	maxEntries int
	gen        uint64 // guarded by mu

	hits, misses atomic.Uint64
	// lease, when not zero, is the Unix time in nanoseconds after which
	// the cache serves and takes nothing (RequireLease).
	lease atomic.Int64
}

type entry[V any] struct {
	v    V
	size int64
}

// New returns a cache of at most maxEntries values and maxBytes of their
// declared sizes. A value larger than maxBytes/8 is never cached, so one
// entry cannot flush the rest.
func New[K comparable, V any](maxEntries int, maxBytes int64) *Cache[K, V] {
	return &Cache[K, V]{m: make(map[K]entry[V]), maxEntries: maxEntries, maxBytes: maxBytes}
}

// RequireLease makes the cache serve and take values only until the time
// last given to Extend: for a cache whose invalidations arrive from
// elsewhere (another replica's writes through a change feed), so that
// when the feed goes quiet the cache stops within a known bound instead
// of serving stale values. Until the first Extend it is off.
func (c *Cache[K, V]) RequireLease() { c.lease.Store(1) }

// Extend keeps a leased cache on until t.
func (c *Cache[K, V]) Extend(t time.Time) { c.lease.Store(t.UnixNano()) }

func (c *Cache[K, V]) leaseOK() bool {
	l := c.lease.Load()
	return l == 0 || time.Now().UnixNano() < l
}

// Get returns the cached value of key.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	if !c.leaseOK() {
		c.misses.Add(1)
		var zero V
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return e.v, ok
}

// Gen is the generation to pass to Put; take it before reading the
// source of truth.
func (c *Cache[K, V]) Gen() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Put caches v (of size bytes) under key if nothing was invalidated since
// gen was taken. It reports whether v was cached.
func (c *Cache[K, V]) Put(key K, v V, size int64, gen uint64) bool {
	if size < 0 || size > c.maxBytes/8 || c.maxEntries <= 0 || !c.leaseOK() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return false
	}
	if old, ok := c.m[key]; ok {
		c.bytes -= old.size
		delete(c.m, key)
	}
	// Evict arbitrary entries (map order is randomised) until v fits.
	for k, e := range c.m {
		if len(c.m) < c.maxEntries && c.bytes+size <= c.maxBytes {
			break
		}
		c.bytes -= e.size
		delete(c.m, k)
	}
	c.m[key] = entry[V]{v: v, size: size}
	c.bytes += size
	return true
}

// Invalidate drops key and fails every fill that began before it.
func (c *Cache[K, V]) Invalidate(key K) {
	c.mu.Lock()
	c.gen++
	if e, ok := c.m[key]; ok {
		c.bytes -= e.size
		delete(c.m, key)
	}
	c.mu.Unlock()
}

// Purge drops everything and fails every fill that began before it.
func (c *Cache[K, V]) Purge() {
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.bytes = 0
	c.mu.Unlock()
}

// Stats reports hits, misses, entries and bytes held.
func (c *Cache[K, V]) Stats() (hits, misses uint64, entries int, bytes int64) {
	c.mu.RLock()
	entries, bytes = len(c.m), c.bytes
	c.mu.RUnlock()
	return c.hits.Load(), c.misses.Load(), entries, bytes
}
