package proxy

import (
	"container/list"
	"sync"
	"time"
)

// lru is a least-recently-used cache whose entries also expire. It is
// bounded by the summed cost of its entries (1 per entry for the answer
// caches, the body size for manifests), so no sequence of requests can
// grow it past its bound. Safe for concurrent use.
type lru[K comparable, V any] struct {
	mu      sync.Mutex
	maxCost int64
	cost    int64
	order   *list.List // front: most recently used
	items   map[K]*list.Element
	now     func() time.Time
}

type lruEntry[K comparable, V any] struct {
	key     K
	val     V
	cost    int64
	expires time.Time
}

// newLRU returns a cache bounded by maxCost; maxCost <= 0 gives a cache
// that holds nothing.
func newLRU[K comparable, V any](maxCost int64, now func() time.Time) *lru[K, V] {
	if now == nil {
		now = time.Now
	}
	return &lru[K, V]{maxCost: maxCost, order: list.New(), items: map[K]*list.Element{}, now: now}
}

// get returns the live entry for k.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if !c.now().Before(e.expires) {
		c.removeElement(el)
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.val, true
}

// add stores v for k for ttl, replacing any entry for k, and evicts the
// least recently used entries until the cache is within its bound. An
// entry costing more than the whole bound, or a ttl <= 0, is not stored
// (and drops any older entry for k).
func (c *lru[K, V]) add(k K, v V, cost int64, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
	if ttl <= 0 || cost > c.maxCost || cost < 0 {
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v, cost: cost, expires: c.now().Add(ttl)})
	c.cost += cost
	for c.cost > c.maxCost {
		c.removeElement(c.order.Back())
	}
}

// remove drops k.
func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.removeElement(el)
	}
}

// len is the number of entries held, expired ones included.
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *lru[K, V]) removeElement(el *list.Element) {
	e := el.Value.(*lruEntry[K, V])
	c.order.Remove(el)
	delete(c.items, e.key)
	c.cost -= e.cost
}
