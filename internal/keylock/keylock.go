// Package keylock provides striped reader/writer locks keyed by string.
//
// Signet uses it to order a signature PUT against a manifest DELETE of the
// same image inside one process: the PUT holds the read side from its
// existence check to its commit, and the DELETE holds the write side from
// the manifest removal to the signature removal, so no signature can be
// written for an image that is being deleted.
package keylock

import (
	"hash/maphash"
	"sync"
)

// Locks is a fixed set of RWMutexes; keys hash onto them. Distinct keys
// may share a stripe, which only costs concurrency, never correctness.
type Locks struct {
	seed    maphash.Seed
	stripes []sync.RWMutex
}

// New returns Locks with n stripes (at least 1).
func New(n int) *Locks {
	if n < 1 {
		n = 1
	}
	return &Locks{seed: maphash.MakeSeed(), stripes: make([]sync.RWMutex, n)}
}

func (l *Locks) stripe(key string) *sync.RWMutex {
	return &l.stripes[maphash.String(l.seed, key)%uint64(len(l.stripes))]
}

// RLock takes the shared side for key and returns its release.
func (l *Locks) RLock(key string) (unlock func()) {
	m := l.stripe(key)
	m.RLock()
	return m.RUnlock
}

// Lock takes the exclusive side for key and returns its release.
func (l *Locks) Lock(key string) (unlock func()) {
	m := l.stripe(key)
	m.Lock()
	return m.Unlock
}
