package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/registry/errcode"
)

// testConfig is a proxy configuration for an upstream at url.
func testConfig(url string) Config {
	return Config{
		URL:                   url,
		ConnectTimeout:        2 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
		CheckTimeout:          5 * time.Second,
		CacheTTL:              time.Minute,
		CacheEntries:          1000,
		ManifestCacheBytes:    1 << 20,
	}
}

// front serves p on a loopback httptest server, as Signet does.
func front(t *testing.T, p *Proxy) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(p)
	t.Cleanup(func() {
		s.Close()
		p.Close()
	})
	return s
}

func newProxy(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func request(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// errorCode decodes the registry error envelope and returns its first code.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not a registry error envelope: %q (%v)", body, err)
	}
	return env.Errors[0].Code
}

// TestHeadersAndRewrites: methods, statuses and the registry headers pass
// both ways; Location and Link on the upstream's origin become
// path-absolute, others stay; hop-by-hop headers stop at the proxy;
// X-Registry-Supports-Signatures is left to Signet.
func TestHeadersAndRewrites(t *testing.T) {
	var got struct {
		sync.Mutex
		method, uri string
		header      http.Header
		body        []byte
	}
	var upURL string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		got.method, got.uri, got.header, got.body = r.Method, r.RequestURI, r.Header.Clone(), b
		got.Unlock()
		h := w.Header()
		h.Set("Location", upURL+"/v2/ns/app/blobs/uploads/abc?_state=xyz")
		h.Add("Link", "<"+upURL+"/v2/_catalog?last=b&n=2>; rel=\"next\"")
		h.Add("Link", "<https://elsewhere.example/x>; rel=\"other\"")
		h.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		h.Set("OCI-Subject", "sha256:"+strings.Repeat("b", 64))
		h.Set("Docker-Upload-UUID", "abc")
		h.Set("Range", "0-9")
		h.Set(supportsSignaturesHeader, "1")
		h.Set("Connection", "X-Resp-Hop")
		h.Set("X-Resp-Hop", "secret")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	upURL = up.URL
	s := front(t, newProxy(t, testConfig(up.URL)))

	req := request(t, http.MethodPatch, s.URL+"/v2/ns/app/blobs/uploads/abc?_state=xyz", strings.NewReader("0123456789"))
	req.Header.Set("Content-Range", "0-9")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Connection", "X-Req-Hop")
	req.Header.Set("X-Req-Hop", "secret")
	req.Header.Set("Authorization", "Basic Y2xpZW50OnB3")
	resp, _ := do(t, req)

	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/v2/ns/app/blobs/uploads/abc?_state=xyz" {
		t.Errorf("Location %q", loc)
	}
	links := resp.Header.Values("Link")
	if len(links) != 2 || links[0] != `</v2/_catalog?last=b&n=2>; rel="next"` || links[1] != `<https://elsewhere.example/x>; rel="other"` {
		t.Errorf("Link %q", links)
	}
	for _, k := range []string{"Docker-Content-Digest", "OCI-Subject", "Docker-Upload-UUID", "Range"} {
		if resp.Header.Get(k) == "" {
			t.Errorf("%s lost", k)
		}
	}
	if v := resp.Header.Values(supportsSignaturesHeader); len(v) != 0 {
		t.Errorf("upstream's %s passed through: %q", supportsSignaturesHeader, v)
	}
	if resp.Header.Get("X-Resp-Hop") != "" {
		t.Error("hop-by-hop response header passed through")
	}
	got.Lock()
	defer got.Unlock()
	if got.method != http.MethodPatch || got.uri != "/v2/ns/app/blobs/uploads/abc?_state=xyz" || string(got.body) != "0123456789" {
		t.Errorf("upstream saw %s %s %q", got.method, got.uri, got.body)
	}
	if got.header.Get("Content-Range") != "0-9" || got.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("request headers lost: %v", got.header)
	}
	if got.header.Get("X-Req-Hop") != "" {
		t.Error("hop-by-hop request header passed through")
	}
	// Signet mode: the client's credentials are Signet's business.
	if got.header.Get("Authorization") != "" {
		t.Errorf("client Authorization forwarded in signet mode: %q", got.header.Get("Authorization"))
	}
	if got.header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got.header.Get("X-Forwarded-For"))
	}
}

func TestLocalize(t *testing.T) {
	p := newProxy(t, testConfig("https://reg.example.com"))
	tests := map[string]string{
		"https://reg.example.com/v2/a/blobs/uploads/u?_state=s": "/v2/a/blobs/uploads/u?_state=s",
		"https://REG.example.com:443/v2/x":                      "/v2/x",
		"https://reg.example.com":                               "/",
		"http://reg.example.com/v2/x":                           "http://reg.example.com/v2/x", // another origin
		"https://reg.example.com:8443/v2/x":                     "https://reg.example.com:8443/v2/x",
		"https://s3.example.com/bucket/blob?sig=1":              "https://s3.example.com/bucket/blob?sig=1",
		"/v2/already/relative":                                  "/v2/already/relative",
	}
	for in, want := range tests {
		if got := p.localize(in); got != want {
			t.Errorf("localize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPassthroughCredentials: in passthrough mode the client's
// Authorization goes upstream unchanged and the upstream's challenge comes
// back unchanged.
func TestPassthroughCredentials(t *testing.T) {
	const challenge = `Bearer realm="https://auth.example.com/token",service="reg",scope="repository:ns/app:pull"`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer client-token" {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Passthrough = true
	s := front(t, newProxy(t, cfg))

	resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/tags/list", nil))
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != challenge || errorCode(t, body) != "UNAUTHORIZED" {
		t.Fatalf("anonymous: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	req := request(t, http.MethodGet, s.URL+"/v2/ns/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer client-token")
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("with token: %d %s", resp.StatusCode, body)
	}
}

// TestSignetModeUpstream401: the upstream refusing the service
// credentials is Signet's configuration problem: 502, and the upstream's
// challenge (its realm) never reaches the client.
func TestSignetModeUpstream401(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Username, cfg.Password = "svc", "wrong"
	s := front(t, newProxy(t, cfg))
	resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/v1", nil))
	if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != "UNAVAILABLE" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("upstream challenge leaked: %q", resp.Header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(string(body), "service credentials") {
		t.Fatalf("message does not name the cause: %s", body)
	}
}

// TestServiceBasic: signet mode sends the service credentials as Basic
// once the upstream asks for Basic.
func TestServiceBasic(t *testing.T) {
	var pings atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "svc" || p != "pw" {
			if r.URL.Path == "/v2/" {
				pings.Add(1)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="up"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Username, cfg.Password = "svc", "pw"
	s := front(t, newProxy(t, cfg))
	for range 3 {
		req := request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/v1", nil)
		req.SetBasicAuth("client", "other")
		if resp, body := do(t, req); resp.StatusCode != http.StatusOK || string(body) != "/v2/ns/app/manifests/v1" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("the scheme was learned with %d pings, want 1", n)
	}
}

// TestServiceTokenFlow: against an upstream with a token service, Signet
// fetches a token for each request's scope with the service credentials,
// caches it, sends bodies once, and renews a token the upstream rejects.
func TestServiceTokenFlow(t *testing.T) {
	var mu sync.Mutex
	valid := map[string]string{} // token -> scope
	var issued, uploads atomic.Int32
	var upURL string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != "svc" || p != "pw" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.URL.Query().Get("service") != "test-registry" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			n := issued.Add(1)
			tok := fmt.Sprintf("tok-%d", n)
			mu.Lock()
			valid[tok] = strings.Join(r.URL.Query()["scope"], " ")
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
			return
		}
		scope := ""
		if strings.HasPrefix(r.URL.Path, "/v2/ns/app/") {
			scope = "repository:ns/app:pull"
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				scope = "repository:ns/app:pull,push"
			}
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		granted, ok := valid[tok]
		mu.Unlock()
		if !ok || granted != scope {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test-registry",scope=%q`, upURL+"/token", scope))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPut {
			uploads.Add(1)
			b, _ := io.ReadAll(r.Body)
			if string(b) != "layer bytes" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	upURL = up.URL
	cfg := testConfig(up.URL)
	cfg.Username, cfg.Password = "svc", "pw"
	s := front(t, newProxy(t, cfg))

	for range 3 {
		if resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/v1", nil)); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
	}
	if n := issued.Load(); n != 1 {
		t.Fatalf("%d tokens for one scope, want 1 (cached)", n)
	}
	// A write: its own scope, fetched before the body is sent; the body
	// arrives exactly once.
	put := request(t, http.MethodPut, s.URL+"/v2/ns/app/blobs/uploads/u1?digest=sha256:x", io.NopCloser(strings.NewReader("layer bytes")))
	if resp, body := do(t, put); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	if n := uploads.Load(); n != 1 {
		t.Fatalf("body sent %d times", n)
	}
	// The upstream forgets every token: a bodiless request is retried
	// once with a fresh one.
	mu.Lock()
	clear(valid)
	mu.Unlock()
	before := issued.Load()
	if resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/v1", nil)); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET after revocation: %d %s", resp.StatusCode, body)
	}
	if issued.Load() != before+1 {
		t.Fatalf("no fresh token after the upstream rejected the cached one")
	}
}

// TestRange: Range requests and their 206 answers pass through.
func TestRange(t *testing.T) {
	blob := make([]byte, 1<<20)
	_, _ = rand.Read(blob)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	defer up.Close()
	s := front(t, newProxy(t, testConfig(up.URL)))
	req := request(t, http.MethodGet, s.URL+"/v2/ns/app/blobs/sha256:"+strings.Repeat("c", 64), nil)
	req.Header.Set("Range", "bytes=1000-4999")
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-4999/%d", len(blob)) {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if !bytes.Equal(body, blob[1000:5000]) {
		t.Fatal("range bytes differ")
	}
	resp, body = do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/blobs/sha256:"+strings.Repeat("c", 64), nil))
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(blob)) || !bytes.Equal(body, blob) {
		t.Fatalf("whole blob: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestStorageRedirectPassesThrough: an upstream that sends blob GETs to
// its storage (distribution on S3, GCS or Azure does by default) answers
// 307 with a pre-signed URL on another host. The client gets that
// redirect untouched and fetches the bytes from storage, so they never
// cross the proxy.
func TestStorageRedirectPassesThrough(t *testing.T) {
	const storage = "https://storage.example.com/docker/registry/v2/blobs/sha256/cc/data?X-Amz-Signature=abc&X-Amz-Expires=1200"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		http.Redirect(w, r, storage, http.StatusTemporaryRedirect)
	}))
	defer up.Close()
	s := front(t, newProxy(t, testConfig(up.URL)))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, err := client.Do(request(t, method, s.URL+"/v2/ns/app/blobs/sha256:"+strings.Repeat("c", 64), nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != storage {
			t.Fatalf("%s: %d, Location %q; want 307 to the storage URL", method, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestChunkedUpload: a request body of unknown length streams upstream
// chunked and arrives whole.
func TestChunkedUpload(t *testing.T) {
	type seen struct {
		length int64
		te     []string
		sum    digest.Digest
	}
	ch := make(chan seen, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // the service credentials' ping
		}
		d, _ := digest.FromReader(r.Body)
		ch <- seen{r.ContentLength, r.TransferEncoding, d}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	s := front(t, newProxy(t, testConfig(up.URL)))
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(data); i += 64 << 10 {
			_, _ = pw.Write(data[i:min(i+64<<10, len(data))])
		}
		_ = pw.Close()
	}()
	resp, _ := do(t, request(t, http.MethodPatch, s.URL+"/v2/ns/app/blobs/uploads/u", pr))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := <-ch
	if got.length != -1 || len(got.te) != 1 || got.te[0] != "chunked" || got.sum != digest.FromBytes(data) {
		t.Fatalf("upstream saw length %d, transfer encoding %q, digest %s", got.length, got.te, got.sum)
	}
}

// TestStreaming: the first bytes of a body reach the client while the
// upstream is still sending (nothing is buffered whole), and a client
// that leaves ends the upstream request.
func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	upstreamDone := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // the service credentials' ping
		}
		w.Header().Set("Content-Length", fmt.Sprint(64<<20))
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1000))
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			upstreamDone <- r.Context().Err()
			return
		}
		upstreamDone <- nil
	}))
	defer up.Close()
	defer close(release)
	s := front(t, newProxy(t, testConfig(up.URL)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v2/ns/app/blobs/sha256:"+strings.Repeat("d", 64), nil)
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			first := make([]byte, 1000)
			if _, err = io.ReadFull(resp.Body, first); err != nil {
				resp.Body.Close()
			}
		}
		got <- result{resp, err}
	}()
	var resp *http.Response
	select {
	case res := <-got:
		if res.err != nil {
			t.Fatalf("reading the first bytes: %v", res.err)
		}
		resp = res.resp
	case <-time.After(10 * time.Second):
		t.Fatal("the first bytes did not arrive while the upstream was still sending: the body is buffered")
	}
	cancel()
	resp.Body.Close()
	select {
	case err := <-upstreamDone:
		if err == nil {
			t.Fatal("upstream request finished normally after the client left")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request outlived the client")
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUpstreamDown: a refused connection and an upstream that never
// answers both give a prompt 502 in the registry error format.
func TestUpstreamDown(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		s := front(t, newProxy(t, testConfig("http://"+closedAddr(t))))
		resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/", nil))
		if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != "UNAVAILABLE" ||
			resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
	t.Run("silent", func(t *testing.T) {
		hang := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}))
		defer up.Close()
		defer close(hang)
		cfg := testConfig(up.URL)
		cfg.ResponseHeaderTimeout = 300 * time.Millisecond
		s := front(t, newProxy(t, cfg))
		resp, body := do(t, request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/v1", nil))
		if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != "UNAVAILABLE" || !strings.Contains(string(body), "in time") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestNoGoroutineLeak: a burst against a refused, a silent and a healthy
// upstream leaves no goroutines behind once connections are closed.
func TestNoGoroutineLeak(t *testing.T) {
	hang := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	refused := "http://" + closedAddr(t)

	var proxies []*Proxy
	var fronts []*httptest.Server
	for _, u := range []string{refused, silent.URL, healthy.URL} {
		cfg := testConfig(u)
		cfg.ResponseHeaderTimeout = 200 * time.Millisecond
		p := newProxy(t, cfg)
		proxies = append(proxies, p)
		fronts = append(fronts, httptest.NewServer(p))
	}
	client := &http.Client{Transport: &http.Transport{}}
	burst := func() {
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(fronts[i%3].URL + "/v2/ns/app/manifests/v1")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		client.CloseIdleConnections()
		for _, p := range proxies {
			p.Close()
		}
	}
	burst() // warm up: connection pools, timers
	before := runtime.NumGoroutine()
	for range 3 {
		burst()
	}
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	close(hang)
	for _, f := range fronts {
		f.Close()
	}
	silent.Close()
	healthy.Close()
	if n > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines %d before, %d after 3 bursts:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestManifestCache: a manifest fetched by digest is served from memory
// afterwards with the upstream's headers, only to clients that accept its
// type; a DELETE through the proxy drops it; a body that does not hash to
// its digest is never cached.
func TestManifestCache(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)
	good := digest.FromBytes(manifest)
	bad := digest.FromString("something else")
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // the service credentials' ping
		}
		hits.Add(1)
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		d := good
		if strings.HasSuffix(r.URL.Path, bad.String()) {
			d = bad
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
		_, _ = w.Write(manifest)
	}))
	defer up.Close()
	p := newProxy(t, testConfig(up.URL))
	s := front(t, p)
	get := func(method string, d digest.Digest, accept string) (*http.Response, []byte) {
		req := request(t, method, s.URL+"/v2/ns/app/manifests/"+d.String(), nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		return do(t, req)
	}
	const oci = "application/vnd.oci.image.manifest.v1+json"
	get(http.MethodGet, good, oci)
	if hits.Load() != 1 {
		t.Fatalf("upstream hits %d", hits.Load())
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, body := get(method, good, "application/vnd.docker.distribution.manifest.v2+json, "+oci+";q=0.9")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != good.String() ||
			resp.Header.Get("Content-Type") != oci || resp.ContentLength != int64(len(manifest)) {
			t.Fatalf("%s from cache: %d %v", method, resp.StatusCode, resp.Header)
		}
		if method == http.MethodGet && !bytes.Equal(body, manifest) {
			t.Fatal("cached body differs")
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("cached manifest fetched again: %d upstream hits", hits.Load())
	}
	// A client that does not accept the type gets the upstream's answer.
	get(http.MethodGet, good, "application/vnd.docker.distribution.manifest.v2+json")
	if hits.Load() != 2 {
		t.Fatal("served from cache to a client that does not accept its type")
	}
	// A body that does not match the digest it was served under.
	get(http.MethodGet, bad, oci)
	get(http.MethodGet, bad, oci)
	if hits.Load() != 4 {
		t.Fatal("a manifest whose body does not hash to its digest was cached")
	}
	// Every copy taken for the cache was given back to the budget.
	if n := p.filling.Load(); n != 0 {
		t.Fatalf("%d bytes of manifest copies still counted", n)
	}
	// A delete through the proxy drops the entry.
	resp, _ := do(t, request(t, http.MethodDelete, s.URL+"/v2/ns/app/manifests/"+good.String(), nil))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	get(http.MethodGet, good, oci)
	if hits.Load() != 6 {
		t.Fatalf("served from cache after a delete (hits %d)", hits.Load())
	}
}

// TestManifestCachePassthrough: in passthrough mode the cache serves only
// credentials the upstream itself accepted for the repository.
func TestManifestCachePassthrough(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	d := digest.FromBytes(manifest)
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
		_, _ = w.Write(manifest)
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Passthrough = true
	s := front(t, newProxy(t, cfg))
	get := func(auth string) int {
		req := request(t, http.MethodGet, s.URL+"/v2/ns/app/manifests/"+d.String(), nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	// Twice: the second GET must come from the cache.
	first := get("Bearer good")
	second := get("Bearer good")
	if first != 200 || second != 200 || hits.Load() != 1 {
		t.Fatalf("cache not used for accepted credentials (hits %d)", hits.Load())
	}
	for _, auth := range []string{"", "Bearer other"} {
		if code := get(auth); code != http.StatusUnauthorized {
			t.Fatalf("credentials %q got %d from the cache", auth, code)
		}
	}
}

// TestManifestExists: answers are cached for the TTL; an outage is an
// error that maps to 503, never "absent"; with the service credentials a
// 404 is cached too, and Recheck bypasses the cache.
func TestManifestExists(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // the service credentials' ping
		}
		hits.Add(1)
		if r.Method != http.MethodHead || !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.index.v1+json") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	cfg := testConfig(up.URL)
	cfg.Now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	p := newProxy(t, cfg)
	ctx := context.Background()
	d := digest.FromString("m")

	for range 2 {
		if ok, err := p.ManifestExists(ctx, "ns/app", d); !ok || err != nil {
			t.Fatalf("exists: %v %v", ok, err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("positive answer not cached: %d hits", hits.Load())
	}
	// Deleted upstream: the cached answer holds until the sweep's
	// Recheck or the TTL.
	status.Store(http.StatusNotFound)
	if ok, _ := p.ManifestExists(ctx, "ns/app", d); !ok {
		t.Fatal("cache bypassed")
	}
	if ok, err := p.Recheck(ctx, "ns/app", d); ok || err != nil {
		t.Fatalf("recheck: %v %v", ok, err)
	}
	if ok, err := p.ManifestExists(ctx, "ns/app", d); ok || err != nil {
		t.Fatalf("after recheck: %v %v", ok, err)
	}
	// Back upstream: seen once the negative answer expires.
	status.Store(http.StatusOK)
	advance(cfg.CacheTTL + time.Second)
	if ok, err := p.ManifestExists(ctx, "ns/app", d); !ok || err != nil {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
	// Outage: an error that is a 503, not a "no".
	up.Close()
	advance(cfg.CacheTTL + time.Second)
	ok, err := p.ManifestExists(ctx, "ns/app", d)
	var apiErr errcode.Error
	if ok || !errors.As(err, &apiErr) || apiErr.Code.Status() != http.StatusServiceUnavailable {
		t.Fatalf("outage: %v %v", ok, err)
	}
}

// TestCheckPush: a push grant is a blob upload the upstream accepts with
// the client's credentials, cancelled at once; refusals keep their
// meaning and a 401 carries the upstream's challenge.
func TestCheckPush(t *testing.T) {
	var mu sync.Mutex
	var log []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		log = append(log, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.Header.Get("Authorization") {
		case "Basic pusher":
		case "Basic reader":
			w.WriteHeader(http.StatusForbidden)
			return
		default:
			w.Header().Set("WWW-Authenticate", `Basic realm="up"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/v2/ns/app/blobs/uploads/u1?_state=s")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Passthrough = true
	p := newProxy(t, cfg)
	ctx := context.Background()
	if err := p.CheckPush(ctx, "ns/app", "Basic pusher"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := []string{"POST /v2/ns/app/blobs/uploads/ Basic pusher", "DELETE /v2/ns/app/blobs/uploads/u1 Basic pusher"}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("upstream saw:\n%s", strings.Join(log, "\n"))
	}
	mu.Unlock()
	for _, tt := range []struct {
		auth      string
		code      errcode.Code
		challenge string
	}{
		{"Basic reader", errcode.Denied, ""},
		{"", errcode.Unauthorized, `Basic realm="up"`},
		{"Basic wrong", errcode.Unauthorized, `Basic realm="up"`},
	} {
		err := p.CheckPush(ctx, "ns/app", tt.auth)
		var pe *Error
		if !errors.As(err, &pe) || pe.API.Code != tt.code || pe.Challenge() != tt.challenge {
			t.Errorf("%q: %v", tt.auth, err)
		}
	}
}

// TestCheckPull: a tag listing decides; only a 200 is remembered.
func TestCheckPull(t *testing.T) {
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Query().Get("n") != "1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case r.Header.Get("Authorization") == "":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/v2/ns/missing/tags/list":
			w.WriteHeader(http.StatusNotFound)
		default:
			_, _ = io.WriteString(w, `{"name":"ns/app","tags":["v1"]}`)
		}
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Passthrough = true
	p := newProxy(t, cfg)
	ctx := context.Background()
	for range 2 {
		if err := p.CheckPull(ctx, "ns/app", "Basic a"); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("granted pull not cached: %d hits", hits.Load())
	}
	for range 2 {
		if err := p.CheckPull(ctx, "ns/missing", "Basic a"); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 3 {
		t.Fatalf("a 404 was cached as a grant: %d hits", hits.Load())
	}
	var apiErr errcode.Error
	if err := p.CheckPull(ctx, "ns/app", ""); !errors.As(err, &apiErr) || apiErr.Code != errcode.Unauthorized {
		t.Fatalf("anonymous: %v", err)
	}
}

func TestReady(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	now := time.Unix(0, 0)
	cfg := testConfig(up.URL)
	cfg.Now = func() time.Time { return now }
	p := newProxy(t, cfg)
	if err := p.Ready(context.Background()); err != nil {
		t.Fatalf("an upstream asking for credentials is up: %v", err)
	}
	up.Close()
	now = now.Add(2 * healthTTL)
	if err := p.Ready(context.Background()); err == nil {
		t.Fatal("a stopped upstream is ready")
	}
}

func TestParseURL(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:5000", "https://reg.example.com", "https://reg.example.com/"} {
		if _, err := ParseURL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "reg.example.com", "ftp://x", "https://u:p@x", "https://x/v2", "https://x/?a=b", "https://:5000"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLRU(t *testing.T) {
	now := time.Unix(0, 0)
	c := newLRU[string, int](10, func() time.Time { return now })
	c.add("a", 1, 4, time.Minute)
	c.add("b", 2, 4, time.Minute)
	c.get("a") // a is now the most recent
	c.add("c", 3, 4, time.Minute)
	if _, ok := c.get("b"); ok {
		t.Fatal("least recently used entry kept past the bound")
	}
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Fatal("recent entry evicted")
	}
	c.add("huge", 4, 11, time.Minute)
	if _, ok := c.get("huge"); ok || c.len() != 2 {
		t.Fatal("entry over the whole bound stored")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("a"); ok {
		t.Fatal("expired entry served")
	}
	c.add("z", 0, 1, 0)
	if _, ok := c.get("z"); ok {
		t.Fatal("zero TTL stored")
	}
}

func TestParseChallenge(t *testing.T) {
	c, ok := parseChallenge(`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a\"b:pull,push"`)
	if !ok || c.scheme != "bearer" || c.params["realm"] != "https://auth.example.com/token" ||
		c.params["service"] != "registry.example.com" || c.params["scope"] != `repository:a"b:pull,push` {
		t.Fatalf("%+v", c)
	}
	c, ok = parseChallenge(`Basic realm=up`)
	if !ok || c.scheme != "basic" || c.params["realm"] != "up" {
		t.Fatalf("%+v", c)
	}
	if _, ok := parseChallenge(``); ok {
		t.Fatal("empty challenge parsed")
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example.com/token",service="r",scope="repository:x:pull"`)
	f.Add(`Basic realm="x"`)
	f.Add(`Bearer realm="unterminated`)
	f.Add(`Bearer ,,,=,="\`)
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := parseChallenge(s)
		if ok && (c.scheme == "" || len(c.params) > maxChallengeParams) {
			t.Fatalf("%q: %+v", s, c)
		}
	})
}
