package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// fuzzApp is the whole application, built once per fuzz worker: the
// embedded distribution app is too heavy to build per input. Requests go
// straight to ServeHTTP.
type fuzzApp struct {
	srv   *Server
	store *boltstore.Store
	// image is ns/app:v1, pushed with fixed bytes so its digest is the
	// same in every worker and in the committed seed corpus.
	image digest.Digest
	// seed is the name of the signature stored on image.
	seed string
}

const (
	fuzzRepo       = "ns/app"
	fuzzSeedSuffix = "00112233445566778899aabbccddeeff"
	// fuzzImage is the digest pushFixedImage produces; the committed
	// seed corpus under testdata/fuzz/FuzzRoutes names it.
	fuzzImage = "sha256:1ba61d7fecc39492462b90d23c8dbe1225a3182b8869f5ca3bb65a29ff0adcf3"
)

func newFuzzApp(tb testing.TB) *fuzzApp {
	tb.Helper()
	cfg := config.Default()
	cfg.Storage.DataDir = tb.TempDir()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var store *boltstore.Store
	metrics, err := NewMetrics(reg, func(ctx context.Context) (int64, error) { return store.Count(ctx) })
	if err != nil {
		tb.Fatal(err)
	}
	store, err = boltstore.Open(filepath.Join(cfg.Storage.DataDir, "signatures.db"), boltstore.Options{
		Limits:   signaturestore.Limits{MaxPerImage: cfg.Signatures.MaxPerImage, MaxBytesPerImage: cfg.Signatures.MaxBytesPerImage},
		Observer: metrics,
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(context.Background(), Options{Config: cfg, Store: store, Metrics: metrics, Gatherer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = srv.Close()
		_ = store.Close()
	})
	a := &fuzzApp{srv: srv, store: store}
	a.image = digest.Digest(a.pushFixedImage(tb))
	if a.image != fuzzImage {
		tb.Fatalf("fixed image has digest %s; the seed corpus expects %s", a.image, fuzzImage)
	}
	a.seed = a.image.String() + "@" + fuzzSeedSuffix
	if rec := a.serve(tb, "PUT", sigPath(fuzzRepo, a.image.String()), sigBody(a.seed, []byte("fuzz seed signature"))); rec.Code != http.StatusCreated {
		tb.Fatalf("seed signature: %d %s", rec.Code, rec.Body)
	}
	return a
}

func (a *fuzzApp) serve(tb testing.TB, method, target, body string) *httptest.ResponseRecorder {
	tb.Helper()
	rec := httptest.NewRecorder()
	a.srv.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

// pushFixedImage pushes a one-layer image whose bytes never change.
func (a *fuzzApp) pushFixedImage(tb testing.TB) string {
	tb.Helper()
	blob := func(b []byte) string {
		rec := a.serve(tb, "POST", "/v2/"+fuzzRepo+"/blobs/uploads/", "")
		if rec.Code != http.StatusAccepted {
			tb.Fatalf("start upload: %d %s", rec.Code, rec.Body)
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			tb.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", sha(b))
		loc.RawQuery = q.Encode()
		if rec := a.serve(tb, "PUT", loc.RequestURI(), string(b)); rec.Code != http.StatusCreated {
			tb.Fatalf("finish upload: %d %s", rec.Code, rec.Body)
		}
		return sha(b)
	}
	layer := []byte("signet fuzz layer: fixed bytes so that the digest is stable")
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	ld, cd := blob(layer), blob(cfg)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`, cd, len(cfg), ld, len(layer))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("PUT", "/v2/"+fuzzRepo+"/manifests/v1", strings.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	a.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		tb.Fatalf("push manifest: %d %s", rec.Code, rec.Body)
	}
	return sha([]byte(manifest))
}

// fuzzState is what the fuzz target watches: the number of signatures
// and the seeded image's records, statuses included.
type fuzzState struct {
	count int64
	seed  string
}

func (a *fuzzApp) state(t *testing.T) fuzzState {
	t.Helper()
	ctx := context.Background()
	n, err := a.store.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := a.store.List(ctx, signaturestore.ImageKey{Repository: fuzzRepo, Digest: a.image})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sigs)
	if err != nil {
		t.Fatal(err)
	}
	return fuzzState{n, string(b)}
}

// rawRequest parses method, target and body the way net/http's server
// does, so the app sees only requests a real connection could deliver.
// It returns nil for input the server itself would refuse.
func rawRequest(method, target string, body []byte) *http.Request {
	if method == "" || target == "" || strings.ContainsFunc(method+target, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: signet.test\r\nContent-Length: %d\r\n\r\n", method, target, len(body))
	b.Write(body)
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		return nil
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req
}

// signaturePutTarget extracts <repository> and <digest> from a signature
// PUT path, independently of the router.
func signaturePutTarget(path string) (repo, dgst string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/extensions/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/signatures/")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len("/signatures/"):], true
}

// FuzzRoutes sends arbitrary requests through the whole application. No
// input may produce a 5xx or lose the capability header, and the store may
// change only through a request that is allowed to change it: a signature
// PUT whose body DecodeSignature accepts, a status save, or a delete.
func FuzzRoutes(f *testing.F) {
	a := newFuzzApp(f)
	img := a.image.String()
	put := sigPath(fuzzRepo, img)
	records := recordsPath(fuzzRepo, img)
	for _, s := range []struct {
		method, target, body string
	}{
		{"GET", "/v2/", ""},
		{"GET", put, ""},
		{"HEAD", put, ""},
		{"PUT", put, sigBody(img+"@0123456789abcdef0123456789abcdef", []byte("fuzz"))},
		{"PUT", put, sigBody(a.seed, []byte("fuzz seed signature"))},
		{"PUT", put, `{"schemaVersion":2,"schemaVersion":2}`},
		{"PUT", "/extensions/v2/ns/x/../app/signatures/" + img, ""},
		{"PUT", "/extensions/v2/ns%2fapp/signatures/" + img, "{}"},
		{"GET", "/extensions/v2/NS/app/signatures/" + img, ""},
		{"GET", records, ""},
		{"PUT", records + "/" + a.seed + "/status", `{"trusted":true}`},
		{"PUT", records + "/" + a.seed + "/status", `{"trusted":false,"reason":"x","trusted":true}`},
		{"DELETE", records + "/" + img + "@0123456789abcdef0123456789abcdef", ""},
		{"GET", "/signet/v1/digests/" + img, ""},
		{"GET", "/sigstore/" + fuzzRepo + "@sha256=" + strings.TrimPrefix(img, "sha256:") + "/signature-1", ""},
		{"HEAD", "/sigstore/" + fuzzRepo + "@sha256=" + strings.TrimPrefix(img, "sha256:") + "/signature-2", ""},
		{"GET", "/v2/_catalog?n=100000", ""},
		{"GET", "/v2/" + fuzzRepo + "/manifests/v1", ""},
		{"DELETE", "/v2/ns/other/manifests/" + img, ""},
		{"OPTIONS", "*", ""},
		{"GET", "http://other.host/extensions/v2/ns/app/signatures/" + img, ""},
	} {
		f.Add(s.method, s.target, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		if len(body) > 64<<10 || len(target) > 16<<10 {
			return
		}
		req := rawRequest(method, target, body)
		if req == nil {
			return
		}
		before := a.state(t)
		rec := httptest.NewRecorder()
		a.srv.ServeHTTP(rec, req)
		after := a.state(t)
		desc := fmt.Sprintf("%s %q (%d body bytes) -> %d %.200q", method, target, len(body), rec.Code, rec.Body.String())
		if rec.Code >= 500 {
			t.Fatalf("server error: %s", desc)
		}
		if got := rec.Header().Get(SupportsSignaturesHeader); got != "1" {
			t.Fatalf("%s = %q: %s", SupportsSignaturesHeader, got, desc)
		}
		ok2xx := rec.Code >= 200 && rec.Code < 300
		repo, rawDigest, isSigPath := signaturePutTarget(req.URL.Path)
		validPut := false
		if method == http.MethodPut && isSigPath {
			if d, err := extensions.ParseDigest(rawDigest); err == nil {
				_, err = extensions.DecodeSignature(d, body)
				validPut = err == nil
			}
		}
		switch delta := after.count - before.count; {
		case delta > 0:
			if delta != 1 || !validPut || rec.Code != http.StatusCreated {
				t.Fatalf("store grew by %d: %s", delta, desc)
			}
		case delta < 0:
			if method != http.MethodDelete || !ok2xx {
				t.Fatalf("store shrank by %d: %s", -delta, desc)
			}
		}
		if isSigPath && method == http.MethodPut && rec.Code == http.StatusCreated {
			if !validPut || after.count != before.count+1 {
				t.Fatalf("201 without a stored valid signature (repository %q): %s", repo, desc)
			}
		}
		if after.seed != before.seed && after.count == before.count {
			statusWrite := (method == http.MethodPut || method == http.MethodDelete) && strings.HasSuffix(req.URL.Path, "/status")
			if !statusWrite || !ok2xx {
				t.Fatalf("seeded records changed: %s\n%s\n->\n%s", desc, before.seed, after.seed)
			}
		}
	})
}

// Independent oracles for the name grammar (SPEC §1): a digest is
// "sha256:" and 64 lowercase hex; a name is "<digest>@" and 32 lowercase
// hex. Written without the production regexp on purpose.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func wantDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && isLowerHex(hex, 64)
}

var nameGrammar = regexp.MustCompile(`\Asha256:[0-9a-f]{64}@[0-9a-f]{32}\z`)

// FuzzSignatureName checks ParseDigest and ValidateName against the exact
// grammar: they never panic, and accept precisely what the oracles accept.
func FuzzSignatureName(f *testing.F) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Add(d, d+"@0123456789abcdef0123456789abcdef")
	f.Add(d, d+"@0123456789ABCDEF0123456789abcdef")
	f.Add(d, d+"@0123456789abcdef0123456789abcde")
	f.Add(d, d+"@0123456789abcdef0123456789abcdef0")
	f.Add(d, d+"@@0123456789abcdef0123456789abcdef")
	f.Add(d+"\n", d+"@0123456789abcdef0123456789abcdef\n")
	f.Add("sha512:"+strings.Repeat("a", 128), "sha512:"+strings.Repeat("a", 128)+"@0123456789abcdef0123456789abcdef")
	f.Add("", "@")
	f.Fuzz(func(t *testing.T, rawDigest, name string) {
		parsed, err := extensions.ParseDigest(rawDigest)
		if want := wantDigest(rawDigest); (err == nil) != want {
			t.Fatalf("ParseDigest(%q) err=%v, want ok=%v", rawDigest, err, want)
		}
		if err == nil && parsed.String() != rawDigest {
			t.Fatalf("ParseDigest(%q) = %q", rawDigest, parsed)
		}
		if _, err := extensions.ParseDigest(name); (err == nil) != wantDigest(name) {
			t.Fatalf("ParseDigest(%q) err=%v", name, err)
		}
		// Against a valid digest: exactly "<digest>@<32 lowercase hex>".
		dgst := digest.Digest(d)
		if err == nil {
			dgst = parsed
		}
		err = extensions.ValidateName(dgst, name)
		want := nameGrammar.MatchString(name) && strings.HasPrefix(name, dgst.String()+"@")
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q, %q) err=%v, want ok=%v", dgst, name, err, want)
		}
		// Against an unvalidated digest it must not panic, and may only
		// accept the digest itself followed by a 32-hex suffix.
		if extensions.ValidateName(digest.Digest(rawDigest), name) == nil {
			rest, ok := strings.CutPrefix(name, rawDigest+"@")
			if !ok || !isLowerHex(rest, 32) {
				t.Fatalf("ValidateName(%q, %q) accepted", rawDigest, name)
			}
		}
	})
}
