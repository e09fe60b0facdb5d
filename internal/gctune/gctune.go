// Package gctune keeps the garbage collector's heap goal at or above a
// floor, and its headroom over the live heap within a bound.
//
// With the default GOGC=100 the runtime collects whenever the heap has
// grown by as much as is live. A server whose live heap is a few MiB, as
// Signet's is with small caches, then collects many times a second under
// load: on the signature GET benchmark that was 13 collections a second,
// and the collector's work and its stolen time on a busy core cost more
// than a fifth of the throughput. Raising the goal to a floor (64 MiB by
// default) trades that for a bounded amount of memory; once the live heap
// is over half the floor, the goal is the runtime's own (twice the live
// heap) and nothing changes.
//
// The other end: with GOGC=100 a live heap of 84 MiB (a store of a
// million signatures, its caches full) may grow to 168 MiB before the
// next collection, garbage that is most of what separates the process's
// resident set from its live data. A headroom bound (server.heapHeadroomMiB, 24 MiB by default)
// collects sooner instead, for some CPU; never more often than GOGC=25
// would, so a large heap is not collected without pause.
//
// After every collection the tuner reads the live heap and sets GOGC so
// that the next goal is max(floor, live + clamp(headroom, live/4, live)).
// It notices a collection by polling the runtime's cycle count every
// 20 ms: a finalizer or cleanup would run only when the sweeper reaches
// its span, which on a busy core came late enough for the heap to grow
// past its goal on the GOGC set for a smaller heap. A memory limit
// (GOMEMLIMIT) still applies on top.
package gctune

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// pollInterval is how often the tuner looks for a finished collection.
const pollInterval = 20 * time.Millisecond

// maxPercent bounds GOGC when the live heap is tiny (a floor of 64 MiB
// over a 1 MiB heap would be 6,300%); minPercent when it is large.
const (
	maxPercent = 10000
	minPercent = 25
)

// Tuner adjusts GOGC after each collection until Stop.
type Tuner struct {
	floor, headroom uint64

	mu      sync.Mutex
	stopped bool
	percent int // as last set
	before  int // GOGC when Start ran, restored by Stop
	// sample reads the live heap and the collections so far.
	sample []metrics.Sample
	cycles uint64
	stop   chan struct{}
	done   chan struct{}
}

// Start begins tuning toward a goal of at least floor bytes and at most
// headroom bytes over the live heap (0: the runtime's own, the live heap
// again). The caller owns the process's GC settings: start one Tuner, in
// main, and Stop it before exiting.
func Start(floor, headroom uint64) *Tuner {
	t := &Tuner{floor: floor, headroom: headroom, percent: 100,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}},
		stop:   make(chan struct{}), done: make(chan struct{})}
	t.before = debug.SetGCPercent(100)
	t.tune()
	go t.loop()
	return t
}

func (t *Tuner) loop() {
	defer close(t.done)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.tune()
		}
	}
}

// Percent is the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop ends tuning and restores GOGC as it was before Start.
func (t *Tuner) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	close(t.stop)
	t.mu.Unlock()
	<-t.done
	debug.SetGCPercent(t.before)
}

// tune sets GOGC for the live heap of the last collection, if there was
// one since the last call (or on the first).
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	metrics.Read(t.sample)
	var live, cycles uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if t.sample[1].Value.Kind() == metrics.KindUint64 {
		cycles = t.sample[1].Value.Uint64()
	}
	if cycles == t.cycles && t.cycles != 0 {
		return
	}
	t.cycles = cycles
	p := percentFor(t.floor, t.headroom, live)
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// percentFor is the GOGC whose goal, live x (1 + GOGC/100), is
// max(floor, live + clamp(headroom, live/4, live)); headroom 0 is live.
func percentFor(floor, headroom, live uint64) int {
	if live == 0 {
		return maxPercent
	}
	room := live
	if headroom > 0 {
		room = min(max(headroom, live/4), live)
	}
	goal := max(floor, live+room)
	p := (goal - live) * 100 / live
	return int(min(max(p, minPercent), maxPercent))
}
