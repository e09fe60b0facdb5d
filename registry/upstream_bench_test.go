package registry

import (
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"
)

// Proxy mode against the same upstream reached directly, in one run: each
// iteration makes one request each way, alternating which goes first, so
// both see the same machine. The upstream is distribution's registry
// application (the stock registry binary's code) in this process.
// Reported: the time of each and speed = direct time / proxy time (1 means
// as fast as direct; the target is at least 0.9 for blobs, above 1 for
// manifests, which Signet serves from its cache by digest).
//
//	go test -tags containers_image_openpgp -run '^$' -bench Proxy ./registry/

func BenchmarkProxyBlobGet(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1MiB", 1 << 20}, {"16MiB", 16 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			up := newUpstreamRegistry(b, nil)
			e := proxyEnv(b, up.URL, nil)
			blob := make([]byte, size.n)
			_, _ = rand.Read(blob)
			dgst := e.pushBlob("bench/blob", blob)
			path := "/v2/bench/blob/blobs/" + dgst
			b.SetBytes(int64(size.n))
			benchPair(b, up.URL+path, e.url+path, nil)
		})
	}
}

func BenchmarkProxyManifestGet(b *testing.B) {
	up := newUpstreamRegistry(b, nil)
	e := proxyEnv(b, up.URL, nil)
	dgst := e.pushImage("bench/app", "v1")
	path := "/v2/bench/app/manifests/" + dgst
	accept := map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"}
	benchPair(b, up.URL+path, e.url+path, accept)
}

// benchPair times GET direct and GET proxied, b.N times each.
func benchPair(b *testing.B, direct, proxied string, hdr map[string]string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	get := func(url string) time.Duration {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return time.Since(start)
	}
	// Warm both paths: connections, and the proxy's manifest cache.
	get(direct)
	get(proxied)
	var d, p time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			d += get(direct)
			p += get(proxied)
		} else {
			p += get(proxied)
			d += get(direct)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "direct-ns/op")
	b.ReportMetric(float64(p.Nanoseconds())/float64(b.N), "proxy-ns/op")
	b.ReportMetric(float64(d)/float64(p), "speed")
}
