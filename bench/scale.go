package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// Scale: the same GET workload against a store of 1,000 signatures and
// one of 1,000,000, loaded directly through boltstore (the durable write
// path, group commit and all, without HTTP in front).
const (
	scaleSigSize  = 600 // bytes of content; an RSA-3072 GnuPG signature is about this
	scalePerImage = 10
	// scaleReal images have manifests pushed through the registry and
	// are the ones GETs ask for; the rest of the digests only fill the
	// store (signatures.externalRepositories would serve them, and a
	// GET for them costs the same).
	scaleRealSmall = 100
	scaleRealLarge = 10000
)

// getScript spreads GETs uniformly over a file of paths.
const getScript = `
local paths = {}
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time())
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
`

type scaleStore struct {
	label      string
	dataDir    string
	signatures int
	paths      string // file of GET paths
	loadTime   time.Duration
	dbBytes    int64
}

func runScale(ctx context.Context, e *env, o options) error {
	dir := workDir(o, "scale")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	script := filepath.Join(dir, "get.lua")
	if err := os.WriteFile(script, []byte(getScript), 0o644); err != nil {
		return err
	}
	small, err := buildScaleStore(ctx, e, dir, "1k", scaleRealSmall, scaleRealSmall*scalePerImage)
	if err != nil {
		return err
	}
	large, err := buildScaleStore(ctx, e, dir, "1M", scaleRealLarge, o.sigs)
	if err != nil {
		return err
	}

	type measured struct {
		get       result
		rss, anon int64
		start     time.Duration
	}
	measure := func(s *scaleStore) (measured, error) {
		var m measured
		var starts []float64
		for range 3 {
			t0 := time.Now()
			p, err := startSignet(ctx, e, dir, "signet-"+s.label, s.dataDir)
			if err != nil {
				return m, err
			}
			starts = append(starts, float64(time.Since(t0)))
			p.stop()
		}
		m.start = time.Duration(medianOf(starts))
		p, err := startSignet(ctx, e, dir, "signet-"+s.label, s.dataDir)
		if err != nil {
			return m, err
		}
		defer p.stop()
		l := load{url: "http://" + p.addr, threads: 1, connections: 32, duration: o.duration, script: script, scriptArgs: []string{s.paths}}
		var runs []result
		for range o.runs {
			r, err := wrkRunner(e, l)(ctx)
			if err != nil {
				return m, err
			}
			runs = append(runs, r)
		}
		m.get = median(runs)
		if m.rss, err = p.statusKiB("VmHWM"); err != nil {
			return m, err
		}
		if m.anon, err = p.statusKiB("RssAnon"); err != nil {
			return m, err
		}
		return m, nil
	}
	ms, err := measure(small)
	if err != nil {
		return err
	}
	ml, err := measure(large)
	if err != nil {
		return err
	}
	perSig := float64(large.dbBytes) / float64(large.signatures)
	var b strings.Builder
	fmt.Fprintf(&b, "| Measure | 1k signatures | %d signatures | Ratio | Target | Met |\n|---|---|---|---|---|---|\n", large.signatures)
	fmt.Fprintf(&b, "| signature GET p99 (c=32, random image) | %s | %s | %.2f | ≤ 1.5× | %s |\n",
		fmtDur(ms.get.p99), fmtDur(ml.get.p99), float64(ml.get.p99)/float64(ms.get.p99), verdict(float64(ml.get.p99) <= 1.5*float64(ms.get.p99)))
	fmt.Fprintf(&b, "| signature GET throughput | %.0f req/s | %.0f req/s | %.2f | | |\n", ms.get.rps, ml.get.rps, ml.get.rps/ms.get.rps)
	fmt.Fprintf(&b, "| database bytes per signature (%d-byte signatures) | %.0f | %.0f | %.2f× raw | ≤ 1.5× raw | %s |\n",
		scaleSigSize, float64(small.dbBytes)/float64(small.signatures), perSig, perSig/scaleSigSize, verdict(perSig <= 1.5*scaleSigSize))
	fmt.Fprintf(&b, "| server peak RSS under load (VmHWM) | %d MiB | %d MiB | | ≤ 256 MiB | %s |\n", ms.rss>>10, ml.rss>>10, verdict(ml.rss <= 256<<10))
	fmt.Fprintf(&b, "| of which anonymous (heap, stacks) | %d MiB | %d MiB | | | |\n", ms.anon>>10, ml.anon>>10)
	fmt.Fprintf(&b, "| cold start to ready (median of 3) | %s | %s | | ≤ 1 s | %s |\n", fmtDur(ms.start), fmtDur(ml.start), verdict(ml.start <= time.Second))
	fmt.Fprintf(&b, "| bulk load through boltstore | %s | %s (%.0f signatures/s) | | | |\n", fmtDur(small.loadTime), fmtDur(large.loadTime),
		float64(large.signatures)/large.loadTime.Seconds())
	fmt.Fprintf(&b, "\nThe large store holds %d signatures over %d images in %d repositories; GETs go to %d images with pushed manifests. Medians of %d runs of %s.\n",
		large.signatures, large.signatures/scalePerImage, 1+(large.signatures/scalePerImage-scaleRealLarge)/1000, scaleRealLarge, o.runs, o.duration)
	table := b.String()
	fmt.Println(table)
	out := strings.TrimSuffix(o.out, "latest.md") + "scale.md"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, []byte(fmt.Sprintf("# Scale benchmark results\n\nWritten by `make bench-scale` (bench/) on %s.\n\n## Machine\n\n%s\n## Results\n\n%s",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), e.machine, table)), 0o644)
}

// buildScaleStore pushes real manifests through a running Signet, then
// loads signatures into its database with the server stopped.
func buildScaleStore(ctx context.Context, e *env, dir, label string, real, signatures int) (*scaleStore, error) {
	s := &scaleStore{label: label, dataDir: filepath.Join(dir, "data-"+label), signatures: signatures}
	p, err := startSignet(ctx, e, dir, "seed-"+label, s.dataDir)
	if err != nil {
		return nil, err
	}
	img := newImage("bench/app", 1024)
	base := "http://" + p.addr
	if err := img.push(base); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "   %s: pushing %d manifests\n", label, real)
	digests, err := img.variants(base, real)
	p.stop()
	if err != nil {
		return nil, err
	}
	var paths strings.Builder
	for _, d := range digests {
		fmt.Fprintf(&paths, "/extensions/v2/%s/signatures/%s\n", img.repo, d)
	}
	s.paths = filepath.Join(dir, "paths-"+label+".txt")
	if err := os.WriteFile(s.paths, []byte(paths.String()), 0o644); err != nil {
		return nil, err
	}

	// The keys to fill: the real images first, then synthetic digests in
	// repositories of 1,000 images each.
	images := signatures / scalePerImage
	keys := make(chan signaturestore.ImageKey, 1024)
	go func() {
		defer close(keys)
		for i := range images {
			var k signaturestore.ImageKey
			if i < len(digests) {
				k = signaturestore.ImageKey{Repository: img.repo, Digest: digest.Digest(digests[i])}
			} else {
				var b [32]byte
				_, _ = rand.Read(b[:])
				k = signaturestore.ImageKey{Repository: fmt.Sprintf("scale/r%04d", (i-len(digests))/1000), Digest: digest.Digest("sha256:" + hex.EncodeToString(b[:]))}
			}
			select {
			case keys <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	db := filepath.Join(s.dataDir, "signatures.db")
	st, err := boltstore.Open(db, boltstore.Options{Limits: signaturestore.Limits{MaxPerImage: 64, MaxBytesPerImage: 3 << 20}})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "   %s: loading %d signatures\n", label, signatures)
	t0 := time.Now()
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				for range scalePerImage {
					var suffix [16]byte
					_, _ = rand.Read(suffix[:])
					content := make([]byte, scaleSigSize)
					_, _ = rand.Read(content)
					sig := signaturestore.Signature{Name: k.Digest.String() + "@" + hex.EncodeToString(suffix[:]), Type: signaturestore.TypeAtomic, Content: content}
					if err := st.Put(ctx, k, sig); err != nil {
						errs <- err
						return
					}
					if n := done.Add(1); n%100000 == 0 {
						fmt.Fprintf(os.Stderr, "   %s: %d signatures, %.0f/s\n", label, n, float64(n)/time.Since(t0).Seconds())
					}
				}
			}
		}()
	}
	wg.Wait()
	s.loadTime = time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		st.Close()
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(db)
	if err != nil {
		return nil, err
	}
	s.dbBytes = fi.Size()
	return s, nil
}
