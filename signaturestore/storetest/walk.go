package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signet-registry/signet/signaturestore"
)

// testWalk runs for backends that implement signaturestore.Walker: every
// image with signatures is visited once, in repository then digest order,
// with List's order inside; sibling repositories that share a prefix stay
// apart; emptied images are not visited; fn's error and a cancelled
// context stop the walk.
func testWalk(t *testing.T, o Opener) {
	s := open(t, o, unlimited)
	w, ok := s.(signaturestore.Walker)
	if !ok {
		t.Skip("backend does not implement signaturestore.Walker")
	}
	keys := []signaturestore.ImageKey{
		imageKey("ns/math", "a"), imageKey("ns/math", "b"), imageKey("ns/math-voila", "a"),
		imageKey("ns/math/sub", "a"), imageKey("docker.io/library/nginx", "x"), imageKey("gone", "x"),
	}
	want := map[signaturestore.ImageKey][]string{}
	for i, key := range keys {
		for n := range i + 1 {
			sig := newSig(key, 100-n) // insertion order is not name order
			mustPut(t, s, key, sig)
			want[key] = append(want[key], sig.Name)
		}
	}
	if _, err := s.DeleteAll(t.Context(), imageKey("gone", "x")); err != nil {
		t.Fatal(err)
	}
	delete(want, imageKey("gone", "x"))

	var visited []signaturestore.ImageKey
	err := w.Walk(t.Context(), func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		visited = append(visited, key)
		if !slices.Equal(names(sigs), want[key]) {
			t.Errorf("Walk gave %s names %q, want %q", key, names(sigs), want[key])
		}
		if len(sigs) > 0 {
			sigs[0].Content[0] ^= 0xff // must not reach the store
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(visited) != len(want) {
		t.Fatalf("Walk visited %v, want the %d images with signatures", visited, len(want))
	}
	sorted := slices.IsSortedFunc(visited, func(a, b signaturestore.ImageKey) int {
		if c := strings.Compare(a.Repository, b.Repository); c != 0 {
			return c
		}
		return strings.Compare(a.Digest.String(), b.Digest.String())
	})
	if !sorted {
		t.Errorf("Walk order %v is not repository then digest order", visited)
	}
	for _, key := range keys[:5] {
		if got := mustList(t, s, key); string(got[0].Content) != string(newSig(key, 100).Content) {
			t.Errorf("%s: a caller's edit of walked bytes reached the store", key)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = w.Walk(t.Context(), func(signaturestore.ImageKey, []signaturestore.Signature) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk after fn error: %v after %d calls, want the error after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Walk(ctx, func(signaturestore.ImageKey, []signaturestore.Signature) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with a cancelled context: %v", err)
	}
}
