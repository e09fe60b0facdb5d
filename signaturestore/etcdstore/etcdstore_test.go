package etcdstore

import (
	"bytes"
	"context"
	_ "crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/internal/etcdtest"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/storetest"
)

// prefixes hands every store in a test binary a prefix of its own, so the
// conformance suite's fresh stores share one etcd without sharing keys.
var prefixes atomic.Int64

func newPrefix(kind string) string {
	return fmt.Sprintf("/test-%s/%d/", kind, prefixes.Add(1))
}

// mustOpen opens a store on srv and closes it when the test ends.
func mustOpen(t testing.TB, srv *etcdtest.Server, opts Options) *Store {
	t.Helper()
	opts.Endpoints = srv.Endpoints()
	if opts.Prefix == "" {
		opts.Prefix = newPrefix("store")
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = t.TempDir()
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, signaturestore.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	storetest.RunOpener(t, storetest.Opener{
		Open: func(t *testing.T, limits signaturestore.Limits) signaturestore.Store {
			return mustOpen(t, srv, Options{Limits: limits})
		},
		Reopen: func(t *testing.T, closed signaturestore.Store, limits signaturestore.Limits) signaturestore.Store {
			return mustOpen(t, srv, Options{Limits: limits, Prefix: closed.(*Store).Prefix()})
		},
	})
}

func TestReferrersConformance(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	storetest.RunReferrers(t, func(t *testing.T) signaturestore.ReferrersIndex {
		s := mustOpen(t, srv, Options{})
		t.Cleanup(func() {
			if err := s.Check(); err != nil && !errors.Is(err, signaturestore.ErrClosed) {
				t.Errorf("Check after test: %v", err)
			}
		})
		return s
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

func names(sigs []signaturestore.Signature) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = s.Name
	}
	return out
}

// rawClient is a plain etcd client for tests that look at or tamper with
// keys directly.
func rawClient(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// TestSchemaVersion: the schema key is written on first use; a newer or
// unknown version, and a prefix holding someone else's keys, are refused.
func TestSchemaVersion(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := rawClient(t, srv)
	ctx := t.Context()

	s := mustOpen(t, srv, Options{})
	resp, err := cli.Get(ctx, s.Prefix()+"schema")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("schema key after Open: %v %v", resp, err)
	}
	for _, tc := range []struct {
		name, value string
		want        error
	}{
		{"newer", "2", ErrUnsupportedSchema},
		{"zero", "0", ErrUnsupportedSchema},
		{"garbage", "one", ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPrefix("schema")
			if _, err := cli.Put(ctx, p+"schema", tc.value); err != nil {
				t.Fatal(err)
			}
			_, err := Open(ctx, Options{Endpoints: srv.Endpoints(), Prefix: p})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open over schema %q: %v, want %v", tc.value, err, tc.want)
			}
			if tc.name == "newer" && !strings.Contains(err.Error(), "upgrade signet") {
				t.Fatalf("error does not say what to do: %v", err)
			}
		})
	}
	t.Run("foreign keys", func(t *testing.T) {
		p := newPrefix("foreign")
		if _, err := cli.Put(ctx, p+"something/else", "x"); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, Options{Endpoints: srv.Endpoints(), Prefix: p})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open over foreign keys: %v, want ErrCorrupt", err)
		}
		if resp, _ := cli.Get(ctx, p+"schema"); len(resp.Kvs) != 0 {
			t.Fatal("Open wrote a schema key into a prefix it does not own")
		}
	})
	t.Run("bad prefix", func(t *testing.T) {
		for _, p := range []string{"/no-slash", "", "/with space/", "/tab\t/"} {
			if p == "" {
				continue // empty means the default
			}
			if _, err := Open(ctx, Options{Endpoints: srv.Endpoints(), Prefix: p}); err == nil {
				t.Errorf("Open with prefix %q succeeded", p)
			}
		}
	})
}

// TestPrefixesShareOneEtcd: installations with prefixes "/a/" and "/ab/"
// (one a string prefix of the other) do not see each other's data.
func TestPrefixesShareOneEtcd(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := mustOpen(t, srv, Options{Prefix: "/a/"})
	ab := mustOpen(t, srv, Options{Prefix: "/ab/"})
	k := key("ns/math", "img")
	if err := a.Put(t.Context(), k, sig(k, 1)); err != nil {
		t.Fatal(err)
	}
	// The same name and content are free in the other installation.
	if err := ab.Put(t.Context(), k, sig(k, 1)); err != nil {
		t.Fatalf("Put into the second installation: %v", err)
	}
	if err := ab.Put(t.Context(), k, sig(k, 2)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    *Store
		want int
	}{{a, 1}, {ab, 2}} {
		got, err := tc.s.List(t.Context(), k)
		if err != nil || len(got) != tc.want {
			t.Fatalf("%s: List = %q, %v; want %d signatures", tc.s.Prefix(), names(got), err, tc.want)
		}
		if n, _ := tc.s.Count(t.Context()); n != int64(tc.want) {
			t.Fatalf("%s: Count = %d, want %d", tc.s.Prefix(), n, tc.want)
		}
		if err := tc.s.Check(); err != nil {
			t.Fatalf("%s: Check: %v", tc.s.Prefix(), err)
		}
	}
}

// TestTwoProcessesOneImage: two stores on one prefix stand for two Signet
// replicas (each has its own connection and its own in-process locks), so
// only etcd's transactions keep them apart. The per-image bound and the
// name and content uniqueness must hold across them.
func TestTwoProcessesOneImage(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	const limit = 10
	p := newPrefix("replicas")
	replicas := []*Store{
		mustOpen(t, srv, Options{Prefix: p, Limits: signaturestore.Limits{MaxPerImage: limit, MaxBytesPerImage: 1 << 20}}),
		mustOpen(t, srv, Options{Prefix: p, Limits: signaturestore.Limits{MaxPerImage: limit, MaxBytesPerImage: 1 << 20}}),
	}
	k := key("ns/math", "shared")
	const writers = 32
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			s := sig(k, i%24) // names 0-7 are written by two writers each
			if i >= 24 {
				s.Content = []byte(fmt.Sprintf("content %d of %s", i-24, k)) // content of 0-7 again
			}
			errs[i] = replicas[i%2].Put(t.Context(), k, s)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, signaturestore.ErrLimit), errors.Is(err, signaturestore.ErrExists):
		default:
			t.Errorf("Put %d: %v", i, err)
		}
	}
	got, err := replicas[1].List(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != ok || len(got) != limit {
		t.Fatalf("%d puts succeeded and %d signatures are stored; want both %d (the bound)", ok, len(got), limit)
	}
	seenName, seenContent := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		if seenName[s.Name] || seenContent[string(s.Content)] {
			t.Fatalf("duplicate stored: %q", s.Name)
		}
		seenName[s.Name], seenContent[string(s.Content)] = true, true
	}
	if err := replicas[0].Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRequestTooLarge: a signature over etcd's request limit is refused
// as a limit (409), not a server error, and stores nothing.
func TestRequestTooLarge(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	k := key("ns/math", "img")
	// etcd's default --max-request-bytes is 1.5 MiB: a record of 1.7 MiB
	// (1.3 MiB of content in base64) is refused by etcd, one of 2.7 MiB
	// already by etcd's gRPC server.
	for _, size := range []int{13 << 20 / 10, 2 << 20} {
		big := sig(k, 1)
		big.Content = bytes.Repeat([]byte{7}, size)
		err := s.Put(t.Context(), k, big)
		if !errors.Is(err, signaturestore.ErrLimit) {
			t.Fatalf("Put of %d bytes: %v, want ErrLimit", size, err)
		}
		t.Logf("%d bytes: %v", size, err)
	}
	if got, err := s.List(t.Context(), k); err != nil || len(got) != 0 {
		t.Fatalf("List after refused Put = %q, %v", names(got), err)
	}
	if err := s.Put(t.Context(), k, sig(k, 2)); err != nil {
		t.Fatalf("small Put after a refused large one: %v", err)
	}

	// With --max-request-bytes raised as the README says, the largest
	// signature the default limits allow (maxBytesPerImage, 3 MiB less
	// 64 KiB) is stored and read back.
	big := etcdtest.Start(t, etcdtest.Options{MaxRequestBytes: 6 << 20})
	s2 := mustOpen(t, big, Options{})
	large := sig(k, 3)
	large.Content = bytes.Repeat([]byte{9}, 3<<20-64<<10)
	if err := s2.Put(t.Context(), k, large); err != nil {
		t.Fatalf("Put of %d bytes with --max-request-bytes 6 MiB: %v", len(large.Content), err)
	}
	if got, err := s2.List(t.Context(), k); err != nil || len(got) != 1 || !bytes.Equal(got[0].Content, large.Content) {
		t.Fatalf("List after the large Put: %d signatures, %v", len(got), err)
	}
}

// TestUnavailable: with etcd stopped, reads and writes fail within the
// request timeout with ErrUnavailable (503), and store nothing; once etcd
// is back, the same store works again without being reopened, and what
// was acknowledged before is still there.
func TestUnavailable(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{RequestTimeout: time.Second, DialTimeout: time.Second})
	ctx := t.Context()
	k := key("ns/math", "img")
	if err := s.Put(ctx, k, sig(k, 0)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		do   func() error
	}{
		{"Put", func() error { return s.Put(ctx, k, sig(k, 1)) }},
		{"List", func() error { _, err := s.List(ctx, k); return err }},
		{"SetStatus", func() error { return s.SetStatus(ctx, k, sig(k, 0).Name, nil) }},
		{"Delete", func() error { return s.Delete(ctx, k, sig(k, 0).Name) }},
		{"DeleteAll", func() error { _, err := s.DeleteAll(ctx, k); return err }},
		{"Count", func() error { _, err := s.Count(ctx); return err }},
		{"BeginImageDelete", func() error { return s.BeginImageDelete(ctx, k) }},
		{"PendingImageDeletes", func() error { _, err := s.PendingImageDeletes(ctx); return err }},
	}
	for _, c := range calls {
		began := time.Now()
		err := c.do()
		if !errors.Is(err, signaturestore.ErrUnavailable) {
			t.Fatalf("%s with etcd stopped: %v, want ErrUnavailable", c.name, err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("%s with etcd stopped took %s; the request timeout is 1s", c.name, took)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The client reconnects by itself; a write must succeed again within
	// a few seconds, on the same Store.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Put(ctx, k, sig(k, 2))
		if err == nil {
			break
		}
		if !errors.Is(err, signaturestore.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Put after etcd came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := s.List(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	// sig 1 was refused while etcd was down and must not have appeared.
	if want := []string{sig(k, 0).Name, sig(k, 2).Name}; !slices.Equal(names(got), want) {
		t.Fatalf("after the outage List = %q, want %q", names(got), want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAcknowledgedSurvivesKill: a Put that returned nil was committed by
// etcd (raft, fsynced WAL), so it survives etcd being killed with SIGKILL
// right after.
func TestAcknowledgedSurvivesKill(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	ctx := t.Context()
	var acked []signaturestore.ImageKey
	for i := range 50 {
		k := key("ns/math", fmt.Sprint("img", i))
		if err := s.Put(ctx, k, sig(k, i)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, k)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, srv, Options{Prefix: s.Prefix()})
	for i, k := range acked {
		got, err := s2.List(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !bytes.Equal(got[0].Content, sig(k, i).Content) {
			t.Fatalf("acknowledged signature of %s lost after kill -9: %q", k, names(got))
		}
	}
}

// TestCheckFindsCorruption: Check notices keys that break the layout.
func TestCheckFindsCorruption(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := rawClient(t, srv)
	k := key("ns/math", "img")
	img := imagePart(k.Repository, k.Digest)
	for _, tc := range []struct {
		name   string
		tamper func(s *Store) error
		want   string
	}{
		{"stray key", func(s *Store) error { _, err := cli.Put(t.Context(), s.Prefix()+"other", "x"); return err }, "not part of the layout"},
		{"stat count", func(s *Store) error {
			_, err := cli.Put(t.Context(), s.k.stat(img), mustJSON(stat{Count: 3, Bytes: 1, Next: 2}))
			return err
		}, "stat says"},
		{"name index", func(s *Store) error { _, err := cli.Delete(t.Context(), s.k.name(img, sig(k, 0).Name)); return err }, "name index"},
		{"record", func(s *Store) error { _, err := cli.Put(t.Context(), s.k.sig(img, 0), `{"v":1}`); return err }, "empty name"},
		{"orphan stat", func(s *Store) error {
			other := imagePart("ns/other", digest.FromString("x"))
			_, err := cli.Put(t.Context(), s.k.stat(other), mustJSON(stat{Count: 1, Bytes: 1, Next: 1}))
			return err
		}, "left behind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, srv, Options{})
			for n := range 2 {
				if err := s.Put(t.Context(), k, sig(k, n)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Check(); err != nil {
				t.Fatalf("Check before tampering: %v", err)
			}
			if err := tc.tamper(s); err != nil {
				t.Fatal(err)
			}
			err := s.Check()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check after %s: %v, want ErrCorrupt mentioning %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestWatch: every kind of change is reported with its image, from the
// revision a reader read at; changes under another prefix are not.
func TestWatch(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	// A neighbour whose prefix shares every byte but the final "/".
	other := mustOpen(t, srv, Options{Prefix: strings.TrimSuffix(s.Prefix(), "/") + "x/"})
	ctx := t.Context()
	k := key("ns/math", "img")
	k2 := key("ns/math-voila", "img")
	if err := s.Put(ctx, k, sig(k, 0)); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.ListAt(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := s.CurrentRevision(ctx); err != nil || cur < rev {
		t.Fatalf("CurrentRevision = %d, %v; ListAt read at %d", cur, err, rev)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.Watch(wctx, rev)

	steps := []struct {
		name string
		do   func() error
		want Change
	}{
		{"put", func() error { return s.Put(ctx, k, sig(k, 1)) }, Change{SignaturesChanged, k}},
		{"status", func() error { return s.SetStatus(ctx, k, sig(k, 1).Name, &signaturestore.Status{ImageIdentity: "x"}) }, Change{SignaturesChanged, k}},
		{"sibling repository", func() error { return s.Put(ctx, k2, sig(k2, 0)) }, Change{SignaturesChanged, k2}},
		{"delete", func() error { return s.Delete(ctx, k, sig(k, 0).Name) }, Change{SignaturesChanged, k}},
		{"journal", func() error { return s.BeginImageDelete(ctx, k2) }, Change{DeleteJournalChanged, k2}},
		{"delete all", func() error { return s.EndImageDelete(ctx, k2, true) }, Change{SignaturesChanged, k2}},
		{"referrer", func() error {
			return s.BeginReferrer(ctx, "ns/math", k.Digest, signaturestore.Descriptor{MediaType: "m", Digest: digest.FromString("ref"), Size: 1})
		}, Change{ReferrersChanged, k}},
	}
	for _, step := range steps {
		// A write in the neighbour must not show up.
		if err := other.Put(ctx, k, sig(k, len(step.name))); err != nil && !errors.Is(err, signaturestore.ErrExists) {
			t.Fatal(err)
		}
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		select {
		case ev := <-events:
			if ev.Err != nil {
				t.Fatalf("%s: watch error %v", step.name, ev.Err)
			}
			if !slices.Contains(ev.Changes, step.want) {
				t.Fatalf("%s: changes %+v, want %+v", step.name, ev.Changes, step.want)
			}
			if ev.Revision <= rev {
				t.Fatalf("%s: revision %d not after %d", step.name, ev.Revision, rev)
			}
			rev = ev.Revision
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no watch event", step.name)
		}
	}
	cancel()
	for ev := range events {
		if ev.Err == nil && len(ev.Changes) > 0 {
			t.Fatalf("unexpected event after the last step: %+v", ev)
		}
	}
}

// TestWatchCompacted: a watch from before etcd's compaction ends with
// ErrCompacted, so a cache knows it must start over.
func TestWatchCompacted(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	cli := rawClient(t, srv)
	ctx := t.Context()
	old, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for n := range 3 {
		k := key("ns/math", fmt.Sprint(n))
		if err := s.Put(ctx, k, sig(k, n)); err != nil {
			t.Fatal(err)
		}
	}
	now, _ := s.CurrentRevision(ctx)
	if _, err := cli.Compact(ctx, now); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-s.Watch(ctx, old):
		if !errors.Is(ev.Err, ErrCompacted) {
			t.Fatalf("watch from a compacted revision: %+v, want ErrCompacted", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
}

// TestImagesAfter pages through the images with signatures in key order,
// sibling repositories apart, emptied images gone.
func TestImagesAfter(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	s := mustOpen(t, srv, Options{})
	ctx := t.Context()
	var want []signaturestore.ImageKey
	for _, repo := range []string{"ns/math", "ns/math-voila", "ns/math/sub", "a", "z"} {
		for n := range 3 {
			k := key(repo, fmt.Sprint(n))
			if err := s.Put(ctx, k, sig(k, n)); err != nil {
				t.Fatal(err)
			}
			want = append(want, k)
		}
	}
	gone := want[4]
	if _, err := s.DeleteAll(ctx, gone); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(k signaturestore.ImageKey) bool { return k == gone })
	slices.SortFunc(want, func(a, b signaturestore.ImageKey) int {
		if c := strings.Compare(a.Repository, b.Repository); c != 0 {
			return c
		}
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	var got []signaturestore.ImageKey
	var cursor signaturestore.ImageKey
	for pages := 0; pages < 20; pages++ {
		page, err := s.ImagesAfter(ctx, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		cursor = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v\nwant %v", got, want)
	}
}
