package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Signet's own requests to the upstream (signet mode's forwarded
// requests, existence checks and the sweep) carry the service
// credentials. Registries protect /v2/ in one of two ways, and
// serviceAuth learns which from the upstream's 401 challenge:
//
//   - Basic: the credentials go on every request.
//   - Bearer (distribution's token specification): a token for the
//     request's scope is fetched from the challenge's realm with the
//     credentials as Basic auth (anonymously without any) and cached for
//     its lifetime.
//
// Tokens are fetched before a request is sent, so request bodies (blob
// uploads) are never sent twice; only bodiless requests are retried after
// a 401 that says a cached token or the learned scheme went stale.

// authScheme is what the upstream asked for.
type authScheme int

const (
	schemeUnknown authScheme = iota // not learned yet
	schemeNone                      // the upstream answered /v2/ without credentials
	schemeBasic
	schemeBearer
)

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string // lower case
	params map[string]string
}

// Bounds on what a challenge may hold; real ones have three parameters.
const (
	maxChallengeParams = 16
	maxTokenBody       = 1 << 20
	// tokenMargin is taken off a token's lifetime so it is not used in
	// the last moments before it expires.
	tokenMargin = 10 * time.Second
	// defaultTokenLifetime is the token specification's default for a
	// response without expires_in.
	defaultTokenLifetime = 60 * time.Second
)

// parseChallenge parses the first challenge of a WWW-Authenticate value
// (RFC 7235: scheme, then comma-separated auth-params with token or
// quoted-string values). Untrusted input: every value is bounded by the
// transport's header limit and at most maxChallengeParams are kept.
func parseChallenge(untrusted string) (challenge, bool) {
	h := strings.TrimSpace(untrusted)
	scheme, rest, _ := strings.Cut(h, " ")
	if scheme == "" || strings.ContainsAny(scheme, "=,\"") {
		return challenge{}, false
	}
	c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
	for {
		rest = strings.TrimLeft(rest, " \t,")
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			val = b.String()
			rest = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val = strings.TrimSpace(rest[:end])
			rest = rest[end:]
		}
		if len(c.params) < maxChallengeParams {
			c.params[key] = val
		}
	}
	return c, true
}

// serviceAuth is an http.RoundTripper that adds the service credentials.
type serviceAuth struct {
	base     *url.URL
	next     http.RoundTripper
	user     string
	password string
	// timeout bounds the ping that learns the scheme and each token
	// request.
	timeout time.Duration
	cls     *classifier
	tokens  *lru[string, string]

	mu      sync.Mutex
	scheme  authScheme
	realm   *url.URL
	service string
}

func newServiceAuth(base *url.URL, next http.RoundTripper, user, password string, timeout time.Duration, cls *classifier) *serviceAuth {
	return &serviceAuth{base: base, next: next, user: user, password: password, timeout: timeout, cls: cls,
		tokens: newLRU[string, string](1024, nil)}
}

// errNoChallenge: the upstream answered 401 without a usable challenge.
var errNoChallenge = errors.New("upstream answered 401 without a Basic or Bearer challenge")

// RoundTrip implements http.RoundTripper. It never modifies req.
func (a *serviceAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	scopes := a.cls.classify(req).scopes(req.Method)
	out, err := a.authorize(req, scopes)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	resp, err := a.next.RoundTrip(out)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The scheme or a cached token is stale: learn from this answer.
	if !a.learn(resp.Header.Values("WWW-Authenticate")) {
		return resp, nil
	}
	a.tokens.remove(strings.Join(scopes, " "))
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		// The body is gone; the caller sees the 401.
		return resp, nil
	}
	drain(resp.Body)
	retry, err := a.authorize(req, scopes)
	if err == nil && req.GetBody != nil {
		retry.Body, err = req.GetBody()
	}
	if err != nil {
		return nil, err
	}
	return a.next.RoundTrip(retry)
}

// authorize returns a copy of req carrying the credentials the upstream
// wants.
func (a *serviceAuth) authorize(req *http.Request, scopes []string) (*http.Request, error) {
	scheme, err := a.currentScheme(req.Context())
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Del("Authorization")
	switch scheme {
	case schemeBasic:
		if a.user != "" {
			out.SetBasicAuth(a.user, a.password)
		}
	case schemeBearer:
		tok, err := a.token(req.Context(), scopes)
		if err != nil {
			return nil, err
		}
		out.Header.Set("Authorization", "Bearer "+tok)
	}
	return out, nil
}

// currentScheme returns the learned scheme, pinging /v2/ once to learn it.
func (a *serviceAuth) currentScheme(ctx context.Context) (authScheme, error) {
	a.mu.Lock()
	s := a.scheme
	a.mu.Unlock()
	if s != schemeUnknown {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base.JoinPath("/v2/").String(), nil)
	if err != nil {
		return schemeUnknown, fmt.Errorf("upstream ping: %w", err)
	}
	resp, err := a.next.RoundTrip(req)
	if err != nil {
		return schemeUnknown, fmt.Errorf("upstream ping: %w", err)
	}
	drain(resp.Body)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		if !a.learn(resp.Header.Values("WWW-Authenticate")) {
			return schemeUnknown, errNoChallenge
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.scheme, nil
	case resp.StatusCode >= 500:
		// Not an answer about credentials; ask again next time.
		return schemeUnknown, fmt.Errorf("upstream ping: status %d", resp.StatusCode)
	}
	// The upstream did not ask for credentials. If it asks later, the
	// 401 teaches the scheme (RoundTrip).
	a.mu.Lock()
	a.scheme = schemeNone
	a.mu.Unlock()
	return schemeNone, nil
}

// learn records the first usable challenge and reports whether there
// was one.
func (a *serviceAuth) learn(values []string) bool {
	for _, v := range values {
		c, ok := parseChallenge(v)
		if !ok {
			continue
		}
		switch c.scheme {
		case "basic":
			a.mu.Lock()
			a.scheme, a.realm = schemeBasic, nil
			a.mu.Unlock()
			return true
		case "bearer":
			realm, err := url.Parse(c.params["realm"])
			if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
				continue
			}
			// Never send the credentials in clear text to a realm
			// of an upstream reached over TLS.
			if a.base.Scheme == "https" && realm.Scheme != "https" {
				continue
			}
			a.mu.Lock()
			a.scheme, a.realm, a.service = schemeBearer, realm, c.params["service"]
			a.mu.Unlock()
			return true
		}
	}
	return false
}

// token returns a cached or fresh Bearer token for scopes.
func (a *serviceAuth) token(ctx context.Context, scopes []string) (string, error) {
	key := strings.Join(scopes, " ")
	if tok, ok := a.tokens.get(key); ok {
		return tok, nil
	}
	a.mu.Lock()
	realm, service := *a.realm, a.service
	a.mu.Unlock()
	q := realm.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.password)
	}
	resp, err := a.next.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("token request to %s: %w", realm.Host, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request to %s: status %d", realm.Host, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return "", fmt.Errorf("token response from %s: %w", realm.Host, err)
	}
	if len(body) > maxTokenBody {
		return "", fmt.Errorf("token response from %s: over %d bytes", realm.Host, maxTokenBody)
	}
	var untrusted struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &untrusted); err != nil {
		return "", fmt.Errorf("token response from %s: %w", realm.Host, err)
	}
	tok := untrusted.Token
	if tok == "" {
		tok = untrusted.AccessToken
	}
	// A token goes into a header: refuse anything that could split it.
	if tok == "" || strings.ContainsAny(tok, "\r\n\x00 ") {
		return "", fmt.Errorf("token response from %s: no usable token", realm.Host)
	}
	life := defaultTokenLifetime
	if untrusted.ExpiresIn > 0 && untrusted.ExpiresIn < 366*24*3600 {
		life = time.Duration(untrusted.ExpiresIn) * time.Second
	}
	ttl := life - tokenMargin
	if ttl < life/2 {
		ttl = life / 2
	}
	a.tokens.add(key, tok, 1, ttl)
	return tok, nil
}

// drain reads a little of an unwanted body so the connection can be
// reused, then closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
