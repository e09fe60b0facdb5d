//go:build !unix

package boltstore

import "os"

// sameOwner: file ownership is not carried over on this platform.
func sameOwner(string, os.FileInfo) error { return nil }
