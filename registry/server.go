package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/internal/gencache"
	"github.com/signet-registry/signet/internal/keylock"
	"github.com/signet-registry/signet/internal/repoglob"
	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// Authorizer decides whether a request may perform access on repository.
// Authorize returns the authenticated user's name to allow, or an
// errcode.Error (UNAUTHORIZED or DENIED). It runs before the handler, so
// before anything is looked up. Authenticate reports whom valid
// credentials name, and false for none or wrong ones.
type Authorizer interface {
	Authorize(r *http.Request, repository string, access Access) (user string, err error)
	Authenticate(r *http.Request) (user string, ok bool)
}

// Challenge is the WWW-Authenticate value sent with every 401.
const Challenge = `Basic realm="Signet"`

// Store is what the front needs of the signature store: the store itself
// and its manifest-delete journal.
type Store interface {
	signaturestore.Store
	signaturestore.DeleteJournal
	signaturestore.ReferrersIndex
	Snapshotter
}

// Options configure a Server.
type Options struct {
	Config config.Config
	Store  Store
	// Metrics must be registered on Gatherer.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	// Authorizer may be nil: without access control every request is
	// allowed (the embedded defaults, bound to loopback).
	Authorizer Authorizer
	Logger     *slog.Logger
	// AccessLogger receives the access log when log.accessLog is on;
	// nil means Logger. serve gives it a batching writer (logbuf).
	AccessLogger *slog.Logger
	// SharedStore says other processes write to Store (several
	// replicas on etcd): the read caches then serve only while
	// ExtendCaches keeps them on, which the store's change feed does.
	SharedStore bool
	// AccessLogText, when set, receives the access log in slog's text
	// format, written directly (accesslog.go) instead of AccessLogger.
	AccessLogText io.Writer
	// LogText, when set, is Logger's own writer, and says Logger writes
	// slog text and lets INFO through: audit records are then written
	// to it directly, in the bytes Logger would write (AuditLog.Text).
	LogText io.Writer
	// ReferrersPageSize bounds one referrers response; 0 means 500.
	ReferrersPageSize int
	// ConsoleUsers lets users log in to the web console (/ui/); nil
	// with an Authorizer keeps the console closed (consoledata.go).
	ConsoleUsers ConsoleUsers
}

// Server is the whole HTTP application.
type Server struct {
	log       *slog.Logger
	audit     extensions.AuditLog
	accessLog bool
	// accessLogger writes the access log (Options.AccessLogger), or
	// accessText does (Options.AccessLogText).
	accessLogger *slog.Logger
	accessText   *textAccessLog
	// supportsSignatures is the X-Registry-Supports-Signatures value.
	supportsSignatures []string
	metrics            *Metrics
	journal            signaturestore.DeleteJournal
	referrers          signaturestore.ReferrersIndex
	snapshots          Snapshotter
	// registryRoot is DataDir/registry, synced after manifest deletes.
	registryRoot string
	// referrersPage bounds one referrers response.
	referrersPage int
	manifests     *manifestIndex
	locks         *keylock.Locks
	auth          Authorizer
	app           *handlers.App
	v2routes      *mux.Router
	maxUpload     int64
	sigs          *extensions.Handler
	ui            *consoleUI
	// The read caches (caches.go).
	lists         *gencache.Cache[signaturestore.ImageKey, *extensions.List]
	existCache    *gencache.Cache[signaturestore.ImageKey, struct{}]
	manifestCache *gencache.Cache[signaturestore.ImageKey, *cachedManifest]
	lookaside     *gencache.Cache[signaturestore.ImageKey, *extensions.LookasideList]
	ready         atomic.Bool
	handler       http.Handler
	// upstream is proxy mode (upstream.go); nil serves the embedded
	// registry.
	upstream *upstream
	// blobFiles serves blob GETs from the filesystem driver's files
	// (blobfiles.go); nil with S3 and in proxy mode.
	blobFiles *blobFiles
}

// RegistryRoot is where blobs and manifests live under the data directory.
func RegistryRoot(dataDir string) string { return filepath.Join(dataDir, "registry") }

// New builds the server: the embedded registry over DataDir/registry, the
// extension handlers over opts.Store, and the middleware chain. It settles
// manifest deletes interrupted by an earlier crash before returning.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Store == nil || opts.Metrics == nil || opts.Gatherer == nil {
		return nil, errors.New("registry: store, metrics and gatherer are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AccessLogger == nil {
		opts.AccessLogger = opts.Logger
	}
	var accessText *textAccessLog
	if opts.AccessLogText != nil {
		accessText = newTextAccessLog(opts.AccessLogText)
	}
	cfg := opts.Config
	root := RegistryRoot(cfg.Storage.DataDir)
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("create registry storage: %w", err)
	}
	secret, err := loadSecret(cfg.Storage.DataDir)
	if err != nil {
		return nil, err
	}
	blobs := blobStorageFor(cfg.Storage, root)
	app, err := newApp(ctx, blobs, secret)
	if err != nil {
		return nil, err
	}
	manifests, err := newManifestIndex(ctx, blobs)
	if err != nil {
		return nil, err
	}
	up, err := newUpstream(cfg, opts.Store, opts.Logger)
	if err != nil {
		return nil, err
	}
	lists := gencache.New[signaturestore.ImageKey, *extensions.List](listCacheEntries, int64(cfg.Signatures.ListCacheMiB)<<20)
	// Every writer in the server goes through store, so every change
	// invalidates the cached list of its image.
	store := &notifyingStore{Store: opts.Store, changed: func(k signaturestore.ImageKey) { lists.Invalidate(k) }}
	s := &Server{
		log:                opts.Logger,
		audit:              extensions.NewAuditLog(opts.Logger.With("log", "audit"), opts.LogText),
		accessLog:          cfg.Log.AccessLog,
		accessLogger:       opts.AccessLogger,
		accessText:         accessText,
		supportsSignatures: []string{"1"},
		metrics:            opts.Metrics,
		journal:            store,
		referrers:          store,
		referrersPage:      opts.ReferrersPageSize,
		snapshots:          store,
		lists:              lists,
		existCache:         gencache.New[signaturestore.ImageKey, struct{}](existCacheEntries, existCacheEntries*128),
		manifestCache:      gencache.New[signaturestore.ImageKey, *cachedManifest](manifestCacheEntries, manifestCacheBytes),
		lookaside:          gencache.New[signaturestore.ImageKey, *extensions.LookasideList](lookasideCacheEntries, lookasideCacheBytes),
		registryRoot:       root,
		manifests:          manifests,
		locks:              keylock.New(256),
		auth:               up.authorizer(opts.Authorizer),
		upstream:           up,
		blobFiles:          newBlobFiles(blobs, up),
		app:                app,
		v2routes:           v2.RouterWithPrefix(""),
		maxUpload:          cfg.Server.MaxUploadBytes,
	}
	external, err := repoglob.CompileSet(cfg.Signatures.ExternalRepositories)
	if err != nil {
		return nil, fmt.Errorf("signatures.externalRepositories: %w", err)
	}
	s.sigs, err = extensions.NewHandler(extensions.Options{
		Store:        store,
		Manifests:    up.checker(&existenceCache{next: manifests, cache: s.existCache}),
		Recheck:      recheckFor(opts.SharedStore, up, manifests),
		Lists:        lists,
		Lookaside:    s.lookaside,
		Locks:        s.locks,
		MaxBodyBytes: cfg.Signatures.MaxBodyBytes,
		Logger:       opts.Logger,
		Audit:        s.audit,
		External:     external,
	})
	if err != nil {
		return nil, err
	}
	if s.referrersPage <= 0 {
		s.referrersPage = defaultReferrersPage
	}
	if s.ui, err = newConsoleUI(ctx, s, opts); err != nil {
		return nil, err
	}
	stats := s.cacheStats
	s.metrics.caches.Store(&stats)
	if opts.SharedStore {
		for _, c := range s.namedCaches() {
			c.cache.RequireLease()
		}
	}
	if err := s.recoverDeletes(ctx, opts.SharedStore); err != nil {
		return nil, err
	}
	if err := s.recoverReferrers(ctx); err != nil {
		return nil, fmt.Errorf("recover referrers index: %w", err)
	}
	s.handler = s.instrument(s.limitInFlight(cfg.Server.MaxInFlight, up.withCredentials(s.router(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})))))
	up.start()
	s.ready.Store(true)
	return s, nil
}

// recheckFor is extensions.Options.Recheck: the uncached manifest index
// when other replicas share the store (and so the blob storage) and may
// delete a manifest while this one stores a signature for it. Proxy mode
// needs none: a manifest deleted upstream hides its signatures rather
// than removing them.
func recheckFor(shared bool, up *upstream, manifests extensions.ManifestChecker) extensions.ManifestChecker {
	if !shared || up != nil {
		return nil
	}
	return manifests
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetReady flips /readyz; serve clears it when shutdown begins so load
// balancers stop sending new work while in-flight requests drain.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Close stops the embedded registry's background work.
func (s *Server) Close() error {
	s.upstream.close()
	if err := s.app.Shutdown(); err != nil {
		return fmt.Errorf("shut down embedded registry: %w", err)
	}
	return nil
}

// setRouteName names the matched route for the access log and metrics,
// on the recorder instrument put around the response.
func setRouteName(w http.ResponseWriter, name string) {
	for {
		switch x := w.(type) {
		case *recorder:
			x.route = name
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// routeFunc serves a matched route with its path variables.
type routeFunc func(http.ResponseWriter, *http.Request, routeVars)

// noVars adapts a handler that takes no path variables.
func noVars(h http.HandlerFunc) routeFunc {
	return func(w http.ResponseWriter, r *http.Request, _ routeVars) { h(w, r) }
}

// router builds the route table into a mux router. /v2/ goes to the
// embedded registry behind the manifest-delete hook.
func (s *Server) router(metrics http.Handler) http.Handler {
	handlers := map[string]routeFunc{
		RouteSignaturesGet: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.GetSignatures(w, r, v.name, v.digest)
		},
		RouteSignaturesPut: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.PutSignature(w, r, v.name, v.digest)
		},
		RouteRecordsGet: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.GetRecords(w, r, v.name, v.digest)
		},
		RouteSignaturesDel: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.DeleteAll(w, r, v.name, v.digest)
		},
		RouteSignatureDel: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.DeleteSignature(w, r, v.name, v.digest, v.signature)
		},
		RouteStatusPut: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.PutStatus(w, r, v.name, v.digest, v.signature)
		},
		RouteStatusDelete: func(w http.ResponseWriter, r *http.Request, v routeVars) {
			s.sigs.DeleteStatus(w, r, v.name, v.digest, v.signature)
		},
		RouteDigestLookup: s.digestLookup,
		RouteSigstoreGet:  s.sigstore,
		RouteSigstoreHead: s.sigstore,
		RouteReferrers:    s.serveReferrers,
		RouteBackup:       noVars(s.serveBackup),
		RouteHealthz: noVars(func(w http.ResponseWriter, r *http.Request) {
			writeText(w, http.StatusOK, "ok\n")
		}),
		RouteReadyz:  noVars(s.readyz),
		RouteMetrics: noVars(metrics.ServeHTTP),
	}
	if s.upstream != nil {
		// Proxy mode: the upstream serves the referrers API too.
		handlers[RouteReferrers] = noVars(s.upstream.proxy.ServeHTTP)
	}
	guarded := make(map[string]routeFunc)
	viaMux := map[string]http.Handler{RouteUI: s.ui}
	for _, rt := range routeTable() {
		h := s.guard(rt, handlers[rt.name])
		guarded[rt.name] = h
		viaMux[rt.name] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, _ := varsOf(mux.Vars(r))
			h(w, r, v)
		})
	}
	v2 := s.guardV2(s.withBlobFiles(s.ui.observe(s.withReferrers(s.withManifestDeletes(s.withManifestCache(s.app))))))
	if s.upstream != nil {
		v2 = s.guardV2(s.upstreamV2())
	}
	viaMux[RouteV2] = v2
	m := routeMux(viaMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r.URL.Path) {
			errcode.Write(w, errcode.NotFound.WithMessage("path %q is not canonical", truncatePath(r.URL.Path)))
			return
		}
		if name, vars, ok := fastRoute(r); ok {
			if name == RouteV2 {
				v2.ServeHTTP(w, r)
			} else {
				guarded[name](w, r, vars)
			}
			return
		}
		m.ServeHTTP(w, r)
	})
}

func truncatePath(p string) string {
	if len(p) > 128 {
		return p[:128] + "..."
	}
	return p
}

// routeMux routes the route table, the console and /v2 to handlers (by
// route name). fastRoute must agree with it.
func routeMux(handlers map[string]http.Handler) *mux.Router {
	m := mux.NewRouter().SkipClean(true)
	for _, rt := range routeTable() {
		m.Handle(rt.path, handlers[rt.name]).Methods(rt.method).Name(rt.name)
	}
	m.PathPrefix("/ui").Handler(handlers[RouteUI]).Name(RouteUI)
	m.PathPrefix("/v2").Handler(handlers[RouteV2]).Name(RouteV2)
	m.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errcode.Write(w, errcode.NotFound.WithDetail(nil))
	})
	m.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errcode.Write(w, errcode.MethodNotAllowed.WithDetail(nil))
	})
	return m
}

// guard names the route and decides access before the handler runs.
func (s *Server) guard(rt route, h routeFunc) routeFunc {
	return func(w http.ResponseWriter, r *http.Request, v routeVars) {
		setRouteName(w, rt.name)
		if rt.access != AccessNone {
			var ok bool
			if r, ok = s.authorize(w, r, v.name, rt.access); !ok {
				return
			}
		}
		h(w, r, v)
	}
}

// digestLookup serves GET /signet/v1/digests/<digest>: the repositories
// holding that manifest, so a bare digest can be resolved when exactly one
// repository has it.
func (s *Server) digestLookup(w http.ResponseWriter, r *http.Request, v routeVars) {
	dgst, err := extensions.ParseDigest(v.digest)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	if s.upstream != nil {
		writeAPIError(w, errNoDigestLookup)
		return
	}
	repos, err := s.manifests.RepositoriesWithManifest(r.Context(), dgst)
	if err != nil {
		s.log.ErrorContext(r.Context(), "digest lookup", "digest", dgst.String(), "err", err)
		writeAPIError(w, err)
		return
	}
	if repos == nil {
		repos = []string{}
	}
	body, err := json.Marshal(DigestLookup{Digest: dgst.String(), Repositories: repos})
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

// DigestLookup is the body of GET /signet/v1/digests/<digest>.
type DigestLookup struct {
	Digest       string   `json:"digest"`
	Repositories []string `json:"repositories"`
}

// authorize runs the access check for one repository. On refusal it has
// answered (401 with a challenge, or 403) and returns false; on success
// the returned request carries the user.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, repository string, access Access) (*http.Request, bool) {
	if s.auth == nil {
		return r, true
	}
	user, err := s.auth.Authorize(r, repository, access)
	if err != nil {
		s.refuse(w, err)
		return r, false
	}
	return r.WithContext(reqctx.WithUser(r.Context(), user)), true
}

// refuse answers an access refusal; a 401 always carries the challenge.
func (s *Server) refuse(w http.ResponseWriter, err error) {
	apiErr := extensions.APIError(err)
	if apiErr.Code == errcode.Unauthorized {
		// Passthrough mode sends the upstream's own challenge.
		challenge := Challenge
		var c interface{ Challenge() string }
		if errors.As(err, &c) && c.Challenge() != "" {
			challenge = c.Challenge()
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	errcode.Write(w, apiErr)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeText(w, http.StatusServiceUnavailable, "shutting down\n")
		return
	}
	if _, err := s.journal.PendingImageDeletes(r.Context()); err != nil {
		writeText(w, http.StatusServiceUnavailable, "signature store unavailable\n")
		return
	}
	if s.upstream != nil {
		if err := s.upstream.ready(r.Context()); err != nil {
			writeText(w, http.StatusServiceUnavailable, "upstream registry unavailable\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ready\n")
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func writeAPIError(w http.ResponseWriter, err error) {
	errcode.Write(w, extensions.APIError(err))
}
