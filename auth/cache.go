package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// passwordCache remembers successful bcrypt verifications for a while.
// Clients such as skopeo send Basic credentials on every request, and a
// bcrypt check per request would make the server CPU-bound.
//
// Keys are an HMAC, under a random per-cache key, of the user, the
// password and the stored hash: a memory dump does not yield a fast hash
// of the password, and a changed hash can never hit an old entry. Each
// reload builds a new cache, so a changed or removed password stops
// working at once. Failures are never cached.
type passwordCache struct {
	key [32]byte
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time // key -> expiry
}

// newPasswordCache returns nil (no caching) for a non-positive ttl or size.
func newPasswordCache(ttl time.Duration, size int) (*passwordCache, error) {
	if ttl <= 0 || size <= 0 {
		return nil, nil
	}
	c := &passwordCache{ttl: ttl, max: size, entries: make(map[[sha256.Size]byte]time.Time)}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil, fmt.Errorf("generate cache key: %w", err)
	}
	return c, nil
}

func (c *passwordCache) keyFor(user string, password, hash []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	for _, part := range [][]byte{[]byte(user), password, hash} {
		// Length prefixes keep ("ab","c") and ("a","bc") apart.
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var k [sha256.Size]byte
	copy(k[:], m.Sum(nil))
	return k
}

func (c *passwordCache) hit(k [sha256.Size]byte, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		delete(c.entries, k)
		return false
	}
	return true
}

func (c *passwordCache) add(k [sha256.Size]byte, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old, exp := range c.entries {
			if !now.Before(exp) {
				delete(c.entries, old)
			}
		}
		// Still full: drop an arbitrary entry. Its user pays one more
		// bcrypt; the bound on memory matters more than the choice.
		for old := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, old)
		}
	}
	c.entries[k] = now.Add(c.ttl)
}

func (c *passwordCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
