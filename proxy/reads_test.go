package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/registry/errcode"
)

// pagedNames serves names from last=, at most 2 a page whatever n= asks
// (a registry may return fewer), with a Link to the next page as
// distribution writes it (path-relative), or as an absolute URL on the
// upstream's origin when absolute is set.
func pagedNames(w http.ResponseWriter, r *http.Request, field string, names []string, absolute string) {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n <= 0 || n > 2 {
		n = 2
	}
	start := 0
	if last := q.Get("last"); last != "" {
		start = slices.Index(names, last) + 1
	}
	end := min(start+n, len(names))
	if end < len(names) {
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?last=%s&n=%d>; rel="next"`, absolute, r.URL.Path, names[end-1], n))
	}
	w.Header().Set("Content-Type", "application/json")
	quoted := make([]string, 0, end-start)
	for _, s := range names[start:end] {
		quoted = append(quoted, strconv.Quote(s))
	}
	fmt.Fprintf(w, `{%q:[%s]}`, field, strings.Join(quoted, ","))
}

func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var apiErr errcode.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("%v is not an API error", err)
	}
	return apiErr.Code.Status()
}

// TestCatalogPagination: the catalog is walked through Link pages
// (relative and absolute links, and an upstream that refuses a large n=),
// invalid names are left out, and a Link that leaves the list or repeats
// a page ends the walk with an error instead of following it.
func TestCatalogPagination(t *testing.T) {
	names := []string{"a/one", "b/two", "BAD/Name", "c/three", "d/four", "e/five"}
	var mode atomic.Value
	mode.Store("relative")
	var pages atomic.Int32
	var upURL string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/_catalog" {
			return
		}
		pages.Add(1)
		switch mode.Load() {
		case "relative":
			// distribution answers 400 to an n= above catalog.maxentries.
			if n, _ := strconv.Atoi(r.URL.Query().Get("n")); n > 2 {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			pagedNames(w, r, "repositories", names, "")
		case "absolute":
			pagedNames(w, r, "repositories", names, upURL)
		case "elsewhere":
			w.Header().Set("Link", `<http://elsewhere.example/v2/_catalog?last=x>; rel="next"`)
			fmt.Fprint(w, `{"repositories":["a/one"]}`)
		case "other path":
			w.Header().Set("Link", `</v2/ns/app/tags/list?last=x>; rel="next"`)
			fmt.Fprint(w, `{"repositories":["a/one"]}`)
		case "loop":
			w.Header().Set("Link", `</v2/_catalog?n=1000>; rel="next"`)
			fmt.Fprint(w, `{"repositories":["a/one"]}`)
		}
	}))
	defer up.Close()
	upURL = up.URL
	now := time.Unix(1000, 0)
	cfg := testConfig(up.URL)
	cfg.Now = func() time.Time { return now }
	p := newProxy(t, cfg)
	want := []string{"a/one", "b/two", "c/three", "d/four", "e/five"}
	for _, m := range []string{"relative", "absolute"} {
		mode.Store(m)
		pages.Store(0)
		now = now.Add(time.Hour)
		got, err := p.Catalog(context.Background())
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: %v %v", m, got, err)
		}
		// 6 names 2 a page: 3 pages, plus the refused n=1000.
		if wantPages := map[string]int32{"relative": 4, "absolute": 3}[m]; pages.Load() != wantPages {
			t.Errorf("%s: %d page requests, want %d", m, pages.Load(), wantPages)
		}
	}
	for _, m := range []string{"elsewhere", "other path", "loop"} {
		mode.Store(m)
		now = now.Add(time.Hour)
		if _, err := p.Catalog(context.Background()); !errors.Is(err, errBadPagination) {
			t.Errorf("%s: %v", m, err)
		}
	}
}

// TestCatalogCache: the list is reused for catalogTTL and walked again
// after it; a repository created by a push through Signet drops a list
// that lacks it, a push to a listed one does not; a failed walk is not
// cached.
func TestCatalogCache(t *testing.T) {
	var mu sync.Mutex
	names := []string{"ns/a"}
	var walks atomic.Int32
	var down atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/_catalog":
			walks.Add(1)
			if down.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			pagedNames(w, r, "repositories", names, "")
		case r.Method == http.MethodPut:
			mu.Lock()
			repo := strings.TrimPrefix(r.URL.Path[:strings.Index(r.URL.Path, "/manifests/")], "/v2/")
			if !slices.Contains(names, repo) {
				names = append(names, repo)
				slices.Sort(names)
			}
			mu.Unlock()
			w.Header().Set("Docker-Content-Digest", digest.FromString(repo).String())
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer up.Close()
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	cfg := testConfig(up.URL)
	cfg.Now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	p := newProxy(t, cfg)
	s := front(t, p)
	ctx := context.Background()
	catalog := func() []string {
		t.Helper()
		got, err := p.Catalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	push := func(repo string) {
		t.Helper()
		resp, body := do(t, request(t, http.MethodPut, s.URL+"/v2/"+repo+"/manifests/v1", strings.NewReader("{}")))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push %s: %d %s", repo, resp.StatusCode, body)
		}
	}

	catalog()
	advance(catalogTTL - time.Second)
	if got := catalog(); walks.Load() != 1 || !slices.Equal(got, []string{"ns/a"}) {
		t.Fatalf("within the TTL: %d walks, %v", walks.Load(), got)
	}
	advance(2 * time.Second)
	catalog()
	if walks.Load() != 2 {
		t.Fatalf("after the TTL: %d walks, want 2", walks.Load())
	}
	push("ns/a")
	catalog()
	if walks.Load() != 2 {
		t.Fatalf("a push to a listed repository walked again: %d walks", walks.Load())
	}
	push("ns/b")
	if got := catalog(); walks.Load() != 3 || !slices.Equal(got, []string{"ns/a", "ns/b"}) {
		t.Fatalf("after a push creating ns/b: %d walks, %v", walks.Load(), got)
	}
	down.Store(true)
	advance(catalogTTL)
	for range 2 {
		if _, err := p.Catalog(ctx); err == nil || apiStatus(t, err) != http.StatusServiceUnavailable {
			t.Fatalf("upstream failing: %v", err)
		}
	}
	if walks.Load() != 5 {
		t.Fatalf("a failed walk was cached: %d walks, want 5", walks.Load())
	}
}

// TestCatalogSingleFlight: readers arriving while a walk runs wait for it
// instead of starting their own.
func TestCatalogSingleFlight(t *testing.T) {
	release := make(chan struct{})
	var walks atomic.Int32
	started := make(chan struct{}, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/_catalog" {
			return
		}
		walks.Add(1)
		started <- struct{}{}
		<-release
		fmt.Fprint(w, `{"repositories":["ns/a"]}`)
	}))
	defer up.Close()
	p := newProxy(t, testConfig(up.URL))
	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	read := func() {
		defer wg.Done()
		got, err := p.Catalog(context.Background())
		if err == nil && !slices.Equal(got, []string{"ns/a"}) {
			err = fmt.Errorf("got %v", got)
		}
		errs <- err
	}
	wg.Add(1)
	go read()
	<-started
	for range readers - 1 {
		wg.Add(1)
		go read()
	}
	// Readers without the single flight would reach the upstream now.
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := walks.Load(); n != 1 {
		t.Fatalf("%d walks for %d concurrent readers, want 1", n, readers)
	}
}

// TestTags: tags are walked through Link pages and sorted, invalid tags
// are left out, an unknown repository is ErrNotFound, an invalid
// repository name is never sent, and the service credentials' refusal is
// an unavailable upstream that says so.
func TestTags(t *testing.T) {
	var requests atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		requests.Add(1)
		switch r.URL.Path {
		case "/v2/ns/app/tags/list":
			pagedNames(w, r, "tags", []string{"v3", "v1", "-bad", "v2", "latest"}, "")
		case "/v2/ns/refused/tags/list":
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	p := newProxy(t, cfg)
	ctx := context.Background()
	tags, err := p.Tags(ctx, "ns/app")
	if err != nil || !slices.Equal(tags, []string{"latest", "v1", "v2", "v3"}) {
		t.Fatalf("tags: %v %v", tags, err)
	}
	if _, err := p.Tags(ctx, "ns/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown repository: %v", err)
	}
	before := requests.Load()
	if _, err := p.Tags(ctx, "../../etc"); !errors.Is(err, ErrNotFound) || requests.Load() != before {
		t.Fatalf("invalid name: %v, %d requests sent", err, requests.Load()-before)
	}
	_, err = p.Tags(ctx, "ns/refused")
	if apiStatus(t, err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "refused Signet's service credentials") {
		t.Fatalf("refused: %v", err)
	}
}

// TestServiceCredentialsRefusedOnReads: an upstream that answers 401 to
// the service credentials gives an unavailable upstream that says so,
// never a not found.
func TestServiceCredentialsRefusedOnReads(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Username, cfg.Password = "svc", "wrong"
	p := newProxy(t, cfg)
	ctx := context.Background()
	d := digest.FromString("x")
	_, catalogErr := p.Catalog(ctx)
	_, _, manifestErr := p.Manifest(ctx, "ns/app", "v1")
	_, blobErr := p.Blob(ctx, "ns/app", d, 10)
	_, refErr := p.Referrers(ctx, "ns/app", d, "")
	for i, err := range []error{catalogErr, manifestErr, blobErr, refErr} {
		if errors.Is(err, ErrNotFound) || apiStatus(t, err) != http.StatusServiceUnavailable ||
			!strings.Contains(err.Error(), "refused Signet's service credentials") {
			t.Errorf("read %d: %v", i, err)
		}
	}
}

// TestReadManifest: the digest is that of the bytes received; bytes that
// do not hash to the digest asked for, or to the one the upstream names
// for a tag, are refused; a verified manifest is cached by digest; size is
// bounded; 404 is ErrNotFound and an outage is unavailable.
func TestReadManifest(t *testing.T) {
	good := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	goodDigest := digest.FromBytes(good)
	liar := digest.FromString("something else")
	var gets atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		gets.Add(1)
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		switch r.URL.Path {
		case "/v2/ns/app/manifests/v1", "/v2/ns/app/manifests/" + goodDigest.String():
			w.Header().Set("Docker-Content-Digest", goodDigest.String())
			_, _ = w.Write(good)
		case "/v2/ns/app/manifests/" + liar.String():
			_, _ = w.Write(good) // not the bytes of liar
		case "/v2/ns/app/manifests/lying-tag":
			w.Header().Set("Docker-Content-Digest", liar.String())
			_, _ = w.Write(good)
		case "/v2/ns/app/manifests/huge":
			_, _ = w.Write([]byte(`{"pad":"` + strings.Repeat("x", maxCachedManifest) + `"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	cfg := testConfig(up.URL)
	p := newProxy(t, cfg)
	ctx := context.Background()

	d, body, err := p.Manifest(ctx, "ns/app", "v1")
	if err != nil || d != goodDigest || string(body) != string(good) {
		t.Fatalf("by tag: %s %q %v", d, body, err)
	}
	before := gets.Load()
	if d, body, err := p.Manifest(ctx, "ns/app", goodDigest.String()); err != nil || d != goodDigest || string(body) != string(good) {
		t.Fatalf("by digest: %s %q %v", d, body, err)
	}
	if gets.Load() != before {
		t.Fatal("a verified manifest was not served from the cache by digest")
	}
	if _, _, err := p.Manifest(ctx, "ns/app", liar.String()); !errors.Is(err, errDigestMismatch) {
		t.Fatalf("bytes that do not hash to the digest asked for: %v", err)
	}
	if _, _, err := p.Manifest(ctx, "ns/app", "lying-tag"); !errors.Is(err, errDigestMismatch) {
		t.Fatalf("a tag whose digest header does not match its bytes: %v", err)
	}
	if _, _, err := p.Manifest(ctx, "ns/app", "huge"); !errors.Is(err, errTooLarge) {
		t.Fatalf("manifest over %d bytes: %v", maxCachedManifest, err)
	}
	if _, _, err := p.Manifest(ctx, "ns/app", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, _, err := p.Manifest(ctx, "ns/app", "no/such tag"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invalid tag: %v", err)
	}
	up.Close()
	if _, _, err := p.Manifest(ctx, "ns/app", "v1"); errors.Is(err, ErrNotFound) || apiStatus(t, err) != http.StatusServiceUnavailable {
		t.Fatalf("upstream down: %v", err)
	}
}

// TestReadBlob: at most limit bytes (declared or streamed), the digest
// checked, and a redirect to object storage followed without the service
// credentials.
func TestReadBlob(t *testing.T) {
	content := []byte("a small config blob")
	d := digest.FromBytes(content)
	var storageAuth atomic.Value
	storageAuth.Store("")
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageAuth.Store(r.Header.Get("Authorization"))
		_, _ = w.Write(content)
	}))
	defer storage.Close()
	other := digest.FromString("other")
	redirected := digest.FromString("redirected")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "svc" || pw != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="up"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v2/ns/app/blobs/" + d.String():
			_, _ = w.Write(content)
		case "/v2/ns/app/blobs/" + other.String():
			_, _ = w.Write(content)
		case "/v2/ns/app/blobs/" + redirected.String():
			http.Redirect(w, r, storage.URL+"/bucket/blob", http.StatusTemporaryRedirect)
		case "/v2/ns/app/blobs/sha256:" + strings.Repeat("0", 64):
			// Chunked: no Content-Length to refuse up front.
			w.(http.Flusher).Flush()
			_, _ = w.Write(make([]byte, 1000))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer up.Close()
	cfg := testConfig(up.URL)
	cfg.Username, cfg.Password = "svc", "pw"
	p := newProxy(t, cfg)
	ctx := context.Background()
	if b, err := p.Blob(ctx, "ns/app", d, int64(len(content))); err != nil || string(b) != string(content) {
		t.Fatalf("blob: %q %v", b, err)
	}
	if _, err := p.Blob(ctx, "ns/app", d, int64(len(content))-1); !errors.Is(err, errTooLarge) {
		t.Fatalf("declared size over the limit: %v", err)
	}
	if _, err := p.Blob(ctx, "ns/app", digest.Digest("sha256:"+strings.Repeat("0", 64)), 100); !errors.Is(err, errTooLarge) {
		t.Fatalf("streamed size over the limit: %v", err)
	}
	if _, err := p.Blob(ctx, "ns/app", other, 100); !errors.Is(err, errDigestMismatch) {
		t.Fatalf("bytes of another digest: %v", err)
	}
	// The storage URL gets no credentials; its bytes are still checked.
	if _, err := p.Blob(ctx, "ns/app", redirected, 100); !errors.Is(err, errDigestMismatch) {
		t.Fatalf("redirected blob with the wrong bytes: %v", err)
	}
	if a := storageAuth.Load().(string); a != "" {
		t.Fatalf("the service credentials went to object storage: %q", a)
	}
	if _, err := p.Blob(ctx, "ns/app", digest.FromString("missing"), 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

// TestReadReferrers: the upstream's index comes back, the artifactType
// filter is passed on, and an upstream without the API (404) is
// ErrNotFound.
func TestReadReferrers(t *testing.T) {
	subject := digest.FromString("image")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/ns/app/referrers/" + subject.String():
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			fmt.Fprintf(w, `{"schemaVersion":2,"manifests":[],"filter":%q}`, r.URL.Query().Get("artifactType"))
		case "/v2/":
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer up.Close()
	p := newProxy(t, testConfig(up.URL))
	ctx := context.Background()
	b, err := p.Referrers(ctx, "ns/app", subject, "application/x-test")
	if err != nil || !strings.Contains(string(b), `"filter":"application/x-test"`) {
		t.Fatalf("referrers: %s %v", b, err)
	}
	if _, err := p.Referrers(ctx, "ns/old", subject, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no referrers API: %v", err)
	}
}

// TestListPageBounded: one page over maxListPageBytes is refused, not
// read to the end.
func TestListPageBounded(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/ns/app/tags/list" {
			return
		}
		fmt.Fprintf(w, `{"tags":["%s"]}`, strings.Repeat("v", maxListPageBytes))
	}))
	defer up.Close()
	p := newProxy(t, testConfig(up.URL))
	if _, err := p.Tags(context.Background(), "ns/app"); !errors.Is(err, errTooLarge) {
		t.Fatalf("oversized page: %v", err)
	}
}

func TestNextLink(t *testing.T) {
	page, _ := http.NewRequest(http.MethodGet, "http://up.example:5000/v2/_catalog?n=2", nil)
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{`</v2/_catalog?last=b&n=2>; rel="next"`}, "http://up.example:5000/v2/_catalog?last=b&n=2"},
		{[]string{`<http://up.example:5000/v2/_catalog?last=b>; rel=next`}, "http://up.example:5000/v2/_catalog?last=b"},
		{[]string{`</prev>; rel="prev", </v2/_catalog?last=c>; rel="next"`}, "http://up.example:5000/v2/_catalog?last=c"},
		{[]string{`</prev>; rel="prev"`, `</v2/_catalog?last=d>; REL="Next"`}, "http://up.example:5000/v2/_catalog?last=d"},
		{[]string{`</v2/_catalog?last=e>; rel="prev next"`}, "http://up.example:5000/v2/_catalog?last=e"},
		{[]string{`</v2/_catalog?last=b>; rel="prev"`}, ""},
		{[]string{`</v2/_catalog?last=b; rel="next"`}, ""},
		{nil, ""},
	} {
		u, ok := nextLink(tc.values, page.URL)
		got := ""
		if ok {
			got = u.String()
		}
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.values, got, tc.want)
		}
	}
}
