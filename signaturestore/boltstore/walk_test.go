package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-registry/signet/signaturestore"
)

func TestOpenReader(t *testing.T) {
	s := MustOpen(t)
	k := key("ns/app", "img")
	for n := range 3 {
		if err := s.Put(t.Context(), k, sig(k, n)); err != nil {
			t.Fatal(err)
		}
	}

	// While the store holds the file, a reader waits, then reports the
	// lock rather than hanging or reading a file in flux.
	if _, err := OpenReader(s.Path(), 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenReader on a held database: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}

	r, err := OpenReader(s.Path(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Readers share the lock.
	r2, err := OpenReader(s.Path(), time.Second)
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	_ = r2.Close()
	var walked []signaturestore.ImageKey
	if err := r.Walk(t.Context(), func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		walked = append(walked, key)
		if len(sigs) != 3 || sigs[2].Name != sig(k, 2).Name {
			t.Errorf("walked signatures %v", sigs)
		}
		return nil
	}); err != nil || len(walked) != 1 || walked[0] != k {
		t.Fatalf("Walk visited %v (%v)", walked, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("a reader changed the database file")
	}
}

func TestOpenReaderRefuses(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte("not a database at all, just text long enough to be read"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"missing":     filepath.Join(dir, "none.db"),
		"not bbolt":   notDB,
		"a directory": dir,
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := OpenReader(path, 100*time.Millisecond)
			if err == nil {
				_ = r.Close()
				t.Fatal("opened")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenReader created a missing file: %v", err)
	}
}
