package registry

import (
	"context"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/internal/gencache"
	"github.com/signet-registry/signet/signaturestore"
)

// The read caches. Manifests are immutable by digest and signatures change
// only through the store, so each cache has exactly one way to go stale,
// and that way invalidates it:
//
//   - lists (extensions.List by image): every store write, through
//     notifyingStore, after the write returns;
//   - existence (manifest present in a repository) and manifests (the
//     bytes and headers of GET by digest): a manifest DELETE through
//     withManifestDeletes, before the registry deletes and again after.
//
// Only positive facts are cached: a manifest that is absent is looked up
// every time, so a push is visible at once. Deleting a manifest by
// rewriting the storage directory behind Signet's back (an offline
// garbage collection) needs a restart, as it does for distribution.

// Cache bounds. A manifest is at most 4 MiB (distribution's limit).
const (
	listCacheEntries     = 65536
	existCacheEntries    = 262144
	manifestCacheEntries = 65536
	manifestCacheBytes   = 64 << 20
	// The lookaside cache holds decoded signatures for /sigstore/ GETs.
	lookasideCacheEntries = 16384
	lookasideCacheBytes   = 16 << 20
	maxCachedManifest     = 4 << 20
)

// notifyingStore is the store as every writer in the server sees it: each
// change to an image invalidates that image's cached list once the write
// has returned, committed or not (a failed write may still have
// committed, and an extra invalidation is only a miss).
type notifyingStore struct {
	Store
	changed func(signaturestore.ImageKey)
}

// VisitList keeps the store's fast read path (signaturestore.ListVisitor)
// in sight through the wrapper; it writes nothing, so it notifies nothing.
func (n *notifyingStore) VisitList(ctx context.Context, key signaturestore.ImageKey, size func(int, int64), each func(signaturestore.SignatureView) error) error {
	return signaturestore.VisitList(ctx, n.Store, key, size, each)
}

func (n *notifyingStore) Put(ctx context.Context, key signaturestore.ImageKey, sig signaturestore.Signature) error {
	defer n.changed(key)
	return n.Store.Put(ctx, key, sig)
}

func (n *notifyingStore) SetStatus(ctx context.Context, key signaturestore.ImageKey, name string, status *signaturestore.Status) error {
	defer n.changed(key)
	return n.Store.SetStatus(ctx, key, name, status)
}

func (n *notifyingStore) Delete(ctx context.Context, key signaturestore.ImageKey, name string) error {
	defer n.changed(key)
	return n.Store.Delete(ctx, key, name)
}

func (n *notifyingStore) DeleteAll(ctx context.Context, key signaturestore.ImageKey) (int, error) {
	defer n.changed(key)
	return n.Store.DeleteAll(ctx, key)
}

func (n *notifyingStore) EndImageDelete(ctx context.Context, key signaturestore.ImageKey, deleted bool) error {
	defer n.changed(key)
	return n.Store.EndImageDelete(ctx, key, deleted)
}

// existenceCache remembers manifests known to exist in a repository.
type existenceCache struct {
	next  extensions.ManifestChecker
	cache *gencache.Cache[signaturestore.ImageKey, struct{}]
}

// keySize is what a cache key costs, for the caches' byte bounds.
func keySize(key signaturestore.ImageKey) int64 {
	return int64(len(key.Repository)+len(key.Digest)) + 32
}

func (e *existenceCache) ManifestExists(ctx context.Context, repository string, dgst digest.Digest) (bool, error) {
	key := signaturestore.ImageKey{Repository: repository, Digest: dgst}
	if _, ok := e.cache.Get(key); ok {
		return true, nil
	}
	gen := e.cache.Gen()
	ok, err := e.next.ManifestExists(ctx, repository, dgst)
	if ok && err == nil {
		e.cache.Put(key, struct{}{}, keySize(key)+48, gen)
	}
	return ok, err
}

// cachedManifest is a GET-by-digest response as the registry sent it.
type cachedManifest struct {
	header http.Header // as sent with the 200, Date excluded
	body   []byte
	// mediaType decides the Accept checks distribution makes.
	mediaType string
}

// manifestGetTarget extracts <name> and <digest> from GET or HEAD
// /v2/<name>/manifests/<digest>; tag references are not cached (a tag
// moves).
func manifestGetTarget(r *http.Request) (repository string, dgst digest.Digest, ok bool) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !strings.HasPrefix(r.URL.Path, "/v2/") {
		return "", "", false
	}
	rest := r.URL.Path[len("/v2/"):]
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	d, err := extensions.ParseDigest(rest[i+len("/manifests/"):])
	if err != nil {
		return "", "", false
	}
	return rest[:i], d, true
}

// withManifestCache serves GET and HEAD of a manifest by digest from
// memory once the registry has served it, with the registry's own
// headers and its Accept and If-None-Match behaviour (distribution
// v3.1.2, handlers/manifests.go GetManifest; manifestcache_test.go
// compares the two answer for answer). It runs after the access check.
func (s *Server) withManifestCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repository, dgst, ok := manifestGetTarget(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		key := signaturestore.ImageKey{Repository: repository, Digest: dgst}
		if m, hit := s.manifestCache.Get(key); hit {
			if !serveCachedManifest(w, r, m, dgst) {
				// The registry answers this client with its own
				// error (an Accept without the manifest's type).
				next.ServeHTTP(w, r)
			}
			return
		}
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		gen := s.manifestCache.Gen()
		tee := &manifestTee{ResponseWriter: w}
		next.ServeHTTP(tee, r)
		if tee.status != http.StatusOK || tee.overflow || digest.FromBytes(tee.body) != dgst {
			return
		}
		h := tee.Header().Clone()
		h.Del("Date")
		if h.Get("Docker-Content-Digest") != dgst.String() {
			return
		}
		m := &cachedManifest{header: h, body: tee.body, mediaType: h.Get("Content-Type")}
		s.manifestCache.Put(key, m, int64(len(m.body))+keySize(key)+512, gen)
	})
}

// Media types distribution serves only to clients that accept them.
const (
	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	ociIndexType    = "application/vnd.oci.image.index.v1+json"
)

// serveCachedManifest answers from m, or reports false having written
// nothing when the registry must answer instead.
func serveCachedManifest(w http.ResponseWriter, r *http.Request, m *cachedManifest, dgst digest.Digest) bool {
	notModified := false
	for _, v := range r.Header["If-None-Match"] {
		if v == dgst.String() || v == `"`+dgst.String()+`"` {
			notModified = true
		}
	}
	if need := m.mediaType; !notModified && (need == ociManifestType || need == ociIndexType) && !accepts(r, need) {
		return false
	}
	hdr := w.Header()
	for k, v := range m.header {
		switch k {
		case "Content-Type", "Content-Length", "Docker-Content-Digest", "Etag":
			// Entity headers go only with the manifest itself.
			if notModified {
				continue
			}
		}
		hdr[k] = v
	}
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	hdr.Set("Content-Length", strconv.Itoa(len(m.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.body)
	}
	return true
}

// accepts parses Accept the way distribution does: comma-separated media
// types in any number of headers, parameters ignored.
func accepts(r *http.Request, mediaType string) bool {
	for _, h := range r.Header["Accept"] {
		for part := range strings.SplitSeq(h, ",") {
			mt, _, err := mime.ParseMediaType(part)
			if err == nil && mt == mediaType {
				return true
			}
		}
	}
	return false
}

// manifestTee passes a response through and keeps a copy of a body up
// to maxCachedManifest.
type manifestTee struct {
	http.ResponseWriter
	status   int
	body     []byte
	overflow bool
}

func (t *manifestTee) WriteHeader(code int) {
	if t.status == 0 {
		t.status = code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *manifestTee) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	if !t.overflow {
		if len(t.body)+len(p) > maxCachedManifest {
			t.overflow, t.body = true, nil
		} else {
			t.body = append(t.body, p...)
		}
	}
	return t.ResponseWriter.Write(p)
}

func (t *manifestTee) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// readCache is what the server does with each of its caches, whatever
// they hold.
type readCache interface {
	Purge()
	RequireLease()
	Extend(until time.Time)
	Stats() (hits, misses uint64, entries int, bytes int64)
}

// namedCaches are the read caches by their /metrics name.
func (s *Server) namedCaches() []struct {
	name  string
	cache readCache
} {
	return []struct {
		name  string
		cache readCache
	}{{"signatures", s.lists}, {"manifest_exists", s.existCache}, {"manifests", s.manifestCache}, {"lookaside", s.lookaside}}
}

// cacheStats reports the caches for /metrics.
func (s *Server) cacheStats() []cacheStat {
	var out []cacheStat
	for _, c := range s.namedCaches() {
		h, m, e, b := c.cache.Stats()
		out = append(out, cacheStat{name: c.name, hits: h, misses: m, entries: e, bytes: b})
	}
	return out
}

// Invalidation from outside the process. With several replicas on one
// store, a change committed by another replica reaches this one only
// through the store's change feed (serve wires the etcd watch to these).

// InvalidateSignatures drops the cached signature list of key.
func (s *Server) InvalidateSignatures(key signaturestore.ImageKey) {
	s.lists.Invalidate(key)
}

// InvalidateImage drops everything cached about a manifest: the server
// calls it before and after deleting one, the change feed when another
// replica does.
func (s *Server) InvalidateImage(key signaturestore.ImageKey) {
	s.existCache.Invalidate(key)
	s.manifestCache.Invalidate(key)
	s.lists.Invalidate(key)
}

// ExtendCaches keeps the caches of a shared store (Options.SharedStore)
// on until t: the change feed calls it while it is known to be current.
func (s *Server) ExtendCaches(t time.Time) {
	for _, c := range s.namedCaches() {
		c.cache.Extend(t)
	}
}

// PurgeCaches drops every cache: the change feed was interrupted, so
// nothing cached can be trusted to be current.
func (s *Server) PurgeCaches() {
	for _, c := range s.namedCaches() {
		c.cache.Purge()
	}
}
