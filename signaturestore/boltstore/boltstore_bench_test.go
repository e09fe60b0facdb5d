package boltstore

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// benchWriters is how many goroutines write at once, roughly a busy
// registry with many clients pushing signatures.
const benchWriters = 64

// BenchmarkPutParallel compares ways of committing concurrent Puts. All
// three run the same operation (preparePut + apply) against the same
// layout; only the commit strategy differs:
//
//   - GroupCommit: Store.Put, the writer goroutine batching whatever is
//     queued into one fsync.
//   - UpdatePerPut: one db.Update, so one fsync, per Put.
//   - DBBatch: bbolt's db.Batch, which waits up to MaxBatchDelay (10ms)
//     for a batch to fill.
func BenchmarkPutParallel(b *testing.B) {
	modes := []struct {
		name string
		put  func(s *Store, key signaturestore.ImageKey, sig signaturestore.Signature) error
	}{
		{"GroupCommit", func(s *Store, key signaturestore.ImageKey, sig signaturestore.Signature) error {
			return s.Put(context.Background(), key, sig)
		}},
		{"UpdatePerPut", func(s *Store, key signaturestore.ImageKey, sig signaturestore.Signature) error {
			op, err := s.preparePut(key, sig)
			if err != nil {
				return err
			}
			return s.db.Update(op.apply)
		}},
		{"DBBatch", func(s *Store, key signaturestore.ImageKey, sig signaturestore.Signature) error {
			op, err := s.preparePut(key, sig)
			if err != nil {
				return err
			}
			return s.db.Batch(op.apply)
		}},
	}
	keys := make([]signaturestore.ImageKey, 256)
	for i := range keys {
		keys[i] = key(fmt.Sprintf("bench/repo%d", i%16), fmt.Sprint(i))
	}
	base := make([]byte, 600)
	for i := range base {
		base[i] = byte(rand.N(256))
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			obs := &countingObserver{}
			s := mustOpenOptions(b, filepath.Join(b.TempDir(), "bench.db"), Options{Observer: obs})
			var seq atomic.Uint64
			writes := pageWrites(s)
			b.SetParallelism((benchWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					k := keys[i%uint64(len(keys))]
					content := make([]byte, len(base))
					copy(content, base)
					binary.BigEndian.PutUint64(content, i) // unique content
					sig := signaturestore.Signature{
						Name:    fmt.Sprintf("%s@%032x", k.Digest, i),
						Type:    signaturestore.TypeAtomic,
						Content: content,
					}
					if err := m.put(s, k, sig); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			// Pages (or runs of overflow pages) written by commits,
			// meta pages included: what the layout makes a write dirty.
			b.ReportMetric(float64(pageWrites(s)-writes)/float64(b.N), "page-writes/put")
			if c := obs.commits.Load(); c > 0 {
				b.ReportMetric(float64(obs.requests.Load())/float64(c), "puts/commit")
			}
			if n, err := s.Count(context.Background()); err != nil || n != int64(b.N) {
				b.Fatalf("Count = %d, %v; want %d", n, err, b.N)
			}
		})
	}
}

func pageWrites(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}

// Shape of BenchmarkBytesPerSignature: the scale benchmark's (bench/scale.go)
// at a fifth of its size, 10 signatures of 600 random bytes per image, in
// repositories of 1,000 images.
const (
	spaceSignatures = 200_000
	spacePerImage   = 10
	spaceSigSize    = 600
)

// BenchmarkBytesPerSignature loads spaceSignatures signatures through
// Store.Put with benchWriters concurrent writers (each writing one image's
// signatures in turn, as a signing client does) and reports the database
// file's size per signature, in bytes and as a multiple of the raw
// signature size (the target is 1.5x). used-bytes/signature leaves out the
// space bbolt allocates ahead at the end of the file (up to its 16 MiB
// AllocSize), which is a large share of a file of this size. It logs how
// full each bucket's pages are. It loads the set once whatever b.N is
// (run it with -benchtime 1x) and reports the load's rate instead of
// ns/op.
func BenchmarkBytesPerSignature(b *testing.B) {
	{
		start := time.Now()
		path := filepath.Join(b.TempDir(), "signatures.db")
		s, err := Open(path, Options{Limits: signaturestore.Limits{MaxPerImage: 64, MaxBytesPerImage: 3 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		keys := make(chan signaturestore.ImageKey, 1024)
		go func() {
			defer close(keys)
			for i := range spaceSignatures / spacePerImage {
				var d [32]byte
				_, _ = cryptorand.Read(d[:])
				keys <- signaturestore.ImageKey{
					Repository: fmt.Sprintf("scale/r%04d", i/1000),
					Digest:     digest.Digest("sha256:" + hex.EncodeToString(d[:])),
				}
			}
		}()
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range benchWriters {
			wg.Go(func() {
				for k := range keys {
					for range spacePerImage {
						var suffix [16]byte
						_, _ = cryptorand.Read(suffix[:])
						content := make([]byte, spaceSigSize)
						_, _ = cryptorand.Read(content)
						sig := signaturestore.Signature{Name: k.Digest.String() + "@" + hex.EncodeToString(suffix[:]), Type: signaturestore.TypeAtomic, Content: content}
						if err := s.Put(context.Background(), k, sig); err != nil {
							if !failed.Swap(true) {
								b.Error(err)
							}
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			b.FailNow()
		}
		if n, err := s.Count(context.Background()); err != nil || n != spaceSignatures {
			b.Fatalf("Count = %d, %v; want %d", n, err, spaceSignatures)
		}
		logSpace(b, s.db)
		var used int64
		_ = s.db.View(func(tx *bbolt.Tx) error { used = tx.Size(); return nil })
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		per := float64(fi.Size()) / spaceSignatures
		b.ReportMetric(per, "bytes/signature")
		b.ReportMetric(per/spaceSigSize, "x-raw")
		b.ReportMetric(float64(used)/spaceSignatures, "used-bytes/signature")
		b.ReportMetric(spaceSignatures/time.Since(start).Seconds(), "signatures/s")
		b.ReportMetric(0, "ns/op")
	}
}

// logSpace logs where the pages go: per top-level bucket (nested buckets
// included) the pages allocated and the bytes in use, and the free list.
func logSpace(b testing.TB, db *bbolt.DB) {
	b.Helper()
	_ = db.View(func(tx *bbolt.Tx) error {
		ps := int64(db.Info().PageSize)
		b.Logf("%d pages of %d bytes in use (high water mark: %d bytes), %d of them free, %d pending",
			tx.Size()/ps, ps, tx.Size(), db.Stats().FreePageN, db.Stats().PendingPageN)
		return tx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
			st := bk.Stats()
			alloc := st.BranchAlloc + st.LeafAlloc
			inuse := st.BranchInuse + st.LeafInuse
			fill := 0.0
			if alloc > 0 {
				fill = 100 * float64(inuse) / float64(alloc)
			}
			b.Logf("  %-10s keys %8d  buckets %7d (inline %7d)  pages: branch %6d leaf %7d overflow %5d  alloc %10d B (%6.1f B/signature)  in use %10d B (%.1f%%)",
				name, st.KeyN, st.BucketN, st.InlineBucketN, st.BranchPageN, st.LeafPageN, st.LeafOverflowN+st.BranchOverflowN,
				alloc, float64(alloc)/spaceSignatures, inuse, fill)
			return nil
		})
	})
}
