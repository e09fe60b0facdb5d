package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// RunReferrers is the conformance suite for signaturestore.ReferrersIndex.
// open returns a fresh, empty index.
func RunReferrers(t *testing.T, open func(t *testing.T) signaturestore.ReferrersIndex) {
	ctx := context.Background()
	d := func(s string) digest.Digest { return digest.FromString(s) }
	desc := func(name, artifactType string) signaturestore.Descriptor {
		return signaturestore.Descriptor{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: d(name), Size: int64(len(name)),
			ArtifactType: artifactType, Annotations: map[string]string{"name": name},
		}
	}
	list := func(t *testing.T, idx signaturestore.ReferrersIndex, repo string, subject digest.Digest) []signaturestore.Descriptor {
		t.Helper()
		got, err := idx.Referrers(ctx, repo, subject, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Fatal("Referrers returned nil, want an empty slice")
		}
		return got
	}

	t.Run("PendingHiddenUntilConfirmed", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		if err := idx.BeginReferrer(ctx, "ns/app", subject, desc("sig", "application/x-sig")); err != nil {
			t.Fatal(err)
		}
		if got := list(t, idx, "ns/app", subject); len(got) != 0 {
			t.Fatalf("pending referrer listed: %+v", got)
		}
		pending, err := idx.PendingReferrers(ctx)
		if err != nil || len(pending) != 1 || pending[0].Digest != d("sig") || pending[0].Repository != "ns/app" {
			t.Fatalf("pending %+v %v", pending, err)
		}
		if err := idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: d("sig")}, true); err != nil {
			t.Fatal(err)
		}
		got := list(t, idx, "ns/app", subject)
		if len(got) != 1 || got[0].Digest != d("sig") || got[0].ArtifactType != "application/x-sig" || got[0].Annotations["name"] != "sig" || got[0].Size != 3 {
			t.Fatalf("confirmed referrer %+v", got)
		}
		if pending, _ := idx.PendingReferrers(ctx); len(pending) != 0 {
			t.Fatalf("still pending: %+v", pending)
		}
	})
	t.Run("DroppedWhenNotStored", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		_ = idx.BeginReferrer(ctx, "ns/app", subject, desc("sig", ""))
		if err := idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: d("sig")}, false); err != nil {
			t.Fatal(err)
		}
		if got := list(t, idx, "ns/app", subject); len(got) != 0 {
			t.Fatalf("dropped referrer listed: %+v", got)
		}
		if pending, _ := idx.PendingReferrers(ctx); len(pending) != 0 {
			t.Fatalf("dropped referrer pending: %+v", pending)
		}
		// Settling an unknown referrer is not an error.
		if err := idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/none", Digest: d("x")}, true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RepushKeepsConfirmed", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		key := signaturestore.ReferrerKey{Repository: "ns/app", Digest: d("sig")}
		_ = idx.BeginReferrer(ctx, "ns/app", subject, desc("sig", ""))
		_ = idx.EndReferrer(ctx, key, true)
		_ = idx.BeginReferrer(ctx, "ns/app", subject, desc("sig", ""))
		_ = idx.EndReferrer(ctx, key, true)
		_ = idx.BeginReferrer(ctx, "ns/app", subject, desc("sig", ""))
		if got := list(t, idx, "ns/app", subject); len(got) != 1 {
			t.Fatalf("a re-push in progress hid a confirmed referrer: %+v", got)
		}
	})
	t.Run("OrderFilterAndPaging", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		for i := 0; i < 25; i++ {
			dd := desc(fmt.Sprintf("ref-%d", i), "")
			_ = idx.BeginReferrer(ctx, "ns/app", subject, dd)
			_ = idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: dd.Digest}, true)
		}
		var got []signaturestore.Descriptor
		last := digest.Digest("")
		for pages := 0; pages < 10; pages++ {
			page, err := idx.Referrers(ctx, "ns/app", subject, last, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			if len(page) > 10 {
				t.Fatalf("page of %d over the limit", len(page))
			}
			got = append(got, page...)
			last = page[len(page)-1].Digest
		}
		if len(got) != 25 {
			t.Fatalf("paged %d referrers, want 25", len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].Digest >= got[i].Digest {
				t.Fatalf("not in digest order at %d", i)
			}
		}
	})
	t.Run("Isolation", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		for _, repo := range []string{"ns/math", "ns/math-voila", "ns/math/sub"} {
			dd := desc("sig of "+repo, "")
			_ = idx.BeginReferrer(ctx, repo, subject, dd)
			_ = idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: repo, Digest: dd.Digest}, true)
		}
		for _, repo := range []string{"ns/math", "ns/math-voila", "ns/math/sub"} {
			got := list(t, idx, repo, subject)
			if len(got) != 1 || got[0].Digest != d("sig of "+repo) {
				t.Fatalf("%s sees %+v", repo, got)
			}
		}
		if got := list(t, idx, "ns/math", d("other subject")); len(got) != 0 {
			t.Fatalf("other subject sees %+v", got)
		}
	})
	t.Run("Remove", func(t *testing.T) {
		idx := open(t)
		subject := d("subject")
		for _, n := range []string{"a", "b"} {
			_ = idx.BeginReferrer(ctx, "ns/app", subject, desc(n, ""))
			_ = idx.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: d(n)}, true)
		}
		if err := idx.RemoveReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: d("a")}); err != nil {
			t.Fatal(err)
		}
		got := list(t, idx, "ns/app", subject)
		if len(got) != 1 || got[0].Digest != d("b") {
			t.Fatalf("after remove: %+v", got)
		}
		if err := idx.RemoveReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/app", Digest: d("never")}); err != nil {
			t.Fatalf("removing an unknown referrer: %v", err)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		idx := open(t)
		err := idx.BeginReferrer(ctx, "", d("s"), desc("x", ""))
		if !errors.Is(err, signaturestore.ErrInvalid) {
			t.Fatalf("empty repository: %v", err)
		}
		err = idx.BeginReferrer(ctx, "ns/app", "sha256:nothex", desc("x", ""))
		if !errors.Is(err, signaturestore.ErrInvalid) {
			t.Fatalf("bad subject: %v", err)
		}
	})
}
