package boltstore

import (
	"bytes"
	"context"
	_ "crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/storetest"
)

// MustOpen opens a store on a new file in t.TempDir() and closes it when
// the test ends.
func MustOpen(t testing.TB) *Store {
	t.Helper()
	return mustOpenOptions(t, filepath.Join(t.TempDir(), "signatures.db"), Options{})
}

func mustOpenOptions(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, signaturestore.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunOpener(t, storetest.Opener{
		Open: func(t *testing.T, limits signaturestore.Limits) signaturestore.Store {
			return mustOpenOptions(t, filepath.Join(t.TempDir(), "signatures.db"), Options{Limits: limits})
		},
		Reopen: func(t *testing.T, closed signaturestore.Store, limits signaturestore.Limits) signaturestore.Store {
			return mustOpenOptions(t, closed.(*Store).Path(), Options{Limits: limits})
		},
	})
}

func key(repo, seed string) signaturestore.ImageKey {
	return signaturestore.ImageKey{Repository: repo, Digest: digest.FromString(seed)}
}

func sig(k signaturestore.ImageKey, n int) signaturestore.Signature {
	return signaturestore.Signature{
		Name:    fmt.Sprintf("%s@%032x", k.Digest, n),
		Type:    signaturestore.TypeAtomic,
		Content: []byte(fmt.Sprintf("content %d of %s", n, k)),
	}
}

// rawDB closes s and opens its file with bbolt directly.
func rawDB(t *testing.T, s *Store) *bbolt.DB {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// corruptTree closes s, applies corrupt to its buckets in one raw update,
// and returns the database's path.
func corruptTree(t *testing.T, s *Store, corrupt func(t *testing.T, tx *bbolt.Tx, tr *tree)) string {
	t.Helper()
	db := rawDB(t, s)
	must(t, db.Update(func(tx *bbolt.Tx) error {
		tr, err := openTree(tx)
		must(t, err)
		corrupt(t, tx, tr)
		return nil
	}))
	path := db.Path()
	must(t, db.Close())
	return path
}

func TestSchemaVersionWritten(t *testing.T) {
	s := MustOpen(t)
	db := rawDB(t, s)
	err := db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("no meta bucket")
		}
		if v := meta.Get(keySchema); len(v) != 4 || binary.BigEndian.Uint32(v) != SchemaVersion {
			return fmt.Errorf("schema key = %x, want %d", v, SchemaVersion)
		}
		if v := meta.Get(keyCount); len(v) != 8 || binary.BigEndian.Uint64(v) != 0 {
			return fmt.Errorf("count key = %x, want 0", v)
		}
		for _, b := range schemaBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("no %s bucket", b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(tx *bbolt.Tx) error
		want    error
		text    string
	}{
		{"newer schema", schemaValue(binary.BigEndian.AppendUint32(nil, SchemaVersion+1)), ErrUnsupportedSchema, "schema version 3, this build of signet supports version 2; upgrade signet"},
		{"schema zero", schemaValue(binary.BigEndian.AppendUint32(nil, 0)), ErrUnsupportedSchema, "schema version 0"},
		{"malformed schema", schemaValue([]byte{1}), ErrCorrupt, "schema version key"},
		{"foreign database", func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucket([]byte("someone-else"))
			return err
		}, ErrCorrupt, "not a signet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signatures.db")
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.prepare); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			s, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded; want %v", tc.want)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Open error %q; want %v mentioning %q", err, tc.want, tc.text)
			}
			// The refused file is released and left as it was.
			db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("file still locked after refused Open: %v", err)
			}
			defer db.Close()
			_ = db.View(func(tx *bbolt.Tx) error {
				if tx.Bucket(bucketImages) != nil || tx.Bucket(bucketReposV1) != nil {
					t.Errorf("refused Open wrote to the file")
				}
				return nil
			})
		})
	}
}

func schemaValue(v []byte) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyCount, make([]byte, 8)); err != nil {
			return err
		}
		return meta.Put(keySchema, v)
	}
}

func TestOpenLocked(t *testing.T) {
	s := MustOpen(t)
	_, err := Open(s.Path(), Options{OpenTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v; want a lock timeout", err)
	}
}

// countingObserver counts commits and the requests they answered.
type countingObserver struct {
	commits  atomic.Int64
	requests atomic.Int64
}

func (o *countingObserver) ObserveCommit(_ time.Duration, batchSize int) {
	o.commits.Add(1)
	o.requests.Add(int64(batchSize))
}

func TestGroupCommitBatches(t *testing.T) {
	obs := &countingObserver{}
	s := mustOpenOptions(t, filepath.Join(t.TempDir(), "signatures.db"), Options{Observer: obs})
	const puts = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, puts)
	for i := range puts {
		wg.Go(func() {
			<-start
			k := key("ns/math", fmt.Sprint(i%8))
			errs[i] = s.Put(t.Context(), k, sig(k, i))
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	commits, requests := obs.commits.Load(), obs.requests.Load()
	t.Logf("%d puts in %d commits", puts, commits)
	if requests != puts {
		t.Errorf("observer saw %d requests, want %d", requests, puts)
	}
	if commits >= puts/2 {
		t.Errorf("%d concurrent puts took %d commits; group commit should need far fewer", puts, commits)
	}
	if n, err := s.Count(t.Context()); err != nil || n != puts {
		t.Fatalf("Count = %d, %v; want %d", n, err, puts)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check after concurrent puts: %v", err)
	}
}

// TestBatchIsolation drives one batch by hand: each request gets its own
// verdict, a rejected request changes nothing, and a request that fails
// half-way through its writes is rolled back alone.
func TestBatchIsolation(t *testing.T) {
	obs := &countingObserver{}
	s := mustOpenOptions(t, filepath.Join(t.TempDir(), "signatures.db"), Options{
		Observer: obs,
		Limits:   signaturestore.Limits{MaxPerImage: 2},
	})
	img1, img2, img3 := key("ns/math", "1"), key("ns/math", "2"), key("ns/math-voila", "3")
	put := func(k signaturestore.ImageKey, sg signaturestore.Signature) func(*bbolt.Tx) error {
		op, err := s.preparePut(k, sg)
		if err != nil {
			t.Fatal(err)
		}
		return op.apply
	}
	dupName := sig(img1, 1)
	dupName.Content = []byte("other content")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	boom := errors.New("boom")
	halfWrite := func(tx *bbolt.Tx) error {
		// Writes, then fails: the write must not survive.
		if err := tx.Bucket(bucketImages).Put([]byte("half/written"), u64(1)); err != nil {
			return wrote(err)
		}
		return wrote(boom)
	}

	reqs := []struct {
		name  string
		ctx   context.Context
		apply func(*bbolt.Tx) error
		want  error
	}{
		{"put A", context.Background(), put(img1, sig(img1, 1)), nil},
		{"duplicate name", context.Background(), put(img1, dupName), signaturestore.ErrExists},
		{"half write", context.Background(), halfWrite, boom},
		{"put C", context.Background(), put(img1, sig(img1, 3)), nil},
		{"over limit", context.Background(), put(img1, sig(img1, 4)), signaturestore.ErrLimit},
		{"cancelled", cancelled, put(img2, sig(img2, 5)), context.Canceled},
		{"delete missing", context.Background(), deleteOp(img3, sig(img3, 1).Name), signaturestore.ErrNotFound},
		{"put F", context.Background(), put(img2, sig(img2, 6)), nil},
	}
	batch := make([]*request, len(reqs))
	for i, r := range reqs {
		batch[i] = &request{ctx: r.ctx, apply: r.apply, done: make(chan error, 1)}
	}
	s.commit(slices.Clone(batch))
	for i, r := range reqs {
		select {
		case err := <-batch[i].done:
			if r.want == nil && err != nil || !errors.Is(err, r.want) {
				t.Errorf("%s: %v, want %v", r.name, err, r.want)
			}
		default:
			t.Errorf("%s: not answered", r.name)
		}
	}
	if c, n := obs.commits.Load(), obs.requests.Load(); c != 1 || n != int64(len(reqs)-1) {
		t.Errorf("observer saw %d commits of %d requests; want 1 of %d", c, n, len(reqs)-1)
	}
	for _, c := range []struct {
		key  signaturestore.ImageKey
		want []string
	}{{img1, []string{sig(img1, 1).Name, sig(img1, 3).Name}}, {img2, []string{sig(img2, 6).Name}}, {img3, nil}} {
		got, err := s.List(t.Context(), c.key)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range got {
			names = append(names, g.Name)
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("List(%s) = %q, want %q", c.key, names, c.want)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v (the half write or an empty bucket survived?)", err)
	}
}

// TestCommitFailure: when the commit itself fails, every request in the
// batch gets the error, including one whose rejection depended on an
// earlier request of the lost batch, and nothing is stored.
func TestCommitFailure(t *testing.T) {
	s := MustOpen(t)
	k := key("ns/math", "img")
	big := sig(k, 1)
	big.Content = make([]byte, 4<<20)
	dup := big
	dup.Name = sig(k, 2).Name
	var batch []*request
	for _, sg := range []signaturestore.Signature{big, dup} {
		op, err := s.preparePut(k, sg)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, &request{ctx: context.Background(), apply: op.apply, done: make(chan error, 1)})
	}
	// The writer goroutine is idle, and commit runs right here, so
	// nothing else reads MaxSize meanwhile.
	s.db.MaxSize = 1 << 20
	s.commit(slices.Clone(batch))
	s.db.MaxSize = 0
	for i, r := range batch {
		if err := <-r.done; !errors.Is(err, berrors.ErrMaxSizeReached) || !strings.Contains(err.Error(), "commit") {
			t.Errorf("request %d: %v, want the wrapped commit error", i, err)
		}
	}
	if got, err := s.List(t.Context(), k); err != nil || len(got) != 0 {
		t.Fatalf("List after failed commit = %d signatures, %v; want none", len(got), err)
	}
	// The store carries on.
	if err := s.Put(t.Context(), k, big); err != nil {
		t.Fatalf("Put after failed commit: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyBucketsRemoved(t *testing.T) {
	s := MustOpen(t)
	ctx := t.Context()
	a, b := key("ns/math", "a"), key("ns/math", "b")
	for _, k := range []signaturestore.ImageKey{a, b} {
		for n := range 2 {
			if err := s.Put(ctx, k, sig(k, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Delete(ctx, a, sig(a, 0).Name); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, a, sig(a, 1).Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAll(ctx, b); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, s)
	_ = db.View(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketImages, bucketIndex, bucketSigs} {
			if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
				t.Errorf("%s bucket still holds %q after every signature was deleted", name, k)
			}
		}
		return nil
	})
}

// TestCheckFindsCorruption breaks each invariant of the layout in turn;
// Check and CheckFile must name the problem. The store holds image k
// (id 1) with signatures 0 and 1 (sequence numbers 1 and 2) and image o
// (id 2) with signature 0 (sequence number 3).
func TestCheckFindsCorruption(t *testing.T) {
	k, o := key("ns/math", "img"), key("ns/math-voila", "img")
	// rewrite re-encodes the record at seq with fn applied.
	rewrite := func(t *testing.T, tr *tree, img signaturestore.ImageKey, seq uint64, fn func(id *uint64, s *signaturestore.Signature)) {
		t.Helper()
		id, sg, err := decodeRecord(tr.sigs.Get(u64(seq)), img.Digest)
		must(t, err)
		fn(&id, &sg)
		must(t, tr.sigs.Put(u64(seq), appendRecord(nil, id, img.Digest, sg.Name, sg.Type, sg.Content, sg.Created, nil)))
	}
	// entry is the index entry of sig(img, n) with the content key of
	// sig(img, c).
	entry := func(img signaturestore.ImageKey, n, c int, seq uint64) []byte {
		return appendEntry(nil, contentKey(signaturestore.TypeAtomic, sig(img, c).Content), seq, appendNameKey(nil, img.Digest, sig(img, n).Name))
	}
	size := func(img signaturestore.ImageKey, ns ...int) uint64 {
		var n uint64
		for _, i := range ns {
			n += uint64(len(sig(img, i).Content))
		}
		return n
	}
	setIndex := func(t *testing.T, tr *tree, id, size uint64, entries ...[]byte) {
		t.Helper()
		must(t, tr.writeIndex(&image{idKey: u64(id)}, size, entries...))
	}
	tests := []struct {
		name    string
		corrupt func(t *testing.T, tx *bbolt.Tx, tr *tree)
		text    string
	}{
		{"total count", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.meta.Put(keyCount, u64(99)))
		}, "meta count"},
		{"missing bucket", func(t *testing.T, tx *bbolt.Tx, _ *tree) {
			must(t, tx.DeleteBucket(bucketIndex))
		}, "missing one of the buckets"},
		{"record", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.sigs.Put(u64(1), []byte{2, 0, 200}))
		}, "record"},
		{"record version", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			v := bytes.Clone(tr.sigs.Get(u64(1)))
			v[0] = 9
			must(t, tr.sigs.Put(u64(1), v))
		}, "unknown version 9"},
		{"record of another image", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			rewrite(t, tr, k, 2, func(id *uint64, _ *signaturestore.Signature) { *id = 2 })
		}, "belongs to image id 2, indexed under 1"},
		{"index leads elsewhere", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, size(k, 0, 1), entry(k, 0, 0, 2), entry(k, 1, 1, 2))
		}, "leads to signature"},
		{"index beyond the sequence", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, size(k, 0, 1), entry(k, 0, 0, 1), entry(k, 1, 1, 7))
		}, "outside the sigs sequence"},
		{"record listed twice", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, size(k, 0, 0), entry(k, 0, 0, 1), entry(k, 0, 0, 1))
		}, "repeats the record"},
		{"index entry missing", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, size(k, 0), entry(k, 0, 0, 1))
		}, "orphans"},
		{"wrong content key", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, size(k, 0, 1), entry(k, 0, 0, 1), entry(k, 1, 7, 2))
		}, "wrong content key"},
		{"duplicate content", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			rewrite(t, tr, k, 2, func(_ *uint64, s *signaturestore.Signature) { s.Content = sig(k, 0).Content })
			setIndex(t, tr, 1, size(k, 0, 0), entry(k, 0, 0, 1), entry(k, 1, 0, 2))
		}, "repeats the type and content"},
		{"content bytes", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 1, 5, entry(k, 0, 0, 1), entry(k, 1, 1, 2))
		}, "index says 5 content bytes"},
		{"malformed index", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.index.Put(u64(1), []byte{0x80}))
		}, "index content bytes"},
		{"unknown name tag", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			e := entry(k, 1, 1, 2)
			e[contentKeyLen+1] = 7
			setIndex(t, tr, 1, size(k, 0, 1), entry(k, 0, 0, 1), e)
		}, "unknown name tag"},
		{"index missing", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.index.Delete(u64(2)))
		}, "index missing"},
		{"orphan record", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.sigs.Put(u64(3000), bytes.Clone(tr.sigs.Get(u64(1)))))
		}, "orphans"},
		{"orphan index", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			setIndex(t, tr, 3000, size(k, 0), entry(k, 0, 0, 1))
		}, "orphans"},
		{"image id beyond the sequence", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.images.Put(imageKeyBytes(o), u64(3000)))
			must(t, tr.index.Put(u64(3000), bytes.Clone(tr.index.Get(u64(2)))))
			must(t, tr.index.Delete(u64(2)))
		}, "outside the images sequence"},
		{"shared image id", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.images.Put(imageKeyBytes(key("ns/third", "img")), u64(2)))
		}, "orphans or shared image ids"},
		{"empty image", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			id, err := tr.images.NextSequence()
			must(t, err)
			must(t, tr.images.Put(imageKeyBytes(key("ns/empty", "x")), u64(id)))
			setIndex(t, tr, id, 0)
		}, "image without signatures"},
		{"malformed image key", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.images.Put([]byte("ns/no-end"), u64(1)))
		}, "malformed image key"},
		{"invalid digest in image key", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.images.Put(appendImageKey(nil, signaturestore.ImageKey{Repository: "ns/x", Digest: "sha256:../etc"}), u64(1)))
		}, "image key"},
		{"nested bucket", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			_, err := tr.images.CreateBucket([]byte("stray"))
			must(t, err)
		}, "where an image belongs"},
		{"journal", func(t *testing.T, _ *bbolt.Tx, tr *tree) {
			must(t, tr.journal.Put([]byte{5, 'x'}, make([]byte, 8)))
		}, "journal key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := MustOpen(t)
			for n := range 2 {
				must(t, s.Put(t.Context(), k, sig(k, n)))
			}
			must(t, s.Put(t.Context(), o, sig(o, 0)))
			if err := s.Check(); err != nil {
				t.Fatalf("Check before corruption: %v", err)
			}
			path := corruptTree(t, s, tc.corrupt)
			// A missing bucket is refused by Open already.
			s, err := Open(path, Options{})
			if err == nil {
				t.Cleanup(func() { _ = s.Close() })
				err = s.Check()
				must(t, s.Close())
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Check = %v; want ErrCorrupt mentioning %q", err, tc.text)
			}
			if _, err := CheckFile(path, time.Second); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("CheckFile = %v; want ErrCorrupt mentioning %q", err, tc.text)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckAfterClose(t *testing.T) {
	s := MustOpen(t)
	must(t, s.Close())
	if err := s.Check(); !errors.Is(err, signaturestore.ErrClosed) {
		t.Fatalf("Check after Close = %v, want ErrClosed", err)
	}
}

func TestReferrersConformance(t *testing.T) {
	storetest.RunReferrers(t, func(t *testing.T) signaturestore.ReferrersIndex {
		return MustOpen(t)
	})
}

// TestListFollowsSequenceRuns: List reads an image's records by stepping
// through runs of consecutive sequence numbers and seeking across gaps;
// both give the stored signatures in order, and a record missing from the
// middle of a run is corruption, not a neighbour's record.
func TestListFollowsSequenceRuns(t *testing.T) {
	s := MustOpen(t)
	a, b := key("ns/runs", "a"), key("ns/runs", "b")
	// a: 1 2 3, b: 4, a: 5, b: 6 7, a: 8 9
	for _, p := range []struct {
		k signaturestore.ImageKey
		n int
	}{{a, 0}, {a, 1}, {a, 2}, {b, 0}, {a, 3}, {b, 1}, {b, 2}, {a, 4}, {a, 5}} {
		must(t, s.Put(t.Context(), p.k, sig(p.k, p.n)))
	}
	for k, n := range map[signaturestore.ImageKey]int{a: 6, b: 3} {
		got, err := s.List(t.Context(), k)
		must(t, err)
		if len(got) != n {
			t.Fatalf("%s: %d signatures, want %d", k, len(got), n)
		}
		for i, g := range got {
			if w := sig(k, i); g.Name != w.Name || !bytes.Equal(g.Content, w.Content) {
				t.Fatalf("%s signature %d: %s, want %s", k, i, g.Name, w.Name)
			}
		}
	}
	// Remove the record in the middle of a's first run (sequence 2).
	db := rawDB(t, s)
	must(t, db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketSigs).Delete(u64(2)) }))
	path := db.Path()
	must(t, db.Close())
	s2, err := Open(path, Options{})
	must(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	if _, err := s2.List(t.Context(), a); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing signature 2") {
		t.Fatalf("List with sequence 2 gone = %v; want ErrCorrupt about signature 2", err)
	}
	if got, err := s2.List(t.Context(), b); err != nil || len(got) != 3 {
		t.Fatalf("List of the other image = %d, %v", len(got), err)
	}
}

// TestVisitListRefusesCorruption: the fast path reads what List reads and
// refuses what List refuses.
func TestVisitListRefusesCorruption(t *testing.T) {
	k := key("ns/visit", "img")
	tests := []struct {
		name    string
		corrupt func(t *testing.T, tr *tree)
		text    string
	}{
		{"record of another image", func(t *testing.T, tr *tree) {
			id, sg, err := decodeRecord(tr.sigs.Get(u64(2)), k.Digest)
			must(t, err)
			must(t, tr.sigs.Put(u64(2), appendRecord(nil, id+1, k.Digest, sg.Name, sg.Type, sg.Content, sg.Created, nil)))
		}, "belongs to image id 2, indexed under 1"},
		{"record missing", func(t *testing.T, tr *tree) {
			must(t, tr.sigs.Delete(u64(2)))
		}, "missing signature 2"},
		{"malformed record", func(t *testing.T, tr *tree) {
			must(t, tr.sigs.Put(u64(1), []byte{recordVersion, 0, 200}))
		}, "signature 1"},
		{"malformed index", func(t *testing.T, tr *tree) {
			v := bytes.Clone(tr.index.Get(u64(1)))
			must(t, tr.index.Put(u64(1), append(v, 0x01)))
		}, "index"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := MustOpen(t)
			for n := range 2 {
				must(t, s.Put(t.Context(), k, sig(k, n)))
			}
			path := corruptTree(t, s, func(t *testing.T, _ *bbolt.Tx, tr *tree) { tc.corrupt(t, tr) })
			s2, err := Open(path, Options{})
			must(t, err)
			t.Cleanup(func() { _ = s2.Close() })
			_, lerr := s2.List(t.Context(), k)
			verr := s2.VisitList(t.Context(), k, func(int, int64) {}, func(signaturestore.SignatureView) error { return nil })
			for what, err := range map[string]error{"List": lerr, "VisitList": verr} {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.text) {
					t.Errorf("%s = %v; want ErrCorrupt mentioning %q", what, err, tc.text)
				}
			}
		})
	}
}
