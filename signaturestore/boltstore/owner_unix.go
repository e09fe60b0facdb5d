//go:build unix

package boltstore

import (
	"fmt"
	"os"
	"syscall"
)

// sameOwner gives the file at path the owner and group of like, so that an
// upgrade run as root does not lock out the user the server normally runs
// as.
func sameOwner(path string, like os.FileInfo) error {
	st, ok := like.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give %s the owner %d:%d of the database file (run the upgrade as that user or as root): %w", path, st.Uid, st.Gid, err)
	}
	return nil
}
