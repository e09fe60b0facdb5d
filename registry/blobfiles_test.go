package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-registry/signet/config"
)

// appOnlyServer starts a second Server over e's data directory and store
// with the blob fast path off, so the embedded app answers every blob GET.
// The field is cleared before the listener starts, so no request sees it
// set.
func appOnlyServer(t testing.TB, e *testEnv) (*Server, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg, func(ctx context.Context) (int64, error) { return e.store.Count(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), Options{
		Config: e.cfg, Store: e.store, Metrics: metrics, Gatherer: reg, ReferrersPageSize: 3,
		Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.blobFiles == nil {
		t.Fatal("the filesystem driver has no blob fast path")
	}
	srv.blobFiles = nil
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	return srv, hs.URL
}

// fetch sends one request to base+path with hdr and reads the whole answer.
func fetch(t *testing.T, base, method, path string, hdr http.Header, body io.Reader) response {
	t.Helper()
	r, err := fetchBody(t, base, method, path, hdr, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fetchBody is fetch that returns an error reading the body: distribution
// answers a failed If-Match with the blob's Content-Length and no body, so
// the client sees the connection end early.
func fetchBody(t *testing.T, base, method, path string, hdr http.Header, body io.Reader) (response, error) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if hdr != nil {
		req.Header = hdr.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}, err
}

// normalized drops Date and replaces a multipart boundary (random per
// answer) with a fixed one of the same length.
func normalized(r response) response {
	h := r.header.Clone()
	h.Del("Date")
	body := r.body
	if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && mt == "multipart/byteranges" {
		b := params["boundary"]
		fixed := strings.Repeat("B", len(b))
		h.Set("Content-Type", strings.ReplaceAll(h.Get("Content-Type"), b, fixed))
		body = []byte(strings.ReplaceAll(string(body), b, fixed))
	}
	return response{r.status, h, body}
}

// storagePath is a path under the filesystem driver's storage root.
func storagePath(e *testEnv, parts ...string) string {
	return filepath.Join(append([]string{RegistryRoot(e.cfg.Storage.DataDir), blobStorageRoot}, parts...)...)
}

func layerLink(e *testEnv, repo, dgst string) string {
	alg, h, _ := strings.Cut(dgst, ":")
	return storagePath(e, "repositories", repo, "_layers", alg, h, "link")
}

func blobData(e *testEnv, dgst string) string {
	alg, h, _ := strings.Cut(dgst, ":")
	return storagePath(e, "blobs", alg, h[:2], h, "data")
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// touchWriter records whether anything was written to it.
type touchWriter struct {
	h       http.Header
	touched bool
}

func (w *touchWriter) Header() http.Header { return w.h }
func (w *touchWriter) WriteHeader(int)     { w.touched = true }
func (w *touchWriter) Write(p []byte) (int, error) {
	w.touched = true
	return len(p), nil
}

// TestBlobFastPathMatchesRegistry: for every blob request shape, hit or
// miss, Signet's answer with the fast path is the embedded app's answer
// without it (status, headers but Date, body), and the fast path serves
// exactly the plain hits, writing nothing when it leaves a request to the
// app.
func TestBlobFastPathMatchesRegistry(t *testing.T) {
	e := newTestEnv(t, nil)
	_, appURL := appOnlyServer(t, e)
	const repo = "fast/app"

	big := randomBytes(200 << 10)
	bigD := e.pushBlob(repo, big)
	smallD := e.pushBlob(repo, []byte("ten bytes!"))
	emptyD := e.pushBlob(repo, nil)
	otherD := e.pushBlob("fast/other", []byte("only in another repository"))
	// A sha512 blob laid out as distribution lays out any blob.
	b512 := randomBytes(3000)
	sum := sha512.Sum512(b512)
	d512 := "sha512:" + hex.EncodeToString(sum[:])
	writeFile(t, blobData(e, d512), b512)
	writeFile(t, layerLink(e, repo, d512), []byte(d512))

	// Damaged storage, one blob per kind of damage.
	damaged := func(name string) string { return e.pushBlob(repo, []byte("damaged: "+name)) }
	goneD := damaged("data file removed")
	if err := os.Remove(blobData(e, goneD)); err != nil {
		t.Fatal(err)
	}
	dirDataD := damaged("data is a directory")
	if err := os.Remove(blobData(e, dirDataD)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blobData(e, dirDataD), 0o750); err != nil {
		t.Fatal(err)
	}
	garbageD := damaged("garbage link")
	writeFile(t, layerLink(e, repo, garbageD), []byte("garbage"))
	newlineD := damaged("link with a newline")
	writeFile(t, layerLink(e, repo, newlineD), []byte(newlineD+"\n"))
	longD := damaged("oversized link")
	writeFile(t, layerLink(e, repo, longD), []byte(longD+strings.Repeat(" ", 300)))
	emptyLinkD := damaged("empty link")
	writeFile(t, layerLink(e, repo, emptyLinkD), nil)
	crossD := damaged("link to another digest")
	writeFile(t, layerLink(e, repo, crossD), []byte(smallD))
	dirLinkD := damaged("link is a directory")
	if err := os.Remove(layerLink(e, repo, dirLinkD)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(layerLink(e, repo, dirLinkD), 0o750); err != nil {
		t.Fatal(err)
	}

	shapes := []struct {
		name   string
		method string
		hdr    http.Header
	}{
		{"get", "GET", nil},
		{"head", "HEAD", nil},
		{"range first 100", "GET", http.Header{"Range": {"bytes=0-99"}}},
		{"range open end", "GET", http.Header{"Range": {"bytes=100-"}}},
		{"range suffix", "GET", http.Header{"Range": {"bytes=-7"}}},
		{"range multiple", "GET", http.Header{"Range": {"bytes=0-3,5-8,600-700"}}},
		{"range overlapping", "GET", http.Header{"Range": {"bytes=0-5,2-9"}}},
		{"range unsatisfiable", "GET", http.Header{"Range": {"bytes=99999999-"}}},
		{"range malformed", "GET", http.Header{"Range": {"bytes=x-y"}}},
		{"range other unit", "GET", http.Header{"Range": {"items=0-1"}}},
		{"head range", "HEAD", http.Header{"Range": {"bytes=0-99"}}},
		{"if-none-match quoted", "GET", nil},
		{"if-none-match bare", "GET", nil},
		{"if-none-match star", "GET", http.Header{"If-None-Match": {"*"}}},
		{"if-none-match other", "GET", http.Header{"If-None-Match": {`"sha256:0000"`}}},
		{"head if-none-match", "HEAD", nil},
		{"if-match other", "GET", http.Header{"If-Match": {`"sha256:0000"`}}},
		{"if-range match", "GET", http.Header{"Range": {"bytes=1-2"}}},
		{"if-range other", "GET", http.Header{"Range": {"bytes=1-2"}, "If-Range": {`"sha256:0000"`}}},
	}
	missShapes := shapes[:3]
	targets := []struct {
		name, path string
		shapes     int // how many shapes; all for hits
		fast       bool
	}{
		{"big", "/v2/" + repo + "/blobs/" + bigD, len(shapes), true},
		{"small", "/v2/" + repo + "/blobs/" + smallD, len(shapes), true},
		{"empty", "/v2/" + repo + "/blobs/" + emptyD, len(shapes), true},
		{"sha512", "/v2/" + repo + "/blobs/" + d512, len(shapes), true},
		{"not linked here", "/v2/" + repo + "/blobs/" + otherD, len(missShapes), false},
		{"unknown", "/v2/" + repo + "/blobs/" + sha([]byte("nowhere")), len(missShapes), false},
		{"unknown repository", "/v2/no/such/blobs/" + bigD, len(missShapes), false},
		{"data removed", "/v2/" + repo + "/blobs/" + goneD, len(missShapes), false},
		{"data is a directory", "/v2/" + repo + "/blobs/" + dirDataD, len(missShapes), false},
		{"garbage link", "/v2/" + repo + "/blobs/" + garbageD, len(missShapes), false},
		{"link with newline", "/v2/" + repo + "/blobs/" + newlineD, len(missShapes), false},
		{"oversized link", "/v2/" + repo + "/blobs/" + longD, len(missShapes), false},
		{"empty link", "/v2/" + repo + "/blobs/" + emptyLinkD, len(missShapes), false},
		{"link to another digest", "/v2/" + repo + "/blobs/" + crossD, len(missShapes), false},
		{"link is a directory", "/v2/" + repo + "/blobs/" + dirLinkD, len(missShapes), false},
		{"uppercase hex", "/v2/" + repo + "/blobs/" + strings.ToUpper(bigD[:8]) + bigD[8:], len(missShapes), false},
		{"uppercase algorithm", "/v2/" + repo + "/blobs/SHA256:" + bigD[7:], len(missShapes), false},
		{"short hex", "/v2/" + repo + "/blobs/" + bigD[:70], len(missShapes), false},
		{"sha384", "/v2/" + repo + "/blobs/sha384:" + strings.Repeat("ab", 48), len(missShapes), false},
		{"sha256 of sha512 length", "/v2/" + repo + "/blobs/sha256:" + d512[7:], len(missShapes), false},
		{"invalid repository name", "/v2/Fast/App/blobs/" + bigD, len(missShapes), false},
		{"upload path", "/v2/" + repo + "/blobs/uploads/" + bigD, len(missShapes), false},
	}
	for _, tg := range targets {
		for _, shape := range shapes[:tg.shapes] {
			t.Run(tg.name+"/"+shape.name, func(t *testing.T) {
				hdr := shape.hdr.Clone()
				if hdr == nil {
					hdr = http.Header{}
				}
				dgst := tg.path[strings.LastIndexByte(tg.path, '/')+1:]
				switch shape.name {
				case "if-none-match quoted", "head if-none-match":
					hdr.Set("If-None-Match", `"`+dgst+`"`)
				case "if-none-match bare":
					hdr.Set("If-None-Match", dgst)
				case "if-range match":
					hdr.Set("If-Range", `"`+dgst+`"`)
				}
				appAnswer, appErr := fetchBody(t, appURL, shape.method, tg.path, hdr, nil)
				fastAnswer, fastErr := fetchBody(t, e.url, shape.method, tg.path, hdr, nil)
				if fmt.Sprint(appErr) != fmt.Sprint(fastErr) {
					t.Fatalf("reading the body: fast path %v, app %v", fastErr, appErr)
				}
				fromApp, fromFast := normalized(appAnswer), normalized(fastAnswer)
				if fromFast.status != fromApp.status || string(fromFast.body) != string(fromApp.body) {
					t.Fatalf("fast path answered %d %q, app %d %q", fromFast.status, trim(fromFast.body), fromApp.status, trim(fromApp.body))
				}
				if !reflect.DeepEqual(fromFast.header, fromApp.header) {
					t.Fatalf("headers differ:\nfast: %v\napp:  %v", fromFast.header, fromApp.header)
				}

				// Who answered: the fast path exactly for the hits,
				// and untouched when it leaves the request to the app.
				req := httptest.NewRequest(shape.method, tg.path, nil)
				req.Header = hdr.Clone()
				w := &touchWriter{h: http.Header{}}
				served := e.srv.blobFiles.serve(w, req)
				if served != tg.fast {
					t.Fatalf("fast path served=%v, want %v", served, tg.fast)
				}
				if !served && (w.touched || len(w.h) != 0) {
					t.Fatalf("fast path wrote before leaving the request to the app: %v", w.h)
				}
			})
		}
	}
	// The sizes the fast path serves really are the blobs.
	for _, c := range []struct {
		dgst string
		want []byte
	}{{bigD, big}, {d512, b512}, {emptyD, nil}} {
		r := fetch(t, e.url, "GET", "/v2/"+repo+"/blobs/"+c.dgst, nil, nil)
		if r.status != http.StatusOK || string(r.body) != string(c.want) {
			t.Fatalf("GET %s: %d, %d bytes, want %d", c.dgst, r.status, len(r.body), len(c.want))
		}
	}
}

func trim(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// TestBlobFastPathOnlyWithFilesystem: S3 storage and proxy mode have no
// files to serve.
func TestBlobFastPathOnlyWithFilesystem(t *testing.T) {
	if newBlobFiles(blobStorage{driver: config.DriverS3, params: map[string]any{"rootdirectory": "/x"}}, nil) != nil {
		t.Fatal("fast path with the S3 driver")
	}
	fs := blobStorage{driver: config.DriverFilesystem, params: map[string]any{"rootdirectory": "/data/registry"}}
	if newBlobFiles(fs, &upstream{}) != nil {
		t.Fatal("fast path in proxy mode")
	}
	b := newBlobFiles(fs, nil)
	if b == nil || b.root != "/data/registry/docker/registry/v2" {
		t.Fatalf("filesystem fast path: %+v", b)
	}
}

// TestBlobFastPathKeepsAccessControl: refusals come before existence, on
// the fast path as everywhere.
func TestBlobFastPathKeepsAccessControl(t *testing.T) {
	e := newTestEnvAuth(t, nil, &headerAuth{})
	alice := map[string]string{"X-Test-User": "alice"}
	e.hdr = alice
	dgst := e.pushBlob("fast/private", []byte("secret layer"))
	e.hdr = nil
	path := "/v2/fast/private/blobs/" + dgst
	if r := e.do("GET", path, nil, nil); r.status != http.StatusUnauthorized || r.header.Get("Docker-Content-Digest") != "" || strings.Contains(string(r.body), "secret") {
		t.Fatalf("anonymous GET: %d %v %q", r.status, r.header, r.body)
	}
	if r := e.do("HEAD", path, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous HEAD: %d", r.status)
	}
	if r := e.do("GET", path, nil, alice); r.status != http.StatusOK || string(r.body) != "secret layer" {
		t.Fatalf("alice GET: %d %q", r.status, r.body)
	}
}

// accessLine matches the access log record of one request.
var accessLine = regexp.MustCompile(`msg=request method=(\S+) path=(\S+) route=(\S+) status=(\d+) bytes=(\d+)`)

// TestBlobFastPathAccessLogBytes: what is sent through ReadFrom
// (the wrappers pass it on) is counted in the access log like what is
// written.
func TestBlobFastPathAccessLogBytes(t *testing.T) {
	e := newTestEnv(t, nil)
	blob := randomBytes(1 << 20)
	dgst := e.pushBlob("fast/log", blob)
	path := "/v2/fast/log/blobs/" + dgst
	cases := []struct {
		name   string
		method string
		hdr    http.Header
		status int
	}{
		{"get", "GET", nil, 200},
		{"head", "HEAD", nil, 200},
		{"range", "GET", http.Header{"Range": {"bytes=1000-50999"}}, 206},
		{"short range", "GET", http.Header{"Range": {"bytes=0-99"}}, 206},
		{"multiple ranges", "GET", http.Header{"Range": {"bytes=0-9,1000-1999"}}, 206},
		{"not modified", "GET", http.Header{"If-None-Match": {`"` + dgst + `"`}}, 304},
		{"unsatisfiable", "GET", http.Header{"Range": {"bytes=9999999-"}}, 416},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(accessLines(e, path))
			r := fetch(t, e.url, c.method, path, c.hdr, nil)
			if r.status != c.status {
				t.Fatalf("%d %q", r.status, trim(r.body))
			}
			var lines [][]string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				// The record is written once the handler returns,
				// which may be after the client has the answer.
				if lines = accessLines(e, path); len(lines) > before || time.Now().After(deadline) {
					break
				}
			}
			if len(lines) != before+1 {
				t.Fatalf("%d access records for %s, want %d", len(lines), path, before+1)
			}
			m := lines[len(lines)-1]
			if m[1] != c.method || m[3] != "v2.blob" || m[4] != strconv.Itoa(c.status) || m[5] != strconv.Itoa(len(r.body)) {
				t.Fatalf("access record %q, want %s %d with %d bytes", m[0], c.method, c.status, len(r.body))
			}
		})
	}
}

func accessLines(e *testEnv, path string) [][]string {
	var out [][]string
	for _, m := range accessLine.FindAllStringSubmatch(e.logs.String(), -1) {
		if m[2] == path {
			out = append(out, m)
		}
	}
	return out
}

// readFromCall is what reached a connection's ReadFrom.
type readFromCall struct {
	file bool // an *os.File, or an io.LimitedReader over one
	n    int64
}

// spyConn is a server connection that reports every ReadFrom before
// passing it to *net.TCPConn. net/http calls a connection's ReadFrom only
// from its response's ReadFrom, and TCPConn.ReadFrom sends an *os.File,
// alone or in an io.LimitedReader, with sendfile(2) (net/sendfile.go).
type spyConn struct {
	*net.TCPConn
	seen chan<- readFromCall
}

func (c *spyConn) ReadFrom(src io.Reader) (int64, error) {
	r := src
	if lr, ok := src.(*io.LimitedReader); ok {
		r = lr.R
	}
	_, file := r.(*os.File)
	n, err := c.TCPConn.ReadFrom(src)
	c.seen <- readFromCall{file: file, n: n}
	return n, err
}

type spyListener struct {
	net.Listener
	seen chan<- readFromCall
}

func (l spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &spyConn{TCPConn: c.(*net.TCPConn), seen: l.seen}, nil
}

// spyServer serves h on loopback through spyConns.
func spyServer(t *testing.T, h http.Handler) (*httptest.Server, <-chan readFromCall) {
	t.Helper()
	seen := make(chan readFromCall, 100)
	hs := httptest.NewUnstartedServer(h)
	hs.Listener = spyListener{Listener: hs.Listener, seen: seen}
	hs.Start()
	t.Cleanup(hs.Close)
	return hs, seen
}

// TestBlobFastPathCopiesInUserSpace: the fast path must not hand the
// data file to the connection (sendfile measured slower here; see
// blobReader), through any wrapper of Signet's chain, for a whole blob, a
// range, or a GET with a body (which goes through the upload cap's
// writer too); and every byte must still arrive.
func TestBlobFastPathCopiesInUserSpace(t *testing.T) {
	e := newTestEnv(t, nil)
	blob := randomBytes(1 << 20)
	dgst := e.pushBlob("fast/copy", blob)
	path := "/v2/fast/copy/blobs/" + dgst

	fast, seen := spyServer(t, e.srv)
	cases := []struct {
		name string
		hdr  http.Header
		body io.Reader
		want []byte
	}{
		{"get", nil, nil, blob},
		{"range", http.Header{"Range": {"bytes=4096-"}}, nil, blob[4096:]},
		{"get with a body", nil, strings.NewReader("x"), blob},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := fetch(t, fast.URL, "GET", path, c.hdr, c.body)
			if r.status/100 != 2 || string(r.body) != string(c.want) {
				t.Fatalf("%d, %d bytes, want %d", r.status, len(r.body), len(c.want))
			}
			// The connection's ReadFrom is reached (the wrappers pass
			// it through), but never with the file itself.
			select {
			case call := <-seen:
				if call.file {
					t.Fatalf("the data file reached the connection's ReadFrom (sendfile): %+v", call)
				}
				if call.n != int64(len(c.want))-512 {
					t.Fatalf("connection ReadFrom copied %d bytes, want %d", call.n, len(c.want)-512)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the connection's ReadFrom was never called")
			}
		})
	}
}

// FuzzBlobTarget: the fast path takes a request only where distribution
// would find the same repository and digest: a valid name
// (reference.WithName), a digest go-digest validates, sha256 or sha512
// only, and the route the access check names (fastV2Need, which decided
// the access).
func FuzzBlobTarget(f *testing.F) {
	hex64 := strings.Repeat("0a", 32)
	for _, p := range []string{
		"/v2/ns/app/blobs/sha256:" + hex64,
		"/v2/ns/app/blobs/sha512:" + hex64 + hex64,
		"/v2/ns/app/blobs/sha256:" + strings.ToUpper(hex64),
		"/v2/ns/app/blobs/sha384:" + hex64 + strings.Repeat("0a", 16),
		"/v2/ns/blobs/blobs/sha256:" + hex64,
		"/v2/localhost:5000/ns/app/blobs/sha256:" + hex64,
		"/v2/ns/app/blobs/uploads/sha256:" + hex64,
		"/v2/../blobs/sha256:" + hex64,
		"/v2/ns/app/manifests/sha256:" + hex64,
	} {
		f.Add("GET", p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path}}
		repo, dgst, ok := blobTarget(r)
		if !ok {
			return
		}
		if _, err := reference.WithName(repo); err != nil {
			t.Fatalf("%q: repository %q is not a valid name: %v", path, repo, err)
		}
		d, err := digest.Parse(dgst)
		if err != nil || d.String() != dgst || (d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512) {
			t.Fatalf("%q: digest %q: %v", path, dgst, err)
		}
		need, ok := fastV2Need(r)
		if !ok || need.route != "v2.blob" || need.repository != repo || need.access != AccessPull {
			t.Fatalf("%q: the access check decided %+v (%v) for repository %q", path, need, ok, repo)
		}
	})
}
