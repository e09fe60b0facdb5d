package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	t testing.TB
	// srv is the handler under test, for benchmarks that call it
	// without a network in between.
	srv *Server
	// hdr is sent with every request that does not set the header itself.
	hdr   map[string]string
	url   string
	store *boltstore.Store
	logs  *syncBuffer
	cfg   config.Config
}

func newTestEnv(t testing.TB, mutate func(*config.Config)) *testEnv {
	t.Helper()
	return newTestEnvAuth(t, mutate, nil)
}

func newTestEnvAuth(t testing.TB, mutate func(*config.Config), auth Authorizer) *testEnv {
	t.Helper()
	return newTestEnvOptions(t, mutate, auth, nil)
}

// newTestEnvOptions is newTestEnvAuth with a last say over the server's
// Options (opts may be nil).
func newTestEnvOptions(t testing.TB, mutate func(*config.Config), auth Authorizer, opts func(*Options)) *testEnv {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var store *boltstore.Store
	metrics, err := NewMetrics(reg, func(ctx context.Context) (int64, error) { return store.Count(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	store, err = boltstore.Open(filepath.Join(cfg.Storage.DataDir, "signatures.db"), boltstore.Options{
		Limits:   signaturestore.Limits{MaxPerImage: cfg.Signatures.MaxPerImage, MaxBytesPerImage: cfg.Signatures.MaxBytesPerImage},
		Observer: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	o := Options{
		Config: cfg, Store: store, Metrics: metrics, Gatherer: reg, Authorizer: auth, ReferrersPageSize: 3,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	if opts != nil {
		opts(&o)
	}
	srv, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
		_ = store.Close()
	})
	return &testEnv{t: t, srv: srv, url: hs.URL, store: store, logs: logs, cfg: cfg}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) do(method, path string, body io.Reader, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range e.hdr {
		req.Header.Set(k, v)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b through the registry API (POST then PUT).
func (e *testEnv) pushBlob(repo string, b []byte) string {
	e.t.Helper()
	r := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if r.status != http.StatusAccepted {
		e.t.Fatalf("start upload: %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", sha(b))
	loc.RawQuery = q.Encode()
	r = e.do("PUT", loc.RequestURI(), bytes.NewReader(b), map[string]string{"Content-Type": "application/octet-stream"})
	if r.status != http.StatusCreated {
		e.t.Fatalf("finish upload: %d %s", r.status, r.body)
	}
	return sha(b)
}

// pushImage pushes a one-layer OCI image and returns its manifest digest.
func (e *testEnv) pushImage(repo, tag string) string {
	e.t.Helper()
	layer := make([]byte, 64)
	_, _ = rand.Read(layer)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	ld := e.pushBlob(repo, layer)
	cd := e.pushBlob(repo, cfg)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`, cd, len(cfg), ld, len(layer))
	r := e.do("PUT", "/v2/"+repo+"/manifests/"+tag, strings.NewReader(manifest), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if r.status != http.StatusCreated {
		e.t.Fatalf("push manifest: %d %s", r.status, r.body)
	}
	return sha([]byte(manifest))
}

func sigName(dgst string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return dgst + "@" + hex.EncodeToString(b[:])
}

func sigBody(name string, content []byte) string {
	return fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":%q}`, name, base64.StdEncoding.EncodeToString(content))
}

func sigPath(repo, dgst string) string { return "/extensions/v2/" + repo + "/signatures/" + dgst }

type wireList struct {
	Signatures []struct {
		SchemaVersion int    `json:"schemaVersion"`
		Name          string `json:"name"`
		Type          string `json:"type"`
		Content       []byte `json:"content"`
	} `json:"signatures"`
}

func (e *testEnv) list(repo, dgst string) wireList {
	e.t.Helper()
	r := e.do("GET", sigPath(repo, dgst), nil, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET signatures: %d %s", r.status, r.body)
	}
	var l wireList
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an error envelope: %q (%v)", body, err)
	}
	return env.Errors[0].Code
}

func TestPingCarriesSignatureCapability(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, p := range []string{"/v2/", "/v2/nope/manifests/latest", "/extensions/v2/ns/x/signatures/sha256:00"} {
		r := e.do("GET", p, nil, nil)
		if got := r.header.Get(SupportsSignaturesHeader); got != "1" {
			t.Errorf("%s: %s = %q (status %d)", p, SupportsSignaturesHeader, got, r.status)
		}
	}
	if r := e.do("GET", "/v2/", nil, nil); r.status != 200 || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("ping: %d %v", r.status, r.header)
	}
}

func TestSignatureRoundTrip(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")

	// No signatures yet: 200 with an empty list, never null.
	r := e.do("GET", sigPath("ns/app", dgst), nil, nil)
	if r.status != 200 || string(r.body) != `{"signatures":[]}` {
		t.Fatalf("empty GET: %d %q", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}

	names := []string{sigName(dgst), sigName(dgst)}
	contents := [][]byte{[]byte("first signature bytes"), []byte("second signature bytes")}
	for i := range names {
		r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(names[i], contents[i])), nil)
		if r.status != http.StatusCreated || len(r.body) != 0 {
			t.Fatalf("PUT %d: %d %q", i, r.status, r.body)
		}
	}
	l := e.list("ns/app", dgst)
	if len(l.Signatures) != 2 {
		t.Fatalf("got %d signatures", len(l.Signatures))
	}
	for i, s := range l.Signatures {
		if s.SchemaVersion != 2 || s.Name != names[i] || s.Type != "atomic" || !bytes.Equal(s.Content, contents[i]) {
			t.Fatalf("signature %d = %+v", i, s)
		}
	}
}

func TestEmptyTypeStoredAsAtomic(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	body := fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"","content":"AQID"}`, sigName(dgst))
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(body), nil); r.status != 201 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if l := e.list("ns/app", dgst); len(l.Signatures) != 1 || l.Signatures[0].Type != "atomic" {
		t.Fatalf("list %+v", l)
	}
}

func TestSignatureErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	other := e.pushImage("ns/app", "v2")
	existing := sigName(dgst)
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(existing, []byte("taken"))), nil); r.status != 201 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	missing := sha([]byte("not pushed"))
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"name of other digest", "PUT", sigPath("ns/app", dgst), sigBody(sigName(other), []byte("x")), 400, "SIGNATURE_INVALID"},
		{"short suffix", "PUT", sigPath("ns/app", dgst), sigBody(dgst+"@abc", []byte("x")), 400, "SIGNATURE_INVALID"},
		{"uppercase suffix", "PUT", sigPath("ns/app", dgst), sigBody(dgst+"@"+strings.Repeat("A", 32), []byte("x")), 400, "SIGNATURE_INVALID"},
		{"no suffix", "PUT", sigPath("ns/app", dgst), sigBody(dgst, []byte("x")), 400, "SIGNATURE_INVALID"},
		{"schemaVersion 1", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"schemaVersion":1,"name":%q,"type":"atomic","content":"AQID"}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"version key instead of schemaVersion", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"version":2,"name":%q,"type":"atomic","content":"AQID"}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"unknown type", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"AtomicImageV1","content":"AQID"}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"empty content", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":""}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"bad base64", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":"AQI"}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"bad JSON", "PUT", sigPath("ns/app", dgst), `{"schemaVersion":2,`, 400, "SIGNATURE_INVALID"},
		{"duplicate key", "PUT", sigPath("ns/app", dgst), fmt.Sprintf(`{"schemaVersion":2,"schemaVersion":2,"name":%q,"type":"atomic","content":"AQID"}`, sigName(dgst)), 400, "SIGNATURE_INVALID"},
		{"trailing data", "PUT", sigPath("ns/app", dgst), sigBody(sigName(dgst), []byte("t")) + `{}`, 400, "SIGNATURE_INVALID"},
		{"bad digest in URL", "PUT", sigPath("ns/app", "sha256:ABC"), sigBody(sigName(dgst), []byte("x")), 400, "SIGNATURE_INVALID"},
		{"sha512 digest", "GET", sigPath("ns/app", "sha512:"+strings.Repeat("a", 128)), "", 400, "SIGNATURE_INVALID"},
		{"traversal digest", "GET", "/extensions/v2/ns/app/signatures/sha256:..%2f..%2fetc", "", 404, "NOT_FOUND"},
		{"duplicate name", "PUT", sigPath("ns/app", dgst), sigBody(existing, []byte("new content")), 409, "SIGNATURE_EXISTS"},
		{"duplicate content", "PUT", sigPath("ns/app", dgst), sigBody(sigName(dgst), []byte("taken")), 409, "SIGNATURE_EXISTS"},
		{"unknown image PUT", "PUT", sigPath("ns/app", missing), sigBody(sigName(missing), []byte("x")), 404, "MANIFEST_UNKNOWN"},
		{"unknown image GET", "GET", sigPath("ns/app", missing), "", 404, "MANIFEST_UNKNOWN"},
		{"image of another repo", "GET", sigPath("ns/other", dgst), "", 404, "MANIFEST_UNKNOWN"},
		{"DELETE not served", "DELETE", sigPath("ns/app", dgst), "", 405, "UNSUPPORTED"},
		{"unknown path", "GET", "/nowhere", "", 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := e.do(tt.method, tt.path, body, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if got := errorCode(t, r.body); got != tt.wantCode {
				t.Fatalf("code %s, want %s", got, tt.wantCode)
			}
		})
	}
	// None of the rejected writes left anything behind.
	if l := e.list("ns/app", dgst); len(l.Signatures) != 1 {
		t.Fatalf("rejected PUTs changed the list: %d signatures", len(l.Signatures))
	}
	if l := e.list("ns/app", other); len(l.Signatures) != 0 {
		t.Fatalf("signature landed on the other digest: %+v", l)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newTestEnv(t, func(c *config.Config) { c.Signatures.MaxBodyBytes = 2048 })
	dgst := e.pushImage("ns/app", "v1")
	big := sigBody(sigName(dgst), bytes.Repeat([]byte("x"), 4096))

	// Declared length over the cap.
	r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(big), nil)
	if r.status != http.StatusRequestEntityTooLarge || errorCode(t, r.body) != "SIZE_INVALID" {
		t.Fatalf("declared: %d %s", r.status, r.body)
	}
	// Chunked body with no declared length.
	req, _ := http.NewRequest("PUT", e.url+sigPath("ns/app", dgst), io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(t, b) != "SIZE_INVALID" {
		t.Fatalf("chunked: %d %s", resp.StatusCode, b)
	}
	if l := e.list("ns/app", dgst); len(l.Signatures) != 0 {
		t.Fatalf("oversized PUT stored something")
	}
}

func TestPerImageLimitKeepsListWithinClientCap(t *testing.T) {
	e := newTestEnv(t, func(c *config.Config) { c.Signatures.MaxPerImage = 3 })
	dgst := e.pushImage("ns/app", "v1")
	for i := 0; i < 3; i++ {
		if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), []byte{byte(i), 1})), nil); r.status != 201 {
			t.Fatalf("PUT %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), []byte("one too many"))), nil)
	if r.status != http.StatusConflict || errorCode(t, r.body) != "SIGNATURE_LIMIT" {
		t.Fatalf("over limit: %d %s", r.status, r.body)
	}
}

func TestFullImageListFitsClientLimit(t *testing.T) {
	// Fill one image to the default byte limit with the largest bodies
	// allowed, and check the GET list is within the 4 MiB clients read.
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	lim := e.cfg.Signatures
	chunk := int(lim.MaxBytesPerImage) / 3
	stored := 0
	for i := 0; ; i++ {
		content := bytes.Repeat([]byte{byte('a' + i)}, chunk)
		r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), content)), nil)
		if r.status == http.StatusConflict && errorCode(t, r.body) == "SIGNATURE_LIMIT" {
			break
		}
		if r.status != 201 {
			t.Fatalf("PUT %d: %d %s", i, r.status, r.body)
		}
		stored++
		if i > 10 {
			t.Fatal("byte limit never reached")
		}
	}
	if stored != 3 {
		t.Fatalf("stored %d signatures of %d bytes under a %d byte limit", stored, chunk, lim.MaxBytesPerImage)
	}
	r := e.do("GET", sigPath("ns/app", dgst), nil, nil)
	if r.status != 200 || len(r.body) > config.ClientListLimit {
		t.Fatalf("GET: %d, %d bytes", r.status, len(r.body))
	}
}

func TestRepositoryPrefixIsolation(t *testing.T) {
	// "-" sorts before "/": a naive prefix scan of "ns/math" would also
	// see "ns/math-voila" (SPEC §6).
	e := newTestEnv(t, nil)
	repos := []string{"ns/math", "ns/math-voila", "ns/math/sub"}
	digests := map[string]string{}
	for _, repo := range repos {
		digests[repo] = e.pushImage(repo, "v1")
		if r := e.do("PUT", sigPath(repo, digests[repo]), strings.NewReader(sigBody(sigName(digests[repo]), []byte("sig of "+repo))), nil); r.status != 201 {
			t.Fatalf("PUT %s: %d %s", repo, r.status, r.body)
		}
	}
	for _, repo := range repos {
		l := e.list(repo, digests[repo])
		if len(l.Signatures) != 1 || string(l.Signatures[0].Content) != "sig of "+repo {
			t.Fatalf("%s sees %+v", repo, l)
		}
	}
}

func TestManifestDeleteRemovesSignatures(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	keep := e.pushImage("ns/app", "v2")
	for _, d := range []string{dgst, keep} {
		if r := e.do("PUT", sigPath("ns/app", d), strings.NewReader(sigBody(sigName(d), []byte("sig "+d))), nil); r.status != 201 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
	}
	// Deleting by tag only untags: signatures stay.
	if r := e.do("DELETE", "/v2/ns/app/manifests/v2", nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete tag: %d %s", r.status, r.body)
	}
	if l := e.list("ns/app", keep); len(l.Signatures) != 1 {
		t.Fatalf("untag removed signatures")
	}
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+dgst, nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	if r := e.do("GET", sigPath("ns/app", dgst), nil, nil); r.status != 404 {
		t.Fatalf("GET after delete: %d %s", r.status, r.body)
	}
	sigs, err := e.store.List(context.Background(), signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest(dgst)})
	if err != nil || len(sigs) != 0 {
		t.Fatalf("store still holds %d signatures (%v)", len(sigs), err)
	}
	if pending, _ := e.store.PendingImageDeletes(context.Background()); len(pending) != 0 {
		t.Fatalf("journal not settled: %v", pending)
	}
	// A failed delete (unknown manifest) settles the journal without
	// touching anything.
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+sha([]byte("nope")), nil, nil); r.status != 404 {
		t.Fatalf("delete unknown: %d", r.status)
	}
	if l := e.list("ns/app", keep); len(l.Signatures) != 1 {
		t.Fatalf("unrelated signatures lost")
	}
	// Re-pushing the same manifest does not resurrect old signatures.
	if pending, _ := e.store.PendingImageDeletes(context.Background()); len(pending) != 0 {
		t.Fatalf("journal not settled: %v", pending)
	}
}

func TestAccessLogRedactsCredentials(t *testing.T) {
	e := newTestEnv(t, nil)
	const secret = "s3cr3t-token-value"
	e.do("GET", "/v2/", nil, map[string]string{"Authorization": "Bearer " + secret})
	e.do("GET", "/v2/", nil, map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secret))})
	logs := e.logs.String()
	if !strings.Contains(logs, "Bearer [redacted]") || !strings.Contains(logs, "path=/v2/") {
		t.Fatalf("access log missing entries:\n%s", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte("user:"+secret))) {
		t.Fatalf("credential leaked into the log:\n%s", logs)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), []byte("m"))), nil); r.status != 201 {
		t.Fatal(r.status)
	}
	if r := e.do("GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := e.do("GET", "/readyz", nil, nil); r.status != 200 {
		t.Fatalf("readyz %d", r.status)
	}
	r := e.do("GET", "/metrics", nil, nil)
	body := string(r.body)
	for _, want := range []string{
		`signet_http_requests_total{code="201",method="PUT",route="signatures.put"} 1`,
		`signet_http_request_duration_seconds_bucket{route="v2.manifest"`,
		`signet_store_commit_duration_seconds_count`,
		`signet_store_commit_batch_size_count`,
		"signet_signatures_stored 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestMetricsMethodLabelBounded: the method label is the client's to
// choose, so unknown methods share one series instead of each adding one
// for the life of the process; known ones keep their own, counted on
// every request (the resolved-series cache must not lose increments).
func TestMetricsMethodLabelBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := range 20 {
		e.do(fmt.Sprintf("BREW%d", i), "/healthz", nil, nil)
	}
	for range 3 {
		e.do("GET", "/healthz", nil, nil)
	}
	body := string(e.do("GET", "/metrics", nil, nil).body)
	if strings.Contains(body, `method="BREW`) {
		t.Fatalf("client-chosen methods became label values:\n%s", body)
	}
	for _, want := range []string{
		`signet_http_requests_total{code="405",method="other",route="other"} 20`,
		`signet_http_requests_total{code="200",method="GET",route="healthz"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "signet_http_requests_total"))
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReadyzFalseWhileShuttingDown(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	reg := prometheus.NewRegistry()
	store, err := boltstore.Open(filepath.Join(cfg.Storage.DataDir, "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, _ := NewMetrics(reg, store.Count)
	srv, err := New(context.Background(), Options{Config: cfg, Store: store, Metrics: m, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetReady(false)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while shutting down", rec.Code)
	}
}
