//go:build !linux

package lookaside

import "errors"

// exchange is Linux-only; swapDir falls back to two renames.
func exchange(a, b string) error { return errors.New("atomic exchange not supported on this system") }

// lockDir is a no-op off Linux: do not run two exports into one
// directory at once there.
func lockDir(string) (func(), error) { return func() {}, nil }
