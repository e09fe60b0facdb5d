package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/internal/repoglob"
	"github.com/signet-registry/signet/proxy"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// Proxy mode (registry.upstream.url): /v2/ goes to an existing registry
// through package proxy, and Signet keeps serving the signature extension,
// the Signet API and /sigstore/ from its own store. Manifest existence is
// the upstream's answer (cached for registry.upstream.cacheTTL).
//
// Hidden signatures. When the upstream no longer holds a manifest, Signet
// hides its signatures: every read (extension GET, Signet API, /sigstore/)
// and every signature PUT first asks whether the manifest exists, and
// answers 404 MANIFEST_UNKNOWN when the upstream says no. The signatures
// stay in the database, so a manifest that comes back (pushed again,
// restored) brings them back, and a mistaken 404 from a misconfigured
// upstream destroys nothing. Signet notices a deletion when a check misses
// the cache and gets 404, when a DELETE passes through it (then the
// signatures are removed, as in embedded mode), and through the sweep,
// which re-checks a page of signed images every sweepInterval so that a
// deletion is noticed even while a positive answer is cached.

// imageLister pages through the images holding signatures, in key order,
// after a cursor (boltstore.Store implements it).
type imageLister interface {
	ImagesAfter(ctx context.Context, after signaturestore.ImageKey, limit int) ([]signaturestore.ImageKey, error)
}

// maxPasswordFile bounds the service password file.
const maxPasswordFile = 64 << 10

// upstream is the proxy-mode part of the server.
type upstream struct {
	proxy       *proxy.Proxy
	passthrough bool
	// lister is nil when the store cannot page (then no sweep).
	lister     imageLister
	external   repoglob.Set
	log        *slog.Logger
	sweepEvery time.Duration
	sweepBatch int
	stop       context.CancelFunc
	done       chan struct{}
	// cursor and lastWarn belong to the sweep goroutine.
	cursor   signaturestore.ImageKey
	lastWarn time.Time
}

// newUpstream builds proxy mode from the configuration, or returns nil
// when no upstream is configured. It does not contact the upstream.
func newUpstream(cfg config.Config, store Store, log *slog.Logger) (*upstream, error) {
	uc := cfg.Registry.Upstream
	if uc.URL == "" {
		return nil, nil
	}
	password, err := readPasswordFile(uc.PasswordFile)
	if err != nil {
		return nil, err
	}
	p, err := proxy.New(proxy.Config{
		URL:                   uc.URL,
		CAFile:                uc.CAFile,
		InsecureSkipVerify:    uc.InsecureSkipVerify,
		Username:              uc.Username,
		Password:              password,
		Passthrough:           uc.Auth == config.UpstreamAuthPassthrough,
		ConnectTimeout:        uc.ConnectTimeout,
		ResponseHeaderTimeout: uc.ResponseHeaderTimeout,
		CheckTimeout:          uc.CheckTimeout,
		CacheTTL:              uc.CacheTTL,
		CacheEntries:          uc.CacheEntries,
		ManifestCacheBytes:    uc.ManifestCacheBytes,
		Logger:                log.With("component", "upstream"),
	})
	if err != nil {
		return nil, fmt.Errorf("registry.upstream: %w", err)
	}
	external, err := repoglob.CompileSet(cfg.Signatures.ExternalRepositories)
	if err != nil {
		return nil, fmt.Errorf("signatures.externalRepositories: %w", err)
	}
	u := &upstream{
		proxy:       p,
		passthrough: uc.Auth == config.UpstreamAuthPassthrough,
		external:    external,
		log:         log,
		sweepEvery:  uc.SweepInterval,
		sweepBatch:  uc.SweepBatch,
	}
	if l, ok := store.(imageLister); ok {
		u.lister = l
	}
	return u, nil
}

func readPasswordFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("registry.upstream.passwordFile: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("registry.upstream.passwordFile: %w", err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("registry.upstream.passwordFile %s: larger than %d bytes", path, maxPasswordFile)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" || strings.ContainsAny(pw, "\r\n") {
		return "", fmt.Errorf("registry.upstream.passwordFile %s: must hold one non-empty line", path)
	}
	return pw, nil
}

// isPassthrough reports whether the upstream decides access (nil-safe:
// false in embedded mode).
func (u *upstream) isPassthrough() bool { return u != nil && u.passthrough }

// ManifestExists implements extensions.ManifestChecker against the
// upstream.
func (u *upstream) ManifestExists(ctx context.Context, repository string, dgst digest.Digest) (bool, error) {
	return u.proxy.ManifestExists(ctx, repository, dgst)
}

// errNoDigestLookup: the digest lookup walks the embedded registry's
// repositories; an upstream's catalog is not Signet's to walk.
var errNoDigestLookup = errcode.Unsupported.WithMessage("the digest lookup is not available in proxy mode; name the repository")

// checker is the manifest checker the signature handlers use: the
// upstream in proxy mode, embedded otherwise (nil-safe). The upstream
// keeps its own cache, bounded in time, so that a manifest deleted
// upstream stops answering once the answer expires.
func (u *upstream) checker(embedded extensions.ManifestChecker) extensions.ManifestChecker {
	if u == nil {
		return embedded
	}
	return u
}

// withCredentials hands each request's Authorization header to the
// upstream checks (passthrough mode; nil-safe).
func (u *upstream) withCredentials(next http.Handler) http.Handler {
	if !u.isPassthrough() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(proxy.WithClientAuthorization(r.Context(), r.Header.Get("Authorization"))))
	})
}

// ready reports the upstream's health for /readyz.
func (u *upstream) ready(ctx context.Context) error {
	return u.proxy.Ready(ctx)
}

// authorizer is the access decision (nil-safe): Signet's own in embedded
// and signet mode; in passthrough mode the upstream's, except where the upstream
// cannot know (admin routes, every-repository routes and the external
// repositories), which stay with Signet's users file.
func (u *upstream) authorizer(signet Authorizer) Authorizer {
	if !u.isPassthrough() {
		return signet
	}
	return &passthroughAuth{proxy: u.proxy, signet: signet, external: u.external}
}

// passthroughAuth asks the upstream, with the client's own credentials:
// pull access is a tag listing the upstream allows, sign and save access
// a blob upload the upstream accepts (proxy.CheckPull, proxy.CheckPush).
// A client that cannot push upstream therefore never stores a signature.
type passthroughAuth struct {
	proxy    *proxy.Proxy
	signet   Authorizer // nil: no users file
	external repoglob.Set
}

func (a *passthroughAuth) Authorize(r *http.Request, repository string, access Access) (string, error) {
	if access == AccessNone {
		return "", nil
	}
	if access == AccessAdmin || repository == "" || a.external.Match(repository) {
		if a.signet == nil {
			// No users file: the anonymous default, as in embedded
			// mode (serve allows it on loopback only).
			return "", nil
		}
		return a.signet.Authorize(r, repository, access)
	}
	authz := r.Header.Get("Authorization")
	var err error
	if access == AccessPull {
		err = a.proxy.CheckPull(r.Context(), repository, authz)
	} else {
		err = a.proxy.CheckPush(r.Context(), repository, authz)
	}
	if err != nil {
		return "", err
	}
	return upstreamUser(r), nil
}

// Authenticate accepts what the upstream's /v2/ accepts.
func (a *passthroughAuth) Authenticate(r *http.Request) (string, bool) {
	if err := a.proxy.CheckLogin(r.Context(), r.Header.Get("Authorization")); err != nil {
		return "", false
	}
	return upstreamUser(r), true
}

// upstreamUser names a passthrough caller in the audit log: the Basic
// user name the upstream accepted, or the kind of credential.
func upstreamUser(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		return user
	}
	if r.Header.Get("Authorization") != "" {
		return "upstream-token"
	}
	return ""
}

// upstreamV2 is the /v2/ handler of proxy mode: the proxy, with manifest
// deletes by digest taking the signatures with them. The image lock
// orders the delete against signature PUTs; once the upstream has
// answered 202 the signatures go in one commit (the delete journal's
// settle step, which also drops the cached list). A crash between the
// two leaves them hidden, not served: the upstream says the manifest is
// gone.
func (s *Server) upstreamV2() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := manifestDeleteTarget(r)
		if !ok {
			s.upstream.proxy.ServeHTTP(w, r)
			return
		}
		unlock := s.locks.Lock(extensions.LockKey(key.Repository, key.Digest))
		defer unlock()
		buf := &bufferedResponse{header: http.Header{}}
		s.upstream.proxy.ServeHTTP(buf, r)
		if buf.status == http.StatusAccepted {
			ctx := context.WithoutCancel(r.Context())
			if err := s.journal.EndImageDelete(ctx, key, true); err != nil {
				s.log.ErrorContext(ctx, "remove the signatures of a manifest deleted upstream; they stay hidden", "image", key.String(), "err", err)
			} else {
				s.audit.Record(r, "manifest.delete", key)
			}
		}
		buf.copyTo(w)
	})
}

// start runs the sweep until close (nil-safe).
func (u *upstream) start() {
	if u == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.stop, u.done = cancel, make(chan struct{})
	if u.sweepEvery <= 0 || u.lister == nil {
		if u.sweepEvery > 0 {
			u.log.Warn("the signature store cannot be paged; the upstream sweep is off, and signatures of manifests deleted upstream are hidden only when a check notices")
		}
		close(u.done)
		return
	}
	go func() {
		defer close(u.done)
		t := time.NewTicker(u.sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				u.sweepOnce(ctx)
			}
		}
	}()
}

// close stops the sweep and releases upstream connections (nil-safe).
func (u *upstream) close() {
	if u == nil {
		return
	}
	if u.stop != nil {
		u.stop()
		<-u.done
	}
	u.proxy.Close()
}

// sweepOnce re-checks at most sweepBatch signed images upstream, from
// where the last tick stopped, and wraps around at the end. A manifest
// found gone is recorded, which hides its signatures at once. If the
// upstream cannot answer, the tick ends and the next one retries the
// same image: an outage hides nothing.
func (u *upstream) sweepOnce(ctx context.Context) int {
	keys, err := u.lister.ImagesAfter(ctx, u.cursor, u.sweepBatch)
	if err != nil {
		u.log.Error("upstream sweep: list signed images", "err", err)
		return 0
	}
	checked := 0
	for _, key := range keys {
		if ctx.Err() != nil {
			return checked
		}
		if !u.external.Match(key.Repository) {
			exists, err := u.proxy.Recheck(ctx, key.Repository, key.Digest)
			if err != nil {
				if time.Since(u.lastWarn) > time.Hour {
					u.lastWarn = time.Now()
					u.log.Warn("upstream sweep: cannot check manifests; retrying (this warning repeats at most hourly)", "image", key.String(), "err", err)
				}
				return checked
			}
			checked++
			if !exists {
				u.log.Info("manifest not found upstream: its signatures are hidden", "image", key.String())
			}
		}
		u.cursor = key
	}
	if len(keys) < u.sweepBatch {
		u.cursor = signaturestore.ImageKey{}
	}
	return checked
}
