package lookaside

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// exchange atomically swaps two paths (renameat2 RENAME_EXCHANGE, Linux
// 3.15+; ext4, xfs, btrfs, tmpfs and overlayfs support it).
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// lockDir takes an exclusive advisory lock on path, failing at once if
// another export holds it. The lock goes with the process, so a crashed
// export never leaves the directory locked.
func lockDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another export-sigstore is writing this directory (%s is locked)", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}
