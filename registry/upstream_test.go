package registry

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // the upstream's htpasswd access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/signaturestore"
)

// upstreamRegistry runs distribution's registry application (the code of
// the stock registry binary) over filesystem storage, as the upstream of a
// proxy-mode Signet; with users it requires htpasswd Basic auth.
type upstreamRegistry struct {
	*httptest.Server
	root string
}

func newUpstreamRegistry(t testing.TB, users map[string]string) *upstreamRegistry {
	t.Helper()
	root := t.TempDir()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": root},
		"delete":     configuration.Parameters{"enabled": true},
		"redirect":   configuration.Parameters{"disable": true},
	}
	cfg.HTTP.Secret = strings.Repeat("s", 32)
	// The stock binary's default; a Configuration built in code has 0,
	// which lists no repositories.
	cfg.Catalog.MaxEntries = 1000
	if users != nil {
		var lines []string
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(h))
		}
		path := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "upstream-realm", "path": path}}
	}
	app := handlers.NewApp(context.Background(), cfg)
	s := httptest.NewServer(app)
	t.Cleanup(func() {
		s.Close()
		_ = app.Shutdown()
	})
	return &upstreamRegistry{Server: s, root: root}
}

// direct requests the upstream itself, bypassing Signet.
func (u *upstreamRegistry) direct(t testing.TB, method, path, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(method, u.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func proxyEnv(t testing.TB, upstreamURL string, mutate func(*config.Upstream)) *testEnv {
	t.Helper()
	return newTestEnv(t, func(c *config.Config) {
		c.Registry.Upstream.URL = upstreamURL
		c.Registry.Upstream.SweepInterval = 0 // tests drive the sweep
		if mutate != nil {
			mutate(&c.Registry.Upstream)
		}
	})
}

func (e *testEnv) putSignature(repo, dgst string) response {
	e.t.Helper()
	return e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(sigName(dgst), []byte("sig of "+dgst))), nil)
}

// TestProxyModeSignatures: images pushed through Signet land upstream;
// signatures land in Signet and need the manifest upstream; the embedded
// registry is not used.
func TestProxyModeSignatures(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	e := proxyEnv(t, up.URL, nil)
	dgst := e.pushImage("ns/app", "v1")
	if code := up.direct(t, "GET", "/v2/ns/app/manifests/"+dgst, "", ""); code != http.StatusOK {
		t.Fatalf("manifest pushed through Signet is not upstream: %d", code)
	}
	if _, err := os.Stat(filepath.Join(RegistryRoot(e.cfg.Storage.DataDir), "docker")); !os.IsNotExist(err) {
		t.Fatalf("the embedded registry stored something: %v", err)
	}
	if r := e.putSignature("ns/app", dgst); r.status != http.StatusCreated {
		t.Fatalf("signature PUT: %d %s", r.status, r.body)
	}
	if n := len(e.list("ns/app", dgst).Signatures); n != 1 {
		t.Fatalf("%d signatures listed", n)
	}
	missing := digest.FromString("never pushed").String()
	if r := e.putSignature("ns/app", missing); r.status != http.StatusNotFound || errorCode(t, r.body) != "MANIFEST_UNKNOWN" {
		t.Fatalf("signature for a manifest the upstream lacks: %d %s", r.status, r.body)
	}
	// Referrers pass through: distribution v3.1.2 has no referrers API,
	// so its 404 arrives (Signet's own index would answer 200).
	if r := e.do("GET", "/v2/ns/app/referrers/"+dgst, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("referrers: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/signet/v1/digests/"+dgst, nil, nil); r.status != http.StatusMethodNotAllowed || errorCode(t, r.body) != "UNSUPPORTED" {
		t.Fatalf("digest lookup: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/", nil, nil); r.status != http.StatusOK || r.header.Get(SupportsSignaturesHeader) != "1" {
		t.Fatalf("ping: %d %v", r.status, r.header)
	}
}

// TestProxyModeHiddenSignatures: a manifest deleted upstream, behind
// Signet's back, hides its signatures once the sweep notices; they are
// kept, and come back when the manifest does. A delete through Signet
// removes them.
func TestProxyModeHiddenSignatures(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	e := proxyEnv(t, up.URL, nil)
	sweep := func() {
		t.Helper()
		// One tick checks a page; with a page of 100 a tick covers
		// the test's images and wraps around.
		e.srv.upstream.sweepOnce(context.Background())
	}
	dgst := e.pushImage("ns/app", "v1")
	other := e.pushImage("ns/app", "v2")
	for _, d := range []string{dgst, other} {
		if r := e.putSignature("ns/app", d); r.status != http.StatusCreated {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
	}
	// The manifest bytes, to push them again later.
	manifest := e.do("GET", "/v2/ns/app/manifests/"+dgst, nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})

	if code := up.direct(t, "DELETE", "/v2/ns/app/manifests/"+dgst, "", ""); code != http.StatusAccepted {
		t.Fatalf("direct delete: %d", code)
	}
	sweep()
	for _, path := range []string{sigPath("ns/app", dgst), recordsPath("ns/app", dgst), "/sigstore/ns/app@sha256=" + strings.TrimPrefix(dgst, "sha256:") + "/signature-1"} {
		if r := e.do("GET", path, nil, nil); r.status != http.StatusNotFound {
			t.Fatalf("GET %s after the manifest went upstream: %d %s", path, r.status, r.body)
		}
	}
	if r := e.putSignature("ns/app", dgst); r.status != http.StatusNotFound {
		t.Fatalf("PUT for a hidden image: %d", r.status)
	}
	if n := len(e.list("ns/app", other).Signatures); n != 1 {
		t.Fatal("the other image lost its signatures")
	}
	sigs, err := e.store.List(context.Background(), signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest(dgst)})
	if err != nil || len(sigs) != 1 {
		t.Fatalf("hidden signatures not kept: %v %v", sigs, err)
	}
	// The same manifest pushed again upstream: the signatures are back.
	r := e.do("PUT", "/v2/ns/app/manifests/v1", strings.NewReader(string(manifest.body)), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if r.status != http.StatusCreated {
		t.Fatalf("re-push: %d %s", r.status, r.body)
	}
	if n := len(e.list("ns/app", dgst).Signatures); n != 1 {
		t.Fatalf("%d signatures after the manifest came back", n)
	}
	// A delete through Signet removes the signatures for good.
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+dgst, nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete through Signet: %d %s", r.status, r.body)
	}
	sigs, err = e.store.List(context.Background(), signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest(dgst)})
	if err != nil || len(sigs) != 0 {
		t.Fatalf("signatures after a delete through Signet: %v %v", sigs, err)
	}
	if code := up.direct(t, "GET", "/v2/ns/app/manifests/"+dgst, "", ""); code != http.StatusNotFound {
		t.Fatalf("delete did not reach the upstream: %d", code)
	}
}

// TestProxyModeUpstreamDown: with the upstream gone, /v2/ answers 502 and
// signature writes 503 (never 404), each with a JSON error, and /readyz
// says so.
func TestProxyModeUpstreamDown(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	e := proxyEnv(t, up.URL, nil)
	if r := e.do("GET", "/readyz", nil, nil); r.status != http.StatusOK {
		t.Fatalf("readyz with the upstream up: %d %s", r.status, r.body)
	}
	up.Close()
	time.Sleep(1100 * time.Millisecond) // past the readiness answer's reuse
	if r := e.do("GET", "/readyz", nil, nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "upstream") {
		t.Fatalf("readyz with the upstream down: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/ns/app/manifests/v1", nil, nil); r.status != http.StatusBadGateway || errorCode(t, r.body) != "UNAVAILABLE" {
		t.Fatalf("/v2/: %d %s", r.status, r.body)
	}
	dgst := digest.FromString("m").String()
	if r := e.putSignature("ns/app", dgst); r.status != http.StatusServiceUnavailable || errorCode(t, r.body) != "UNAVAILABLE" {
		t.Fatalf("signature PUT: %d %s", r.status, r.body)
	}
	if r := e.do("GET", sigPath("ns/app", dgst), nil, nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("signature GET: %d %s", r.status, r.body)
	}
	// The sweep hides nothing while it cannot ask.
	if n := e.srv.upstream.sweepOnce(context.Background()); n != 0 {
		t.Fatalf("sweep checked %d images with the upstream down", n)
	}
}

// TestProxyModePassthrough: with an htpasswd-protected upstream, the
// upstream decides: a client that can push there may store signatures, one
// with wrong or no credentials gets the upstream's 401 and stores nothing,
// and the push check leaves no upload behind.
func TestProxyModePassthrough(t *testing.T) {
	up := newUpstreamRegistry(t, map[string]string{"alice": "right"})
	e := proxyEnv(t, up.URL, func(u *config.Upstream) { u.Auth = config.UpstreamAuthPassthrough })
	alice := map[string]string{"Authorization": basic("alice", "right")}
	e.hdr = alice
	dgst := e.pushImage("ns/app", "v1")
	e.hdr = nil
	key := signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest(dgst)}

	for name, hdr := range map[string]map[string]string{
		"none":           nil,
		"wrong password": {"Authorization": basic("alice", "wrong")},
		"unknown user":   {"Authorization": basic("mallory", "right")},
	} {
		r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), []byte("x"))), hdr)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "upstream-realm") {
			t.Fatalf("%s: %d %q %s", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
		if r := e.do("GET", sigPath("ns/app", dgst), nil, hdr); r.status != http.StatusUnauthorized {
			t.Fatalf("%s: GET %d", name, r.status)
		}
		if r := e.do("GET", "/v2/ns/app/manifests/"+dgst, nil, hdr); r.status != http.StatusUnauthorized {
			t.Fatalf("%s: manifest GET %d", name, r.status)
		}
	}
	if sigs, err := e.store.List(context.Background(), key); err != nil || len(sigs) != 0 {
		t.Fatalf("signatures stored for refused clients: %v %v", sigs, err)
	}
	r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), []byte("x"))), alice)
	if r.status != http.StatusCreated {
		t.Fatalf("alice: %d %s", r.status, r.body)
	}
	if r := e.do("GET", sigPath("ns/app", dgst), nil, alice); r.status != http.StatusOK {
		t.Fatalf("alice GET: %d %s", r.status, r.body)
	}
	// distribution keeps an empty hash state of a cancelled upload until
	// its purge; the upload itself (data, start time) must be gone.
	for _, f := range []string{"data", "startedat"} {
		if left, _ := filepath.Glob(filepath.Join(up.root, "docker/registry/v2/repositories/ns/app/_uploads/*", f)); len(left) != 0 {
			t.Fatalf("the push check left an upload behind: %v", left)
		}
	}
	if !strings.Contains(e.logs.String(), "user=alice") {
		t.Fatalf("audit log does not name the upstream user:\n%s", e.logs.String())
	}
}
