//go:build !linux

package registry

import (
	"fmt"
	"os"
)

// syncFS off Linux syncs dir itself only: there is no portable syncfs.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
