package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// uiGet fetches a console page without following redirects.
func (e *testEnv) uiGet(path string, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
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

func (e *testEnv) catalogNames() []string {
	e.t.Helper()
	r := e.do("GET", "/v2/_catalog", nil, nil)
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatalf("catalog %d: %s", r.status, r.body)
	}
	return c.Repositories
}

// listed reports the repositories the console's list links to.
func listed(body []byte) []string {
	var out []string
	const marker = `<td class="name"><a href="/ui/repositories/`
	for rest := string(body); ; {
		i := strings.Index(rest, marker)
		if i < 0 {
			return out
		}
		rest = rest[i+len(marker):]
		out = append(out, rest[:strings.IndexByte(rest, '"')])
	}
}

// TestConsoleFollowsTheRegistry: pushes through /v2 appear in the
// console's list at once (the in-memory catalog is updated, no restart
// and no walk), and what a page shows of tags, digests and signatures is
// read live, so signing, saving a status and deleting show up at once.
func TestConsoleFollowsTheRegistry(t *testing.T) {
	e := newTestEnv(t, nil)
	if r := e.uiGet("/ui/", nil); r.status != 200 || len(listed(r.body)) != 0 {
		t.Fatalf("empty registry: %d %v", r.status, listed(r.body))
	}
	dgst := e.pushImage("ns/app", "v1")
	e.pushImage("ns/app-two", "latest")
	// A push the registry refuses creates nothing.
	if r := e.do("PUT", "/v2/ns/refused/manifests/v1", strings.NewReader("{not json"), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); r.status/100 != 4 {
		t.Fatalf("bad manifest: %d", r.status)
	}
	r := e.uiGet("/ui/", nil)
	if got := listed(r.body); !slices.Equal(got, []string{"ns/app", "ns/app-two"}) || !slices.Equal(got, e.catalogNames()) {
		t.Fatalf("console lists %v, /v2/_catalog %v", got, e.catalogNames())
	}
	repoPage := func() string { return string(e.uiGet("/ui/repositories/ns/app", nil).body) }
	// A tag row's badge carries a title; the legend's do not.
	badge := func(state string) string { return `badge badge-` + state + `" title=` }
	if p := repoPage(); !strings.Contains(p, ">v1</a>") || !strings.Contains(p, badge("unsigned")) {
		t.Fatalf("repository page:\n%s", p)
	}
	name := sigName(dgst)
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, []byte("not openpgp"))), nil); r.status != 201 {
		t.Fatalf("sign: %d %s", r.status, r.body)
	}
	if p := repoPage(); !strings.Contains(p, badge("unverified")) || !strings.Contains(p, "1 GPG") {
		t.Fatalf("after signing:\n%s", p)
	}
	if r := e.do("PUT", recordsPath("ns/app", dgst)+"/"+name+"/status", strings.NewReader(`{"trusted":true,"imageIdentity":"example.com/ns/app:v1","issuedBy":{"commonName":"0123456789ABCDEF"}}`), nil); r.status != 200 {
		t.Fatalf("save status: %d %s", r.status, r.body)
	}
	if p := repoPage(); !strings.Contains(p, badge("verified")) {
		t.Fatalf("after saving a status:\n%s", p)
	}
	img := e.uiGet("/ui/images/ns/app@"+dgst+"?tag=v1", nil)
	if img.status != 200 || !strings.Contains(string(img.body), `by <strong class="verifier">anonymous</strong>`) || !strings.Contains(string(img.body), "0123456789ABCDEF") {
		t.Fatalf("image page %d:\n%s", img.status, img.body)
	}
	// Deleting the manifest: its tag and page go at once; the repository
	// stays listed, as in /v2/_catalog.
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+dgst, nil, nil); r.status != 202 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if p := repoPage(); strings.Contains(p, ">v1</a>") || !strings.Contains(p, "No tags.") {
		t.Fatalf("after delete:\n%s", p)
	}
	if r := e.uiGet("/ui/images/ns/app@"+dgst, nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted image page: %d", r.status)
	}
	if got := listed(e.uiGet("/ui/", nil).body); !slices.Equal(got, e.catalogNames()) {
		t.Fatalf("after delete the console lists %v, /v2/_catalog %v", got, e.catalogNames())
	}
}

// TestConsoleCatalogLoad: a catalog loaded at start-up holds what is on
// disk, and the union with pushes made during the walk.
func TestConsoleCatalogLoad(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, n := range []string{"b/two", "a/one", "a/one/deeper"} {
		e.pushImage(n, "v1")
	}
	cat := newRepoCatalog(100, e.srv.log)
	cat.add("c/pushed-during-walk")
	cat.load(context.Background(), e.srv.manifests.ns)
	got, err := cat.snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/one", "a/one/deeper", "b/two", "c/pushed-during-walk"}; !slices.Equal(got, want) {
		t.Fatalf("catalog %v, want %v", got, want)
	}
	// Bounded: past max, new names are left out.
	small := newRepoCatalog(2, e.srv.log)
	small.load(context.Background(), e.srv.manifests.ns)
	small.add("z/late")
	if got, _ := small.snapshot(context.Background()); len(got) != 2 {
		t.Fatalf("bounded catalog holds %v", got)
	}
	// A reader waiting for the walk gives up with its request.
	slow := newRepoCatalog(10, e.srv.log)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := slow.snapshot(ctx); err == nil {
		t.Fatal("snapshot before the walk did not wait")
	}
}

// TestConsoleClosedWithoutUserDirectory: with access control but no user
// directory for the console, nobody can log in and nothing is shown,
// whatever credentials the API would accept.
func TestConsoleClosedWithoutUserDirectory(t *testing.T) {
	e := newTestEnvAuth(t, nil, &headerAuth{})
	alice := map[string]string{"X-Test-User": "alice"}
	e.hdr = alice
	e.pushImage("ns/app", "v1")
	e.hdr = nil
	for _, path := range []string{"/ui/", "/ui/repositories/ns/app"} {
		r := e.uiGet(path, alice)
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/ui/login") {
			t.Fatalf("%s: %d %v", path, r.status, r.header)
		}
	}
}

func TestConsoleMount(t *testing.T) {
	e := newTestEnv(t, nil)
	if r := e.uiGet("/ui", nil); r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/ui/" {
		t.Fatalf("/ui: %d %v", r.status, r.header)
	}
	// Only /ui and /ui/... are the console; the rest stays the API's.
	if r := e.uiGet("/uix", nil); r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"NOT_FOUND"`) {
		t.Fatalf("/uix: %d %s", r.status, r.body)
	}
	// Non-canonical paths never reach the console.
	if r := e.uiGet("/ui/repositories/ns/../x", nil); r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"NOT_FOUND"`) {
		t.Fatalf("dot segments: %d %s", r.status, r.body)
	}
	if r := e.uiGet("/ui/", nil); r.header.Get("Content-Security-Policy") == "" {
		t.Fatal("no CSP through the registry")
	}
	m := e.do("GET", "/metrics", nil, nil)
	if !strings.Contains(string(m.body), `route="ui"`) {
		t.Fatal("console requests not counted under route=\"ui\"")
	}
}
