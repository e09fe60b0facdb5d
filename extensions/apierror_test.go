package extensions

import (
	"context"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// TestAPIError: domain errors, however deeply wrapped, become their codes;
// anything unrecognised is a 500.
func TestAPIError(t *testing.T) {
	diskFull := fmt.Errorf("store signature x: put signature: commit: %w: %w",
		signaturestore.ErrNoSpace, &fs.PathError{Op: "write", Path: "signatures.db", Err: syscall.ENOSPC})
	tests := []struct {
		name string
		err  error
		want errcode.Code
	}{
		{"disk full", diskFull, errcode.StorageFull},
		{"exists", fmt.Errorf("a: %w", signaturestore.ErrExists), errcode.SignatureExists},
		{"limit", fmt.Errorf("a: %w", signaturestore.ErrLimit), errcode.SignatureLimit},
		{"closed", fmt.Errorf("a: %w", signaturestore.ErrClosed), errcode.Unavailable},
		{"cancelled", fmt.Errorf("a: %w", context.Canceled), errcode.Unavailable},
		{"store unreachable", fmt.Errorf("put signature x: %w: etcd did not answer in time", signaturestore.ErrUnavailable), errcode.StoreUnavailable},
		{"manifest", ErrManifestUnknown, errcode.ManifestUnknown},
		{"too large", errTooLarge{10}, errcode.RequestTooLarge},
		{"api error", errcode.Denied.WithDetail(nil), errcode.Denied},
		// A raw I/O error is not a full disk unless the store says so.
		{"other io", &fs.PathError{Op: "write", Path: "signatures.db", Err: syscall.EIO}, errcode.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := APIError(tt.err).Code; got != tt.want {
				t.Fatalf("APIError(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
	if s := APIError(diskFull).Code.Status(); s != 507 {
		t.Fatalf("disk full is sent as %d, want 507", s)
	}
	if s := APIError(signaturestore.ErrUnavailable).Code.Status(); s != 503 {
		t.Fatalf("an unreachable store is sent as %d, want 503", s)
	}
}
