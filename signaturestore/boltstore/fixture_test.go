package boltstore

import (
	"bytes"
	_ "crypto/sha512" // sha512 digests in the fixture
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// The schema-1 fixture (testdata/schema1.db) was written by the schema-1
// Store applying fixtureScript through the Store API; testdata/README says
// how. fixtureModel replays the same script in memory, so the tests can
// check every fact of the file through the Store API after a migration.

type fixtureOp struct {
	op      string // put, delete, status, deleteAll, beginDelete, beginReferrer, endReferrer
	key     signaturestore.ImageKey
	sig     signaturestore.Signature // put
	name    string                   // delete, status
	status  *signaturestore.Status   // status
	repo    string                   // referrers
	subject digest.Digest            // beginReferrer
	desc    signaturestore.Descriptor
	ref     digest.Digest // endReferrer
	stored  bool          // endReferrer
}

// Repositories that are prefixes of each other ("-" and "." sort before
// "/"), one holding a NUL byte and one long name.
var fixtureRepos = []string{"ns/math", "ns/math-voila", "ns/math/sub", "ns/mat", "ns/math.", "a", "odd\x00repo", "z/" + strings.Repeat("y", 300)}

func fixtureStatus(who string, trusted bool) *signaturestore.Status {
	st := signaturestore.ConditionFalse
	if trusted {
		st = signaturestore.ConditionTrue
	}
	at := time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC)
	return &signaturestore.Status{
		Conditions: []signaturestore.Condition{
			{Type: signaturestore.ConditionTrusted, Status: st, LastProbeTime: at, LastTransitionTime: at, Reason: "manually verified", Message: "verified by user " + who},
		},
		ImageIdentity: "registry.example.com/ns/math:latest",
		SignedClaims:  map[string]string{"creator": who},
		IssuedBy:      &signaturestore.Issuer{CommonName: "0123456789ABCDEF"},
		IssuedTo:      &signaturestore.Subject{PublicKeyID: "FEDCBA98765432100123456789ABCDEF01234567"},
	}
}

func fixtureSig(k signaturestore.ImageKey, n int) signaturestore.Signature {
	return signaturestore.Signature{
		Name:    fmt.Sprintf("%s@%032x", k.Digest, 0xf00d0000+n),
		Type:    signaturestore.TypeAtomic,
		Content: []byte(fmt.Sprintf("signature %d of %q\x00\xff", n, k.Repository+" "+k.Digest.String())),
		Created: time.Date(2024, 1, 2, 3, 4, 5, n*1000+7, time.UTC),
	}
}

func fixtureScript() []fixtureOp {
	var ops []fixtureOp
	put := func(k signaturestore.ImageKey, s signaturestore.Signature) {
		ops = append(ops, fixtureOp{op: "put", key: k, sig: s})
	}
	shared := digest.FromString("shared image")
	for i, repo := range fixtureRepos {
		k := signaturestore.ImageKey{Repository: repo, Digest: shared}
		// Insertion order is not name order.
		for n := i + 2; n >= 0; n-- {
			s := fixtureSig(k, n)
			if n == 1 {
				s.Status = fixtureStatus(repo, true)
			}
			put(k, s)
		}
	}
	math := signaturestore.ImageKey{Repository: "ns/math", Digest: shared}
	voila := signaturestore.ImageKey{Repository: "ns/math-voila", Digest: shared}
	// A gap in the sequence numbers, a status set, changed and cleared.
	ops = append(ops,
		fixtureOp{op: "delete", key: math, name: fixtureSig(math, 1).Name},
		fixtureOp{op: "status", key: voila, name: fixtureSig(voila, 0).Name, status: fixtureStatus("later", false)},
		fixtureOp{op: "status", key: voila, name: fixtureSig(voila, 1).Name, status: nil},
	)

	// Names the store keeps although they are not "<digest>@<32 hex>",
	// other types, odd times, a large and a tiny content.
	odd := signaturestore.ImageKey{Repository: "ns/odd", Digest: digest.SHA512.FromString("odd image")}
	other := digest.FromString("another image")
	for i, name := range []string{
		"custom",
		"sixteen-byte-nam",
		fmt.Sprintf("%s@%032X", odd.Digest, 0xabcdef), // upper case hex
		fmt.Sprintf("%s@%031x", odd.Digest, 1),        // short suffix
		fmt.Sprintf("%s@%033x", odd.Digest, 2),        // long suffix
		fmt.Sprintf("%s@%032x", other, 3),             // another image's digest
		fmt.Sprintf("%s@%032x", odd.Digest, 4),        // the usual form
		odd.Digest.String() + "@" + strings.Repeat("g", 32),
		"\xff\x00binary name",
	} {
		s := fixtureSig(odd, 100+i)
		s.Name = name
		switch i {
		case 1:
			s.Type = "other-type"
		case 2:
			s.Created = time.Date(1901, 12, 13, 20, 45, 52, 1, time.UTC)
		case 3:
			s.Content = bytes.Repeat([]byte{0xa5}, 5000)
		case 4:
			s.Content = []byte{0}
		case 5:
			s.Status = fixtureStatus("odd", false)
		}
		put(odd, s)
	}
	// The same content under another type is not a duplicate.
	sameContent := fixtureSig(odd, 120)
	sameContent.Type = "third-type"
	sameContent.Content = fixtureSig(odd, 100).Content
	put(odd, sameContent)

	// An image large enough that schema 1 gives its buckets pages of
	// their own.
	big := signaturestore.ImageKey{Repository: "ns/big", Digest: digest.FromString("big image")}
	for n := range 40 {
		s := fixtureSig(big, n)
		s.Content = append(s.Content, bytes.Repeat([]byte{byte(n)}, 400)...)
		put(big, s)
	}

	// An image emptied, one emptied and filled again, a second image in
	// a repository.
	gone := signaturestore.ImageKey{Repository: "ns/gone", Digest: digest.FromString("gone")}
	again := signaturestore.ImageKey{Repository: "ns/math", Digest: digest.FromString("again")}
	second := signaturestore.ImageKey{Repository: "ns/math-voila", Digest: digest.FromString("second")}
	put(gone, fixtureSig(gone, 0))
	put(again, fixtureSig(again, 0))
	put(again, fixtureSig(again, 1))
	put(second, fixtureSig(second, 0))
	ops = append(ops,
		fixtureOp{op: "deleteAll", key: gone},
		fixtureOp{op: "deleteAll", key: again},
	)
	put(again, fixtureSig(again, 2))

	// Pending manifest deletes: of an image with signatures and of one
	// without.
	ops = append(ops,
		fixtureOp{op: "beginDelete", key: second},
		fixtureOp{op: "beginDelete", key: signaturestore.ImageKey{Repository: "ns/never", Digest: digest.FromString("never")}},
	)

	// Referrers: confirmed, pending, removed, in sibling repositories.
	desc := func(name string) signaturestore.Descriptor {
		return signaturestore.Descriptor{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString(name), Size: int64(100 + len(name)),
			ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", Annotations: map[string]string{"name": name},
		}
	}
	for _, r := range []struct {
		repo, name string
		end        int // 0: confirm, 1: leave pending, 2: remove
	}{
		{"ns/math", "ref-b", 0}, {"ns/math", "ref-a", 0}, {"ns/math", "ref-c", 1},
		{"ns/math-voila", "ref-a", 0}, {"ns/math-voila", "ref-d", 2},
	} {
		d := desc(r.name)
		ops = append(ops, fixtureOp{op: "beginReferrer", repo: r.repo, subject: shared, desc: d})
		switch r.end {
		case 0:
			ops = append(ops, fixtureOp{op: "endReferrer", repo: r.repo, ref: d.Digest, stored: true})
		case 2:
			ops = append(ops, fixtureOp{op: "endReferrer", repo: r.repo, ref: d.Digest, stored: false})
		}
	}
	return ops
}

// applyFixture runs the script against s; every operation must succeed.
func applyFixture(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	for i, op := range fixtureScript() {
		var err error
		switch op.op {
		case "put":
			err = s.Put(ctx, op.key, op.sig)
		case "delete":
			err = s.Delete(ctx, op.key, op.name)
		case "status":
			err = s.SetStatus(ctx, op.key, op.name, op.status)
		case "deleteAll":
			_, err = s.DeleteAll(ctx, op.key)
		case "beginDelete":
			err = s.BeginImageDelete(ctx, op.key)
		case "beginReferrer":
			err = s.BeginReferrer(ctx, op.repo, op.subject, op.desc)
		case "endReferrer":
			err = s.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: op.repo, Digest: op.ref}, op.stored)
		}
		if err != nil {
			t.Fatalf("fixture op %d (%s %s): %v", i, op.op, op.key, err)
		}
	}
}

type fixtureReferrer struct {
	repo    string
	subject digest.Digest
	desc    signaturestore.Descriptor
	pending bool
}

// fixtureState is what the script leaves behind.
type fixtureState struct {
	images    map[signaturestore.ImageKey][]signaturestore.Signature
	touched   []signaturestore.ImageKey // every image the script names, emptied ones too
	journal   []signaturestore.ImageKey
	referrers []fixtureReferrer
}

func fixtureModel() fixtureState {
	st := fixtureState{images: map[signaturestore.ImageKey][]signaturestore.Signature{}}
	touch := func(k signaturestore.ImageKey) {
		if !slices.Contains(st.touched, k) {
			st.touched = append(st.touched, k)
		}
	}
	for _, op := range fixtureScript() {
		switch op.op {
		case "put":
			touch(op.key)
			st.images[op.key] = append(st.images[op.key], op.sig)
		case "delete":
			st.images[op.key] = slices.DeleteFunc(st.images[op.key], func(s signaturestore.Signature) bool { return s.Name == op.name })
		case "status":
			for i, s := range st.images[op.key] {
				if s.Name == op.name {
					st.images[op.key][i].Status = op.status
				}
			}
		case "deleteAll":
			delete(st.images, op.key)
		case "beginDelete":
			touch(op.key)
			st.journal = append(st.journal, op.key)
		case "beginReferrer":
			st.referrers = append(st.referrers, fixtureReferrer{repo: op.repo, subject: op.subject, desc: op.desc, pending: true})
		case "endReferrer":
			i := slices.IndexFunc(st.referrers, func(r fixtureReferrer) bool { return r.repo == op.repo && r.desc.Digest == op.ref })
			if op.stored {
				st.referrers[i].pending = false
			} else {
				st.referrers = slices.Delete(st.referrers, i, i+1)
			}
		}
	}
	for k, sigs := range st.images {
		if len(sigs) == 0 {
			delete(st.images, k)
		}
	}
	return st
}

func compareKeys(a, b signaturestore.ImageKey) int {
	if c := strings.Compare(a.Repository, b.Repository); c != 0 {
		return c
	}
	return strings.Compare(string(a.Digest), string(b.Digest))
}

func statusText(st *signaturestore.Status) string {
	b, _ := json.Marshal(st)
	return string(b)
}

func sameSignatures(t *testing.T, what string, got, want []signaturestore.Signature) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d signatures, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Type != w.Type || !bytes.Equal(g.Content, w.Content) || !g.Created.Equal(w.Created) ||
			g.Created.Location() != time.UTC || statusText(g.Status) != statusText(w.Status) {
			t.Fatalf("%s: signature %d is\n%q %q %q %v %s\nwant\n%q %q %q %v %s", what, i,
				g.Name, g.Type, g.Content, g.Created, statusText(g.Status), w.Name, w.Type, w.Content, w.Created, statusText(w.Status))
		}
	}
}

// checkFixtureFacts checks every fact of the fixture through the Store
// API: each image's signatures in order with their status and times, the
// total, the walk, the journal and the referrers index.
func checkFixtureFacts(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	st := fixtureModel()
	total := 0
	for _, k := range st.touched {
		got, err := s.List(ctx, k)
		if err != nil {
			t.Fatalf("List(%q): %v", k, err)
		}
		sameSignatures(t, fmt.Sprintf("List(%q)", k), got, st.images[k])
		total += len(got)
	}
	if n, err := s.Count(ctx); err != nil || n != int64(total) {
		t.Fatalf("Count = %d, %v; want %d", n, err, total)
	}
	var walked []signaturestore.ImageKey
	err := s.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		walked = append(walked, k)
		sameSignatures(t, fmt.Sprintf("Walk(%q)", k), sigs, st.images[k])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []signaturestore.ImageKey
	for k := range st.images {
		want = append(want, k)
	}
	slices.SortFunc(want, compareKeys)
	if !slices.Equal(walked, want) {
		t.Fatalf("Walk visited\n%q\nwant\n%q", walked, want)
	}
	if after, err := s.ImagesAfter(ctx, signaturestore.ImageKey{}, 1000); err != nil || !slices.Equal(after, want) {
		t.Fatalf("ImagesAfter = %q, %v; want %q", after, err, want)
	}

	pending, err := s.PendingImageDeletes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pending, compareKeys)
	wantJournal := slices.SortedFunc(slices.Values(st.journal), compareKeys)
	if !slices.Equal(pending, wantJournal) {
		t.Fatalf("PendingImageDeletes = %q, want %q", pending, wantJournal)
	}

	type subject struct {
		repo    string
		subject digest.Digest
	}
	listed := map[subject][]string{}
	var wantPending []signaturestore.ReferrerKey
	for _, r := range st.referrers {
		if r.pending {
			wantPending = append(wantPending, signaturestore.ReferrerKey{Repository: r.repo, Digest: r.desc.Digest})
			continue
		}
		b, _ := json.Marshal(r.desc)
		listed[subject{r.repo, r.subject}] = append(listed[subject{r.repo, r.subject}], string(b))
	}
	for sub, descs := range listed {
		got, err := s.Referrers(ctx, sub.repo, sub.subject, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, d := range got {
			b, _ := json.Marshal(d)
			texts = append(texts, string(b))
		}
		slices.SortStableFunc(descs, func(a, b string) int { return strings.Compare(digestOf(a), digestOf(b)) })
		if !slices.Equal(texts, descs) {
			t.Fatalf("Referrers(%s, %s) =\n%s\nwant\n%s", sub.repo, sub.subject, texts, descs)
		}
	}
	gotPending, err := s.PendingReferrers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotPending, wantPending) {
		t.Fatalf("PendingReferrers = %v, want %v", gotPending, wantPending)
	}
}

func digestOf(descJSON string) string {
	var d signaturestore.Descriptor
	_ = json.Unmarshal([]byte(descJSON), &d)
	return string(d.Digest)
}

// TestFixtureScript runs the fixture's script on a new schema-2 store: it
// must leave what the model says, which is what the upgrade of the
// schema-1 file is checked against.
func TestFixtureScript(t *testing.T) {
	s := MustOpen(t)
	applyFixture(t, s)
	checkFixtureFacts(t, s)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
