// Package gctune keeps the garbage collector's heap goal at or above a
// floor.
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
// After every collection the tuner reads the live heap and sets GOGC so
// that the next goal is max(floor, 2 x live). It never lowers GOGC below
// 100, and a memory limit (GOMEMLIMIT) still applies on top.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent bounds GOGC when the live heap is tiny (a floor of 64 MiB
// over a 1 MiB heap would be 6,300%).
const maxPercent = 10000

// Tuner adjusts GOGC after each collection until Stop.
type Tuner struct {
	floor uint64

	mu      sync.Mutex
	stopped bool
	percent int // as last set
	before  int // GOGC when Start ran, restored by Stop
	sample  []metrics.Sample
}

// Start begins tuning toward floor bytes. The caller owns the process's
// GC settings: start one Tuner, in main, and Stop it before exiting.
func Start(floor uint64) *Tuner {
	t := &Tuner{floor: floor, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.before = debug.SetGCPercent(100)
	t.percent = 100
	t.tune()
	t.arm()
	return t
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
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	debug.SetGCPercent(t.before)
}

// sentinel is garbage from birth: its cleanup runs after the collection
// that finds it, which then arms the next one.
type sentinel struct{ _ [16]byte }

func (t *Tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *Tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC for the live heap now; false once stopped.
func (t *Tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := percentFor(t.floor, live)
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// percentFor is the GOGC whose goal, live x (1 + GOGC/100), reaches
// floor, and never less than 100.
func percentFor(floor, live uint64) int {
	if live == 0 {
		return maxPercent
	}
	if live >= floor/2 {
		return 100
	}
	p := floor*100/live - 100
	if p > maxPercent {
		return maxPercent
	}
	return int(max(p, 100))
}
