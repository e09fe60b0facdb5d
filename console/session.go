package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/signet-registry/signet/registry/errcode"
)

// Cookie names. Both are HttpOnly, SameSite=Strict, Secure on TLS, and
// scoped to the console's paths.
const (
	sessionCookie = "signet_session"
	// loginCookie carries the login form's anti-forgery token (a
	// double-submit token: the form must send the same value).
	loginCookie = "signet_login"
	// tokenBytes of randomness in a session id or anti-forgery token.
	tokenBytes = 32
	// maxLoginForm bounds the login and logout bodies.
	maxLoginForm = 8 << 10
	// maxNext bounds the page a login returns to.
	maxNext = 2048
)

// session is one logged-in browser. The id itself is never stored: the
// map is keyed by its SHA-256, so neither a lookup's timing nor a memory
// dump yields a usable id.
type session struct {
	key     [sha256.Size]byte
	user    string
	csrf    string
	created time.Time
	seen    time.Time
	// open marks the session-less visitor of a console without access
	// control.
	open bool
}

// sessions is the bounded server-side session table.
type sessions struct {
	idle, lifetime time.Duration
	max, perUser   int
	now            func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*session
}

func newSessions(idle, lifetime time.Duration, max, perUser int, now func() time.Time) *sessions {
	return &sessions{idle: idle, lifetime: lifetime, max: max, perUser: perUser, now: now, m: map[[sha256.Size]byte]*session{}}
}

func randomToken() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// wellFormedToken reports whether s has exactly the shape randomToken
// makes, so nothing else is hashed or compared.
func wellFormedToken(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *sessions) expired(x *session, now time.Time) bool {
	return now.Sub(x.seen) >= s.idle || now.Sub(x.created) >= s.lifetime
}

// create starts a session for user and returns its id. Expired sessions
// are dropped first; past the per-user or total bound, the least recently
// used session (of that user, or of anybody) ends.
func (s *sessions) create(user string) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	x := &session{key: sha256.Sum256([]byte(id)), user: user, csrf: csrf, created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	var mine []*session
	for k, o := range s.m {
		if s.expired(o, now) {
			delete(s.m, k)
			continue
		}
		if o.user == user {
			mine = append(mine, o)
		}
	}
	if len(mine) >= s.perUser {
		delete(s.m, oldest(mine).key)
	}
	if len(s.m) >= s.max {
		all := make([]*session, 0, len(s.m))
		for _, o := range s.m {
			all = append(all, o)
		}
		delete(s.m, oldest(all).key)
	}
	s.m[x.key] = x
	return id, x, nil
}

func oldest(xs []*session) *session {
	o := xs[0]
	for _, x := range xs[1:] {
		if x.seen.Before(o.seen) {
			o = x
		}
	}
	return o
}

// get returns the live session with id, refreshing its idle timer.
func (s *sessions) get(id string) *session {
	if !wellFormedToken(id) {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[key]
	if !ok {
		return nil
	}
	if s.expired(x, now) {
		delete(s.m, key)
		return nil
	}
	x.seen = now
	cp := *x
	return &cp
}

func (s *sessions) delete(key [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// currentSession returns the request's session: the open pseudo-session
// without access control, the live session its cookie names, or nil.
func (c *Console) currentSession(r *http.Request) *session {
	if c.users == nil {
		return &session{user: "anonymous", open: true}
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return c.sessions.get(ck.Value)
}

func cookie(r *http.Request, name, value, path string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// sameOrigin rejects a POST whose Origin header names another origin.
// SameSite=Strict cookies and the form tokens already stop cross-site
// forms; this refuses them before any credential is checked.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && u.Host == r.Host
}

// safeNext keeps a post-login destination inside the console: a path
// under Prefix, never a scheme, host or protocol-relative URL, never the
// login or logout pages.
func safeNext(next string) string {
	if len(next) > maxNext || !strings.HasPrefix(next, Prefix) ||
		strings.ContainsAny(next, "\\\x00\r\n\t") || strings.HasPrefix(next, "//") {
		return Prefix
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, Prefix) || u.Path == Prefix+"login" || u.Path == Prefix+"logout" {
		return Prefix
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// loginToken returns the login form's anti-forgery token: the one the
// browser already holds, or a new one set in a cookie.
func loginToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if ck, err := r.Cookie(loginCookie); err == nil && wellFormedToken(ck.Value) {
		return ck.Value, nil
	}
	tok, err := randomToken()
	if err != nil {
		return "", err
	}
	http.SetCookie(w, cookie(r, loginCookie, tok, Prefix+"login", 3600))
	return tok, nil
}

var errBadForm = errors.New("bad form")

// readForm parses a bounded urlencoded POST body.
func readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errBadForm
	}
	return nil
}

// tokensEqual compares two anti-forgery tokens in constant time.
func tokensEqual(a, b string) bool {
	return wellFormedToken(a) && wellFormedToken(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// login serves the login form (GET) and checks it (POST).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c.users == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodPost {
		next := safeNext(r.URL.Query().Get("next"))
		if c.currentSession(r) != nil {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		tok, err := loginToken(w, r)
		if err != nil {
			c.internal(w, r, nil, "start login", err)
			return
		}
		c.pages.login(w, http.StatusOK, loginView{Next: next, CSRF: tok})
		return
	}
	if err := readForm(w, r); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.fail(w, r, nil, errcode.RequestTooLarge.WithMessage("login form over %d bytes", maxLoginForm))
			return
		}
		c.fail(w, r, nil, errcode.Denied.WithMessage("the login form could not be read; reload the page and try again"))
		return
	}
	ck, err := r.Cookie(loginCookie)
	if !sameOrigin(r) || err != nil || !tokensEqual(ck.Value, r.PostForm.Get("csrf")) {
		c.fail(w, r, nil, errcode.Denied.WithMessage("the login form has expired or was not sent from this site; reload the page and try again"))
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	user := r.PostForm.Get("username")
	if !c.users.Login(user, r.PostForm.Get("password")) {
		c.log.InfoContext(r.Context(), "console: login failed", "user", truncate(user, 128), "remote", r.RemoteAddr)
		c.pages.login(w, errcode.Unauthorized.Status(), loginView{
			Next: next, CSRF: ck.Value, User: truncate(user, 128), Failed: true,
		})
		return
	}
	id, _, err := c.sessions.create(user)
	if err != nil {
		c.internal(w, r, nil, "start session", err)
		return
	}
	c.log.InfoContext(r.Context(), "console: login", "user", user, "remote", r.RemoteAddr)
	http.SetCookie(w, cookie(r, sessionCookie, id, Prefix, 0))
	http.SetCookie(w, cookie(r, loginCookie, "", Prefix+"login", -1))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session; its form carries the session's token.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s := c.currentSession(r)
	if s == nil || s.open {
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	if err := readForm(w, r); err != nil || !sameOrigin(r) || !tokensEqual(s.csrf, r.PostForm.Get("csrf")) {
		c.fail(w, r, s, errcode.Denied.WithMessage("the logout form was not sent from this page; reload it and try again"))
		return
	}
	c.sessions.delete(s.key)
	http.SetCookie(w, cookie(r, sessionCookie, "", Prefix, -1))
	c.log.InfoContext(r.Context(), "console: logout", "user", s.user)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// truncate bounds a string for logs and pages, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
