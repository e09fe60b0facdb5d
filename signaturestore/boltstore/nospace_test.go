package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/signet-registry/signet/signaturestore"
)

func TestNoSpaceMarksOnlyFullDisks(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "write", Path: "db", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("wrapped: %w", syscall.EDQUOT), true},
		{&fs.PathError{Op: "write", Path: "db", Err: syscall.EIO}, false},
		{errors.New("no space left on device"), false}, // text alone proves nothing
	}
	for _, tt := range tests {
		got := noSpace(tt.err)
		if errors.Is(got, signaturestore.ErrNoSpace) != tt.want {
			t.Errorf("noSpace(%v) = %v; ErrNoSpace want %v", tt.err, got, tt.want)
		}
		if !errors.Is(got, tt.err) {
			t.Errorf("noSpace(%v) lost the cause", tt.err)
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and
// unmounts it when the test ends. It needs root (CI runs as root).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; CI runs as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill: %v", err)
				}
				break
			}
		}
	}
	return p
}

// TestDiskFull: on a full file system, writes fail with ErrNoSpace (never
// a bare I/O error) and leave nothing behind; reads carry on; the
// database passes Check; and once space is freed the same writes succeed
// without reopening the store.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, 4<<20)
	s := mustOpenOptions(t, filepath.Join(dir, "signatures.db"), Options{})
	ctx := t.Context()
	k := key("ns/math", "img")
	stored := 0
	for ; stored < 5; stored++ {
		must(t, s.Put(ctx, k, sig(k, stored)))
	}
	filler := fill(t, dir)

	var failed []signaturestore.Signature
	for n := 100; n < 400 && len(failed) < 5; n++ {
		// Each record needs fresh pages (16 KiB of content), so the
		// free list cannot absorb them for long.
		sg := sig(k, n)
		sg.Content = append([]byte(fmt.Sprintf("%d:", n)), make([]byte, 16<<10)...)
		err := s.Put(ctx, k, sg)
		switch {
		case err == nil:
			stored++
		case errors.Is(err, signaturestore.ErrNoSpace) && errors.Is(err, syscall.ENOSPC):
			failed = append(failed, sg)
		default:
			t.Fatalf("Put on a full disk: %v; want ErrNoSpace", err)
		}
	}
	if len(failed) == 0 {
		t.Fatal("no write failed on a full file system")
	}
	got, err := s.List(ctx, k)
	if err != nil {
		t.Fatalf("List on a full disk: %v", err)
	}
	if len(got) != stored {
		t.Fatalf("List = %d signatures, %d were stored", len(got), stored)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check after failed commits: %v", err)
	}

	must(t, os.Remove(filler))
	for _, sg := range failed {
		if err := s.Put(ctx, k, sg); err != nil {
			t.Fatalf("Put after freeing space: %v", err)
		}
	}
	if got, err := s.List(ctx, k); err != nil || len(got) != stored+len(failed) {
		t.Fatalf("List after freeing space = %d, %v; want %d", len(got), err, stored+len(failed))
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check after recovery: %v", err)
	}
	path := s.Path()
	must(t, s.Close())
	if _, err := CheckFile(path, 0); err != nil {
		t.Fatalf("CheckFile after reopen: %v", err)
	}
}
