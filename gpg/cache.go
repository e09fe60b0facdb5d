package gpg

import (
	"container/list"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// DefaultCacheSize is the number of successful verifications a Mechanism
// remembers unless Options.CacheSize says otherwise.
const DefaultCacheSize = 1024

// maxCachedContentsSize keeps large contents out of the cache, so that the
// cache holds at most CacheSize * 16 KiB. Simple-signing payloads are well
// under 1 KiB.
const maxCachedContentsSize = 16 << 10

// resultCache remembers successful verifications, keyed by the SHA-256 of the
// exact message bytes. This is sound because a Mechanism's keyring never
// changes after construction: the same bytes verified by the same keys give
// the same cryptographic answer. What can change is time (keys and signatures
// expire, revocations can be dated), so a hit is re-checked against the
// current time before it is returned (see stillValid). Failures are never
// cached: they are cheap to recompute and caching them would let an attacker
// fill the cache with garbage.
type resultCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recently used; values are *cacheEntry
	items map[[32]byte]*list.Element
}

type cacheEntry struct {
	key    [32]byte
	result Result
	signer openpgp.Key
	sig    *packet.Signature
}

func newResultCache(max int) *resultCache {
	return &resultCache{max: max, order: list.New(), items: make(map[[32]byte]*list.Element, max)}
}

// get returns a copy of a cached result that is still valid at now.
func (c *resultCache) get(key [32]byte, now time.Time) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !stillValid(e.signer, e.sig, now) {
		// Let the full path produce the precise error.
		c.order.Remove(el)
		delete(c.items, key)
		return Result{}, false
	}
	c.order.MoveToFront(el)
	r := e.result
	r.Contents = append([]byte(nil), r.Contents...)
	return r, true
}

func (c *resultCache) add(key [32]byte, r Result, signer openpgp.Key, sig *packet.Signature) {
	if len(r.Contents) > maxCachedContentsSize {
		return
	}
	r.Contents = append([]byte(nil), r.Contents...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, result: r, signer: signer, sig: sig})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// stillValid repeats, for a cached success, the time-dependent checks that
// go-crypto's checkMessageSignatureDetails (openpgp/read.go) made when the
// signature was verified: revocations (which may be dated), key expiry and
// signature expiry of the message signature and of the relevant
// self-signatures. The cryptographic checks are time-independent and are not
// repeated. Any doubt evicts the entry, so the worst case is a full verify.
func stillValid(key openpgp.Key, sig *packet.Signature, now time.Time) bool {
	if key.Entity == nil || key.PublicKey == nil || sig == nil {
		return false
	}
	primarySelfSig, primaryIdentity := key.Entity.PrimarySelfSignature()
	if primarySelfSig == nil {
		return false
	}
	bySubkey := key.PublicKey != key.Entity.PrimaryKey
	if key.Entity.Revoked(now) || (bySubkey && key.Revoked(now)) ||
		(primaryIdentity != nil && primaryIdentity.Revoked(now)) {
		return false
	}
	if key.Entity.PrimaryKey.KeyExpired(primarySelfSig, now) {
		return false
	}
	sigs := []*packet.Signature{sig, primarySelfSig}
	if bySubkey {
		if key.SelfSignature == nil || key.PublicKey.KeyExpired(key.SelfSignature, now) {
			return false
		}
		sigs = append(sigs, key.SelfSignature, key.SelfSignature.EmbeddedSignature)
	}
	for _, s := range sigs {
		if s != nil && s.SigExpired(now) {
			return false
		}
	}
	return true
}
