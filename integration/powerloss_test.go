package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A process kill leaves the kernel's page cache alone, so it cannot tell a
// store that fsyncs from one that does not: every write the process made
// survives it. The power-cut test can. The data directory lives on an ext4
// file system on a loop device over an image file. To cut the power, the
// server is frozen (SIGSTOP; once every thread has stopped it sends
// nothing more) and the image file is copied: the copy holds what had
// reached the device, which is what was synced plus whatever writeback
// happened to flush, and none of the dirty pages still in the ext4 page
// cache. The server is then killed, and the next round mounts the copy
// (ext4 replays its journal, as after a real power loss).

const (
	powerDefaultRounds = 5
	// The image is sparse and copied sparse, so its size costs nothing
	// until used; the registry tree grows by a few MiB a round.
	powerDiskBytes = 1 << 30
)

// loopDisk is an ext4 file system on a loop device over an image file.
type loopDisk struct {
	image, dev, mnt string
}

func run0(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attachDisk sets up image on a loop device and mounts it on mnt.
func attachDisk(t *testing.T, image, mnt string) *loopDisk {
	t.Helper()
	d := &loopDisk{image: image, mnt: mnt}
	d.dev = run0(t, "losetup", "--find", "--show", image)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "ext4", d.dev, mnt).CombinedOutput(); err != nil {
		_ = exec.Command("losetup", "-d", d.dev).Run()
		t.Fatalf("mount %s: %v: %s", d.dev, err, out)
	}
	t.Cleanup(d.detach)
	return d
}

// detach unmounts and frees the loop device; safe to call twice.
func (d *loopDisk) detach() {
	if d.dev == "" {
		return
	}
	_ = exec.Command("umount", d.mnt).Run()
	_ = exec.Command("losetup", "-d", d.dev).Run()
	d.dev = ""
}

// powerCut is the crash method of the power-cut test.
type powerCut struct {
	tmp   string
	disk  *loopDisk
	round int
}

func (p *powerCut) name() string    { return "power cut" }
func (p *powerCut) dataDir() string { return filepath.Join(p.disk.mnt, "data") }

func (p *powerCut) crash(t *testing.T, s *server) {
	t.Helper()
	pid := s.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, pid)
	// The power goes: the disk is what the image file holds now.
	p.round++
	next := filepath.Join(p.tmp, fmt.Sprintf("disk%03d.img", p.round))
	run0(t, "cp", "--sparse=always", p.disk.image, next)
	if err := s.stop(syscall.SIGKILL); err == nil {
		t.Fatal("server exited cleanly instead of being killed")
	}
	// The old disk (which umount now flushes) is done with; the next
	// start mounts what the power cut left.
	p.disk.detach()
	if err := os.Remove(p.disk.image); err != nil {
		t.Fatal(err)
	}
	p.disk = attachDisk(t, next, filepath.Join(p.tmp, fmt.Sprintf("mnt%03d", p.round)))
}

// waitStopped waits until every thread of pid is stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of %d: %v", pid, err)
		}
		stopped := 0
		for _, st := range tasks {
			b, err := os.ReadFile(st)
			if err != nil {
				continue
			}
			// Field 3, after "pid (comm) ", is the state; T is stopped.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop: %d of %d threads stopped", pid, stopped, len(tasks))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPowerLoss runs the crash-consistency rounds with a simulated power
// cut instead of kill -9, so that a write acknowledged before it was
// synced would be lost and caught. SIGNET_POWERLOSS_ROUNDS sets the
// rounds (5 by default; make reliability runs 50).
func TestPowerLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the power-cut test mounts a loop device, which needs root; CI runs as root")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (util-linux, e2fsprogs)", tool)
		}
	}
	tmp := t.TempDir()
	image := filepath.Join(tmp, "disk000.img")
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(powerDiskBytes); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run0(t, "mkfs.ext4", "-q", "-F", image)
	p := &powerCut{tmp: tmp, disk: attachDisk(t, image, filepath.Join(tmp, "mnt000"))}
	runCrashRounds(t, tmp, envInt(t, "SIGNET_POWERLOSS_ROUNDS", shortOr(powerDefaultRounds, 2)), p)
}
