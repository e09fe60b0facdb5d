package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/etcdtest"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

// migrateFixture is a bbolt data directory with signatures in sibling
// repositories, statuses, creation times, a pending manifest delete and
// referrers.
type migrateFixture struct {
	dataDir string
	keys    []signaturestore.ImageKey
	subject digest.Digest
	refs    []signaturestore.Descriptor // refs[0] confirmed, refs[1] pending
}

func migrateSig(k signaturestore.ImageKey, n int) signaturestore.Signature {
	return signaturestore.Signature{
		Name:    fmt.Sprintf("%s@%032x", k.Digest, n),
		Type:    signaturestore.TypeAtomic,
		Content: []byte(fmt.Sprintf("signature %d of %s\x00\xff", n, k)),
		Created: time.Date(2025, 1, 2, 3, 4, 5, n*1000+7, time.UTC),
	}
}

func newMigrateFixture(t *testing.T) *migrateFixture {
	t.Helper()
	f := &migrateFixture{dataDir: t.TempDir()}
	b, err := boltstore.Open(filepath.Join(f.dataDir, "signatures.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	for i, repo := range []string{"ns/math", "ns/math-voila", "ns/math/sub", "docker.io/library/nginx"} {
		for j := range 3 {
			k := signaturestore.ImageKey{Repository: repo, Digest: digest.FromString(fmt.Sprint(repo, j))}
			f.keys = append(f.keys, k)
			for n := range i + j + 1 {
				// Insertion order is not name order.
				if err := b.Put(ctx, k, migrateSig(k, 50-n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	status := &signaturestore.Status{
		Conditions:    []signaturestore.Condition{{Type: signaturestore.ConditionTrusted, Status: signaturestore.ConditionTrue, Reason: "manually verified"}},
		ImageIdentity: "registry.example.com/ns/math:v1",
		IssuedBy:      &signaturestore.Issuer{CommonName: "0123456789ABCDEF"},
	}
	if err := b.SetStatus(ctx, f.keys[1], migrateSig(f.keys[1], 49).Name, status); err != nil {
		t.Fatal(err)
	}
	if err := b.BeginImageDelete(ctx, f.keys[4]); err != nil {
		t.Fatal(err)
	}
	f.subject = f.keys[0].Digest
	f.refs = []signaturestore.Descriptor{
		{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString("ref-confirmed"), Size: 100, ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json"},
		{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest.FromString("ref-pending"), Size: 200},
	}
	for _, d := range f.refs {
		if err := b.BeginReferrer(ctx, "ns/math", f.subject, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/math", Digest: f.refs[0].Digest}, true); err != nil {
		t.Fatal(err)
	}
	return f
}

// dump is everything a store holds, in a comparable form.
type dump struct {
	Images    map[string][]string // image -> "name|type|content|created|status" in order
	Deletes   []string
	Referrers []string
	Pending   []string
}

func dumpStore(t *testing.T, w signaturestore.Walker, rest interface {
	signaturestore.DeleteJournal
	signaturestore.ReferrersIndex
}, subject digest.Digest) dump {
	t.Helper()
	ctx := t.Context()
	d := dump{Images: map[string][]string{}}
	err := w.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		for _, s := range sigs {
			st, _ := json.Marshal(s.Status)
			d.Images[k.String()] = append(d.Images[k.String()], fmt.Sprintf("%s|%s|%x|%s|%s", s.Name, s.Type, s.Content, s.Created.Format(time.RFC3339Nano), st))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dels, err := rest.PendingImageDeletes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range dels {
		d.Deletes = append(d.Deletes, k.String())
	}
	refs, err := rest.Referrers(ctx, "ns/math", subject, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		b, _ := json.Marshal(r)
		d.Referrers = append(d.Referrers, string(b))
	}
	pend, err := rest.PendingReferrers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pend {
		d.Pending = append(d.Pending, p.Repository+"@"+p.Digest.String())
	}
	return d
}

func sameDump(t *testing.T, what string, got, want dump) {
	t.Helper()
	gj, _ := json.MarshalIndent(got, "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	if !bytes.Equal(gj, wj) {
		t.Fatalf("%s: etcd holds\n%s\nwant (the bbolt source)\n%s", what, gj, wj)
	}
}

func boltDump(t *testing.T, f *migrateFixture) dump {
	t.Helper()
	b, err := boltstore.Open(filepath.Join(f.dataDir, "signatures.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return dumpStore(t, b, b, f.subject)
}

func etcdDump(t *testing.T, srv *etcdtest.Server, prefix string, subject digest.Digest) (dump, *etcdstore.Store) {
	t.Helper()
	s, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Check(); err != nil {
		t.Fatalf("etcd store after migrate: %v", err)
	}
	return dumpStore(t, s, s, subject), s
}

var migrateSummary = regexp.MustCompile(`migrated (\d+) images: (\d+) signatures copied, (\d+) already present, (\d+) statuses updated, (\d+) pending manifest deletes, (\d+) referrers; (\d+) images failed`)

func summary(t *testing.T, out string) []string {
	t.Helper()
	m := migrateSummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in output:\n%s", out)
	}
	return m[1:]
}

// TestMigrate: signet migrate copies everything a bbolt store holds into
// a real etcd, byte for byte and in order; a second run copies nothing and
// leaves etcd as it was; a later run picks up what changed in the source;
// a conflicting signature in etcd fails only its image.
func TestMigrate(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	f := newMigrateFixture(t)
	want := boltDump(t, f)
	total := 0
	for _, sigs := range want.Images {
		total += len(sigs)
	}
	const prefix = "/migrated/"
	args := []string{"migrate", "--from", "bbolt:" + f.dataDir, "--to", "etcd:" + srv.Endpoint(), "--prefix", prefix}

	out, err := runCLI(t, nil, args...)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if got, exp := summary(t, out), []string{"12", fmt.Sprint(total), "0", "0", "1", "2", "0"}; !slices.Equal(got, exp) {
		t.Fatalf("first run summary %v, want %v\n%s", got, exp, out)
	}
	t.Logf("first run:\n%s", out)
	if !strings.Contains(out, "12 images: ") {
		t.Fatalf("no progress output:\n%s", out)
	}
	got, _ := etcdDump(t, srv, prefix, f.subject)
	sameDump(t, "after the first run", got, want)

	// Again: nothing new, nothing duplicated.
	out, err = runCLI(t, nil, args...)
	if err != nil {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	if got, exp := summary(t, out), []string{"12", "0", fmt.Sprint(total), "0", "1", "2", "0"}; !slices.Equal(got, exp) {
		t.Fatalf("second run summary %v, want %v\n%s", got, exp, out)
	}
	got, es := etcdDump(t, srv, prefix, f.subject)
	sameDump(t, "after the second run", got, want)
	if n, err := es.Count(t.Context()); err != nil || n != int64(total) {
		t.Fatalf("etcd counts %d signatures (%v), want %d", n, err, total)
	}

	// The source moves on: a new signature and a changed status.
	b, err := boltstore.Open(filepath.Join(f.dataDir, "signatures.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), f.keys[0], migrateSig(f.keys[0], 7)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStatus(t.Context(), f.keys[1], migrateSig(f.keys[1], 49).Name, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want = boltDump(t, f)
	out, err = runCLI(t, nil, args...)
	if err != nil {
		t.Fatalf("third migrate: %v\n%s", err, out)
	}
	if got, exp := summary(t, out), []string{"12", "1", fmt.Sprint(total), "1", "1", "2", "0"}; !slices.Equal(got, exp) {
		t.Fatalf("third run summary %v, want %v\n%s", got, exp, out)
	}
	got, es = etcdDump(t, srv, prefix, f.subject)
	sameDump(t, "after the source changed", got, want)

	// A different signature under a name the source has: that image
	// fails, is named, and nothing of it is overwritten; the rest of
	// the run goes on and the exit status says so.
	victim := f.keys[5]
	if _, err := es.DeleteAll(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	impostor := migrateSig(victim, 50)
	impostor.Content = []byte("not the source's bytes")
	if err := es.Put(t.Context(), victim, impostor); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, nil, args...)
	if err == nil || !strings.Contains(out, "FAILED "+victim.String()) || !strings.Contains(out, "conflict") {
		t.Fatalf("migrate over a conflict: %v\n%s", err, out)
	}
	if got := summary(t, out); got[6] != "1" {
		t.Fatalf("failed images %s, want 1\n%s", got[6], out)
	}
	sigs, err := es.List(t.Context(), victim)
	if err != nil || len(sigs) != 1 || string(sigs[0].Content) != "not the source's bytes" {
		t.Fatalf("the conflicting signature was touched: %+v %v", sigs, err)
	}
}

func TestMigrateArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--from", "/x", "--to", "etcd:http://127.0.0.1:1"}, "want bbolt:PATH"},
		{[]string{"migrate", "--from", "bbolt:/x", "--to", "http://127.0.0.1:1"}, "want etcd:ENDPOINT"},
		{[]string{"migrate", "--from", "bbolt:/x", "--to", "etcd:,"}, "no endpoints"},
		{[]string{"migrate", "--from", "bbolt:/x", "--to", "etcd:127.0.0.1:2379"}, "not an http"},
		{[]string{"migrate", "--from", "bbolt:" + filepath.Join(t.TempDir(), "missing.db"), "--to", "etcd:http://127.0.0.1:1"}, "no such file"},
		{[]string{"migrate", "--to", "etcd:http://127.0.0.1:1"}, "from"},
	} {
		out, err := runCLI(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%v: %v\n%s; want mention of %q", tc.args, err, out, tc.want)
		}
	}
}
