package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// Users checks console logins and decides what a logged-in user may see.
// Both decisions come from the users file alone, never from what exists.
type Users interface {
	// Login reports whether secret is user's password or API token.
	Login(user, secret string) bool
	// CanPull reports whether user may read repository. An unknown user
	// may read nothing.
	CanPull(user, repository string) bool
}

// Registry is what the console reads of the image registry. The
// cosign.Registry methods (Manifest, Blob, Referrers) serve both the image
// page and cosign signature discovery; they wrap cosign.ErrNotFound when
// something does not exist.
type Registry interface {
	cosign.Registry
	// Repositories returns, in name order, the repositories keep accepts,
	// skipping the first offset of them and returning at most limit,
	// and how many keep accepts in all. keep is called once per name.
	Repositories(ctx context.Context, keep func(name string) bool, offset, limit int) (page []string, total int, err error)
	// Tags lists a repository's tags in name order; cosign.ErrNotFound
	// for a repository that does not exist.
	Tags(ctx context.Context, repository string) ([]string, error)
	// TagDigest resolves one tag to its manifest digest.
	TagDigest(ctx context.Context, repository, tag string) (digest.Digest, error)
}

// Signatures is what the console reads of the signature store.
type Signatures interface {
	List(ctx context.Context, key signaturestore.ImageKey) ([]signaturestore.Signature, error)
}

// Defaults for Options.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	DefaultMaxSessions     = 10000
	// maxSessionsPerUser bounds one user's sessions; logging in again
	// past it ends that user's least recently used one.
	maxSessionsPerUser = 32
)

// Options configure a Console.
type Options struct {
	Registry   Registry
	Signatures Signatures
	// Users checks logins and pull access. Nil means no access control
	// (the anonymous loopback default): every visitor sees everything,
	// as with the API.
	Users  Users
	Logger *slog.Logger
	// SessionIdle ends a session unused for that long; SessionLifetime
	// ends any session that old. MaxSessions bounds the sessions held;
	// past it the least recently used one ends.
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	MaxSessions     int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Console is the /ui/ handler.
type Console struct {
	reg      Registry
	sigs     Signatures
	users    Users
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    *pages
	assets   *assets
	// gpg reads the key id a signature packet claims; it trusts no key.
	gpg *gpg.Mechanism
}

// New builds the console.
func New(opts Options) (*Console, error) {
	if opts.Registry == nil || opts.Signatures == nil {
		return nil, errors.New("console: registry and signatures are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = DefaultSessionIdle
	}
	if opts.SessionLifetime <= 0 {
		opts.SessionLifetime = DefaultSessionLifetime
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	p.assets = a
	m, err := gpg.NewMechanismWithOptions(gpg.Options{CacheSize: -1})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return &Console{
		reg:      opts.Registry,
		sigs:     opts.Signatures,
		users:    opts.Users,
		log:      opts.Logger,
		now:      opts.Now,
		sessions: newSessions(opts.SessionIdle, opts.SessionLifetime, opts.MaxSessions, maxSessionsPerUser, opts.Now),
		pages:    p,
		assets:   a,
		gpg:      m,
	}, nil
}

// contentSecurityPolicy allows the console's own stylesheet, script and
// icon and nothing else: no inline script or style, no other origin, no
// framing, and forms may only post back to Signet.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler for every path under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")

	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		c.fail(w, r, nil, errcode.NotFound.WithDetail(nil))
		return
	}
	switch {
	case strings.HasPrefix(rest, "static/"):
		if !c.allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		c.assets.serve(w, r, strings.TrimPrefix(rest, "static/"))
	case rest == "login":
		if !c.allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
			return
		}
		c.login(w, r)
	case rest == "logout":
		if !c.allow(w, r, http.MethodPost) {
			return
		}
		c.logout(w, r)
	case rest == "":
		c.page(w, r, c.repositories)
	case strings.HasPrefix(rest, "repositories/"):
		c.page(w, r, func(w http.ResponseWriter, r *http.Request, s *session) {
			c.repository(w, r, s, strings.TrimPrefix(rest, "repositories/"))
		})
	case strings.HasPrefix(rest, "images/"):
		c.page(w, r, func(w http.ResponseWriter, r *http.Request, s *session) {
			c.image(w, r, s, strings.TrimPrefix(rest, "images/"))
		})
	default:
		c.fail(w, r, nil, errcode.NotFound.WithMessage("no such page"))
	}
}

// page runs a data page: GET or HEAD only, never cached, and only with a
// session when access control is on. Without one the browser is sent to
// the login form, which returns here afterwards.
func (c *Console) page(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request, *session)) {
	if !c.allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s := c.currentSession(r)
	if s == nil {
		next := r.URL.Path
		if r.URL.RawQuery != "" {
			next += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(safeNext(next)), http.StatusSeeOther)
		return
	}
	fn(w, r, s)
}

// allow answers 405 with an Allow header unless r's method is one of
// methods.
func (c *Console) allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	c.fail(w, r, nil, errcode.MethodNotAllowed.WithDetail(nil))
	return false
}

// fail answers an error page. Internal errors are logged with their cause
// and shown without it.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, e errcode.Error) {
	c.pages.error(w, s, e)
}

// internal logs err and answers 500 without its details, unless err
// carries an API error that says a backend is unavailable or busy (the
// upstream registry in proxy mode): that one is shown with its own status
// and message, which name no cause, so the page says what is wrong.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	var apiErr errcode.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Code.Status() {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
			c.log.WarnContext(r.Context(), "console: "+what, "path", r.URL.Path, "err", err)
			msg := apiErr.Message
			if msg == "" {
				msg = apiErr.Code.Descriptor().Message
			}
			c.fail(w, r, s, errcode.Error{Code: apiErr.Code, Message: what + " failed: " + msg})
			return
		}
	}
	c.log.ErrorContext(r.Context(), "console: "+what, "path", r.URL.Path, "err", err)
	c.fail(w, r, s, errcode.Unknown.WithMessage("%s failed; the server log has the details", what))
}
