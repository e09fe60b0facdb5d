package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// fixtureV1 copies testdata/schema1.db (see testdata/README.md) into a new
// directory with mode and returns the copy's path.
func fixtureV1(t *testing.T, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signatures.db")
	must(t, os.WriteFile(path, b, mode))
	must(t, os.Chmod(path, mode)) // past the umask
	return path
}

func schemaOfFile(t *testing.T, path string) uint32 {
	t.Helper()
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint32
	must(t, db.View(func(tx *bbolt.Tx) error {
		var err error
		v, err = readSchema(tx)
		return err
	}))
	return v
}

func fixtureTotals() (signatures, repositories int) {
	st := fixtureModel()
	repos := map[string]bool{}
	for k, sigs := range st.images {
		signatures += len(sigs)
		repos[k.Repository] = true
	}
	return signatures, len(repos)
}

// TestReadSchema1 reads the schema-1 fixture without upgrading it: a
// Reader walks it in order with every fact of the model, lists its
// journal and referrers; CheckFile checks the schema-1 layout; neither
// writes to the file.
func TestReadSchema1(t *testing.T) {
	path := fixtureV1(t, 0o600)
	before, err := os.ReadFile(path)
	must(t, err)
	sigN, repoN := fixtureTotals()

	rep, err := CheckFile(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SchemaVersion != 1 || rep.Signatures != uint64(sigN) || rep.Repositories != repoN || rep.PendingDeletes != 2 {
		t.Fatalf("CheckFile of the schema-1 fixture: %+v; want schema 1, %d signatures in %d repositories, 2 pending deletes", rep, sigN, repoN)
	}

	r, err := OpenReader(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkReaderFacts(t, r)
	must(t, r.Close())
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("reading the schema-1 file changed it")
	}

	// The upgraded file shows a Reader the same facts.
	upgraded := fixtureV1(t, 0o600)
	s := mustOpenOptions(t, upgraded, Options{})
	must(t, s.Close())
	r2, err := OpenReader(upgraded, time.Second)
	must(t, err)
	defer r2.Close()
	if r2.version != SchemaVersion {
		t.Fatalf("upgraded file read as schema %d", r2.version)
	}
	checkReaderFacts(t, r2)

	// A broken schema-1 file is reported as such.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	must(t, err)
	must(t, db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyCount, u64(7))
	}))
	must(t, db.Close())
	if _, err := CheckFile(path, time.Second); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "meta count is 7") {
		t.Fatalf("CheckFile of a broken schema-1 file: %v", err)
	}
}

// checkReaderFacts checks what a Reader shows of the fixture.
func checkReaderFacts(t *testing.T, r *Reader) {
	t.Helper()
	ctx := t.Context()
	st := fixtureModel()
	var walked []signaturestore.ImageKey
	must(t, r.Walk(ctx, func(k signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		walked = append(walked, k)
		sameSignatures(t, fmt.Sprintf("Reader.Walk(%q)", k), sigs, st.images[k])
		return nil
	}))
	var want []signaturestore.ImageKey
	for k := range st.images {
		want = append(want, k)
	}
	slices.SortFunc(want, compareKeys)
	if !slices.Equal(walked, want) {
		t.Fatalf("Reader.Walk visited %q, want %q", walked, want)
	}
	pending, err := r.PendingImageDeletes(ctx)
	must(t, err)
	slices.SortFunc(pending, compareKeys)
	if wantJ := slices.SortedFunc(slices.Values(st.journal), compareKeys); !slices.Equal(pending, wantJ) {
		t.Fatalf("Reader.PendingImageDeletes = %q, want %q", pending, wantJ)
	}
	var refs []string
	must(t, r.WalkReferrers(ctx, func(repo string, subject digest.Digest, desc signaturestore.Descriptor, pending bool) error {
		refs = append(refs, fmt.Sprintf("%s %s %s %v", repo, subject, desc.Digest, pending))
		return nil
	}))
	var wantRefs []string
	for _, ref := range st.referrers {
		wantRefs = append(wantRefs, fmt.Sprintf("%s %s %s %v", ref.repo, ref.subject, ref.desc.Digest, ref.pending))
	}
	slices.Sort(wantRefs)
	if !slices.Equal(refs, wantRefs) {
		t.Fatalf("Reader.WalkReferrers = %q, want %q", refs, wantRefs)
	}
}

// TestUpgradeSchema1 opens the schema-1 fixture: Open upgrades it to
// schema 2 in place, keeping every fact (checked through the Store API),
// the file's mode, and nothing beside it; the upgraded store enforces
// uniqueness and limits against the upgraded signatures and takes writes.
func TestUpgradeSchema1(t *testing.T) {
	path := fixtureV1(t, 0o666) // more than the usual umask lets through
	ctx := t.Context()
	st := fixtureModel()
	big := signaturestore.ImageKey{Repository: "ns/big", Digest: digest.FromString("big image")}
	bigSigs := st.images[big]
	var bigBytes int64
	for _, s := range bigSigs {
		bigBytes += int64(len(s.Content))
	}

	s := mustOpenOptions(t, path, Options{Limits: signaturestore.Limits{MaxPerImage: len(bigSigs) + 1, MaxBytesPerImage: bigBytes + 10}})
	checkFixtureFacts(t, s)
	if err := s.Check(); err != nil {
		t.Fatalf("Check after the upgrade: %v", err)
	}
	if left, _ := filepath.Glob(path + "*"); len(left) != 1 {
		t.Fatalf("files beside the database after the upgrade: %q", left)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o666 {
		t.Fatalf("mode after the upgrade: %v %v; want 0666", info.Mode(), err)
	}

	// Uniqueness holds against upgraded signatures.
	first := bigSigs[0]
	dupName := signaturestore.Signature{Name: first.Name, Type: first.Type, Content: []byte("new content")}
	dupContent := signaturestore.Signature{Name: fmt.Sprintf("%s@%032x", big.Digest, 0xbeef), Type: first.Type, Content: first.Content}
	for what, sg := range map[string]signaturestore.Signature{"name": dupName, "content": dupContent} {
		if err := s.Put(ctx, big, sg); !errors.Is(err, signaturestore.ErrExists) {
			t.Fatalf("Put of an upgraded signature's %s: %v, want ErrExists", what, err)
		}
	}
	// So do the limits: ten more bytes, and one more signature.
	tooBig := signaturestore.Signature{Name: fmt.Sprintf("%s@%032x", big.Digest, 0xb1), Type: "atomic", Content: make([]byte, 11)}
	if err := s.Put(ctx, big, tooBig); !errors.Is(err, signaturestore.ErrLimit) {
		t.Fatalf("Put past MaxBytesPerImage: %v", err)
	}
	last := signaturestore.Signature{Name: fmt.Sprintf("%s@%032x", big.Digest, 0xb2), Type: "atomic", Content: []byte("last")}
	must(t, s.Put(ctx, big, last))
	if err := s.Put(ctx, big, signaturestore.Signature{Name: fmt.Sprintf("%s@%032x", big.Digest, 0xb3), Type: "atomic", Content: []byte("x")}); !errors.Is(err, signaturestore.ErrLimit) {
		t.Fatalf("Put past MaxPerImage: %v", err)
	}
	got, err := s.List(ctx, big)
	must(t, err)
	sameSignatures(t, "List after a new Put", got[:len(bigSigs)], bigSigs)
	if got[len(got)-1].Name != last.Name {
		t.Fatalf("new signature listed at %q, want last", got[len(got)-1].Name)
	}

	// Deletes, status and the journal work on upgraded images.
	odd := signaturestore.ImageKey{Repository: "ns/odd", Digest: digest.SHA512.FromString("odd image")}
	must(t, s.Delete(ctx, odd, "custom"))
	must(t, s.SetStatus(ctx, odd, "\xff\x00binary name", fixtureStatus("after", true)))
	second := signaturestore.ImageKey{Repository: "ns/math-voila", Digest: digest.FromString("second")}
	must(t, s.EndImageDelete(ctx, second, true))
	if sigs, err := s.List(ctx, second); err != nil || len(sigs) != 0 {
		t.Fatalf("List after EndImageDelete = %d, %v", len(sigs), err)
	}
	pending, err := s.PendingImageDeletes(ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("PendingImageDeletes = %q, %v; want the one left", pending, err)
	}
	shared := digest.FromString("shared image")
	must(t, s.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: "ns/math", Digest: digest.FromString("ref-c")}, true))
	if refs, err := s.Referrers(ctx, "ns/math", shared, "", 0); err != nil || len(refs) != 3 {
		t.Fatalf("Referrers after confirming the pending one: %d, %v", len(refs), err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	rep, err := CheckFile(path, time.Second)
	if err != nil || rep.SchemaVersion != SchemaVersion {
		t.Fatalf("CheckFile after the upgrade: %+v, %v", rep, err)
	}
	// A second Open finds schema 2 and leaves it be.
	s = mustOpenOptions(t, path, Options{})
	if odds, err := s.List(ctx, odd); err != nil || len(odds) != len(st.images[odd])-1 {
		t.Fatalf("List after reopening: %d, %v", len(odds), err)
	}
}

// TestUpgradeRefusesBrokenSchema1: a schema-1 file that does not follow
// its layout is not upgraded: Open fails naming the problem, the file is
// left byte for byte, and no partial copy stays beside it.
func TestUpgradeRefusesBrokenSchema1(t *testing.T) {
	tests := []struct {
		name   string
		damage func(tx *bbolt.Tx) error
		text   string
	}{
		{"count", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyCount, u64(3))
		}, "schema-1 meta count is 3"},
		{"record", func(tx *bbolt.Tx) error {
			img := tx.Bucket(bucketReposV1).Bucket([]byte("ns/big")).Bucket([]byte(digest.FromString("big image")))
			return img.Bucket(bucketSigsV1).Put(u64(3), []byte{1, 0x7f})
		}, "record"},
		{"duplicate name", func(tx *bbolt.Tx) error {
			sigs := tx.Bucket(bucketReposV1).Bucket([]byte("ns/big")).Bucket([]byte(digest.FromString("big image"))).Bucket(bucketSigsV1)
			return sigs.Put(u64(1000), bytes.Clone(sigs.Get(u64(1))))
		}, "two signatures named"},
		{"no repos bucket", func(tx *bbolt.Tx) error {
			return tx.DeleteBucket(bucketReposV1)
		}, "missing repos bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := fixtureV1(t, 0o600)
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
			must(t, err)
			must(t, db.Update(tc.damage))
			must(t, db.Close())
			before, err := os.ReadFile(path)
			must(t, err)
			s, err := Open(path, Options{})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open upgraded a broken schema-1 file")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Open = %v; want ErrCorrupt mentioning %q", err, tc.text)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("the refused upgrade changed the file")
			}
			if left, _ := filepath.Glob(path + "*"); len(left) != 1 {
				t.Fatalf("files beside the database after a refused upgrade: %q", left)
			}
		})
	}
}

// TestUpgradeThroughSymlink: a database reached through a symlink is
// upgraded where it really is; the link stays a link.
func TestUpgradeThroughSymlink(t *testing.T) {
	real := fixtureV1(t, 0o600)
	link := filepath.Join(t.TempDir(), "signatures.db")
	must(t, os.Symlink(real, link))
	s := mustOpenOptions(t, link, Options{})
	checkFixtureFacts(t, s)
	must(t, s.Close())
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link after the upgrade: %v %v", fi.Mode(), err)
	}
	if v := schemaOfFile(t, real); v != SchemaVersion {
		t.Fatalf("target has schema %d after the upgrade", v)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(link), "*")); len(left) != 1 {
		t.Fatalf("files beside the link: %q", left)
	}
}

// TestUpgradeDiskFull: an upgrade that runs out of space fails with
// ErrNoSpace, leaves the schema-1 file as it was and no partial copy, and
// succeeds once space is freed. Needs root for a small tmpfs.
func TestUpgradeDiskFull(t *testing.T) {
	dir := mountTmpfs(t, 2<<20)
	src := fixtureV1(t, 0o600)
	b, err := os.ReadFile(src)
	must(t, err)
	path := filepath.Join(dir, "signatures.db")
	must(t, os.WriteFile(path, b, 0o600))
	filler := fill(t, dir)
	_, err = Open(path, Options{})
	if !errors.Is(err, signaturestore.ErrNoSpace) {
		t.Fatalf("Open on a full disk = %v; want ErrNoSpace", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(b, after) {
		t.Fatal("the failed upgrade changed the file")
	}
	if left, _ := filepath.Glob(path + "*"); len(left) != 1 {
		t.Fatalf("files beside the database after a failed upgrade: %q", left)
	}
	must(t, os.Remove(filler))
	s := mustOpenOptions(t, path, Options{})
	checkFixtureFacts(t, s)
}

// crashSteps are the points TestUpgradeCrash kills an upgrade at: after
// the first and a later committed batch of the new file, once it is
// complete, once it is synced, and once it has been renamed over the old
// one.
var crashSteps = []string{"batch 1", "batch 5", "built", "synced", "renamed"}

// TestUpgradeCrash kills a process (SIGKILL) in the middle of an upgrade,
// at each step, and checks what it leaves: before the rename the untouched
// schema-1 file, byte for byte; after it the complete schema-2 file. Never
// a mix. Either way the next Open ends with every fact of the fixture.
func TestUpgradeCrash(t *testing.T) {
	if os.Getenv("SIGNET_UPGRADE_CRASH_AT") != "" {
		t.Skip("in the child")
	}
	exe, err := os.Executable()
	must(t, err)
	for _, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			path := fixtureV1(t, 0o600)
			original, err := os.ReadFile(path)
			must(t, err)
			cmd := exec.Command(exe, "-test.run=^TestUpgradeCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SIGNET_UPGRADE_CRASH_AT="+step, "SIGNET_UPGRADE_CRASH_DB="+path)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %q: %v\n%s", step, err, out)
			}
			switch v := schemaOfFile(t, path); {
			case step == "renamed":
				if v != SchemaVersion {
					t.Fatalf("after a crash past the rename the file has schema %d", v)
				}
				if _, err := CheckFile(path, time.Second); err != nil {
					t.Fatalf("after a crash past the rename: %v", err)
				}
			default:
				if now, _ := os.ReadFile(path); !bytes.Equal(now, original) {
					t.Fatalf("a crash at %q changed the schema-1 file (schema now %d)", step, v)
				}
				if _, err := os.Stat(path + upgradeSuffix); err != nil {
					t.Fatalf("no partial copy after a crash at %q: %v", step, err)
				}
			}
			s := mustOpenOptions(t, path, Options{})
			checkFixtureFacts(t, s)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(path + "*"); len(left) != 1 {
				t.Fatalf("files beside the database after recovery: %q", left)
			}
		})
	}
}

// TestUpgradeCrashChild is the process TestUpgradeCrash kills.
func TestUpgradeCrashChild(t *testing.T) {
	at, path := os.Getenv("SIGNET_UPGRADE_CRASH_AT"), os.Getenv("SIGNET_UPGRADE_CRASH_DB")
	if at == "" {
		t.Skip("run by TestUpgradeCrash")
	}
	batches := 0
	hooks := upgradeHooks{
		batchBytes: 1000, // many batches from the small fixture
		step: func(name string) {
			if name == "batch" {
				batches++
				name = fmt.Sprintf("batch %d", batches)
			}
			if name == at {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // the signal is on its way
			}
		},
	}
	s, err := open(path, Options{}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	t.Fatalf("the upgrade never reached %q (%d batches)", at, batches)
}
