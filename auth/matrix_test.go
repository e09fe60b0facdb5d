package auth_test

// The auth matrix (issue 4, "Tests"): every caller kind × every route ×
// the namespace inside, outside and beside its grant, against a real
// server with a real users file. Each cell asserts the exact status, the
// challenge and capability headers of a 401, the error code of a refusal,
// and that a refused request wrote nothing. A refused request on a
// repository or digest that does not exist must be refused the same way
// (401/403 before 404).
//
// The expected status is computed from a table written here, not from
// package auth or registry internals, so a change to either that alters
// who may do what fails here.

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
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/signet-registry/signet/auth"
	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// TestMain silences distribution's logrus output, as registry's tests do.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// ---------------------------------------------------------------------
// The expectation model, written independently of package auth.

// modelRoles is the role table of issue 4.
var modelRoles = map[string][]registry.Access{
	"reader":  {registry.AccessPull},
	"writer":  {registry.AccessPull, registry.AccessPush},
	"signer":  {registry.AccessPull, registry.AccessSign},
	"auditor": {registry.AccessPull, registry.AccessSave},
	"admin":   {registry.AccessPull, registry.AccessPush, registry.AccessSign, registry.AccessSave, registry.AccessAdmin},
}

// modelGrant is one user's single grant in the users file below.
type modelGrant struct {
	role    string
	pattern string // "team/**" or "**"
}

// modelUsers: one user per role on team/**, plus teamadmin (admin on
// team/** only, so even the admin role has an outside namespace) and
// admin (admin on **, which also sets everything up).
var modelUsers = map[string]modelGrant{
	"reader":    {"reader", "team/**"},
	"writer":    {"writer", "team/**"},
	"signer":    {"signer", "team/**"},
	"auditor":   {"auditor", "team/**"},
	"teamadmin": {"admin", "team/**"},
	"admin":     {"admin", "**"},
}

// anonymousPattern is the anonymous reader grant.
const anonymousPattern = "public/**"

// modelMatch: "**" matches every repository and also "" (requests about
// no single repository: catalog, digest lookup); "x/**" matches names
// under x/ only.
func modelMatch(pattern, repo string) bool {
	if pattern == "**" {
		return true
	}
	prefix, ok := strings.CutSuffix(pattern, "**")
	if !ok {
		panic("model knows only ** patterns")
	}
	return repo != "" && strings.HasPrefix(repo, prefix)
}

func modelAllows(user, repo string, access registry.Access) bool {
	// The anonymous grant applies to every caller.
	if access == registry.AccessPull && modelMatch(anonymousPattern, repo) {
		return true
	}
	if user == "" {
		return false
	}
	g, ok := modelUsers[user]
	return ok && modelMatch(g.pattern, repo) && slices.Contains(modelRoles[g.role], access)
}

type callerKind int

const (
	kindAnonymous callerKind = iota
	kindValid                // credentials that authenticate user
	kindBad                  // credentials present but invalid
)

// expectStatus is the status a caller must get on a route about repo
// ("" for routes about no repository).
func expectStatus(c caller, rc routeCase, repo string) int {
	switch {
	case rc.ping:
		// Authentication only; anonymous callers get 401 even where
		// anonymous pulls are granted (clients log in only after it).
		if c.kind == kindValid {
			return rc.ok
		}
		return http.StatusUnauthorized
	case rc.access == registry.AccessNone:
		return rc.ok
	case c.kind == kindBad:
		return http.StatusUnauthorized
	case c.kind == kindAnonymous:
		if modelAllows("", repo, rc.access) {
			return rc.ok
		}
		return http.StatusUnauthorized
	case modelAllows(c.user, repo, rc.access):
		return rc.ok
	}
	return http.StatusForbidden
}

// ---------------------------------------------------------------------
// The server.

const (
	challenge        = `Basic realm="Signet"`
	supportsHeader   = "X-Registry-Supports-Signatures"
	ociManifest      = "application/vnd.oci.image.manifest.v1+json"
	passwordOf       = "-correct-horse"
	wrongPasswordOf  = "-wrong-horse"
	configBlobString = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
)

// image is one seeded image and the disposable things cells consume.
type image struct {
	ns, repo     string
	digest       string // the main image, tag v1
	configDigest string
	layerDigest  string
	layerSize    int
	sig          string // seeded signature on digest
	spare        string // second image, target of remove-all
	spareHasSig  bool
	// victimManifest is an untagged image for DELETE manifest; "" when
	// a cell has deleted it.
	victimManifest string
	// victimSig is a signature on digest for DELETE signature; "" when
	// a cell has deleted it.
	victimSig string
}

type matrixEnv struct {
	t         *testing.T
	url       string
	dataDir   string
	store     *boltstore.Store
	client    *http.Client
	adminAuth string
	images    map[string]*image // by namespace
	n         int               // uniquifier
	// last is the state after the latest request that wrote nothing;
	// nil once anything may have written since.
	last *snapshot
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func randomDigest() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return shaOf(b[:])
}

func sigNameFor(dgst string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return dgst + "@" + hex.EncodeToString(b[:])
}

func sigBodyFor(name string) string {
	var content [24]byte
	_, _ = rand.Read(content[:])
	return fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":%q}`,
		name, base64.StdEncoding.EncodeToString(content[:]))
}

// tokens made with auth.CreateToken for the signer.
type matrixTokens struct {
	valid, expired, revoked string
}

// writeUsersFile writes the users file and adds the signer's tokens.
func writeUsersFile(t *testing.T) (string, matrixTokens) {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nusers:\n")
	users := slices.Sorted(maps.Keys(modelUsers))
	for _, u := range users {
		h, err := auth.HashPassword([]byte(u+passwordOf), 4)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  %s:\n    password: %q\n", u, h)
	}
	b.WriteString("grants:\n")
	for _, u := range users {
		g := modelUsers[u]
		fmt.Fprintf(&b, "  - repositories: [%q]\n    users: [%s]\n    roles: [%s]\n", g.pattern, u, g.role)
	}
	fmt.Fprintf(&b, "  - repositories: [%q]\n    anonymous: true\n    roles: [reader]\n", anonymousPattern)
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var tk matrixTokens
	var err error
	if tk.valid, _, err = auth.CreateToken(path, "signer", auth.CreateTokenOptions{TTL: 24 * time.Hour, Description: "valid"}); err != nil {
		t.Fatal(err)
	}
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	if tk.expired, _, err = auth.CreateToken(path, "signer", auth.CreateTokenOptions{TTL: time.Hour, Now: past, Description: "expired"}); err != nil {
		t.Fatal(err)
	}
	var revoked auth.TokenInfo
	if tk.revoked, revoked, err = auth.CreateToken(path, "signer", auth.CreateTokenOptions{Description: "revoked"}); err != nil {
		t.Fatal(err)
	}
	if err := auth.RevokeToken(path, "signer", revoked.ID); err != nil {
		t.Fatal(err)
	}
	return path, tk
}

func newMatrixEnv(t *testing.T, usersFile string) *matrixEnv {
	t.Helper()
	authz, err := auth.Load(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Storage.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var store *boltstore.Store
	metrics, err := registry.NewMetrics(reg, func(ctx context.Context) (int64, error) { return store.Count(ctx) })
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
	srv, err := registry.New(context.Background(), registry.Options{
		Config: cfg, Store: store, Metrics: metrics, Gatherer: reg, Authorizer: authz,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
		_ = store.Close()
	})
	return &matrixEnv{
		t: t, url: hs.URL, dataDir: cfg.Storage.DataDir, store: store,
		client: &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		adminAuth: basicAuth("admin", "admin"+passwordOf),
		images:    map[string]*image{},
	}
}

type request struct {
	method, path string
	body         string
	header       map[string]string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *matrixEnv) do(rq request, authorization string) response {
	e.t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, e.url+rq.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := e.client.Do(req)
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

// admin runs a setup request as admin and requires want.
func (e *matrixEnv) admin(rq request, want int) response {
	e.t.Helper()
	e.last = nil
	r := e.do(rq, e.adminAuth)
	if r.status != want {
		e.t.Fatalf("setup %s %s: %d, want %d: %s", rq.method, rq.path, r.status, want, r.body)
	}
	return r
}

func (e *matrixEnv) pushBlob(repo string, b []byte) string {
	e.t.Helper()
	r := e.admin(request{method: "POST", path: "/v2/" + repo + "/blobs/uploads/"}, http.StatusAccepted)
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", shaOf(b))
	loc.RawQuery = q.Encode()
	e.admin(request{method: "PUT", path: loc.RequestURI(), body: string(b),
		header: map[string]string{"Content-Type": "application/octet-stream"}}, http.StatusCreated)
	return shaOf(b)
}

// manifest is a unique manifest over img's blobs.
func (e *matrixEnv) manifest(img *image) string {
	e.n++
	return fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}],`+
		`"annotations":{"signet.test/n":"%d"}}`,
		ociManifest, img.configDigest, len(configBlobString), img.layerDigest, img.layerSize, e.n)
}

func (e *matrixEnv) pushManifest(img *image, ref string) string {
	e.t.Helper()
	m := e.manifest(img)
	if ref == "" {
		ref = shaOf([]byte(m))
	}
	e.admin(request{method: "PUT", path: "/v2/" + img.repo + "/manifests/" + ref, body: m,
		header: map[string]string{"Content-Type": ociManifest}}, http.StatusCreated)
	return shaOf([]byte(m))
}

func (e *matrixEnv) putSignature(repo, dgst string) string {
	e.t.Helper()
	name := sigNameFor(dgst)
	e.admin(request{method: "PUT", path: "/extensions/v2/" + repo + "/signatures/" + dgst, body: sigBodyFor(name)}, http.StatusCreated)
	return name
}

// seed pushes one image (and a spare) into ns/app, with one signature
// on each, all through the API.
func (e *matrixEnv) seed(ns string) {
	e.t.Helper()
	img := &image{ns: ns, repo: ns + "/app"}
	layer := make([]byte, 64)
	_, _ = rand.Read(layer)
	img.layerSize = len(layer)
	img.layerDigest = e.pushBlob(img.repo, layer)
	img.configDigest = e.pushBlob(img.repo, []byte(configBlobString))
	img.digest = e.pushManifest(img, "v1")
	img.spare = e.pushManifest(img, "spare")
	img.sig = e.putSignature(img.repo, img.digest)
	e.putSignature(img.repo, img.spare)
	img.spareHasSig = true
	// A saved status on the seeded signature, so that a refused status
	// write or delete would show.
	e.admin(request{method: "PUT", path: recordsPath(img.repo, img.digest) + "/" + img.sig + "/status",
		body: `{"trusted":true,"imageIdentity":"seeded"}`}, http.StatusOK)
	e.images[ns] = img
}

func recordsPath(repo, dgst string) string {
	return "/signet/v1/repositories/" + repo + "/signatures/" + dgst
}

// ---------------------------------------------------------------------
// "Nothing was written": the whole data directory (registry blobs,
// links, uploads, the signature database) plus the store's view.

type snapshot struct {
	files   map[string]string
	count   int64
	lists   map[string]string
	pending int
}

func (e *matrixEnv) snapshot() snapshot {
	e.t.Helper()
	s := snapshot{files: map[string]string{}, lists: map[string]string{}}
	err := filepath.WalkDir(e.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.dataDir, path)
		if d.IsDir() {
			s.files[rel+"/"] = "dir"
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		s.files[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if s.count, err = e.store.Count(ctx); err != nil {
		e.t.Fatal(err)
	}
	for _, img := range e.images {
		for _, d := range []string{img.digest, img.spare} {
			key := signaturestore.ImageKey{Repository: img.repo, Digest: digest.Digest(d)}
			sigs, err := e.store.List(ctx, key)
			if err != nil {
				e.t.Fatal(err)
			}
			b, _ := json.Marshal(sigs)
			s.lists[key.String()] = string(b)
		}
	}
	pending, err := e.store.PendingImageDeletes(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	s.pending = len(pending)
	return s
}

func diffSnapshots(before, after snapshot) []string {
	var d []string
	if before.count != after.count {
		d = append(d, fmt.Sprintf("signature count %d -> %d", before.count, after.count))
	}
	if before.pending != after.pending {
		d = append(d, fmt.Sprintf("pending image deletes %d -> %d", before.pending, after.pending))
	}
	for k, v := range before.lists {
		if after.lists[k] != v {
			d = append(d, "signatures of "+k+" changed")
		}
	}
	for k, v := range before.files {
		if w, ok := after.files[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, "changed "+k)
		}
	}
	for k := range after.files {
		if _, ok := before.files[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	slices.Sort(d)
	return d
}

// ---------------------------------------------------------------------
// Callers.

type caller struct {
	name          string // "signer/wrong-password"
	kind          callerKind
	user          string // for kindValid
	authorization string // "" for anonymous
}

func matrixCallers(tk matrixTokens) []caller {
	cs := []caller{{name: "anonymous", kind: kindAnonymous}}
	for _, u := range []string{"reader", "writer", "signer", "auditor", "teamadmin", "admin"} {
		cs = append(cs,
			caller{name: u + "/password", kind: kindValid, user: u, authorization: basicAuth(u, u+passwordOf)},
			caller{name: u + "/wrong-password", kind: kindBad, authorization: basicAuth(u, u+wrongPasswordOf)},
		)
	}
	unknownToken := "sgt_0123456789abcdef_" + strings.Repeat("a", 52)
	cs = append(cs,
		caller{name: "unknown-user/password", kind: kindBad, authorization: basicAuth("mallory", "mallory"+passwordOf)},
		caller{name: "signer/token-bearer", kind: kindValid, user: "signer", authorization: "Bearer " + tk.valid},
		caller{name: "signer/token-basic", kind: kindValid, user: "signer", authorization: basicAuth("signer", tk.valid)},
		// A token logs in only the user it belongs to.
		caller{name: "reader/signer-token-basic", kind: kindBad, authorization: basicAuth("reader", tk.valid)},
		caller{name: "signer/expired-token-bearer", kind: kindBad, authorization: "Bearer " + tk.expired},
		caller{name: "signer/expired-token-basic", kind: kindBad, authorization: basicAuth("signer", tk.expired)},
		caller{name: "signer/revoked-token-bearer", kind: kindBad, authorization: "Bearer " + tk.revoked},
		caller{name: "signer/revoked-token-basic", kind: kindBad, authorization: basicAuth("signer", tk.revoked)},
		caller{name: "unknown-token/bearer", kind: kindBad, authorization: "Bearer " + unknownToken},
		caller{name: "malformed/authorization", kind: kindBad, authorization: "Basic !!not-base64!!"},
	)
	return cs
}

// ---------------------------------------------------------------------
// Routes.

// target is what a cell acts on: a seeded image, or a repository or
// digest that does not exist.
type target struct {
	label   string // "team", "other-missing-repo", "global", ...
	repo    string // "" for routes about no repository
	img     *image // nil when missing
	digest  string // the image
	blob    string // a blob of it
	sig     string // its seeded signature (status routes)
	spare   string // remove-all target
	victimM string // manifest to delete
	victimS string // signature to delete
	// manifest body for a push; valid only for existing images.
	manifest string
}

// needs of a route, prepared as admin before the cell runs.
const (
	needVictimManifest = 1 << iota
	needVictimSig
	needSpareSig
	needManifestBody
)

type routeCase struct {
	name   string
	access registry.Access
	ping   bool
	global bool // about no repository (or not about repositories at all)
	ok     int  // status when allowed
	// write: success changes state, so "nothing written" is checked
	// only when refused.
	write bool
	needs int
	build func(tg *target) request
	// consumed is run after an allowed cell that succeeded.
	consumed func(img *image)
}

func matrixRoutes() []routeCase {
	sigs := func(tg *target) string { return "/extensions/v2/" + tg.repo + "/signatures/" + tg.digest }
	records := func(tg *target) string { return recordsPath(tg.repo, tg.digest) }
	return []routeCase{
		{name: "ping", ping: true, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/v2/"} }},
		{name: "GET manifest", access: registry.AccessPull, ok: 200,
			build: func(tg *target) request {
				return request{method: "GET", path: "/v2/" + tg.repo + "/manifests/" + tg.digest,
					header: map[string]string{"Accept": ociManifest}}
			}},
		{name: "HEAD blob", access: registry.AccessPull, ok: 200,
			build: func(tg *target) request { return request{method: "HEAD", path: "/v2/" + tg.repo + "/blobs/" + tg.blob} }},
		{name: "PUT manifest", access: registry.AccessPush, ok: 201, write: true, needs: needManifestBody,
			build: func(tg *target) request {
				return request{method: "PUT", path: "/v2/" + tg.repo + "/manifests/" + "cell-" + shaOf([]byte(tg.manifest))[7:19],
					body: tg.manifest, header: map[string]string{"Content-Type": ociManifest}}
			}},
		{name: "POST blob upload", access: registry.AccessPush, ok: 202, write: true,
			build: func(tg *target) request { return request{method: "POST", path: "/v2/" + tg.repo + "/blobs/uploads/"} }},
		{name: "DELETE manifest", access: registry.AccessPush, ok: 202, write: true, needs: needVictimManifest,
			build: func(tg *target) request {
				return request{method: "DELETE", path: "/v2/" + tg.repo + "/manifests/" + tg.victimM}
			},
			consumed: func(img *image) { img.victimManifest = "" }},
		{name: "GET catalog", access: registry.AccessPull, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/v2/_catalog"} }},
		{name: "GET tags", access: registry.AccessPull, ok: 200,
			build: func(tg *target) request { return request{method: "GET", path: "/v2/" + tg.repo + "/tags/list"} }},
		{name: "GET signatures", access: registry.AccessPull, ok: 200,
			build: func(tg *target) request { return request{method: "GET", path: sigs(tg)} }},
		{name: "PUT signature", access: registry.AccessSign, ok: 201, write: true,
			build: func(tg *target) request {
				return request{method: "PUT", path: sigs(tg), body: sigBodyFor(sigNameFor(tg.digest))}
			}},
		{name: "GET records", access: registry.AccessPull, ok: 200,
			build: func(tg *target) request { return request{method: "GET", path: records(tg)} }},
		{name: "PUT status", access: registry.AccessSave, ok: 200, write: true,
			build: func(tg *target) request {
				return request{method: "PUT", path: records(tg) + "/" + tg.sig + "/status",
					body: `{"trusted":false,"reason":"matrix cell"}`}
			}},
		{name: "DELETE status", access: registry.AccessSave, ok: 204, write: true,
			build: func(tg *target) request {
				return request{method: "DELETE", path: records(tg) + "/" + tg.sig + "/status"}
			}},
		{name: "DELETE signature", access: registry.AccessSign, ok: 204, write: true, needs: needVictimSig,
			build:    func(tg *target) request { return request{method: "DELETE", path: records(tg) + "/" + tg.victimS} },
			consumed: func(img *image) { img.victimSig = "" }},
		{name: "DELETE all signatures", access: registry.AccessAdmin, ok: 200, write: true, needs: needSpareSig,
			build:    func(tg *target) request { return request{method: "DELETE", path: recordsPath(tg.repo, tg.spare)} },
			consumed: func(img *image) { img.spareHasSig = false }},
		{name: "GET digest lookup", access: registry.AccessPull, global: true, ok: 200,
			build: func(tg *target) request { return request{method: "GET", path: "/signet/v1/digests/" + tg.digest} }},
		{name: "GET backup", access: registry.AccessAdmin, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/signet/v1/backup"} }},
		{name: "healthz", access: registry.AccessNone, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/healthz"} }},
		{name: "readyz", access: registry.AccessNone, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/readyz"} }},
		{name: "metrics", access: registry.AccessNone, global: true, ok: 200,
			build: func(*target) request { return request{method: "GET", path: "/metrics"} }},
	}
}

// existing is the target of a seeded image, with the route's needs
// prepared as admin.
func (e *matrixEnv) existing(ns string, needs int) *target {
	e.t.Helper()
	img := e.images[ns]
	if needs&needVictimManifest != 0 && img.victimManifest == "" {
		img.victimManifest = e.pushManifest(img, "")
	}
	if needs&needVictimSig != 0 && img.victimSig == "" {
		img.victimSig = e.putSignature(img.repo, img.digest)
	}
	if needs&needSpareSig != 0 && !img.spareHasSig {
		e.putSignature(img.repo, img.spare)
		img.spareHasSig = true
	}
	tg := &target{label: ns, repo: img.repo, img: img, digest: img.digest, blob: img.configDigest,
		sig: img.sig, spare: img.spare, victimM: img.victimManifest, victimS: img.victimSig}
	if needs&needManifestBody != 0 {
		tg.manifest = e.manifest(img)
	}
	return tg
}

// missing is a target that does not exist: a repository nobody pushed
// to, or a digest not in the seeded repository.
func (e *matrixEnv) missing(ns string, repoToo bool) *target {
	img := e.images[ns]
	tg := &target{label: ns + "-missing-digest", repo: img.repo}
	if repoToo {
		tg.label, tg.repo = ns+"-missing-repo", ns+"/ghost"
	}
	tg.digest, tg.blob, tg.spare, tg.victimM = randomDigest(), randomDigest(), randomDigest(), randomDigest()
	tg.sig, tg.victimS = sigNameFor(tg.digest), sigNameFor(tg.digest)
	tg.manifest = e.manifest(img)
	return tg
}

// ---------------------------------------------------------------------
// The matrix.

func TestAuthMatrix(t *testing.T) {
	start := time.Now()
	usersFile, tokens := writeUsersFile(t)
	e := newMatrixEnv(t, usersFile)
	namespaces := []string{"team", "other", "public"}
	for _, ns := range namespaces {
		e.seed(ns)
	}
	callers := matrixCallers(tokens)
	routes := matrixRoutes()

	cells, refusedCells, existenceCells := 0, 0, 0
	// runCell sends one request and checks everything about its answer.
	runCell := func(t *testing.T, c caller, rc routeCase, tg *target, want int) int {
		t.Helper()
		rq := rc.build(tg)
		checkWrites := !rc.write || want != rc.ok
		var before snapshot
		if checkWrites {
			if e.last != nil {
				before = *e.last
			} else {
				before = e.snapshot()
			}
		}
		e.last = nil
		r := e.do(rq, c.authorization)
		if r.status != want {
			t.Errorf("%s %s: status %d, want %d: %.300s", rq.method, rq.path, r.status, want, r.body)
		}
		if got := r.header.Get(supportsHeader); got != "1" {
			t.Errorf("%s = %q, want 1 (status %d)", supportsHeader, got, r.status)
		}
		switch r.status {
		case http.StatusUnauthorized:
			if got := r.header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != challenge {
				t.Errorf("401 with WWW-Authenticate %q, want %q", got, challenge)
			}
			if rq.method != "HEAD" {
				checkErrorCode(t, r.body, "UNAUTHORIZED")
			}
		case http.StatusForbidden:
			if got := r.header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("403 with a challenge %q", got)
			}
			if rq.method != "HEAD" {
				checkErrorCode(t, r.body, "DENIED")
			}
		}
		if checkWrites {
			after := e.snapshot()
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("%s %s answered %d and wrote: %s", rq.method, rq.path, r.status, strings.Join(d, "; "))
			} else {
				e.last = &after
			}
		}
		return r.status
	}

	for _, c := range callers {
		for _, rc := range routes {
			var targets []string
			if rc.global {
				targets = []string{"global"}
			} else {
				targets = namespaces
			}
			for _, label := range targets {
				var tg *target
				repo := ""
				if label == "global" {
					// Global routes about a digest use team's image.
					tg = e.existing("team", 0)
					tg.label, tg.repo = "global", ""
				} else {
					tg = e.existing(label, rc.needs)
					repo = tg.repo
				}
				want := expectStatus(c, rc, repo)
				cells++
				var got int
				t.Run(c.name+"/"+rc.name+"/"+tg.label, func(t *testing.T) {
					got = runCell(t, c, rc, tg, want)
				})
				if got == rc.ok && tg.img != nil && tg.label != "global" && rc.consumed != nil {
					rc.consumed(tg.img)
				}
				if want != http.StatusUnauthorized && want != http.StatusForbidden {
					continue
				}
				refusedCells++
				// Refusal precedes existence: the same request on
				// something that does not exist is refused the same.
				var missing []*target
				switch {
				case label != "global":
					missing = []*target{e.missing(label, true), e.missing(label, false)}
				case rc.name == "GET digest lookup":
					m := e.missing("team", false)
					m.label, m.repo = "global-missing-digest", ""
					missing = []*target{m}
				}
				for _, m := range missing {
					existenceCells++
					t.Run(c.name+"/"+rc.name+"/"+m.label, func(t *testing.T) {
						runCell(t, c, rc, m, want)
					})
				}
			}
		}
	}

	// Every row of the route table was exercised: the server's own
	// per-route metrics saw each route name.
	metrics := e.do(request{method: "GET", path: "/metrics"}, "")
	for _, name := range []string{
		registry.RouteSignaturesGet, registry.RouteSignaturesPut, registry.RouteRecordsGet,
		registry.RouteStatusPut, registry.RouteStatusDelete, registry.RouteSignatureDel,
		registry.RouteSignaturesDel, registry.RouteDigestLookup, registry.RouteBackup, registry.RouteHealthz,
		registry.RouteReadyz, registry.RouteMetrics,
		"v2.base", "v2.manifest", "v2.blob", "v2.blob-upload", "v2.catalog", "v2.tags",
	} {
		if !bytes.Contains(metrics.body, []byte(`route="`+name+`"`)) {
			t.Errorf("route %s never exercised (not in /metrics)", name)
		}
	}
	t.Logf("%d cells (%d refused) + %d refusal-before-existence cells, %d callers × %d routes, in %v",
		cells, refusedCells, existenceCells, len(callers), len(routes), time.Since(start).Round(time.Millisecond))
}

func checkErrorCode(t *testing.T, body []byte, want string) {
	t.Helper()
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
		t.Errorf("not an error envelope: %.200q (%v)", body, err)
		return
	}
	if env.Errors[0].Code != want {
		t.Errorf("error code %s, want %s", env.Errors[0].Code, want)
	}
}
