package registry

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-registry/signet/config"
)

// The hot read paths, called in-process without a network, so a CPU
// profile shows Signet's own costs (go test -bench Hot -cpuprofile).
// The side-by-side figures against nginx and distribution come from
// bench/ (make bench).

func benchEnv(b *testing.B) *testEnv {
	return newTestEnv(b, func(c *config.Config) { c.Log.AccessLog = true })
}

func serveLoop(b *testing.B, h http.Handler, method, path string, hdr map[string]string, want int) {
	b.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
	}
}

func BenchmarkHotSignatureGet(b *testing.B) {
	e := benchEnv(b)
	dgst := e.pushImage("bench/app", "v1")
	for range 2 {
		content := make([]byte, 600)
		_, _ = rand.Read(content)
		r := e.do("PUT", sigPath("bench/app", dgst), strings.NewReader(sigBody(sigName(dgst), content)), nil)
		if r.status != http.StatusCreated {
			b.Fatalf("put: %d %s", r.status, r.body)
		}
	}
	serveLoop(b, e.srv, "GET", sigPath("bench/app", dgst), nil, http.StatusOK)
}

func BenchmarkHotManifestGet(b *testing.B) {
	e := benchEnv(b)
	dgst := e.pushImage("bench/app", "v1")
	serveLoop(b, e.srv, "GET", "/v2/bench/app/manifests/"+dgst,
		map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}, http.StatusOK)
}

// BenchmarkHotSignaturePut: durable PUTs from 64 concurrent callers, so
// group commit shares fsyncs; spread over images below their limit.
func BenchmarkHotSignaturePut(b *testing.B) {
	e := benchEnv(b)
	// Enough images for b.N signatures at 64 an image (the default
	// per-image limit), and at least 64 so writers spread.
	var digests []string
	for i := range max(64, (b.N+63)/64) {
		digests = append(digests, e.pushImage("bench/put", fmt.Sprintf("v%d", i)))
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		content := make([]byte, 600)
		for pb.Next() {
			i := next.Add(1)
			dgst := digests[i%int64(len(digests))]
			_, _ = rand.Read(content)
			req := httptest.NewRequest("PUT", sigPath("bench/put", dgst), strings.NewReader(sigBody(sigName(dgst), content)))
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, req)
			if w.Code != http.StatusCreated {
				b.Errorf("put: %d %s", w.Code, w.Body)
				return
			}
		}
	})
}
