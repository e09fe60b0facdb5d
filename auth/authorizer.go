package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/registry/errcode"
)

// Challenge is the WWW-Authenticate value the front sends with every 401
// (the front's own registry.Challenge). Only Basic is offered: a Bearer
// challenge would send Docker clients looking for a token server, and
// tokens work as the Basic password.
const Challenge = registry.Challenge

// Defaults for Options.
const (
	DefaultCacheTTL      = 5 * time.Minute
	DefaultCacheSize     = 1024
	DefaultWatchInterval = 2 * time.Second
)

// Options tune an Authorizer. The zero value is the production setting.
type Options struct {
	// CacheTTL is how long a successful password check is remembered;
	// 0 means DefaultCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the remembered checks; 0 means DefaultCacheSize,
	// negative disables the cache.
	CacheSize int
	// Now is the clock for token expiry and the cache; nil is time.Now.
	Now func() time.Time
}

// Authorizer is the access decision over a users file. It is safe for
// concurrent use; Reload swaps the whole state atomically, so a request
// sees either the old file or the new one, never a mix.
type Authorizer struct {
	path string
	opts Options

	reloadMu sync.Mutex // serialises Reload so an older read never wins
	cur      atomic.Pointer[state]

	// compareHash and compareToken are the two credential checks. Tests
	// replace them to count calls: a failed login must do the same work
	// whether or not the user or token exists.
	compareHash  func(hash, password []byte) error
	compareToken func(stored, presented []byte) bool
}

var _ registry.Authorizer = (*Authorizer)(nil)

// state is one loaded users file with its password cache.
type state struct {
	cfg    *config
	stamps []fileStamp
	// dummyHash is a well-formed bcrypt hash of the highest cost in use
	// that no password matches; unknown users are checked against it.
	dummyHash []byte
	cache     *passwordCache
}

// Load reads and validates the users file at path.
func Load(path string) (*Authorizer, error) { return LoadWithOptions(path, Options{}) }

// LoadWithOptions is Load with tuning for tests and embedding.
func LoadWithOptions(path string, opts Options) (*Authorizer, error) {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authorizer{
		path:         path,
		opts:         opts,
		compareHash:  bcrypt.CompareHashAndPassword,
		compareToken: func(stored, presented []byte) bool { return subtle.ConstantTimeCompare(stored, presented) == 1 },
	}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path is the users file this Authorizer reads.
func (a *Authorizer) Path() string { return a.path }

// Reload re-reads the users file (and its htpasswd file). If the new
// content is invalid the current state is kept and the error returned.
// Successful password checks are forgotten.
func (a *Authorizer) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	l, err := loadFiles(a.path)
	if err != nil {
		return err
	}
	cache, err := newPasswordCache(a.opts.CacheTTL, a.opts.CacheSize)
	if err != nil {
		return err
	}
	a.cur.Store(&state{cfg: l.cfg, stamps: l.stamps, dummyHash: dummyHash(l.cfg.maxCost), cache: cache})
	return nil
}

// dummyHash builds a syntactically valid bcrypt hash of the given cost.
// Building it costs nothing; checking a password against it costs exactly
// as much as against a real hash of that cost, and always fails.
func dummyHash(cost int) []byte {
	// 22 characters of salt and 31 of hash in bcrypt's base64 alphabet.
	return fmt.Appendf(nil, "$2a$%02d$%s", cost, "SignetDummySaltSignet.SignetDummyHashSignetDummyHash.")
}

// Watch polls the users file and the htpasswd file every interval
// (DefaultWatchInterval if not positive) and reloads when either changes.
// It blocks until ctx is done. A failed reload is logged once and retried
// only after the files change again.
func (a *Authorizer) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var failed []fileStamp
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := a.cur.Load().stamps
		now := make([]fileStamp, len(cur))
		for i, s := range cur {
			now[i] = statStamp(s.path)
		}
		if stampsEqual(now, cur) || stampsEqual(now, failed) {
			continue
		}
		if err := a.Reload(); err != nil {
			failed = now
			logger.ErrorContext(ctx, "users file reload failed; keeping the previous users and grants",
				"path", a.path, "err", err)
			continue
		}
		failed = nil
		logger.InfoContext(ctx, "users file reloaded", "path", a.path)
	}
}

func stampsEqual(a, b []fileStamp) bool {
	return len(a) == len(b) && slices.EqualFunc(a, b, fileStamp.equal)
}

// Authenticate checks the request's credentials without deciding any
// access. ok is false without credentials or with invalid ones. The front
// uses it for the /v2/ ping, which must answer 401 to callers without
// credentials even when anonymous grants exist: container clients only
// send credentials after a 401 there.
func (a *Authorizer) Authenticate(r *http.Request) (user string, ok bool) {
	user, present, ok := a.authenticate(r, a.cur.Load())
	if !present || !ok {
		return "", false
	}
	return user, true
}

// Authorize implements registry.Authorizer. It decides from the
// credentials, the repository name and the grant patterns only, never
// from whether the repository exists.
//
//   - AccessNone is always allowed, as reqctx.Anonymous (credentials
//     are not examined).
//   - No credentials: allowed as reqctx.Anonymous when an anonymous
//     grant covers the access, otherwise errcode.Unauthorized.
//   - Invalid credentials: errcode.Unauthorized, even where anonymous
//     access would be allowed, so a mistyped password is noticed.
//   - Valid credentials lacking the role: errcode.Denied.
func (a *Authorizer) Authorize(r *http.Request, repository string, access registry.Access) (string, error) {
	if access == registry.AccessNone {
		return reqctx.Anonymous, nil
	}
	st := a.cur.Load()
	user, present, ok := a.authenticate(r, st)
	switch {
	case !present:
		if st.cfg.allows(reqctx.Anonymous, repository, access) {
			return reqctx.Anonymous, nil
		}
		return "", errcode.Unauthorized.WithDetail(detail(repository, access))
	case !ok:
		return "", errcode.Unauthorized.WithDetail(detail(repository, access))
	case st.cfg.allows(user, repository, access):
		return user, nil
	}
	return "", errcode.Denied.WithDetail(detail(repository, access))
}

// accessDetail is distribution's shape for the detail of UNAUTHORIZED
// and DENIED errors.
type accessDetail struct {
	Type   string `json:"Type"`
	Name   string `json:"Name"`
	Action string `json:"Action"`
}

func detail(repository string, access registry.Access) []accessDetail {
	typ := "repository"
	if repository == "" {
		typ = "registry"
	}
	return []accessDetail{{Type: typ, Name: repository, Action: access.String()}}
}

// authenticate returns the verified user; present reports whether the
// request carried credentials at all.
func (a *Authorizer) authenticate(r *http.Request, st *state) (user string, present, ok bool) {
	creds, err := parseAuthorization(r.Header.Values("Authorization"))
	if err != nil {
		return "", true, false
	}
	switch creds.kind {
	case credBearer:
		user, ok := a.checkToken(st, creds.secret)
		return user, true, ok
	case credBasic:
		if _, isToken := parseToken(creds.secret); isToken {
			owner, ok := a.checkToken(st, creds.secret)
			// A token only logs in the user it belongs to.
			return creds.user, true, ok && owner == creds.user
		}
		return creds.user, true, a.checkPassword(st, creds.user, creds.secret)
	}
	return "", false, false
}

// checkToken verifies an API token and returns its owner. The hash
// comparison runs whether or not the id is known, so an unknown id costs
// the same as a wrong secret.
func (a *Authorizer) checkToken(st *state, untrustedToken string) (string, bool) {
	sum := sha256.Sum256([]byte(untrustedToken))
	id, shaped := parseToken(untrustedToken)
	entry, known := st.cfg.tokens[id]
	var want [sha256.Size]byte // no token hashes to all zeroes
	if shaped && known {
		want = entry.sum
	}
	equal := a.compareToken(want[:], sum[:])
	if !shaped || !known || !equal || entry.revoked {
		return "", false
	}
	if !entry.expires.IsZero() && !a.opts.Now().Before(entry.expires) {
		return "", false
	}
	return entry.user, true
}

// checkPassword verifies a password with bcrypt, or from the cache of
// recent successes. An unknown user, or one without a password, is
// checked against the dummy hash so the failure takes as long.
func (a *Authorizer) checkPassword(st *state, user, untrustedPassword string) bool {
	if len(untrustedPassword) > maxPasswordLen {
		// bcrypt would ignore the excess; refuse before any lookup so
		// this path costs the same for every user.
		return false
	}
	hash := st.dummyHash
	u := st.cfg.users[user]
	known := u != nil && u.password != nil
	if known {
		hash = u.password
	}
	pw := []byte(untrustedPassword)
	now := a.opts.Now()
	var key [sha256.Size]byte
	if known && st.cache != nil {
		key = st.cache.keyFor(user, pw, hash)
		if st.cache.hit(key, now) {
			return true
		}
	}
	if err := a.compareHash(hash, pw); err != nil || !known {
		return false
	}
	if st.cache != nil {
		st.cache.add(key, now)
	}
	return true
}
