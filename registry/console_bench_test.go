package registry_test

// The web console's page latency with 10,000 repositories (issue 9: under
// 100 ms a page), measured through the whole server (middleware, router,
// session, real users file with per-repository grants, distribution's
// storage, the signature store). `make bench` runs it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/auth"
	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

const (
	benchTeams = 100 // team-000 .. team-099
	benchApps  = 100 // app-00 .. app-99 in each: 10,000 repositories
	benchTags  = 100 // tags of the one repository the repository page shows
)

// benchServer starts a server over dataDir with the users file.
func benchServer(tb testing.TB, dataDir, usersFile string) (*registry.Server, func()) {
	tb.Helper()
	logrus.SetOutput(io.Discard)
	cfg := config.Default()
	cfg.Storage.DataDir = dataDir
	cfg.Log.AccessLog = false
	cfg.Auth.UsersFile = usersFile
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var store *boltstore.Store
	metrics, err := registry.NewMetrics(reg, func(ctx context.Context) (int64, error) { return store.Count(ctx) })
	if err != nil {
		tb.Fatal(err)
	}
	store, err = boltstore.Open(filepath.Join(dataDir, "signatures.db"), boltstore.Options{
		Limits: signaturestore.Limits{MaxPerImage: cfg.Signatures.MaxPerImage, MaxBytesPerImage: cfg.Signatures.MaxBytesPerImage},
	})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := auth.Load(usersFile)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := registry.New(context.Background(), registry.Options{
		Config: cfg, Store: store, Metrics: metrics, Gatherer: reg, Authorizer: a, ConsoleUsers: a,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, func() { _ = srv.Close(); _ = store.Close() }
}

func serve(h http.Handler, method, target string, body io.Reader, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// pushSeed pushes one image as team-000/app-00:tag-000 through the API,
// with basic auth, and returns its digest.
func pushSeed(tb testing.TB, h http.Handler, basic string) string {
	tb.Helper()
	hdr := http.Header{"Authorization": {"Basic " + basic}}
	blob := func(b []byte) string {
		rec := serve(h, "POST", "/v2/team-000/app-00/blobs/uploads/", nil, hdr)
		if rec.Code != http.StatusAccepted {
			tb.Fatalf("upload: %d %s", rec.Code, rec.Body)
		}
		loc, _ := url.Parse(rec.Header().Get("Location"))
		q := loc.Query()
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		q.Set("digest", d)
		loc.RawQuery = q.Encode()
		if rec := serve(h, "PUT", loc.RequestURI(), bytes.NewReader(b), hdr); rec.Code != http.StatusCreated {
			tb.Fatalf("upload: %d %s", rec.Code, rec.Body)
		}
		return d
	}
	layer := make([]byte, 1024)
	_, _ = rand.Read(layer)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}],`+
		`"annotations":{"org.opencontainers.image.description":"seed"}}`, blob(cfg), len(cfg), blob(layer), len(layer))
	hdr.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if rec := serve(h, "PUT", "/v2/team-000/app-00/manifests/tag-000", strings.NewReader(manifest), hdr); rec.Code != http.StatusCreated {
		tb.Fatalf("manifest: %d %s", rec.Code, rec.Body)
	}
	sum := sha256.Sum256([]byte(manifest))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// replicate adds benchTags tags to the seed repository (copies of its
// tag's link files, distribution's own layout) and creates the other
// 9,999 repositories as distribution lists them: a directory holding
// _manifests. The list page never reads more of a repository than its
// name, so they hold no image; the repository and image pages are
// measured on the seed.
func replicate(tb testing.TB, dataDir string) {
	tb.Helper()
	repos := filepath.Join(registry.RegistryRoot(dataDir), "docker", "registry", "v2", "repositories")
	tagDir := filepath.Join(repos, "team-000", "app-00", "_manifests", "tags")
	for i := 1; i < benchTags; i++ {
		if err := os.CopyFS(filepath.Join(tagDir, fmt.Sprintf("tag-%03d", i)), os.DirFS(filepath.Join(tagDir, "tag-000"))); err != nil {
			tb.Fatal(err)
		}
	}
	for t := range benchTeams {
		for a := range benchApps {
			if t == 0 && a == 0 {
				continue
			}
			if err := os.MkdirAll(filepath.Join(repos, fmt.Sprintf("team-%03d", t), fmt.Sprintf("app-%02d", a), "_manifests"), 0o755); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// loginAs logs in through the form and returns the session cookie.
func loginAs(tb testing.TB, h http.Handler, user, password string) string {
	tb.Helper()
	form := serve(h, "GET", "/ui/login", nil, nil)
	var loginCookie string
	for _, c := range form.Result().Cookies() {
		if c.Name == "signet_login" {
			loginCookie = c.Name + "=" + c.Value
		}
	}
	body := form.Body.String()
	i := strings.Index(body, `name="csrf" value="`) + len(`name="csrf" value="`)
	tok := body[i : i+strings.IndexByte(body[i:], '"')]
	v := url.Values{"csrf": {tok}, "username": {user}, "password": {password}}
	rec := serve(h, "POST", "/ui/login", strings.NewReader(v.Encode()), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Cookie": {loginCookie},
	})
	for _, c := range rec.Result().Cookies() {
		if c.Name == "signet_session" {
			return c.Name + "=" + c.Value
		}
	}
	tb.Fatalf("login as %s: %d", user, rec.Code)
	return ""
}

func BenchmarkConsole10kRepositories(b *testing.B) {
	dir := b.TempDir()
	dataDir := filepath.Join(dir, "data")
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.yaml")
	users := fmt.Sprintf(`version: 1
users:
  alice: {password: %q}
  bob: {password: %q}
grants:
  - repositories: ["**"]
    users: [alice]
    roles: [admin]
  - repositories: ["team-00*/**", "team-05?/app-1*"]
    users: [bob]
    roles: [reader]
`, hash, hash)
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		b.Fatal(err)
	}
	// The seed image is pushed through the API.
	srv, stop := benchServer(b, dataDir, usersFile)
	basic := "YWxpY2U6cHc=" // alice:pw
	dgst := pushSeed(b, srv, basic)
	for i := range 2 {
		var suffix [16]byte
		_, _ = rand.Read(suffix[:])
		name := dgst + "@" + hex.EncodeToString(suffix[:])
		body := fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":"%s"}`, name, "b3BlbnBncA==")
		if i == 1 {
			body = strings.Replace(body, "b3BlbnBncA==", "c2Vjb25k", 1)
		}
		hdr := http.Header{"Authorization": {"Basic " + basic}}
		if rec := serve(srv, "PUT", "/extensions/v2/team-000/app-00/signatures/"+dgst, strings.NewReader(body), hdr); rec.Code != http.StatusCreated {
			b.Fatalf("signature: %d %s", rec.Code, rec.Body)
		}
		if i == 0 {
			st := `{"trusted":true,"imageIdentity":"example.com/team-000/app-00:tag-000","issuedBy":{"commonName":"0123456789ABCDEF"}}`
			if rec := serve(srv, "PUT", "/signet/v1/repositories/team-000/app-00/signatures/"+dgst+"/"+name+"/status", strings.NewReader(st), hdr); rec.Code != http.StatusOK {
				b.Fatalf("status: %d %s", rec.Code, rec.Body)
			}
		}
	}
	stop()
	start := time.Now()
	replicate(b, dataDir)
	b.Logf("wrote %d repositories in %v", benchTeams*benchApps, time.Since(start))

	// A fresh server walks the 10,000 repositories once, at start.
	srv, stop = benchServer(b, dataDir, usersFile)
	defer stop()
	alice := loginAs(b, srv, "alice", "pw")
	bob := loginAs(b, srv, "bob", "pw")
	start = time.Now()
	if rec := serve(srv, "GET", "/ui/", nil, http.Header{"Cookie": {alice}}); !strings.Contains(rec.Body.String(), "10000 repositories") {
		b.Fatalf("first page after start: %d\n%s", rec.Code, rec.Body)
	}
	b.Logf("first list page after start (waits for the catalog walk): %v", time.Since(start))

	// The baseline: what one page would cost without the in-memory
	// catalog, a walk of every repository (distribution's Enumerate, as
	// /v2/_catalog does) to search and count them.
	b.Run("baseline/walk-per-page", func(b *testing.B) {
		drv := filesystem.New(filesystem.DriverParameters{RootDirectory: registry.RegistryRoot(dataDir), MaxThreads: 100})
		ns, err := storage.NewRegistry(context.Background(), drv)
		if err != nil {
			b.Fatal(err)
		}
		enum := ns.(distribution.RepositoryEnumerator)
		for b.Loop() {
			n := 0
			if err := enum.Enumerate(context.Background(), func(name string) error {
				if strings.Contains(name, "app-42") {
					n++
				}
				return nil
			}); err != nil || n != benchTeams {
				b.Fatalf("walk: %d matches, %v", n, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
	})
	for _, bc := range []struct {
		name, cookie, path, want string
	}{
		{"list/first", alice, "/ui/", "showing 1–50"},
		{"list/last", alice, "/ui/?page=200", "showing 9951–10000"},
		{"list/middle", alice, "/ui/?page=101", "showing 5001–5050"},
		{"list/search", alice, "/ui/?q=app-42", "100 repositories matching"},
		{"list/search-page-2", alice, "/ui/?q=team-04&page=2", "showing 51–100"},
		{"list/search-none", alice, "/ui/?q=nothing-matches", "No repository you may pull matches"},
		{"list/restricted-user", bob, "/ui/?page=5", "1100 repositories; showing 201–250"},
		{"repository/100-tags", alice, "/ui/repositories/team-000/app-00", "100 tags."},
		{"image", alice, "/ui/images/team-000/app-00@" + dgst + "?tag=tag-000", `class="verifier">alice</strong>`},
	} {
		hdr := http.Header{"Cookie": {bc.cookie}}
		rec := serve(srv, "GET", bc.path, nil, hdr)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), bc.want) {
			b.Fatalf("%s: %d, want %q in:\n%s", bc.path, rec.Code, bc.want, rec.Body)
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if rec := serve(srv, "GET", bc.path, nil, hdr); rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", bc.path, rec.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
