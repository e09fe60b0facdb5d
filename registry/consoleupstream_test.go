package registry

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/signet-registry/signet/config"
)

// TestConsoleProxyMode: in proxy mode the console shows what the upstream
// holds, whether pushed through Signet or to the upstream directly, with
// the signatures and statuses Signet stores; a repository pushed through
// Signet is listed at once, and tags are read live.
func TestConsoleProxyMode(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	direct := &testEnv{t: t, url: up.URL}
	directDgst := direct.pushImage("direct/only", "v1")
	e := proxyEnv(t, up.URL, nil)
	dgst := e.pushImage("ns/app", "v1")
	name := sigName(dgst)
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, []byte("not openpgp"))), nil); r.status != http.StatusCreated {
		t.Fatalf("sign: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", recordsPath("ns/app", dgst)+"/"+name+"/status", strings.NewReader(`{"trusted":true,"imageIdentity":"example.com/ns/app:v1","issuedBy":{"commonName":"0123456789ABCDEF"}}`), nil); r.status != http.StatusOK {
		t.Fatalf("save status: %d %s", r.status, r.body)
	}

	if got := listed(e.uiGet("/ui/", nil).body); !slices.Equal(got, []string{"direct/only", "ns/app"}) {
		t.Fatalf("console lists %v", got)
	}
	// The badge of an image or tag (the legend shows every badge, without
	// a title).
	const verified, unsigned = `badge badge-verified" title=`, `badge badge-unsigned" title=`
	page := func(path string, status int) string {
		t.Helper()
		r := e.uiGet(path, nil)
		if r.status != status {
			t.Fatalf("%s: %d, want %d\n%s", path, r.status, status, r.body)
		}
		return string(r.body)
	}
	if p := page("/ui/repositories/ns/app", 200); !strings.Contains(p, ">v1</a>") || !strings.Contains(p, dgst) ||
		!strings.Contains(p, verified) || !strings.Contains(p, "1 GPG") {
		t.Fatalf("signed repository:\n%s", p)
	}
	if p := page("/ui/repositories/direct/only", 200); !strings.Contains(p, ">v1</a>") || !strings.Contains(p, directDgst) ||
		!strings.Contains(p, unsigned) || strings.Contains(p, verified) {
		t.Fatalf("repository pushed to the upstream directly:\n%s", p)
	}
	if p := page("/ui/images/ns/app@"+dgst+"?tag=v1", 200); !strings.Contains(p, "0123456789ABCDEF") ||
		!strings.Contains(p, "application/vnd.oci.image.manifest.v1&#43;json") || !strings.Contains(p, verified) {
		t.Fatalf("image page:\n%s", p)
	}
	page("/ui/images/ns/app@"+sha([]byte("never pushed")), http.StatusNotFound)
	page("/ui/repositories/ns/never", http.StatusNotFound)

	// A repository created through Signet shows at once, inside the
	// catalog's TTL.
	e.pushImage("ns/new", "v2")
	if got := listed(e.uiGet("/ui/", nil).body); !slices.Equal(got, []string{"direct/only", "ns/app", "ns/new"}) {
		t.Fatalf("after a push through Signet the console lists %v", got)
	}
	// A repository holding only an untagged manifest (distribution's
	// tag list answers 404 NAME_UNKNOWN) is listed with no tags, as in
	// embedded mode, not "unknown".
	cfgDigest := e.pushBlob("ns/untagged", []byte("{}"))
	untagged := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, cfgDigest)
	if r := e.do("PUT", "/v2/ns/untagged/manifests/"+sha([]byte(untagged)), strings.NewReader(untagged),
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); r.status != http.StatusCreated {
		t.Fatalf("push by digest: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/ns/untagged/tags/list", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("the upstream lists tags of an untagged repository (%d): this check needs its 404", r.status)
	}
	if p := page("/ui/repositories/ns/untagged", 200); !strings.Contains(p, "No tags.") {
		t.Fatalf("untagged repository:\n%s", p)
	}
	// Tags are read live: a tag deleted upstream is gone from the page.
	if code := up.direct(t, "DELETE", "/v2/direct/only/manifests/"+directDgst, "", ""); code != http.StatusAccepted {
		t.Fatalf("direct delete: %d", code)
	}
	if p := page("/ui/repositories/direct/only", 200); strings.Contains(p, ">v1</a>") || !strings.Contains(p, "No tags.") {
		t.Fatalf("after the upstream deleted the manifest:\n%s", p)
	}
}

// TestConsoleProxyModeRefusedCredentials: an upstream that refuses the
// service credentials gives console pages that say so (503), not an empty
// list and not a crash.
func TestConsoleProxyModeRefusedCredentials(t *testing.T) {
	up := newUpstreamRegistry(t, map[string]string{"svc": "right"})
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := proxyEnv(t, up.URL, func(u *config.Upstream) { u.Username, u.PasswordFile = "svc", pw })
	for _, path := range []string{"/ui/", "/ui/repositories/ns/app", "/ui/images/ns/app@" + sha([]byte("x"))} {
		r := e.uiGet(path, nil)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "refused Signet&#39;s service credentials") {
			t.Fatalf("%s: %d\n%s", path, r.status, r.body)
		}
	}
}

// TestConsoleProxyModeReferrersFallback: on an upstream without the
// referrers API (distribution v3.1.2 answers 404), a cosign bundle
// referrer listed under the sha256-<hex> fallback tag counts on the
// repository page, as the referrers API would make it count.
func TestConsoleProxyModeReferrersFallback(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	e := proxyEnv(t, up.URL, nil)
	dgst := e.pushImage("ns/app", "v1")
	const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	bundle := []byte(`{"mediaType":"` + bundleType + `"}`)
	bundleDigest := e.pushBlob("ns/app", bundle)
	empty := e.pushBlob("ns/app", []byte("{}"))
	referrer := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":%q,"digest":%q,"size":%d}],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1}}`,
		bundleType, empty, bundleType, bundleDigest, len(bundle), dgst)
	referrerDigest := sha([]byte(referrer))
	if r := e.do("PUT", "/v2/ns/app/manifests/"+referrerDigest, strings.NewReader(referrer),
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); r.status != http.StatusCreated {
		t.Fatalf("push referrer: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/ns/app/referrers/"+dgst, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("the upstream has a referrers API after all (%d): this test needs one without", r.status)
	}
	if p := string(e.uiGet("/ui/repositories/ns/app", nil).body); !strings.Contains(p, `badge badge-unsigned" title=`) || strings.Contains(p, "cosign</span>") {
		t.Fatalf("before the fallback tag:\n%s", p)
	}
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"artifactType":%q}]}`,
		referrerDigest, len(referrer), bundleType)
	fallbackTag := strings.Replace(dgst, ":", "-", 1)
	if r := e.do("PUT", "/v2/ns/app/manifests/"+fallbackTag, strings.NewReader(index),
		map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}); r.status != http.StatusCreated {
		t.Fatalf("push the fallback tag: %d %s", r.status, r.body)
	}
	if p := string(e.uiGet("/ui/repositories/ns/app", nil).body); !strings.Contains(p, ">1 cosign</span>") {
		t.Fatalf("a bundle under the fallback tag is not counted:\n%s", p)
	}
}
