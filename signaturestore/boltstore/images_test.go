package boltstore

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/signet-registry/signet/signaturestore"
)

// TestImagesAfter pages through the store in every page size and must
// visit every image with signatures exactly once, in key order, with
// repositories that are prefixes of one another kept apart.
func TestImagesAfter(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	var want []signaturestore.ImageKey
	for _, repo := range []string{"ns/math", "ns/math-voila", "ns/math/sub", "a", "z/z"} {
		for i := range 3 {
			k := key(repo, repo+strings.Repeat("x", i))
			if err := s.Put(ctx, k, sig(k, 1)); err != nil {
				t.Fatal(err)
			}
			want = append(want, k)
		}
	}
	// An image whose only signature was deleted holds none: not listed.
	gone := key("ns/math", "deleted")
	if err := s.Put(ctx, gone, sig(gone, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, gone, sig(gone, 1).Name); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b signaturestore.ImageKey) int {
		if c := strings.Compare(a.Repository, b.Repository); c != 0 {
			return c
		}
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []signaturestore.ImageKey
		var after signaturestore.ImageKey
		for page := 0; ; page++ {
			keys, err := s.ImagesAfter(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(keys))
			}
			if len(keys) == 0 {
				break
			}
			got = append(got, keys...)
			after = keys[len(keys)-1]
			if page > len(want) {
				t.Fatalf("limit %d: paging does not end", limit)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d:\n got %v\nwant %v", limit, got, want)
		}
	}
	// A cursor on an image that has since lost its signatures still
	// continues after it.
	keys, err := s.ImagesAfter(ctx, gone, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Repository < gone.Repository || (k.Repository == gone.Repository && k.Digest <= gone.Digest) {
			t.Fatalf("listed %s, not after %s", k, gone)
		}
	}
}
