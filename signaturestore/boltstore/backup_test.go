package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// writeSnapshot takes a snapshot of s and saves it as a file.
func writeSnapshot(t *testing.T, s *Store, path string) {
	t.Helper()
	f, n, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != n {
		t.Fatalf("snapshot said %d bytes, file holds %d", n, len(b))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotUnderWrites: snapshots taken while 8 writers keep storing
// are each a database that passes CheckFile, and hold only signatures that
// were written, byte for byte; a final snapshot holds all of them.
func TestSnapshotUnderWrites(t *testing.T) {
	s := MustOpen(t)
	dir := t.TempDir()
	var (
		mu      sync.Mutex
		written = map[string]signaturestore.Signature{}
		wg      sync.WaitGroup
	)
	done := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := key(fmt.Sprintf("ns/w%d", w), "img")
			for n := range 60 {
				sg := sig(k, n)
				if err := s.Put(t.Context(), k, sg); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				written[k.Repository+" "+sg.Name] = sg
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	// Snapshots while the writers write (at least 3, at most 50).
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	for i := 0; i < 50 && (i < 3 || !finished()); i++ {
		path := filepath.Join(dir, fmt.Sprintf("snap%d.db", i))
		writeSnapshot(t, s, path)
		if _, err := CheckFile(path, time.Second); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	<-done
	final := filepath.Join(dir, "final.db")
	writeSnapshot(t, s, final)
	rep, err := CheckFile(final, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 8*60 || rep.Signatures != uint64(len(written)) || rep.Repositories != 8 || rep.SchemaVersion != SchemaVersion {
		t.Fatalf("report %+v; want %d signatures in 8 repositories", rep, 8*60)
	}
	restored := mustOpenOptions(t, final, Options{})
	got := 0
	for w := range 8 {
		k := key(fmt.Sprintf("ns/w%d", w), "img")
		sigs, err := restored.List(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		for _, sg := range sigs {
			want, ok := written[k.Repository+" "+sg.Name]
			if !ok || !bytes.Equal(want.Content, sg.Content) || want.Type != sg.Type {
				t.Fatalf("restored %s %q was never written as is", k, sg.Name)
			}
			got++
		}
	}
	if got != len(written) {
		t.Fatalf("restored %d signatures, wrote %d", got, len(written))
	}
	// The spool files are unlinked: nothing is left beside the database.
	left, err := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".snapshot-*"))
	if err != nil || len(left) != 0 {
		t.Fatalf("spool files left behind: %v %v", left, err)
	}
}

func TestSnapshotAfterClose(t *testing.T) {
	s := MustOpen(t)
	must(t, s.Close())
	if _, _, err := s.Snapshot(t.Context()); !errors.Is(err, signaturestore.ErrClosed) {
		t.Fatalf("Snapshot after Close = %v, want ErrClosed", err)
	}
}

func TestCheckFile(t *testing.T) {
	healthy := func(t *testing.T) string {
		s := MustOpen(t)
		k := key("ns/math", "img")
		for n := range 3 {
			must(t, s.Put(t.Context(), k, sig(k, n)))
		}
		must(t, s.BeginImageDelete(t.Context(), key("ns/other", "gone")))
		path := s.Path()
		must(t, s.Close())
		return path
	}
	rewrite := func(fn func(tx *bbolt.Tx) error) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := healthy(t)
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
			must(t, err)
			must(t, db.Update(fn))
			must(t, db.Close())
			return path
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		want    error // nil: passes
		text    string
	}{
		{"healthy", healthy, nil, ""},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.db") }, os.ErrNotExist, "no such file"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, nil, "not a regular file"},
		{"garbage", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "garbage.db")
			must(t, os.WriteFile(p, bytes.Repeat([]byte("not bbolt "), 2000), 0o600))
			return p
		}, ErrCorrupt, "invalid"},
		{"newer schema", rewrite(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
		}), ErrUnsupportedSchema, "upgrade signet"},
		{"count off", rewrite(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyCount, binary.BigEndian.AppendUint64(nil, 7))
		}), ErrCorrupt, "meta count is 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.prepare(t)
			before, _ := os.ReadFile(path)
			rep, err := CheckFile(path, time.Second)
			if tc.want == nil && tc.text == "" {
				if err != nil {
					t.Fatalf("CheckFile: %v", err)
				}
				if rep.Signatures != 3 || rep.Repositories != 1 || rep.PendingDeletes != 1 || rep.SchemaVersion != SchemaVersion || rep.Size == 0 {
					t.Fatalf("report %+v", rep)
				}
			} else {
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
					t.Fatalf("CheckFile = %v; want %v mentioning %q", err, tc.want, tc.text)
				}
				if tc.want != ErrCorrupt && errors.Is(err, ErrCorrupt) {
					t.Fatalf("CheckFile = %v: not corruption", err)
				}
			}
			// Read-only: the file is byte-identical afterwards.
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("CheckFile modified the file")
			}
		})
	}
}

// TestCheckFileLocked: while a store holds the file, CheckFile gives up
// after its timeout with ErrLocked instead of waiting forever.
func TestCheckFileLocked(t *testing.T) {
	s := MustOpen(t)
	start := time.Now()
	_, err := CheckFile(s.Path(), 100*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("CheckFile on an open store = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("CheckFile took %v to give up", d)
	}
}
