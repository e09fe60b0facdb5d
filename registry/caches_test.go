package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/signaturestore"
)

const (
	dockerManifestType = "application/vnd.docker.distribution.manifest.v2+json"
	dockerListType     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// pushManifest pushes a manifest of mediaType by digest.
func (e *testEnv) pushManifest(repo, mediaType, m string) string {
	e.t.Helper()
	d := sha([]byte(m))
	r := e.do("PUT", "/v2/"+repo+"/manifests/"+d, strings.NewReader(m), map[string]string{"Content-Type": mediaType})
	if r.status != http.StatusCreated {
		e.t.Fatalf("push %s: %d %s", mediaType, r.status, r.body)
	}
	return d
}

// TestManifestCacheMatchesRegistry: for every kind of manifest and every
// request shape, the answer from the cache is the registry's answer:
// status, headers (Date aside) and body.
func TestManifestCacheMatchesRegistry(t *testing.T) {
	e := newTestEnv(t, nil)
	repo := "cache/app"
	oci := e.pushImage(repo, "v1")
	cfg := e.pushBlob(repo, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	layer := e.pushBlob(repo, []byte("layer"))
	docker := e.pushManifest(repo, dockerManifestType, fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":%q,"size":79},`+
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":%q,"size":5}]}`, dockerManifestType, cfg, layer))
	platform := `"platform":{"architecture":"amd64","os":"linux"}`
	index := e.pushManifest(repo, ociIndexType, fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,%s}]}`,
		ociIndexType, ociManifestType, oci, len(e.do("GET", "/v2/"+repo+"/manifests/"+oci, nil, map[string]string{"Accept": ociManifestType}).body), platform))
	list := e.pushManifest(repo, dockerListType, fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,%s}]}`,
		dockerListType, dockerManifestType, docker, len(e.do("GET", "/v2/"+repo+"/manifests/"+docker, nil, map[string]string{"Accept": dockerManifestType}).body), platform))

	all := ociManifestType + ", " + ociIndexType + ", " + dockerManifestType + ", " + dockerListType
	shapes := []struct {
		name   string
		method string
		hdr    http.Header
	}{
		{"get accept all", "GET", http.Header{"Accept": {all}}},
		{"head accept all", "HEAD", http.Header{"Accept": {all}}},
		{"get no accept", "GET", nil},
		{"head no accept", "HEAD", nil},
		{"get accept docker only", "GET", http.Header{"Accept": {dockerManifestType}}},
		{"get accept oci with params", "GET", http.Header{"Accept": {ociManifestType + "; q=0.9, " + ociIndexType + ";q=0.5"}}},
		{"get two accept headers", "GET", http.Header{"Accept": {"application/json", ociManifestType + "," + ociIndexType}}},
		{"get accept garbage", "GET", http.Header{"Accept": {";;;,=,*/*"}}},
		{"if-none-match quoted", "GET", http.Header{"Accept": {all}}},
		{"if-none-match bare", "GET", nil},
		{"if-none-match other", "GET", http.Header{"Accept": {all}, "If-None-Match": {`"sha256:0000"`}}},
		{"head if-none-match", "HEAD", nil},
	}
	for _, m := range []struct{ kind, dgst string }{{"oci", oci}, {"docker", docker}, {"oci-index", index}, {"docker-list", list}} {
		for _, shape := range shapes {
			t.Run(m.kind+"/"+shape.name, func(t *testing.T) {
				hdr := shape.hdr.Clone()
				if hdr == nil {
					hdr = http.Header{}
				}
				switch shape.name {
				case "if-none-match quoted":
					hdr.Set("If-None-Match", `"`+m.dgst+`"`)
				case "if-none-match bare", "head if-none-match":
					hdr.Set("If-None-Match", m.dgst)
				}
				path := "/v2/" + repo + "/manifests/" + m.dgst
				e.srv.manifestCache.Purge()
				fromRegistry := e.doHeader(shape.method, path, hdr)
				// Fill the cache, then ask again.
				if r := e.do("GET", path, nil, map[string]string{"Accept": all}); r.status != http.StatusOK {
					t.Fatalf("fill: %d %s", r.status, r.body)
				}
				if _, ok := e.srv.manifestCache.Get(signaturestore.ImageKey{Repository: repo, Digest: mustDigest(t, m.dgst)}); !ok {
					t.Fatal("a GET by digest did not fill the cache")
				}
				fromCache := e.doHeader(shape.method, path, hdr)
				if fromCache.status != fromRegistry.status || string(fromCache.body) != string(fromRegistry.body) {
					t.Fatalf("cache answered %d %q, registry %d %q", fromCache.status, fromCache.body, fromRegistry.status, fromRegistry.body)
				}
				a, b := fromCache.header.Clone(), fromRegistry.header.Clone()
				a.Del("Date")
				b.Del("Date")
				if !reflect.DeepEqual(a, b) {
					t.Fatalf("headers differ:\ncache:    %v\nregistry: %v", a, b)
				}
			})
		}
	}
}

// doHeader is do with repeated headers.
func (e *testEnv) doHeader(method, path string, hdr http.Header) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
	return response{resp.StatusCode, resp.Header, body}
}

// TestCachesFollowDeletes: after a manifest DELETE nothing cached about
// it is served: not the manifest, not its signatures, not its lookaside
// entries, and a signature PUT is refused.
func TestCachesFollowDeletes(t *testing.T) {
	e := newTestEnv(t, nil)
	repo := "cache/del"
	dgst := e.pushImage(repo, "v1")
	content := make([]byte, 100)
	_, _ = rand.Read(content)
	if r := e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(sigName(dgst), content)), nil); r.status != http.StatusCreated {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	manifest := "/v2/" + repo + "/manifests/" + dgst
	lookaside := "/sigstore/" + repo + "@sha256=" + strings.TrimPrefix(dgst, "sha256:") + "/signature-1"
	accept := map[string]string{"Accept": ociManifestType}
	for range 2 { // the second round is served from the caches
		for _, p := range []string{manifest, sigPath(repo, dgst), lookaside} {
			if r := e.do("GET", p, nil, accept); r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, r.status, r.body)
			}
		}
	}
	if hits, _, _, _ := e.srv.lists.Stats(); hits == 0 {
		t.Fatal("the signature list was never served from the cache")
	}
	if r := e.do("DELETE", manifest, nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	for _, p := range []string{manifest, sigPath(repo, dgst), lookaside} {
		if r := e.do("GET", p, nil, accept); r.status != http.StatusNotFound {
			t.Errorf("GET %s after delete: %d %s", p, r.status, r.body)
		}
		if r := e.do("HEAD", p, nil, accept); r.status != http.StatusNotFound && !(p == sigPath(repo, dgst) && r.status == http.StatusMethodNotAllowed) {
			t.Errorf("HEAD %s after delete: %d", p, r.status)
		}
	}
	if r := e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(sigName(dgst), content)), nil); r.status != http.StatusNotFound {
		t.Errorf("signature PUT after delete: %d %s", r.status, r.body)
	}
}

// TestListCacheFollowsWrites: every kind of write is visible to the next
// read of the extension API, the lookaside tree and the records API.
func TestListCacheFollowsWrites(t *testing.T) {
	e := newTestEnv(t, nil)
	repo := "cache/writes"
	dgst := e.pushImage(repo, "v1")
	names := func() []string {
		var n []string
		for _, s := range e.list(repo, dgst).Signatures {
			n = append(n, s.Name)
		}
		return n
	}
	var want []string
	for i := range 3 {
		name := sigName(dgst)
		content := []byte(fmt.Sprintf("content %d", i))
		if r := e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(name, content)), nil); r.status != http.StatusCreated {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		want = append(want, name)
		for range 2 {
			if got := names(); !slices.Equal(got, want) {
				t.Fatalf("after PUT %d: %v, want %v", i, got, want)
			}
		}
		lookaside := fmt.Sprintf("/sigstore/%s@sha256=%s/signature-%d", repo, strings.TrimPrefix(dgst, "sha256:"), i+1)
		if r := e.do("GET", lookaside, nil, nil); r.status != http.StatusOK || string(r.body) != string(content) {
			t.Fatalf("lookaside %d after PUT: %d %q", i+1, r.status, r.body)
		}
	}
	// A status save shows in the records API at once.
	if recs := e.records(repo, dgst); recs.Signatures[0].Status != nil {
		t.Fatalf("fresh signature has a status: %+v", recs.Signatures[0].Status)
	}
	status := `{"trusted":false,"reason":"signature by unknown key 0123456789ABCDEF"}`
	if r := e.do("PUT", recordsPath(repo, dgst)+"/"+want[0]+"/status", strings.NewReader(status), nil); r.status != http.StatusOK {
		t.Fatalf("status PUT: %d %s", r.status, r.body)
	}
	if st := e.records(repo, dgst).Signatures[0].Status; st == nil || len(st.Conditions) == 0 || st.Trusted() {
		t.Fatalf("records after the status save: %+v", st)
	}
	// Deleting one signature, then all.
	if r := e.do("DELETE", recordsPath(repo, dgst)+"/"+want[1], nil, nil); r.status/100 != 2 {
		t.Fatalf("delete one: %d %s", r.status, r.body)
	}
	want = slices.Delete(want, 1, 2)
	if got := names(); !slices.Equal(got, want) {
		t.Fatalf("after delete: %v, want %v", got, want)
	}
	if r := e.do("DELETE", recordsPath(repo, dgst), nil, nil); r.status/100 != 2 {
		t.Fatalf("delete all: %d %s", r.status, r.body)
	}
	if got := names(); len(got) != 0 {
		t.Fatalf("after delete all: %v", got)
	}
}

// TestNotifyingStoreCoversEveryWrite: a store method that is not listed
// here as a read must be wrapped by notifyingStore, or a new write method
// would silently leave caches stale.
func TestNotifyingStoreCoversEveryWrite(t *testing.T) {
	reads := map[string]bool{
		"List": true, "Count": true, "Close": true, "PendingImageDeletes": true,
		"Referrers": true, "PendingReferrers": true, "Snapshot": true,
		// The referrers index is not cached; its writes change no list.
		"BeginReferrer": true, "EndReferrer": true, "RemoveReferrer": true,
		// Journaling the intent changes no signature; EndImageDelete does.
		"BeginImageDelete": true,
	}
	declared := map[string]bool{}
	f, err := parser.ParseFile(token.NewFileSet(), "caches.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv == nil {
			continue
		}
		if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := star.X.(*ast.Ident); ok && id.Name == "notifyingStore" {
				declared[fn.Name.Name] = true
			}
		}
	}
	storeType := reflect.TypeFor[Store]()
	for i := range storeType.NumMethod() {
		name := storeType.Method(i).Name
		if !reads[name] && !declared[name] {
			t.Errorf("%s is not a known read and notifyingStore does not wrap it: caches would go stale", name)
		}
	}
}

func mustDigest(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCachesKeepAccessControl: what one caller's request put in a cache
// is never served to a caller the access check refuses.
func TestCachesKeepAccessControl(t *testing.T) {
	e := newTestEnvAuth(t, nil, &headerAuth{})
	e.hdr = map[string]string{"X-Test-User": "alice"}
	repo := "cache/auth"
	dgst := e.pushImage(repo, "v1")
	if r := e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(sigName(dgst), []byte("sig"))), nil); r.status != http.StatusCreated {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	paths := []string{"/v2/" + repo + "/manifests/" + dgst, sigPath(repo, dgst),
		"/sigstore/" + repo + "@sha256=" + strings.TrimPrefix(dgst, "sha256:") + "/signature-1"}
	accept := map[string]string{"Accept": ociManifestType}
	for range 2 {
		for _, p := range paths {
			if r := e.do("GET", p, nil, accept); r.status != http.StatusOK {
				t.Fatalf("alice GET %s: %d", p, r.status)
			}
		}
	}
	if _, ok := e.srv.manifestCache.Get(signaturestore.ImageKey{Repository: repo, Digest: mustDigest(t, dgst)}); !ok {
		t.Fatal("the manifest was not cached")
	}
	e.hdr = nil
	for _, p := range paths {
		r := e.do("GET", p, nil, accept)
		if r.status != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s after caching: %d %s", p, r.status, r.body)
		}
	}
}

// TestSignatureGetServesStoredList: the GET body, encoded from the
// store's records without building Signatures (signaturestore.VisitList),
// is exactly json.Marshal of what List returns, for names and types of
// every form, both when it is read from the store and from the cache.
func TestSignatureGetServesStoredList(t *testing.T) {
	e := newTestEnv(t, nil)
	repo := "ns/visit"
	d := e.pushImage(repo, "v1")
	key := signaturestore.ImageKey{Repository: repo, Digest: digest.Digest(d)}
	for _, sig := range []signaturestore.Signature{
		{Name: d + "@0123456789abcdef0123456789abcdef", Type: signaturestore.TypeAtomic, Content: []byte("short form")},
		{Name: d + "@0123456789ABCDEF0123456789ABCDEF", Type: signaturestore.TypeAtomic, Content: []byte{0, 1, 2, 0xff}},
		{Name: `other <"name">`, Type: "x-other\u2028", Content: bytes.Repeat([]byte("z"), 300)},
	} {
		if err := e.store.Put(t.Context(), key, sig); err != nil {
			t.Fatal(err)
		}
	}
	sigs, err := e.store.List(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	list := extensions.SignatureList{Signatures: make([]extensions.Signature, len(sigs))}
	for i, s := range sigs {
		list.Signatures[i] = extensions.Signature{SchemaVersion: extensions.SchemaVersion, Name: s.Name, Type: s.Type, Content: s.Content}
	}
	want, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"store", "cache"} {
		r := e.do("GET", sigPath(repo, d), nil, nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
			t.Fatalf("GET from the %s: %d\n got %s\nwant %s", from, r.status, r.body, want)
		}
		if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(want)) {
			t.Fatalf("GET from the %s: Content-Length %s, body %d bytes", from, cl, len(want))
		}
	}
}

// putHook runs before each Put reaches the store.
type putHook struct {
	Store
	before func(signaturestore.ImageKey)
}

func (p *putHook) Put(ctx context.Context, key signaturestore.ImageKey, sig signaturestore.Signature) error {
	p.before(key)
	return p.Store.Put(ctx, key, sig)
}

// TestSignaturePutTakenBackWhenManifestDeletedMeanwhile: with a store
// shared by replicas, another replica can delete the manifest (and its
// signatures) between a PUT's existence check and its commit; the PUT
// then takes its signature back and answers 404 instead of leaving it
// behind. The hook deletes the manifest from the shared storage just
// before the commit, as that replica would. In one process the lock
// orders the two, so the same hook there shows the first check passed.
func TestSignaturePutTakenBackWhenManifestDeletedMeanwhile(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			var root string
			e := newTestEnvOptions(t, nil, nil, func(o *Options) {
				o.SharedStore = shared
				root = RegistryRoot(o.Config.Storage.DataDir)
				o.Store = &putHook{Store: o.Store, before: func(k signaturestore.ImageKey) {
					link := filepath.Join(root, "docker/registry/v2/repositories", k.Repository, "_manifests/revisions", k.Digest.Algorithm().String(), k.Digest.Encoded())
					if err := os.RemoveAll(link); err != nil {
						t.Error(err)
					}
				}}
			})
			dgst := e.pushImage("ns/race", "v1")
			r := e.do("PUT", sigPath("ns/race", dgst), strings.NewReader(sigBody(sigName(dgst), []byte("sig"))), nil)
			key := signaturestore.ImageKey{Repository: "ns/race", Digest: digest.Digest(dgst)}
			stored, err := e.store.List(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if shared {
				if r.status != http.StatusNotFound || errorCode(t, r.body) != "MANIFEST_UNKNOWN" || len(stored) != 0 {
					t.Fatalf("PUT = %d %s, %d signatures stored; want 404 MANIFEST_UNKNOWN and none", r.status, r.body, len(stored))
				}
				return
			}
			if r.status != http.StatusCreated || len(stored) != 1 {
				t.Fatalf("PUT = %d %s, %d signatures stored; want 201 and one", r.status, r.body, len(stored))
			}
		})
	}
}

// TestRecoverDeletes: an interrupted manifest delete is settled at start,
// the signatures going with a manifest that is gone. With replicas, an
// intent whose manifest still exists may be another replica's delete in
// progress and stays pending; in proxy mode nothing is settled, since the
// embedded registry, empty there, cannot tell.
func TestRecoverDeletes(t *testing.T) {
	up := newUpstreamRegistry(t, nil)
	for _, mode := range []string{"single", "shared", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			var e *testEnv
			if mode == "proxy" {
				e = proxyEnv(t, up.URL, nil)
			} else {
				e = newTestEnv(t, nil)
			}
			ctx := t.Context()
			gone, kept := "ns/gone", "ns/kept"
			keys := map[string]signaturestore.ImageKey{}
			for _, repo := range []string{gone, kept} {
				d := digest.FromString(repo)
				if mode != "proxy" {
					d = digest.Digest(e.pushImage(repo, "v1"))
				}
				k := signaturestore.ImageKey{Repository: repo, Digest: d}
				keys[repo] = k
				if err := e.store.Put(ctx, k, signaturestore.Signature{Name: string(d) + "@" + strings.Repeat("0", 32), Type: "atomic", Content: []byte("sig")}); err != nil {
					t.Fatal(err)
				}
				if err := e.store.BeginImageDelete(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			if mode != "proxy" {
				// The delete of ns/gone got as far as removing the manifest.
				k := keys[gone]
				link := filepath.Join(RegistryRoot(e.cfg.Storage.DataDir), "docker/registry/v2/repositories", k.Repository, "_manifests/revisions", k.Digest.Algorithm().String(), k.Digest.Encoded())
				if err := os.RemoveAll(link); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.srv.recoverDeletes(ctx, mode == "shared"); err != nil {
				t.Fatal(err)
			}
			count := func(repo string) int {
				sigs, err := e.store.List(ctx, keys[repo])
				if err != nil {
					t.Fatal(err)
				}
				return len(sigs)
			}
			pending, err := e.store.PendingImageDeletes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var want []signaturestore.ImageKey
			wantGone, wantKept := 0, 1
			switch mode {
			case "shared":
				want = []signaturestore.ImageKey{keys[kept]}
			case "proxy":
				want = []signaturestore.ImageKey{keys[gone], keys[kept]}
				wantGone = 1
			}
			slices.SortFunc(pending, func(a, b signaturestore.ImageKey) int { return strings.Compare(a.Repository, b.Repository) })
			if !slices.Equal(pending, want) || count(gone) != wantGone || count(kept) != wantKept {
				t.Fatalf("pending %v (want %v); signatures: %s %d (want %d), %s %d (want %d)",
					pending, want, gone, count(gone), wantGone, kept, count(kept), wantKept)
			}
		})
	}
}
