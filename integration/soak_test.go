package integration

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Soak test parameters. The p99 bound is deliberately generous: the
// 2-core CI machine runs the 64 clients, the server and everything else
// at once, so the bound catches a stall or a queue that grows without
// limit, not a slow fsync.
const (
	soakClients  = 64
	soakDefault  = 10 * time.Second
	soakWarmup   = 3 * time.Second
	soakP99Bound = 2 * time.Second
	// A push is five requests in a row (two blob uploads of POST and
	// PUT, then the manifest).
	soakPushP99Bound   = 5 * time.Second
	soakRequestTimeout = 30 * time.Second
	// Go hands freed memory back to the OS lazily (the background
	// scavenger, and a forced GC at least every 2 minutes), so RSS may
	// take that long to come down after a burst.
	soakSettleTimeout = 150 * time.Second
	// GETs read soakReadImages images of soakReadSignatures signatures
	// each, which PUTs never touch, so a response's size, and the memory
	// it takes, stays the same however long the run: what grows is a
	// leak, not the data. PUTs go round-robin to soakWriteImages other
	// images, at most soakPutsPerImage each (maxPerImage is 1024).
	soakReadImages     = 16
	soakReadSignatures = 32
	soakWriteImages    = 64
	soakPutsPerImage   = 1000
	// Resource levels after the load must come back within this
	// fraction of the level before it.
	soakTolerance = 0.10
	// soakHeapSlack is the absolute allowance on memory (see within).
	soakHeapSlack = 4 << 20
)

// soakOp is one kind of request in the mix.
type soakOp int

const (
	opSigGet soakOp = iota
	opSigPut
	opManifestGet
	opBlobGet
	opPush
	numSoakOps
)

var soakOpNames = [numSoakOps]string{"signature GET", "signature PUT", "manifest GET", "blob GET", "image push (5 requests)"}

// pick draws an operation: 70% signature GET, 20% signature PUT, 10%
// manifest and blob traffic (4% manifest GET, 4% blob GET, 2% pushes of
// a new image: blob upload, config upload, manifest PUT).
func pick(r *rand.Rand) soakOp {
	switch n := r.IntN(100); {
	case n < 70:
		return opSigGet
	case n < 90:
		return opSigPut
	case n < 94:
		return opManifestGet
	case n < 98:
		return opBlobGet
	default:
		return opPush
	}
}

// soakResult is what one load phase measured.
type soakResult struct {
	latencies [numSoakOps][]time.Duration
	failures  []string
	requests  int
}

func (r *soakResult) merge(o *soakResult) {
	for i := range r.latencies {
		r.latencies[i] = append(r.latencies[i], o.latencies[i]...)
	}
	r.failures = append(r.failures, o.failures...)
	r.requests += o.requests
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

// soakTargets are the images the load works on.
type soakTargets struct {
	read, write []*testImage
	puts        atomic.Int64 // PUTs handed out so far
}

// runLoad drives soakClients clients for d. Every answer must be the
// success status of its request; anything else is recorded as a failure.
func runLoad(c *http.Client, base string, tg *soakTargets, d time.Duration, seed uint64) *soakResult {
	deadline := time.Now().Add(d)
	results := make([]*soakResult, soakClients)
	var pushes atomic.Int64
	var wg sync.WaitGroup
	for w := range soakClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &soakResult{}
			results[w] = res
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			fail := func(format string, args ...any) {
				if len(res.failures) < 20 {
					res.failures = append(res.failures, fmt.Sprintf(format, args...))
				}
			}
			// Bounded in time and, as a backstop, in count.
			for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ {
				img := tg.read[rng.IntN(len(tg.read))]
				op := pick(rng)
				if op == opSigPut {
					n := tg.puts.Add(1) - 1
					if n >= int64(len(tg.write)*soakPutsPerImage) {
						// Every write image is full: read instead.
						op = opSigGet
					} else {
						img = tg.write[n%int64(len(tg.write))]
					}
				}
				start := time.Now()
				var err error
				var status, want int
				switch op {
				case opSigGet:
					var r reply
					r, err = send(c, "GET", base+"/extensions/v2/"+img.repo+"/signatures/"+img.digest, nil, nil)
					status, want = r.status, http.StatusOK
				case opSigPut:
					_, _, body := newSignature(img.digest, 256+rng.IntN(768))
					var r reply
					r, err = send(c, "PUT", base+"/extensions/v2/"+img.repo+"/signatures/"+img.digest, body, map[string]string{"Content-Type": "application/json"})
					status, want = r.status, http.StatusCreated
				case opManifestGet:
					var r reply
					r, err = send(c, "GET", base+"/v2/"+img.repo+"/manifests/"+img.digest, nil, map[string]string{"Accept": ociManifestType})
					status, want = r.status, http.StatusOK
				case opBlobGet:
					var d string
					for d = range img.blobs {
						break
					}
					var r reply
					r, err = send(c, "GET", base+"/v2/"+img.repo+"/blobs/"+d, nil, nil)
					status, want = r.status, http.StatusOK
				case opPush:
					n := pushes.Add(1)
					_, err = pushImage(c, base, fmt.Sprintf("soak/pushed%d", n%8), fmt.Sprintf("p%d", n), 16<<10)
					status, want = 0, 0
				}
				elapsed := time.Since(start)
				res.requests++
				switch {
				case err != nil:
					fail("%s: %v", soakOpNames[op], err)
				case status != want:
					fail("%s: status %d, want %d", soakOpNames[op], status, want)
				default:
					res.latencies[op] = append(res.latencies[op], elapsed)
				}
			}
		}()
	}
	wg.Wait()
	all := &soakResult{}
	for _, r := range results {
		all.merge(r)
	}
	return all
}

// TestSoak: 64 clients for SIGNET_SOAK_DURATION (10s by default; make
// soak runs 60s) with 70% signature GETs, 20% signature PUTs and 10%
// manifest and blob traffic. Pass: no answer but the expected success,
// p99 of every operation under soakP99Bound, and after the load (idle
// client connections closed, up to soakSettleTimeout to settle)
// goroutines, RSS and open file descriptors back within 10% of their
// level before it. The level before is taken after a warm-up at full
// load, so it includes the heap and connection pools a loaded server
// legitimately keeps; what must not stay is anything that grows with the
// number of requests served.
func TestSoak(t *testing.T) {
	d := envDuration(t, "SIGNET_SOAK_DURATION", shortOr(soakDefault, 3*time.Second))
	tmp := t.TempDir()
	// No heap floor: with one, garbage may pile up to the floor before a
	// collection, and RSS before and after would differ by wherever the
	// collector happened to be, hiding or faking growth. The leak check
	// is about what stays live.
	cfg := writeConfig(t, tmp, "server:\n  heapFloorMiB: 0\nlog:\n  accessLog: false\nsignatures:\n  maxPerImage: 1024\n  maxBytesPerImage: 2097152\n")
	s := startServer(t, filepath.Join(tmp, "data"), "--config", cfg)
	base := "http://" + s.addr
	c := newHTTPClient(soakClients, soakRequestTimeout)

	tg := &soakTargets{}
	for i := range soakReadImages + soakWriteImages {
		img, err := pushImage(c, base, fmt.Sprintf("soak/app%d", i), "v1", 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		if i >= soakReadImages {
			tg.write = append(tg.write, img)
			continue
		}
		tg.read = append(tg.read, img)
		for range soakReadSignatures {
			_, _, body := newSignature(img.digest, 512)
			if r, err := send(c, "PUT", base+"/extensions/v2/"+img.repo+"/signatures/"+img.digest, body, nil); err != nil || r.status != http.StatusCreated {
				t.Fatalf("seed signatures: %v %d", err, r.status)
			}
		}
	}
	seed := uint64(time.Now().UnixNano())

	warm := runLoad(c, base, tg, soakWarmup, seed)
	if len(warm.failures) > 0 {
		t.Fatalf("warm-up: %d unexpected answers, first: %v", len(warm.failures), warm.failures)
	}
	c.CloseIdleConnections()
	settleStart := time.Now()
	before, err := settle(c, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("levels before the load settled in %v: %v", time.Since(settleStart).Round(time.Second), before)

	start := time.Now()
	res := runLoad(c, base, tg, d, seed+1)
	took := time.Since(start)
	if len(res.failures) > 0 {
		t.Errorf("%d unexpected answers (want none); first: %v", len(res.failures), res.failures)
	}
	var worst time.Duration
	for op := range numSoakOps {
		lat := res.latencies[op]
		p50, p99, pmax := percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
		t.Logf("%-24s %7d ok  p50 %8v  p99 %8v  max %8v", soakOpNames[op], len(lat), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), pmax.Round(time.Millisecond))
		if op != opPush {
			worst = max(worst, p99)
		}
		bound := soakP99Bound
		if op == opPush {
			bound = soakPushP99Bound
		}
		if p99 > bound {
			t.Errorf("%s p99 %v over the %v bound", soakOpNames[op], p99, bound)
		}
	}

	c.CloseIdleConnections()
	settleStart = time.Now()
	after, err := settle(c, s, before)
	if err != nil {
		t.Error(err)
	}
	settled := time.Since(settleStart).Round(time.Second)
	if n := tg.puts.Load(); n > int64(len(tg.write)*soakPutsPerImage) {
		t.Logf("write images full after %d PUTs: the rest of the PUTs became GETs", len(tg.write)*soakPutsPerImage)
	}
	mib := func(m map[string]float64, k string) float64 { return m[k] / (1 << 20) }
	t.Logf("soak: %d clients, %v, %d operations (%.0f/s), worst single-request p99 %v; before -> after (settled in %v): "+
		"goroutines %.0f -> %.0f, open fds %.0f -> %.0f, RSS %.1f -> %.1f MiB (anonymous %.1f -> %.1f, file-backed %.1f -> %.1f; database file %.1f -> %.1f MiB; caches %.1f -> %.1f MiB)",
		soakClients, took.Round(time.Second), res.requests, float64(res.requests)/took.Seconds(), worst.Round(time.Millisecond), settled,
		before[lvGoroutines], after[lvGoroutines], before[lvFDs], after[lvFDs],
		mib(before, lvRSS), mib(after, lvRSS), mib(before, lvRSSAnon), mib(after, lvRSSAnon),
		mib(before, lvRSSFile), mib(after, lvRSSFile), mib(before, lvDB), mib(after, lvDB), mib(before, lvCache), mib(after, lvCache))

	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop after soak: %v\n%s", err, s.logs.String())
	}
	mustCheck(t, s.dataDir)
}

// Resource levels the soak test watches: from /metrics, and from
// /proc/PID/status, which splits RSS into anonymous memory (heap,
// stacks: what a leak grows) and file-backed pages. bbolt maps its whole
// file, so file-backed RSS grows with the database, which the load grows
// on purpose.
const (
	lvGoroutines = "go_goroutines"
	lvFDs        = "process_open_fds"
	lvRSS        = "process_resident_memory_bytes"
	lvRSSAnon    = "RssAnon"
	lvRSSFile    = "RssFile"
	lvDB         = "database file bytes"
	// lvCache is what the server's bounded read caches account for
	// (signet_cache_bytes, summed).
	lvCache = "cache bytes"
)

// cacheMetrics are the series summed into lvCache.
var cacheMetrics = []string{
	`signet_cache_bytes{cache="signatures"}`,
	`signet_cache_bytes{cache="manifest_exists"}`,
	`signet_cache_bytes{cache="manifests"}`,
}

// levels samples the server's resource levels.
func levels(c *http.Client, s *server) (map[string]float64, error) {
	m, err := metricsOf(c, "http://"+s.addr, append([]string{lvGoroutines, lvFDs, lvRSS}, cacheMetrics...)...)
	c.CloseIdleConnections() // the scraping connection must not count
	if err != nil {
		return nil, err
	}
	for _, k := range cacheMetrics {
		m[lvCache] += m[k]
		delete(m, k)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("read process status: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		for _, k := range []string{lvRSSAnon, lvRSSFile} {
			if v, ok := strings.CutPrefix(line, k+":"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", line, err)
				}
				m[k] = kb * 1024
			}
		}
	}
	if _, ok := m[lvRSSAnon]; !ok {
		return nil, fmt.Errorf("no %s in /proc status", lvRSSAnon)
	}
	fi, err := os.Stat(filepath.Join(s.dataDir, "signatures.db"))
	if err != nil {
		return nil, err
	}
	m[lvDB] = float64(fi.Size())
	return m, nil
}

// within reports whether the levels m are back within the tolerance of
// ref: goroutines, open descriptors and anonymous memory at most 10%
// above; total RSS at most 10% above plus however much the database file
// grew (its pages are mapped). Lower is always fine: that is memory
// given back.
//
// The read caches keep, by design, what the load put in them, up to their
// bounds; anonymous memory and RSS may also grow by twice what the caches
// account for over before (the garbage collector lets the heap reach
// twice the live data), and by soakHeapSlack, pages the Go allocator
// keeps for reuse after a burst and returns to the system only slowly (a
// 21 MiB process once ended the soak 2.4 MiB up with every counter level).
// A leak is growth beyond that.
func within(m, ref map[string]float64) bool {
	caches := 2*max(0, m[lvCache]-ref[lvCache]) + soakHeapSlack
	for _, k := range []string{lvGoroutines, lvFDs} {
		if m[k] > ref[k]*(1+soakTolerance) {
			return false
		}
	}
	if m[lvRSSAnon] > ref[lvRSSAnon]*(1+soakTolerance)+caches {
		return false
	}
	return m[lvRSS] <= ref[lvRSS]*(1+soakTolerance)+max(0, m[lvDB]-ref[lvDB])+caches
}

// settle waits for the resource levels to come to rest: with before nil,
// until two samples a second apart agree within the tolerance; otherwise
// until they are within the tolerance of before, or soakSettleTimeout
// passes (an error).
func settle(c *http.Client, s *server, before map[string]float64) (map[string]float64, error) {
	deadline := time.Now().Add(soakSettleTimeout)
	var last map[string]float64
	for {
		m, err := levels(c, s)
		if err != nil {
			return nil, err
		}
		ref := before
		if ref == nil {
			ref = last
		}
		if ref != nil && within(m, ref) {
			return m, nil
		}
		if time.Now().After(deadline) {
			if before == nil {
				return m, fmt.Errorf("resource levels never settled before the load: %v then %v", last, m)
			}
			return m, fmt.Errorf("resource levels did not return within %.0f%% of before the load in %v: before %v, after %v",
				soakTolerance*100, soakSettleTimeout, before, m)
		}
		last = m
		time.Sleep(time.Second)
	}
}
