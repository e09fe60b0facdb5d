package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, headroom, live uint64
		want                  int
	}{
		{64 * mib, 0, 8 * mib, 700},  // goal 8 x 8 = 64 MiB
		{64 * mib, 0, 16 * mib, 300}, // goal 16 x 4
		{64 * mib, 0, 32 * mib, 100}, // half the floor: the runtime's own goal
		{64 * mib, 0, 200 * mib, 100},
		{64 * mib, 0, 30 * mib, 113}, // just under half
		{64 * mib, 0, 1024, maxPercent},
		{64 * mib, 0, 0, maxPercent},
		{64 * mib, 48 * mib, 8 * mib, 700},   // the floor still rules small heaps
		{64 * mib, 48 * mib, 40 * mib, 100},  // headroom = live, under the bound
		{64 * mib, 48 * mib, 84 * mib, 57},   // 84 + 48 MiB
		{64 * mib, 48 * mib, 1024 * mib, 25}, // never below GOGC=25
		{64 * mib, 48 * mib, 160 * mib, 30},  // 160 + 48
		{0, 48 * mib, 16 * mib, 100},         // no floor: headroom = live
	} {
		if got := percentFor(c.floor, c.headroom, c.live); got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.floor>>20, c.headroom>>20, c.live>>20, got, c.want)
		}
	}
}

func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitPercent collects until the tuner, re-armed after every collection,
// reports a GOGC for which ok holds.
func waitPercent(t *testing.T, tu *Tuner, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the cleanup runs after the cycle
		if p := tu.Percent(); ok(p) {
			return p
		}
	}
	t.Fatalf("GOGC stayed %d", tu.Percent())
	return 0
}

// TestTunerFollowsLiveHeap: with a small live heap the goal is raised to
// the floor; with a live heap over half the floor the runtime's own GOGC
// of 100 is back; Stop restores the GOGC from before Start.
func TestTunerFollowsLiveHeap(t *testing.T) {
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	const floor = 256 << 20
	tu := Start(floor, 0)

	p := waitPercent(t, tu, func(p int) bool { return p > 100 })
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if goal := readUint64("/gc/heap/goal:bytes"); goal < floor*9/10 {
		t.Fatalf("GOGC %d, heap goal %d MiB, want about the %d MiB floor", p, goal>>20, floor>>20)
	}
	if got := debug.SetGCPercent(-1); got != tu.Percent() {
		t.Fatalf("runtime GOGC %d, tuner says %d", got, tu.Percent())
	} else {
		debug.SetGCPercent(got)
	}

	// A live heap of 160 MiB, over half the floor.
	ballast := make([][]byte, 160)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
		ballast[i][0] = 1
	}
	waitPercent(t, tu, func(p int) bool { return p == 100 })
	tu.Stop()

	// The same heap under a 48 MiB headroom bound (and a floor it is
	// past): GOGC about 30.
	tu = Start(64<<20, 48<<20)
	p = waitPercent(t, tu, func(p int) bool { return p < 100 })
	if p < 25 || p > 35 {
		t.Fatalf("GOGC %d for a 160 MiB heap under a 48 MiB headroom bound; want about 30", p)
	}
	runtime.KeepAlive(ballast)
	tu.Stop()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("after Stop GOGC is %d, want the 150 from before Start", got)
	}
}
