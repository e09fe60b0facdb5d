package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

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
			if c := obs.commits.Load(); c > 0 {
				b.ReportMetric(float64(obs.requests.Load())/float64(c), "puts/commit")
			}
			if n, err := s.Count(context.Background()); err != nil || n != int64(b.N) {
				b.Fatalf("Count = %d, %v; want %d", n, err, b.N)
			}
		})
	}
}
