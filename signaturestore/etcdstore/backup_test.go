package etcdstore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/etcdtest"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// snapshotToFile downloads a snapshot the way the backup endpoint serves
// it and checks its size.
func snapshotToFile(t *testing.T, s *Store) string {
	t.Helper()
	rc, size, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, rc)
	if err != nil || n != size {
		t.Fatalf("copied %d of %d bytes: %v", n, size, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotIsABoltBackup: the snapshot of an etcd store is a bbolt
// database that passes boltstore's check and holds every signature (with
// its creation time and status, in order), the pending manifest deletes
// and the referrers index, confirmed and pending.
func TestSnapshotIsABoltBackup(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	ctx := t.Context()
	keys := []signaturestore.ImageKey{key("ns/math", "a"), key("ns/math-voila", "a"), key("ns/math/sub", "b"), key("docker.io/library/nginx", "c")}
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for i, k := range keys {
		for n := range i + 2 {
			sg := sig(k, 100-n)
			sg.Created = created.Add(time.Duration(n) * time.Second)
			if err := s.Put(ctx, k, sg); err != nil {
				t.Fatal(err)
			}
		}
	}
	status := &signaturestore.Status{ImageIdentity: "registry.example.com/ns/math:v1", IssuedBy: &signaturestore.Issuer{CommonName: "ABCD"}}
	if err := s.SetStatus(ctx, keys[1], sig(keys[1], 99).Name, status); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginImageDelete(ctx, keys[2]); err != nil {
		t.Fatal(err)
	}
	subject := keys[0].Digest
	confirmed := signaturestore.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString("c"), Size: 10, ArtifactType: "application/x-sig"}
	pending := signaturestore.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString("p"), Size: 11}
	for _, d := range []signaturestore.Descriptor{confirmed, pending} {
		if err := s.BeginReferrer(ctx, "ns/math", subject, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/math", Digest: confirmed.Digest}, true); err != nil {
		t.Fatal(err)
	}

	path := snapshotToFile(t, s)
	rep, err := boltstore.CheckFile(path, time.Second)
	if err != nil {
		t.Fatalf("boltstore.CheckFile on the snapshot: %v", err)
	}
	if rep.Signatures != 2+3+4+5 || rep.PendingDeletes != 1 {
		t.Fatalf("snapshot holds %d signatures and %d pending deletes, want 14 and 1", rep.Signatures, rep.PendingDeletes)
	}

	want := map[signaturestore.ImageKey][]signaturestore.Signature{}
	if err := s.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		want[k] = sigs
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := map[signaturestore.ImageKey][]signaturestore.Signature{}
	if err := b.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		got[k] = sigs
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("snapshot has %d images, etcd %d", len(got), len(want))
	}
	for k, ws := range want {
		gs := got[k]
		if !slices.Equal(names(gs), names(ws)) {
			t.Fatalf("%s: snapshot names %q, etcd %q", k, names(gs), names(ws))
		}
		for i := range ws {
			if string(gs[i].Content) != string(ws[i].Content) || !gs[i].Created.Equal(ws[i].Created) || (gs[i].Status == nil) != (ws[i].Status == nil) {
				t.Fatalf("%s %s differs in the snapshot: %+v vs %+v", k, ws[i].Name, gs[i], ws[i])
			}
		}
	}
	if st := got[keys[1]][1].Status; st == nil || st.ImageIdentity != status.ImageIdentity {
		t.Fatalf("status not in the snapshot: %+v", got[keys[1]][1])
	}
	deletes, err := b.PendingImageDeletes(ctx)
	if err != nil || len(deletes) != 1 || deletes[0] != keys[2] {
		t.Fatalf("pending deletes in the snapshot: %v %v", deletes, err)
	}
	refs, err := b.Referrers(ctx, "ns/math", subject, "", 0)
	if err != nil || len(refs) != 1 || refs[0].Digest != confirmed.Digest || refs[0].ArtifactType != confirmed.ArtifactType {
		t.Fatalf("referrers in the snapshot: %+v %v", refs, err)
	}
	pend, err := b.PendingReferrers(ctx)
	if err != nil || len(pend) != 1 || pend[0].Digest != pending.Digest {
		t.Fatalf("pending referrers in the snapshot: %+v %v", pend, err)
	}
}

// TestSnapshotConsistentUnderWrites: a writer alternates between images A
// and B (A first), and A holds more signatures than one page of the walk,
// so B is read on a later page. At any one revision A has as many
// signatures as B or one more; a snapshot that read its pages at different
// revisions would show B ahead.
func TestSnapshotConsistentUnderWrites(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	writer := mustOpen(t, srv, Options{Prefix: s.Prefix()})
	ctx := t.Context()
	a, b := key("ns/a", "a"), key("ns/b", "b")
	for n := range 2 * referrersPage {
		if err := s.Put(ctx, a, sig(a, 10000+n)); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		for n := 0; n < 5000 && wctx.Err() == nil; n++ {
			if err := writer.Put(wctx, a, sig(a, n)); err != nil {
				werr = err
				return
			}
			if err := writer.Put(wctx, b, sig(b, n)); err != nil {
				werr = err
				return
			}
		}
	})
	time.Sleep(100 * time.Millisecond)
	var snaps []string
	for range 3 {
		snaps = append(snaps, snapshotToFile(t, s))
	}
	stop()
	wg.Wait()
	if werr != nil && !errors.Is(werr, context.Canceled) {
		t.Fatal(werr)
	}
	for i, path := range snaps {
		r, err := boltstore.OpenReader(path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[signaturestore.ImageKey]int{}
		err = r.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
			counts[k] = len(sigs)
			return nil
		})
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		na, nb := counts[a]-2*referrersPage, counts[b]
		if na != nb && na != nb+1 {
			t.Fatalf("snapshot %d: A has %d new signatures and B %d; not one state", i, na, nb)
		}
		t.Logf("snapshot %d: B held %d signatures, A %d past its first %d", i, nb, na, 2*referrersPage)
	}
}

// TestSnapshotOfClosedStore fails with ErrClosed and leaves no spool file.
func TestSnapshotOfClosedStore(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	spool := t.TempDir()
	s := mustOpen(t, srv, Options{SpoolDir: spool})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Snapshot(t.Context()); !errors.Is(err, signaturestore.ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 0 {
		t.Fatalf("spool directory not empty: %v", entries)
	}
}
