// Package storetest is the conformance suite every signaturestore.Store
// backend must pass. A backend's own test calls Run (or RunOpener, to add
// the durability tests) with a function that opens a fresh, empty store.
//
// The suite checks behaviour only through the Store and DeleteJournal
// interfaces, so it applies unchanged to any backend. It must not import a
// backend.
package storetest

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digest.FromString needs sha256 registered
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// Opener opens stores for the suite.
type Opener struct {
	// Open returns a new store on fresh, empty storage that enforces
	// limits. It must arrange (with t.Cleanup) for the store to be
	// closed, and tolerate the suite having closed it already (a second
	// Close returns ErrClosed).
	Open func(t *testing.T, limits signaturestore.Limits) signaturestore.Store
	// Reopen opens a new store on the same storage as closed, which the
	// suite has already closed. It has the same cleanup duty as Open.
	// When nil, the tests that need it are skipped.
	Reopen func(t *testing.T, closed signaturestore.Store, limits signaturestore.Limits) signaturestore.Store
}

// Checker is implemented by backends that can verify their own storage
// (boltstore.Store.Check). The suite runs it after every test that leaves
// its store open.
type Checker interface {
	Check() error
}

// Run runs the suite without the tests that need to reopen storage.
func Run(t *testing.T, open func(t *testing.T, limits signaturestore.Limits) signaturestore.Store) {
	t.Helper()
	RunOpener(t, Opener{Open: open})
}

// RunOpener runs the whole suite.
func RunOpener(t *testing.T, o Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, o Opener)
	}{
		{"PutListRoundTrip", testPutListRoundTrip},
		{"ListUnknownImage", testListUnknownImage},
		{"CreatedKeptWhenSet", testCreatedKeptWhenSet},
		{"CallerBytesDoNotAlias", testNoAliasing},
		{"InsertionOrder", testInsertionOrder},
		{"Duplicates", testDuplicates},
		{"PrefixIsolation", testPrefixIsolation},
		{"LimitCount", testLimitCount},
		{"LimitBytes", testLimitBytes},
		{"SetStatus", testSetStatus},
		{"Delete", testDelete},
		{"DeleteAll", testDeleteAll},
		{"CountAcrossOperations", testCount},
		{"DeleteJournal", testDeleteJournal},
		{"DeleteJournalSurvivesReopen", testDeleteJournalReopen},
		{"Durability", testDurability},
		{"CloseDuringWrites", testCloseDuringWrites},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ConcurrentDuplicateName", testConcurrentDuplicateName},
		{"ConcurrentDuplicateContent", testConcurrentDuplicateContent},
		{"ConcurrentMixed", testConcurrentMixed},
		{"Invalid", testInvalid},
		{"Closed", testClosed},
		{"CancelledContext", testCancelledContext},
		{"Walk", testWalk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, o) })
	}
}

// unlimited is large enough never to get in the way.
var unlimited = signaturestore.Limits{MaxPerImage: 1 << 20, MaxBytesPerImage: 1 << 40}

// open opens a store and checks its storage when the test ends (before
// the backend's cleanup closes it).
func open(t *testing.T, o Opener, limits signaturestore.Limits) signaturestore.Store {
	t.Helper()
	s := o.Open(t, limits)
	t.Cleanup(func() { checkStore(t, s) })
	return s
}

func reopen(t *testing.T, o Opener, closed signaturestore.Store, limits signaturestore.Limits) signaturestore.Store {
	t.Helper()
	s := o.Reopen(t, closed, limits)
	t.Cleanup(func() { checkStore(t, s) })
	return s
}

func checkStore(t *testing.T, s signaturestore.Store) {
	t.Helper()
	c, ok := s.(Checker)
	if !ok {
		return
	}
	if err := c.Check(); err != nil && !errors.Is(err, signaturestore.ErrClosed) {
		t.Errorf("storage check after test: %v", err)
	}
}

func journal(t *testing.T, s signaturestore.Store) signaturestore.DeleteJournal {
	t.Helper()
	j, ok := s.(signaturestore.DeleteJournal)
	if !ok {
		t.Skip("backend does not implement signaturestore.DeleteJournal")
	}
	return j
}

func needReopen(t *testing.T, o Opener) {
	t.Helper()
	if o.Reopen == nil {
		t.Skip("backend gave no Reopen hook")
	}
}

// Fixtures.

func dig(seed string) digest.Digest { return digest.FromString(seed) }

func imageKey(repo, seed string) signaturestore.ImageKey {
	return signaturestore.ImageKey{Repository: repo, Digest: dig(seed)}
}

// sigName is the name real clients generate: <digest>@<32 lowercase hex>.
func sigName(d digest.Digest, n int) string { return fmt.Sprintf("%s@%032x", d, n) }

// newSig makes a signature whose name and content are derived from n.
func newSig(key signaturestore.ImageKey, n int) signaturestore.Signature {
	return signaturestore.Signature{
		Name:    sigName(key.Digest, n),
		Type:    signaturestore.TypeAtomic,
		Content: []byte(fmt.Sprintf("signature %d of %s\x00\xff", n, key)),
	}
}

func sized(key signaturestore.ImageKey, n, size int) signaturestore.Signature {
	sig := newSig(key, n)
	sig.Content = bytes.Repeat([]byte{byte(n)}, size)
	return sig
}

func sampleStatus(trusted bool, who string) *signaturestore.Status {
	st := signaturestore.ConditionFalse
	if trusted {
		st = signaturestore.ConditionTrue
	}
	at := time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC)
	return &signaturestore.Status{
		Conditions: []signaturestore.Condition{
			{Type: signaturestore.ConditionTrusted, Status: st, LastProbeTime: at, LastTransitionTime: at,
				Reason: "manually verified", Message: fmt.Sprintf("verified by user %q", who)},
			{Type: signaturestore.ConditionForImage, Status: signaturestore.ConditionTrue, LastProbeTime: at, LastTransitionTime: at},
		},
		ImageIdentity: "registry.example.com/ns/math:latest",
		SignedClaims:  map[string]string{"creator": "skopeo", "timestamp": "1458239713"},
		IssuedBy:      &signaturestore.Issuer{CommonName: "0123456789ABCDEF"},
		IssuedTo:      &signaturestore.Subject{PublicKeyID: "FEDCBA98765432100123456789ABCDEF01234567"},
	}
}

// Helpers that fail the test on unexpected errors.

func mustPut(t *testing.T, s signaturestore.Store, key signaturestore.ImageKey, sig signaturestore.Signature) {
	t.Helper()
	if err := s.Put(t.Context(), key, sig); err != nil {
		t.Fatalf("Put(%s, %q): %v", key, sig.Name, err)
	}
}

func mustList(t *testing.T, s signaturestore.Store, key signaturestore.ImageKey) []signaturestore.Signature {
	t.Helper()
	sigs, err := s.List(t.Context(), key)
	if err != nil {
		t.Fatalf("List(%s): %v", key, err)
	}
	if sigs == nil {
		t.Fatalf("List(%s) returned a nil slice; want non-nil", key)
	}
	wantVisit(t, s, key, sigs)
	return sigs
}

// visitAll visits the image's signatures and discards them.
func visitAll(ctx context.Context, s signaturestore.Store, key signaturestore.ImageKey) error {
	return signaturestore.VisitList(ctx, s, key, func(int, int64) {}, func(signaturestore.SignatureView) error { return nil })
}

// wantVisit checks that VisitList (the store's fast path when it has one)
// shows what List returned: the same number, content bytes, and names,
// types and contents in the same order.
func wantVisit(t *testing.T, s signaturestore.Store, key signaturestore.ImageKey, want []signaturestore.Signature) {
	t.Helper()
	var (
		sized    int
		n, bytes = -1, int64(-1)
		got      []signaturestore.Signature
	)
	err := signaturestore.VisitList(t.Context(), s, key, func(count int, contentBytes int64) {
		sized++
		n, bytes = count, contentBytes
	}, func(v signaturestore.SignatureView) error {
		if sized != 1 {
			t.Errorf("VisitList(%s): each called before size", key)
		}
		// The views alias the store's memory: copy, as callers must.
		got = append(got, signaturestore.Signature{Name: string(v.Name), Type: v.Type, Content: slices.Clone(v.Content)})
		return nil
	})
	if err != nil {
		t.Fatalf("VisitList(%s): %v", key, err)
	}
	var total int64
	for _, sig := range want {
		total += int64(len(sig.Content))
	}
	if sized != 1 || n != len(want) || bytes != total {
		t.Fatalf("VisitList(%s) size called %d times with (%d, %d); want once with (%d, %d)", key, sized, n, bytes, len(want), total)
	}
	if len(got) != len(want) {
		t.Fatalf("VisitList(%s) visited %d signatures, List returned %d", key, len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Type != want[i].Type || !slices.Equal(got[i].Content, want[i].Content) {
			t.Fatalf("VisitList(%s) signature %d = %q (%s, %d bytes), List has %q (%s, %d bytes)",
				key, i, got[i].Name, got[i].Type, len(got[i].Content), want[i].Name, want[i].Type, len(want[i].Content))
		}
	}
}

func mustCount(t *testing.T, s signaturestore.Store) int64 {
	t.Helper()
	n, err := s.Count(t.Context())
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	return n
}

func wantCount(t *testing.T, s signaturestore.Store, want int64) {
	t.Helper()
	if got := mustCount(t, s); got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func names(sigs []signaturestore.Signature) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = s.Name
	}
	return out
}

func wantNames(t *testing.T, s signaturestore.Store, key signaturestore.ImageKey, want []string) []signaturestore.Signature {
	t.Helper()
	got := mustList(t, s, key)
	if !slices.Equal(names(got), want) {
		t.Fatalf("List(%s) names = %q, want %q", key, names(got), want)
	}
	return got
}

func statusJSON(t *testing.T, st *signaturestore.Status) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal status: %v", err)
	}
	return string(b)
}

// sameSig compares a stored signature with what was put: name, type and
// content byte for byte, Created as an instant in UTC, status by its JSON
// form (so time zones and nil-vs-empty maps do not matter).
func sameSig(t *testing.T, got, want signaturestore.Signature) {
	t.Helper()
	if got.Name != want.Name {
		t.Errorf("Name = %q, want %q", got.Name, want.Name)
	}
	if got.Type != want.Type {
		t.Errorf("%s: Type = %q, want %q", want.Name, got.Type, want.Type)
	}
	if !bytes.Equal(got.Content, want.Content) {
		t.Errorf("%s: Content = %q, want %q", want.Name, got.Content, want.Content)
	}
	if !want.Created.IsZero() && !got.Created.Equal(want.Created) {
		t.Errorf("%s: Created = %v, want %v", want.Name, got.Created, want.Created)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("%s: Created location = %v, want UTC", want.Name, got.Created.Location())
	}
	if g, w := statusJSON(t, got.Status), statusJSON(t, want.Status); g != w {
		t.Errorf("%s: Status = %s, want %s", want.Name, g, w)
	}
}

func testPutListRoundTrip(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	withNUL := newSig(key, 1)
	withNUL.Content = []byte{0x00, 0xa3, 0x01, 0xff, 0x00, '\n', 0xc4}
	large := sized(key, 3, 1<<20)
	// A name of another form and another type: backends may store the
	// usual ones in a shorter form.
	other := signaturestore.Signature{Name: sigName(key.Digest, 4) + "-other", Type: "x-other", Content: []byte("other")}
	cases := []signaturestore.Signature{newSig(key, 0), withNUL, {
		Name:    sigName(key.Digest, 2),
		Type:    signaturestore.TypeAtomic,
		Content: []byte("x"),
	}, large, other}
	before := time.Now().Add(-time.Second)
	for _, sig := range cases {
		mustPut(t, s, key, sig)
	}
	after := time.Now().Add(time.Second)
	got := mustList(t, s, key)
	if len(got) != len(cases) {
		t.Fatalf("List returned %d signatures, want %d", len(got), len(cases))
	}
	for i, want := range cases {
		t.Run(want.Name[len(want.Name)-4:], func(t *testing.T) {
			sameSig(t, got[i], want)
			if got[i].Status != nil {
				t.Errorf("Status = %+v, want nil", got[i].Status)
			}
			if c := got[i].Created; c.IsZero() || c.Before(before) || c.After(after) {
				t.Errorf("Created = %v, want between %v and %v", c, before, after)
			}
		})
	}
	wantCount(t, s, int64(len(cases)))
}

func testListUnknownImage(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	mustPut(t, s, imageKey("ns/math", "known"), newSig(imageKey("ns/math", "known"), 1))
	for _, key := range []signaturestore.ImageKey{
		imageKey("ns/math", "unknown"),   // known repository, unknown digest
		imageKey("ns/other", "known"),    // known digest, unknown repository
		imageKey("never/seen", "either"), // nothing known
	} {
		if got := mustList(t, s, key); len(got) != 0 {
			t.Errorf("List(%s) = %q, want empty", key, names(got))
		}
	}
}

func testCreatedKeptWhenSet(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	sig := newSig(key, 1)
	sig.Created = time.Date(2021, 7, 4, 9, 8, 7, 654321, time.FixedZone("EST", -5*3600))
	mustPut(t, s, key, sig)
	got := mustList(t, s, key)
	if len(got) != 1 {
		t.Fatalf("List returned %d signatures, want 1", len(got))
	}
	sameSig(t, got[0], sig) // same instant, reported in UTC
}

// testNoAliasing: a store must copy bytes in and out, never keep or hand
// out memory the caller (or the database) can change later.
func testNoAliasing(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	sig := newSig(key, 1)
	want := bytes.Clone(sig.Content)
	mustPut(t, s, key, sig)
	clear(sig.Content) // the caller reuses its buffer

	got := mustList(t, s, key)
	if !bytes.Equal(got[0].Content, want) {
		t.Fatalf("Content changed with the caller's buffer: %q", got[0].Content)
	}
	clear(got[0].Content) // the caller scribbles over a List result
	mustPut(t, s, key, newSig(key, 2))
	if again := mustList(t, s, key); !bytes.Equal(again[0].Content, want) {
		t.Fatalf("Content changed with a List result: %q", again[0].Content)
	}
}

func testInsertionOrder(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	var want []string
	// Insertion order must not be the names' sort order.
	order := []int{}
	for i := range 120 {
		order = append(order, (i*37)%120)
	}
	for _, n := range order {
		sig := newSig(key, n)
		mustPut(t, s, key, sig)
		want = append(want, sig.Name)
	}
	wantNames(t, s, key, want)

	// Delete from the front, middle and back, then add more: the
	// survivors keep their order and new ones go last.
	for _, i := range []int{0, 1, 50, 51, 52, 119} {
		if err := s.Delete(t.Context(), key, sigName(key.Digest, order[i])); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	var kept []string
	for i, n := range want {
		if !slices.Contains([]int{0, 1, 50, 51, 52, 119}, i) {
			kept = append(kept, n)
		}
	}
	// Re-adding a deleted name puts it at the end, not back in its slot.
	for _, n := range []int{1000, order[50], 1001} {
		sig := newSig(key, n)
		mustPut(t, s, key, sig)
		kept = append(kept, sig.Name)
	}
	wantNames(t, s, key, kept)
	// Stable: reading again gives the same order.
	wantNames(t, s, key, kept)
}

func testDuplicates(t *testing.T, o Opener) {
	key := imageKey("ns/math", "img")
	other := imageKey("ns/math", "other")
	otherRepo := imageKey("ns/other", "img")
	first := newSig(key, 1)
	tests := []struct {
		name string
		key  signaturestore.ImageKey
		sig  signaturestore.Signature
		want error
	}{
		{"same name", key, signaturestore.Signature{Name: first.Name, Type: first.Type, Content: []byte("different")}, signaturestore.ErrExists},
		{"same name and content", key, first, signaturestore.ErrExists},
		{"same type and content, new name", key, signaturestore.Signature{Name: sigName(key.Digest, 2), Type: first.Type, Content: first.Content}, signaturestore.ErrExists},
		{"same content, other image", other, signaturestore.Signature{Name: sigName(other.Digest, 1), Type: first.Type, Content: first.Content}, nil},
		{"same name and content, other repository", otherRepo, first, nil},
		{"same content, other type", key, signaturestore.Signature{Name: sigName(key.Digest, 3), Type: "other", Content: first.Content}, nil},
		{"content with extra byte", key, signaturestore.Signature{Name: sigName(key.Digest, 4), Type: first.Type, Content: append(bytes.Clone(first.Content), 0)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, o, unlimited)
			mustPut(t, s, key, first)
			before := mustList(t, s, tc.key)
			err := s.Put(t.Context(), tc.key, tc.sig)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Put: %v, want success", err)
				}
				got := mustList(t, s, tc.key)
				sameSig(t, got[len(got)-1], tc.sig)
				wantCount(t, s, 2)
				return
			}
			wantErr(t, "Put", err, tc.want)
			after := mustList(t, s, tc.key)
			if len(after) != len(before) {
				t.Fatalf("rejected Put changed the list: %q -> %q", names(before), names(after))
			}
			sameSig(t, after[0], first)
			wantCount(t, s, 1)
		})
	}
}

// testPrefixIsolation: repositories whose names are prefixes of each other
// (and "-" sorting before "/") must behave as unrelated (SPEC section 6).
func testPrefixIsolation(t *testing.T, o Opener) {
	repos := []string{"ns/math", "ns/math-voila", "ns/math/sub", "ns/mat", "ns/math0", "ns/math.", "ns"}
	// The same image digest in every repository, and the same signature
	// name, since names derive from the digest.
	const seed = "shared-image"
	setup := func(t *testing.T) signaturestore.Store {
		s := open(t, o, unlimited)
		for i, repo := range repos {
			key := imageKey(repo, seed)
			for n := range i + 1 {
				sig := newSig(key, n)
				mustPut(t, s, key, sig)
			}
		}
		return s
	}
	total := int64(0)
	for i := range repos {
		total += int64(i + 1)
	}
	wantImage := func(t *testing.T, s signaturestore.Store, i int, present bool) {
		t.Helper()
		key := imageKey(repos[i], seed)
		got := mustList(t, s, key)
		if !present {
			if len(got) != 0 {
				t.Fatalf("List(%s) = %q, want empty", key, names(got))
			}
			return
		}
		if len(got) != i+1 {
			t.Fatalf("List(%s) has %d signatures, want %d", key, len(got), i+1)
		}
		for n, sig := range got {
			sameSig(t, sig, newSig(key, n))
		}
	}

	t.Run("List", func(t *testing.T) {
		s := setup(t)
		for i := range repos {
			wantImage(t, s, i, true)
		}
		wantCount(t, s, total)
	})
	for victim := range repos {
		t.Run("DeleteAll/"+repos[victim], func(t *testing.T) {
			s := setup(t)
			n, err := s.DeleteAll(t.Context(), imageKey(repos[victim], seed))
			if err != nil || n != victim+1 {
				t.Fatalf("DeleteAll = %d, %v; want %d, nil", n, err, victim+1)
			}
			for i := range repos {
				wantImage(t, s, i, i != victim)
			}
			wantCount(t, s, total-int64(victim+1))
		})
	}
	t.Run("Delete", func(t *testing.T) {
		s := setup(t)
		// Signature 0 exists under every repository with the same name;
		// deleting it in ns/math must leave the others.
		victim := imageKey("ns/math", seed)
		if err := s.Delete(t.Context(), victim, sigName(victim.Digest, 0)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		wantImage(t, s, 0, false)
		for i := 1; i < len(repos); i++ {
			wantImage(t, s, i, true)
		}
		// Signature 1 exists in ns/math-voila but not in ns/math.
		err := s.Delete(t.Context(), victim, sigName(victim.Digest, 1))
		wantErr(t, "Delete of a name only a sibling repository has", err, signaturestore.ErrNotFound)
		wantImage(t, s, 1, true)
		wantCount(t, s, total-1)
	})
	t.Run("SetStatus", func(t *testing.T) {
		s := setup(t)
		key := imageKey("ns/math-voila", seed)
		if err := s.SetStatus(t.Context(), key, sigName(key.Digest, 0), sampleStatus(true, "a")); err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		for i, repo := range repos {
			for _, sig := range mustList(t, s, imageKey(repo, seed)) {
				if want := i == 1 && sig.Name == sigName(key.Digest, 0); (sig.Status != nil) != want {
					t.Errorf("%s %s: Status set = %v, want %v", repo, sig.Name, sig.Status != nil, want)
				}
			}
		}
		err := s.SetStatus(t.Context(), imageKey("ns/math", seed), sigName(key.Digest, 1), nil)
		wantErr(t, "SetStatus of a name only a sibling repository has", err, signaturestore.ErrNotFound)
	})
	t.Run("DuplicateCheckPerRepository", func(t *testing.T) {
		s := setup(t)
		// The same content may be stored again in a sibling repository
		// that has not got it yet, but not twice in one.
		key := imageKey("ns/math", seed)
		sig := newSig(imageKey("ns/math-voila", seed), 1)
		sig.Name = sigName(key.Digest, 99)
		if err := s.Put(t.Context(), key, sig); err != nil {
			t.Fatalf("Put of a sibling's content: %v", err)
		}
		sig.Name = sigName(key.Digest, 98)
		wantErr(t, "Put of the same content again", s.Put(t.Context(), key, sig), signaturestore.ErrExists)
	})
}

func testLimitCount(t *testing.T, o Opener) {
	s := open(t, o, signaturestore.Limits{MaxPerImage: 3, MaxBytesPerImage: 1 << 20})
	key := imageKey("ns/math", "img")
	other := imageKey("ns/math", "other")
	for n := range 3 {
		mustPut(t, s, key, newSig(key, n))
	}
	wantErr(t, "Put beyond MaxPerImage", s.Put(t.Context(), key, newSig(key, 3)), signaturestore.ErrLimit)
	full := []string{sigName(key.Digest, 0), sigName(key.Digest, 1), sigName(key.Digest, 2)}
	wantNames(t, s, key, full)
	wantCount(t, s, 3)

	// The limit is per image.
	for n := range 3 {
		mustPut(t, s, other, newSig(other, n))
	}
	wantCount(t, s, 6)

	// Deleting makes room again.
	if err := s.Delete(t.Context(), key, full[1]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustPut(t, s, key, newSig(key, 3))
	wantErr(t, "Put beyond MaxPerImage after refill", s.Put(t.Context(), key, newSig(key, 4)), signaturestore.ErrLimit)
	wantNames(t, s, key, []string{full[0], full[2], sigName(key.Digest, 3)})
	wantCount(t, s, 6)
}

func testLimitBytes(t *testing.T, o Opener) {
	key := imageKey("ns/math", "img")
	t.Run("Sum", func(t *testing.T) {
		s := open(t, o, signaturestore.Limits{MaxPerImage: 100, MaxBytesPerImage: 100})
		mustPut(t, s, key, sized(key, 1, 60))
		wantErr(t, "Put to 110 bytes", s.Put(t.Context(), key, sized(key, 2, 50)), signaturestore.ErrLimit)
		mustPut(t, s, key, sized(key, 3, 40)) // exactly at the limit
		wantErr(t, "Put to 101 bytes", s.Put(t.Context(), key, sized(key, 4, 1)), signaturestore.ErrLimit)
		wantNames(t, s, key, []string{sigName(key.Digest, 1), sigName(key.Digest, 3)})
		wantCount(t, s, 2)
		// Deleting frees the bytes.
		if err := s.Delete(t.Context(), key, sigName(key.Digest, 1)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		mustPut(t, s, key, sized(key, 5, 60))
		wantNames(t, s, key, []string{sigName(key.Digest, 3), sigName(key.Digest, 5)})
		// DeleteAll frees everything.
		if _, err := s.DeleteAll(t.Context(), key); err != nil {
			t.Fatalf("DeleteAll: %v", err)
		}
		mustPut(t, s, key, sized(key, 6, 100))
	})
	t.Run("SingleTooLargeOnEmptyImage", func(t *testing.T) {
		s := open(t, o, signaturestore.Limits{MaxPerImage: 100, MaxBytesPerImage: 100})
		wantErr(t, "Put of 101 bytes", s.Put(t.Context(), key, sized(key, 1, 101)), signaturestore.ErrLimit)
		wantNames(t, s, key, []string{})
		wantCount(t, s, 0)
	})
}

func testSetStatus(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	var sigs []signaturestore.Signature
	for n := range 3 {
		mustPut(t, s, key, newSig(key, n))
	}
	sigs = mustList(t, s, key)
	target := sigs[1].Name

	steps := []struct {
		name   string
		status *signaturestore.Status
	}{
		{"set trusted", sampleStatus(true, "alice")},
		{"replace with untrusted", &signaturestore.Status{Conditions: []signaturestore.Condition{{
			Type: signaturestore.ConditionTrusted, Status: signaturestore.ConditionFalse, Reason: "bad signature",
			LastProbeTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		}}}},
		{"set empty", &signaturestore.Status{}},
		{"remove", nil},
		{"set again", sampleStatus(true, "bob")},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if err := s.SetStatus(t.Context(), key, target, step.status); err != nil {
				t.Fatalf("SetStatus: %v", err)
			}
			got := mustList(t, s, key)
			if len(got) != len(sigs) {
				t.Fatalf("List has %d signatures, want %d", len(got), len(sigs))
			}
			for i, want := range sigs {
				if want.Name == target {
					want.Status = step.status
				}
				sameSig(t, got[i], want) // content, type, Created and order unchanged
			}
			if got[1].Status.Trusted() != step.status.Trusted() {
				t.Errorf("Trusted() = %v, want %v", got[1].Status.Trusted(), step.status.Trusted())
			}
			wantCount(t, s, 3)
		})
	}
	t.Run("NotFound", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			key  signaturestore.ImageKey
			sig  string
		}{
			{"unknown name", key, sigName(key.Digest, 99)},
			{"unknown image", imageKey("ns/math", "nope"), target},
			{"other repository", imageKey("ns/math-voila", "img"), target},
		} {
			err := s.SetStatus(t.Context(), tc.key, tc.sig, sampleStatus(true, "eve"))
			wantErr(t, tc.name, err, signaturestore.ErrNotFound)
		}
		if got := mustList(t, s, imageKey("ns/math", "nope")); len(got) != 0 {
			t.Fatalf("SetStatus on an unknown image created %q", names(got))
		}
	})
}

func testDelete(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	for n := range 3 {
		mustPut(t, s, key, newSig(key, n))
	}
	if err := s.Delete(t.Context(), key, sigName(key.Digest, 1)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNames(t, s, key, []string{sigName(key.Digest, 0), sigName(key.Digest, 2)})
	wantCount(t, s, 2)

	for _, tc := range []struct {
		name string
		key  signaturestore.ImageKey
		sig  string
	}{
		{"already deleted", key, sigName(key.Digest, 1)},
		{"never stored", key, sigName(key.Digest, 7)},
		{"unknown image", imageKey("ns/math", "nope"), sigName(key.Digest, 0)},
	} {
		wantErr(t, "Delete "+tc.name, s.Delete(t.Context(), tc.key, tc.sig), signaturestore.ErrNotFound)
	}
	wantCount(t, s, 2)

	// A deleted signature's name and content are free again.
	mustPut(t, s, key, newSig(key, 1))
	wantNames(t, s, key, []string{sigName(key.Digest, 0), sigName(key.Digest, 2), sigName(key.Digest, 1)})

	// Deleting the last signatures leaves an empty, working image.
	for _, n := range []int{0, 1, 2} {
		if err := s.Delete(t.Context(), key, sigName(key.Digest, n)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	wantNames(t, s, key, []string{})
	wantCount(t, s, 0)
	mustPut(t, s, key, newSig(key, 5))
	wantNames(t, s, key, []string{sigName(key.Digest, 5)})
}

func testDeleteAll(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	a := imageKey("ns/math", "a")
	b := imageKey("ns/math", "b")
	for n := range 5 {
		mustPut(t, s, a, newSig(a, n))
	}
	mustPut(t, s, b, newSig(b, 0))
	for _, step := range []struct {
		key  signaturestore.ImageKey
		want int
	}{{a, 5}, {a, 0}, {imageKey("never/seen", "x"), 0}} {
		n, err := s.DeleteAll(t.Context(), step.key)
		if err != nil || n != step.want {
			t.Fatalf("DeleteAll(%s) = %d, %v; want %d, nil", step.key, n, err, step.want)
		}
	}
	wantNames(t, s, a, []string{})
	wantNames(t, s, b, []string{sigName(b.Digest, 0)})
	wantCount(t, s, 1)
	// The image works again afterwards, with everything forgotten.
	mustPut(t, s, a, newSig(a, 3))
	wantNames(t, s, a, []string{sigName(a.Digest, 3)})
	wantCount(t, s, 2)
}

func testCount(t *testing.T, o Opener) {
	s := open(t, o, signaturestore.Limits{MaxPerImage: 4, MaxBytesPerImage: 1 << 20})
	a := imageKey("ns/math", "a")
	b := imageKey("ns/math-voila", "a")
	ctx := t.Context()
	steps := []struct {
		name string
		do   func() error
		want int64
	}{
		{"empty", func() error { return nil }, 0},
		{"put a0", func() error { return s.Put(ctx, a, newSig(a, 0)) }, 1},
		{"put a1", func() error { return s.Put(ctx, a, newSig(a, 1)) }, 2},
		{"put b0", func() error { return s.Put(ctx, b, newSig(b, 0)) }, 3},
		{"duplicate rejected", func() error { return ignore(s.Put(ctx, a, newSig(a, 1)), signaturestore.ErrExists) }, 3},
		{"set status", func() error { return s.SetStatus(ctx, a, sigName(a.Digest, 0), sampleStatus(true, "x")) }, 3},
		{"put a2 a3", func() error { return errors.Join(s.Put(ctx, a, newSig(a, 2)), s.Put(ctx, a, newSig(a, 3))) }, 5},
		{"limit rejected", func() error { return ignore(s.Put(ctx, a, newSig(a, 4)), signaturestore.ErrLimit) }, 5},
		{"delete a1", func() error { return s.Delete(ctx, a, sigName(a.Digest, 1)) }, 4},
		{"delete missing", func() error { return ignore(s.Delete(ctx, a, sigName(a.Digest, 1)), signaturestore.ErrNotFound) }, 4},
		{"delete all a", func() error { _, err := s.DeleteAll(ctx, a); return err }, 1},
		{"delete all b", func() error { _, err := s.DeleteAll(ctx, b); return err }, 0},
		{"put again", func() error { return s.Put(ctx, b, newSig(b, 9)) }, 1},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := mustCount(t, s); got != step.want {
			t.Fatalf("after %s: Count = %d, want %d", step.name, got, step.want)
		}
	}
}

// ignore turns the expected error into success and anything else (also
// success) into a failure.
func ignore(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	return fmt.Errorf("got error %v, want %v", err, want)
}

func testDeleteJournal(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	j := journal(t, s)
	ctx := t.Context()
	a := imageKey("ns/math", "a")
	b := imageKey("ns/math-voila", "a")
	for n := range 3 {
		mustPut(t, s, a, newSig(a, n))
		mustPut(t, s, b, newSig(b, n))
	}
	wantPending := func(t *testing.T, want ...signaturestore.ImageKey) {
		t.Helper()
		got, err := j.PendingImageDeletes(ctx)
		if err != nil {
			t.Fatalf("PendingImageDeletes: %v", err)
		}
		if got == nil {
			t.Fatalf("PendingImageDeletes returned nil; want non-nil")
		}
		if !sameKeys(got, want) {
			t.Fatalf("PendingImageDeletes = %v, want %v", got, want)
		}
	}

	wantPending(t)
	for _, k := range []signaturestore.ImageKey{a, b, a} { // Begin twice is one intent
		if err := j.BeginImageDelete(ctx, k); err != nil {
			t.Fatalf("BeginImageDelete(%s): %v", k, err)
		}
	}
	wantPending(t, a, b)
	// Recording an intent deletes nothing yet.
	wantCount(t, s, 6)

	// The manifest delete failed: the signatures stay.
	if err := j.EndImageDelete(ctx, b, false); err != nil {
		t.Fatalf("EndImageDelete(b, false): %v", err)
	}
	wantPending(t, a)
	if got := mustList(t, s, b); len(got) != 3 {
		t.Fatalf("EndImageDelete(deleted=false) removed signatures: %q", names(got))
	}

	// The manifest is gone: the signatures go with the intent.
	if err := j.EndImageDelete(ctx, a, true); err != nil {
		t.Fatalf("EndImageDelete(a, true): %v", err)
	}
	wantPending(t)
	wantNames(t, s, a, []string{})
	if got := mustList(t, s, b); len(got) != 3 {
		t.Fatalf("EndImageDelete(a, true) touched a sibling repository: %q", names(got))
	}
	wantCount(t, s, 3)

	// Settling again is harmless (start-up recovery may repeat it), and
	// deleted=true still removes signatures.
	mustPut(t, s, a, newSig(a, 7))
	if err := j.EndImageDelete(ctx, a, true); err != nil {
		t.Fatalf("EndImageDelete without intent: %v", err)
	}
	wantNames(t, s, a, []string{})
	if err := j.EndImageDelete(ctx, b, false); err != nil {
		t.Fatalf("EndImageDelete(false) without intent: %v", err)
	}
	wantPending(t)
	wantCount(t, s, 3)
}

func sameKeys(got, want []signaturestore.ImageKey) bool {
	cmp := func(x, y signaturestore.ImageKey) int {
		if c := bytes.Compare([]byte(x.Repository), []byte(y.Repository)); c != 0 {
			return c
		}
		return bytes.Compare([]byte(x.Digest), []byte(y.Digest))
	}
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	return slices.Equal(got, want)
}

func testDeleteJournalReopen(t *testing.T, o Opener) {
	needReopen(t, o)
	s := open(t, o, unlimited)
	j := journal(t, s)
	a := imageKey("ns/math", "a")
	b := imageKey("ns/math/sub", "b")
	mustPut(t, s, a, newSig(a, 0))
	mustPut(t, s, b, newSig(b, 0))
	for _, k := range []signaturestore.ImageKey{a, b} {
		if err := j.BeginImageDelete(t.Context(), k); err != nil {
			t.Fatalf("BeginImageDelete: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t, o, s, unlimited)
	j = journal(t, s)
	got, err := j.PendingImageDeletes(t.Context())
	if err != nil || !sameKeys(got, []signaturestore.ImageKey{a, b}) {
		t.Fatalf("PendingImageDeletes after reopen = %v, %v; want [%s %s]", got, err, a, b)
	}
	// Recovery settles both: a's manifest is gone, b's still exists.
	if err := j.EndImageDelete(t.Context(), a, true); err != nil {
		t.Fatalf("EndImageDelete: %v", err)
	}
	if err := j.EndImageDelete(t.Context(), b, false); err != nil {
		t.Fatalf("EndImageDelete: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t, o, s, unlimited)
	j = journal(t, s)
	if got, err := j.PendingImageDeletes(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("PendingImageDeletes after settling = %v, %v; want none", got, err)
	}
	wantNames(t, s, a, []string{})
	wantNames(t, s, b, []string{sigName(b.Digest, 0)})
	wantCount(t, s, 1)
}

func testDurability(t *testing.T, o Opener) {
	needReopen(t, o)
	s := open(t, o, unlimited)
	keys := []signaturestore.ImageKey{
		imageKey("ns/math", "a"), imageKey("ns/math-voila", "a"), imageKey("ns/math", "b"), imageKey("deep/ns/name", "c"),
	}
	for i, key := range keys {
		for n := range i + 2 {
			mustPut(t, s, key, newSig(key, n))
		}
	}
	if err := s.SetStatus(t.Context(), keys[1], sigName(keys[1].Digest, 1), sampleStatus(true, "alice")); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	if err := s.Delete(t.Context(), keys[2], sigName(keys[2].Digest, 0)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	before := map[signaturestore.ImageKey][]signaturestore.Signature{}
	for _, key := range keys {
		before[key] = mustList(t, s, key)
	}
	count := mustCount(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t, o, s, unlimited)
	for _, key := range keys {
		got := mustList(t, s, key)
		if len(got) != len(before[key]) {
			t.Fatalf("after reopen List(%s) = %q, want %q", key, names(got), names(before[key]))
		}
		for i := range got {
			sameSig(t, got[i], before[key][i])
		}
	}
	wantCount(t, s, count)
	// Writing continues where it left off: new signatures go last, old
	// names are still taken.
	mustPut(t, s, keys[3], newSig(keys[3], 50))
	got := mustList(t, s, keys[3])
	if got[len(got)-1].Name != sigName(keys[3].Digest, 50) {
		t.Fatalf("after reopen a new signature is not last: %q", names(got))
	}
	wantErr(t, "Put of a name stored before reopen", s.Put(t.Context(), keys[0], newSig(keys[0], 0)), signaturestore.ErrExists)
	wantCount(t, s, count+1)
}

// testCloseDuringWrites: Close racing with writers. Each Put either
// succeeds, and is then durable, or fails with ErrClosed and wrote
// nothing.
func testCloseDuringWrites(t *testing.T, o Opener) {
	needReopen(t, o)
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	const writers = 64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	first := make(chan struct{})
	var once sync.Once
	for i := range writers {
		wg.Go(func() {
			// The second half races with Close.
			if i < writers/2 {
				<-start
			} else {
				<-first
			}
			errs[i] = s.Put(context.Background(), key, newSig(key, i))
			if i < writers/2 {
				once.Do(func() { close(first) })
			}
		})
	}
	close(start)
	<-first
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	var stored []string
	for i, err := range errs {
		switch {
		case err == nil:
			stored = append(stored, sigName(key.Digest, i))
		case !errors.Is(err, signaturestore.ErrClosed):
			t.Fatalf("Put %d: %v, want nil or ErrClosed", i, err)
		}
	}
	s = reopen(t, o, s, unlimited)
	got := names(mustList(t, s, key))
	slices.Sort(got)
	slices.Sort(stored)
	if !slices.Equal(got, stored) {
		t.Fatalf("after reopen stored %q, want exactly the successful puts %q", got, stored)
	}
	wantCount(t, s, int64(len(stored)))
	t.Logf("%d of %d puts succeeded, the rest found the store closed", len(stored), writers)
}

const goroutines = 64

// call is one store operation in a table of operations.
type call struct {
	name string
	do   func() error
}

func testConcurrentPuts(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	// Half the writers share one image, the rest have images of their
	// own in two sibling repositories.
	shared := imageKey("ns/math", "shared")
	keyOf := func(i int) signaturestore.ImageKey {
		switch {
		case i%2 == 0:
			return shared
		case i%4 == 1:
			return imageKey("ns/math", fmt.Sprint("own", i))
		default:
			return imageKey("ns/math-voila", fmt.Sprint("own", i))
		}
	}
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range goroutines {
		wg.Go(func() {
			<-start
			errs[i] = s.Put(t.Context(), keyOf(i), newSig(keyOf(i), i))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	var sharedNames []string
	for i := range goroutines {
		key := keyOf(i)
		if key == shared {
			sharedNames = append(sharedNames, sigName(key.Digest, i))
			continue
		}
		got := mustList(t, s, key)
		if len(got) != 1 {
			t.Fatalf("List(%s) = %q, want 1 signature", key, names(got))
		}
		sameSig(t, got[0], newSig(key, i))
	}
	got := names(mustList(t, s, shared))
	slices.Sort(got)
	slices.Sort(sharedNames)
	if !slices.Equal(got, sharedNames) {
		t.Fatalf("shared image has %q, want %q", got, sharedNames)
	}
	wantCount(t, s, goroutines)
}

// race runs put concurrently and returns the index of the winner, failing
// unless exactly one succeeded and the rest got ErrExists.
func race(t *testing.T, put func(i int) error) int {
	t.Helper()
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range goroutines {
		wg.Go(func() {
			<-start
			errs[i] = put(i)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("Put %d and Put %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, signaturestore.ErrExists):
			t.Fatalf("Put %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no Put succeeded")
	}
	return winner
}

func testConcurrentDuplicateName(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	sigFor := func(i int) signaturestore.Signature {
		sig := newSig(key, 0) // same name for everyone
		sig.Content = []byte(fmt.Sprintf("content %d", i))
		return sig
	}
	winner := race(t, func(i int) error { return s.Put(t.Context(), key, sigFor(i)) })
	got := mustList(t, s, key)
	if len(got) != 1 {
		t.Fatalf("List = %q, want only the winner", names(got))
	}
	sameSig(t, got[0], sigFor(winner))
	wantCount(t, s, 1)
}

func testConcurrentDuplicateContent(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	key := imageKey("ns/math", "img")
	winner := race(t, func(i int) error {
		sig := newSig(key, i)
		sig.Content = []byte("the same content for everyone")
		return s.Put(t.Context(), key, sig)
	})
	wantNames(t, s, key, []string{sigName(key.Digest, winner)})
	wantCount(t, s, 1)
}

// testConcurrentMixed runs every operation at once on overlapping images
// and checks that the totals still agree with the lists.
func testConcurrentMixed(t *testing.T, o Opener) {
	s := open(t, o, signaturestore.Limits{MaxPerImage: 8, MaxBytesPerImage: 1 << 20})
	keys := []signaturestore.ImageKey{imageKey("ns/math", "a"), imageKey("ns/math-voila", "a"), imageKey("ns/math", "b")}
	ctx := t.Context()
	expected := []error{nil, signaturestore.ErrExists, signaturestore.ErrLimit, signaturestore.ErrNotFound}
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range 8 {
				key := keys[(g+i)%len(keys)]
				n := (g*7 + i) % 12
				var err error
				switch (g + i) % 6 {
				case 0, 1, 2:
					err = s.Put(ctx, key, newSig(key, n))
				case 3:
					err = s.SetStatus(ctx, key, sigName(key.Digest, n), sampleStatus(n%2 == 0, "x"))
				case 4:
					err = s.Delete(ctx, key, sigName(key.Digest, n))
				case 5:
					if g%16 == 0 {
						_, err = s.DeleteAll(ctx, key)
					} else {
						_, err = s.List(ctx, key)
					}
				}
				if err != nil && !slices.ContainsFunc(expected[1:], func(e error) bool { return errors.Is(err, e) }) {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("unexpected error: %v", err)
	}
	var total int64
	for _, key := range keys {
		sigs := mustList(t, s, key)
		if len(sigs) > 8 {
			t.Errorf("List(%s) has %d signatures, above MaxPerImage", key, len(sigs))
		}
		for _, sig := range sigs {
			var n int
			if _, err := fmt.Sscanf(sig.Name[len(sig.Name)-32:], "%x", &n); err != nil {
				t.Fatalf("unexpected name %q", sig.Name)
			}
			sameSig(t, sig, signaturestore.Signature{Name: sig.Name, Type: signaturestore.TypeAtomic, Content: newSig(key, n).Content, Status: sig.Status})
		}
		total += int64(len(sigs))
	}
	wantCount(t, s, total)
}

func testInvalid(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	ctx := t.Context()
	good := imageKey("ns/math", "img")
	goodSig := newSig(good, 1)
	mustPut(t, s, good, goodSig)
	badKeys := []struct {
		name string
		key  signaturestore.ImageKey
	}{
		{"empty repository", signaturestore.ImageKey{Digest: good.Digest}},
		{"empty digest", signaturestore.ImageKey{Repository: "ns/math"}},
		{"digest without algorithm", signaturestore.ImageKey{Repository: "ns/math", Digest: digest.Digest(good.Digest.Encoded())}},
		{"short digest", signaturestore.ImageKey{Repository: "ns/math", Digest: "sha256:abc"}},
		{"uppercase digest", signaturestore.ImageKey{Repository: "ns/math", Digest: digest.Digest("sha256:" + string(bytes.ToUpper([]byte(good.Digest.Encoded()))))}},
		{"unknown algorithm", signaturestore.ImageKey{Repository: "ns/math", Digest: "md5:d41d8cd98f00b204e9800998ecf8427e"}},
		{"path in digest", signaturestore.ImageKey{Repository: "ns/math", Digest: "sha256:../../../etc/passwd"}},
	}
	var calls []call
	for _, bk := range badKeys {
		key := bk.key
		calls = append(calls,
			call{"Put/" + bk.name, func() error { return s.Put(ctx, key, goodSig) }},
			call{"List/" + bk.name, func() error { _, err := s.List(ctx, key); return err }},
			call{"VisitList/" + bk.name, func() error { return visitAll(ctx, s, key) }},
			call{"SetStatus/" + bk.name, func() error { return s.SetStatus(ctx, key, goodSig.Name, nil) }},
			call{"Delete/" + bk.name, func() error { return s.Delete(ctx, key, goodSig.Name) }},
			call{"DeleteAll/" + bk.name, func() error { _, err := s.DeleteAll(ctx, key); return err }},
		)
		if j, ok := s.(signaturestore.DeleteJournal); ok {
			calls = append(calls,
				call{"BeginImageDelete/" + bk.name, func() error { return j.BeginImageDelete(ctx, key) }},
				call{"EndImageDelete/" + bk.name, func() error { return j.EndImageDelete(ctx, key, true) }},
			)
		}
	}
	badSigs := []struct {
		name string
		sig  signaturestore.Signature
	}{
		{"empty name", signaturestore.Signature{Type: signaturestore.TypeAtomic, Content: []byte("c1")}},
		{"nil content", signaturestore.Signature{Name: sigName(good.Digest, 2), Type: signaturestore.TypeAtomic}},
		{"empty content", signaturestore.Signature{Name: sigName(good.Digest, 3), Type: signaturestore.TypeAtomic, Content: []byte{}}},
		{"empty type", signaturestore.Signature{Name: sigName(good.Digest, 4), Content: []byte("c4")}},
	}
	for _, bs := range badSigs {
		sig := bs.sig
		calls = append(calls, call{"Put/" + bs.name, func() error { return s.Put(ctx, good, sig) }})
	}
	calls = append(calls,
		call{"SetStatus/empty name", func() error { return s.SetStatus(ctx, good, "", nil) }},
		call{"Delete/empty name", func() error { return s.Delete(ctx, good, "") }},
	)
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, c.name, c.do(), signaturestore.ErrInvalid)
		})
	}
	// Nothing was written or removed.
	got := mustList(t, s, good)
	if len(got) != 1 {
		t.Fatalf("List = %q, want only the valid signature", names(got))
	}
	sameSig(t, got[0], goodSig)
	wantCount(t, s, 1)
	if j, ok := s.(signaturestore.DeleteJournal); ok {
		if p, err := j.PendingImageDeletes(ctx); err != nil || len(p) != 0 {
			t.Fatalf("PendingImageDeletes = %v, %v; want none", p, err)
		}
	}
}

func testClosed(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	ctx := t.Context()
	key := imageKey("ns/math", "img")
	mustPut(t, s, key, newSig(key, 0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := []call{
		{"Put", func() error { return s.Put(ctx, key, newSig(key, 1)) }},
		{"List", func() error { _, err := s.List(ctx, key); return err }},
		{"VisitList", func() error { return visitAll(ctx, s, key) }},
		{"SetStatus", func() error { return s.SetStatus(ctx, key, sigName(key.Digest, 0), nil) }},
		{"Delete", func() error { return s.Delete(ctx, key, sigName(key.Digest, 0)) }},
		{"DeleteAll", func() error { _, err := s.DeleteAll(ctx, key); return err }},
		{"Count", func() error { _, err := s.Count(ctx); return err }},
		{"Close", s.Close},
	}
	if j, ok := s.(signaturestore.DeleteJournal); ok {
		calls = append(calls,
			call{"BeginImageDelete", func() error { return j.BeginImageDelete(ctx, key) }},
			call{"EndImageDelete", func() error { return j.EndImageDelete(ctx, key, true) }},
			call{"PendingImageDeletes", func() error { _, err := j.PendingImageDeletes(ctx); return err }},
		)
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, c.name+" after Close", c.do(), signaturestore.ErrClosed)
		})
	}
}

func testCancelledContext(t *testing.T, o Opener) {
	key := imageKey("ns/math", "img")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"Canceled", cancelled, context.Canceled}, {"DeadlineExceeded", expired, context.DeadlineExceeded}} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, o, unlimited)
			kept := newSig(key, 0)
			mustPut(t, s, key, kept)
			calls := []call{
				{"Put", func() error { return s.Put(c.ctx, key, newSig(key, 1)) }},
				{"Put to a new image", func() error { return s.Put(c.ctx, imageKey("ns/new", "x"), newSig(imageKey("ns/new", "x"), 1)) }},
				{"SetStatus", func() error { return s.SetStatus(c.ctx, key, kept.Name, sampleStatus(true, "x")) }},
				{"Delete", func() error { return s.Delete(c.ctx, key, kept.Name) }},
				{"DeleteAll", func() error { _, err := s.DeleteAll(c.ctx, key); return err }},
				{"List", func() error { _, err := s.List(c.ctx, key); return err }},
				{"VisitList", func() error { return visitAll(c.ctx, s, key) }},
				{"Count", func() error { _, err := s.Count(c.ctx); return err }},
			}
			if j, ok := s.(signaturestore.DeleteJournal); ok {
				calls = append(calls,
					call{"BeginImageDelete", func() error { return j.BeginImageDelete(c.ctx, key) }},
					call{"EndImageDelete", func() error { return j.EndImageDelete(c.ctx, key, true) }})
			}
			for _, call := range calls {
				wantErr(t, call.name, call.do(), c.want)
			}
			// Nothing changed.
			got := mustList(t, s, key)
			if len(got) != 1 {
				t.Fatalf("List = %q, want only the signature stored before", names(got))
			}
			sameSig(t, got[0], kept)
			wantNames(t, s, imageKey("ns/new", "x"), []string{})
			wantCount(t, s, 1)
			if j, ok := s.(signaturestore.DeleteJournal); ok {
				if p, err := j.PendingImageDeletes(t.Context()); err != nil || len(p) != 0 {
					t.Fatalf("PendingImageDeletes = %v, %v; want none", p, err)
				}
			}
		})
	}
}
