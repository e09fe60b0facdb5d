package console

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/signaturestore"
)

// fakeRegistry is an in-memory Registry: cosigntest's registry for
// manifests, blobs and referrers, plus the repository and tag lists.
type fakeRegistry struct {
	*cosigntest.Registry
	mu    sync.Mutex
	repos map[string]map[string]digest.Digest // repository -> tag -> digest
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{Registry: cosigntest.NewRegistry(), repos: map[string]map[string]digest.Digest{}}
}

func (f *fakeRegistry) Repositories(_ context.Context, keep func(string) bool, offset, limit int) ([]string, int, error) {
	f.mu.Lock()
	names := make([]string, 0, len(f.repos))
	for n := range f.repos {
		names = append(names, n)
	}
	f.mu.Unlock()
	slices.Sort(names)
	var page []string
	total := 0
	for _, n := range names {
		if !keep(n) {
			continue
		}
		if total >= offset && len(page) < limit {
			page = append(page, n)
		}
		total++
	}
	return page, total, nil
}

func (f *fakeRegistry) Tags(_ context.Context, repository string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tags, ok := f.repos[repository]
	if !ok {
		return nil, fmt.Errorf("repository %s: %w", repository, cosign.ErrNotFound)
	}
	out := make([]string, 0, len(tags))
	for t := range tags {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeRegistry) TagDigest(_ context.Context, repository, tag string) (digest.Digest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.repos[repository][tag]
	if !ok {
		return "", fmt.Errorf("tag %s:%s: %w", repository, tag, cosign.ErrNotFound)
	}
	return d, nil
}

// tag records repository:tag -> d (and the repository).
func (f *fakeRegistry) tag(repository, tag string, d digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repos[repository] == nil {
		f.repos[repository] = map[string]digest.Digest{}
	}
	if tag != "" {
		f.repos[repository][tag] = d
	}
}

// pushImage stores a one-layer image with the given manifest annotations
// under repository:tag.
func (f *fakeRegistry) pushImage(t testing.TB, repository, tag string, annotations map[string]string) digest.Digest {
	t.Helper()
	cfg := []byte(`{"architecture":"arm64","os":"linux","variant":"v8","created":"2026-01-02T03:04:05Z","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := make([]byte, 100)
	_, _ = rand.Read(layer)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f.PutBlob(repository, cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f.PutBlob(repository, layer), "size": len(layer)}},
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := f.PutManifest(repository, tag, b)
	f.tag(repository, tag, d)
	return d
}

// fakeSignatures is an in-memory Signatures.
type fakeSignatures struct {
	mu sync.Mutex
	m  map[signaturestore.ImageKey][]signaturestore.Signature
}

func (f *fakeSignatures) List(_ context.Context, key signaturestore.ImageKey) ([]signaturestore.Signature, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.m[key]), nil
}

func (f *fakeSignatures) add(repository string, d digest.Digest, sig signaturestore.Signature) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[signaturestore.ImageKey][]signaturestore.Signature{}
	}
	key := signaturestore.ImageKey{Repository: repository, Digest: d}
	f.m[key] = append(f.m[key], sig)
}

// fakeUsers grants pull on repositories with one of a user's prefixes.
type fakeUsers struct {
	passwords map[string]string
	prefixes  map[string][]string
}

func (u *fakeUsers) Login(user, secret string) bool {
	p, ok := u.passwords[user]
	return ok && p == secret
}

func (u *fakeUsers) CanPull(user, repository string) bool {
	for _, p := range u.prefixes[user] {
		if strings.HasPrefix(repository, p) {
			return true
		}
	}
	return false
}

// gpgSign signs a simple-signing payload for d claiming identity with the
// Ed25519 fixture key, and returns the signature and the key id.
func gpgSign(t testing.TB, d digest.Digest, identity, creator string) ([]byte, string) {
	t.Helper()
	sec, err := os.ReadFile("../gpg/testdata/ed25519.sec.gpg")
	if err != nil {
		t.Fatal(err)
	}
	m, err := gpg.NewMechanism(sec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(map[string]any{
		"critical": map[string]any{
			"type":     "atomic container signature",
			"image":    map[string]string{"docker-manifest-digest": d.String()},
			"identity": map[string]string{"docker-reference": identity},
		},
		"optional": map[string]any{"creator": creator, "timestamp": 1767225600},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := m.KeyIdentities()
	sig, err := m.Sign(p, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, keyID, err := m.UntrustedSignatureContents(sig)
	if err != nil {
		t.Fatal(err)
	}
	return sig, keyID
}

func sigName(d digest.Digest) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return d.String() + "@" + hex.EncodeToString(b[:])
}

// verifiedStatus is what `verify-image-signature --save` stores on success.
func verifiedStatus(user, keyID, identity string, at time.Time) *signaturestore.Status {
	return &signaturestore.Status{
		Conditions: []signaturestore.Condition{
			{Type: signaturestore.ConditionTrusted, Status: signaturestore.ConditionTrue, LastProbeTime: at, LastTransitionTime: at,
				Reason: "manually verified", Message: fmt.Sprintf("verified by user %q", user)},
			{Type: signaturestore.ConditionForImage, Status: signaturestore.ConditionTrue, LastProbeTime: at, LastTransitionTime: at},
		},
		ImageIdentity: identity,
		IssuedBy:      &signaturestore.Issuer{CommonName: keyID},
		IssuedTo:      &signaturestore.Subject{PublicKeyID: "64EDC2C91E859F1EDAD96A2FE0D9E561F5BABBE8"},
		SignedClaims:  map[string]string{"creator": "test"},
	}
}

func failedStatus(user, reason string, at time.Time) *signaturestore.Status {
	return &signaturestore.Status{Conditions: []signaturestore.Condition{
		{Type: signaturestore.ConditionTrusted, Status: signaturestore.ConditionFalse, LastProbeTime: at, LastTransitionTime: at,
			Reason: reason, Message: fmt.Sprintf("verification by user %q failed", user)},
	}}
}

// env is a console over the fakes behind an httptest server.
type env struct {
	t    *testing.T
	reg  *fakeRegistry
	sigs *fakeSignatures
	c    *Console
	srv  *httptest.Server
	now  time.Time
	mu   sync.Mutex
}

// newEnv starts a console; users nil means no access control.
func newEnv(t *testing.T, users Users, tlsServer bool) *env {
	t.Helper()
	e := &env{t: t, reg: newFakeRegistry(), sigs: &fakeSignatures{}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	opts := Options{Registry: e.reg, Signatures: e.sigs, Now: e.clock, MaxSessions: 8}
	if users != nil {
		opts.Users = users
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	if tlsServer {
		e.srv = httptest.NewTLSServer(c)
	} else {
		e.srv = httptest.NewServer(c)
	}
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every 303.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

type page struct {
	status int
	header http.Header
	body   string
}

func (e *env) get(c *http.Client, path string) page {
	e.t.Helper()
	return e.do(c, http.MethodGet, path, nil, nil)
}

func (e *env) do(c *http.Client, method, path string, form url.Values, hdr map[string]string) page {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return page{resp.StatusCode, resp.Header, string(b)}
}

// cookieOf returns the named Set-Cookie of a response.
func cookieOf(p page, name string) *http.Cookie {
	for _, line := range p.header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == name {
			return ck
		}
	}
	return nil
}

// formToken reads the hidden csrf field of a page.
func formToken(t testing.TB, body string) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no csrf field in:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// login logs c in as user and fails the test unless it works.
func (e *env) login(c *http.Client, user, password string) {
	e.t.Helper()
	p := e.get(c, "/ui/login")
	if p.status != http.StatusOK {
		e.t.Fatalf("login form: %d", p.status)
	}
	p = e.do(c, http.MethodPost, "/ui/login", url.Values{
		"csrf": {formToken(e.t, p.body)}, "username": {user}, "password": {password}, "next": {"/ui/"},
	}, nil)
	if p.status != http.StatusSeeOther || cookieOf(p, sessionCookie) == nil {
		e.t.Fatalf("login as %s: %d %v\n%s", user, p.status, p.header, p.body)
	}
}

func newECDSA() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
