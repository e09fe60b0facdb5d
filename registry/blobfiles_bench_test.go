//go:build linux

package registry

import (
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBlobFastPath: GET of a 16 MiB blob over loopback, served from
// its file by the fast path (a buffered copy) and by the embedded app (a second
// server over the same data directory with the fast path off), in one
// run: each iteration makes one request each way, alternating which goes
// first, so both see the same machine. Reported per request, for each
// way: wall time, and the CPU time of the whole process (client and
// server share it, the client's part being the same both ways); speed =
// app time / fast-path time and cpu-ratio = app CPU / fast-path CPU
// (above 1: the fast path is cheaper). Each iteration moves 32 MiB; keep
// -benchtime short:
//
//	go test -tags containers_image_openpgp -run '^$' -bench BlobFastPath -benchtime 50x ./registry/
func BenchmarkBlobFastPath(b *testing.B) {
	e := benchEnv(b)
	_, appURL := appOnlyServer(b, e)
	blob := make([]byte, 16<<20)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	dgst := e.pushBlob("bench/blob", blob)
	path := "/v2/bench/blob/blobs/" + dgst
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	type way struct {
		url       string
		wall, cpu time.Duration
	}
	fast, app := &way{url: e.url + path}, &way{url: appURL + path}
	get := func(w *way) {
		start, cpu0 := time.Now(), cpuTime(b)
		resp, err := client.Get(w.url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(blob)) {
			b.Fatalf("GET %s: %d, %d bytes, %v", w.url, resp.StatusCode, n, err)
		}
		w.wall += time.Since(start)
		w.cpu += cpuTime(b) - cpu0
	}
	// Warm both: connections and the page cache.
	get(fast)
	get(app)
	*fast, *app = way{url: fast.url}, way{url: app.url}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			get(fast)
			get(app)
		} else {
			get(app)
			get(fast)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(fast.wall.Nanoseconds())/n, "fast-ns/op")
	b.ReportMetric(float64(app.wall.Nanoseconds())/n, "app-ns/op")
	b.ReportMetric(float64(fast.cpu.Nanoseconds())/n, "fast-cpu-ns/op")
	b.ReportMetric(float64(app.cpu.Nanoseconds())/n, "app-cpu-ns/op")
	b.ReportMetric(float64(app.wall)/float64(fast.wall), "speed")
	b.ReportMetric(float64(app.cpu)/float64(fast.cpu), "cpu-ratio")
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
