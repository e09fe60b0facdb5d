package keylock

import (
	"testing"
	"time"
)

func TestExclusiveBlocksShared(t *testing.T) {
	l := New(16)
	unlock := l.Lock("ns/a@sha256:1")
	got := make(chan struct{})
	go func() {
		u := l.RLock("ns/a@sha256:1")
		u()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("shared lock taken while exclusive held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("shared lock not granted after release")
	}
}

func TestSharedDoesNotBlockShared(t *testing.T) {
	l := New(1)
	u1 := l.RLock("a")
	u2 := l.RLock("b") // same stripe: must still be granted
	u1()
	u2()
}
