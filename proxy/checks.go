package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/registry/errcode"
)

// Signet's own questions to the upstream: does a manifest exist, may these
// client credentials pull or push, is the upstream up. Each is one bounded
// request (CheckTimeout); answers that may be cached are cached for
// CacheTTL.

// Error is an upstream answer that Signet passes on to its client: an
// API error, and for a 401 in passthrough mode the upstream's challenge.
type Error struct {
	API       errcode.Error
	challenge string
	cause     error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.API.Error() + ": " + e.cause.Error()
	}
	return e.API.Error()
}

// Unwrap exposes the API error (for errors.As) and the cause.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.API, e.cause}
	}
	return []error{e.API}
}

// Challenge is the upstream's WWW-Authenticate value for a 401, to be
// sent unchanged so that clients can use the upstream's token service.
func (e *Error) Challenge() string { return e.challenge }

func unavailable(cause error) error {
	return &Error{API: errcode.Unavailable.WithMessage("the upstream registry is unavailable"), cause: cause}
}

type clientAuthKey struct{}

// WithClientAuthorization records the client's Authorization header (empty
// for none) for ManifestExists in passthrough mode.
func WithClientAuthorization(ctx context.Context, authorization string) context.Context {
	return context.WithValue(ctx, clientAuthKey{}, &authorization)
}

// ManifestExists reports whether the upstream holds repo@d, from the cache
// when it can. In passthrough mode it asks with the client's credentials
// from the context (WithClientAuthorization), otherwise with the service
// credentials. An upstream that cannot answer gives an error that maps to
// 503, never a "no".
func (p *Proxy) ManifestExists(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	if v, ok := p.exist.get(imageKey{repo, d}); ok {
		return v, nil
	}
	if a, ok := ctx.Value(clientAuthKey{}).(*string); ok && p.passthrough {
		return p.checkManifest(ctx, repo, d, *a, true)
	}
	return p.checkManifest(ctx, repo, d, "", false)
}

// Recheck asks the upstream, with the service credentials and past the
// cache, whether it holds repo@d, and records the answer (the sweep).
func (p *Proxy) Recheck(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	return p.checkManifest(ctx, repo, d, "", false)
}

func (p *Proxy) checkManifest(ctx context.Context, repo string, d digest.Digest, authorization string, asClient bool) (bool, error) {
	resp, err := p.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+d.String(), nil, authorization, asClient, manifestAccept)
	if err != nil {
		return false, unavailable(fmt.Errorf("check manifest %s@%s: %w", repo, d, err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		p.exist.add(imageKey{repo, d}, true, 1, p.ttl)
		return true, nil
	case http.StatusNotFound:
		if !asClient {
			p.markGone(repo, d)
		}
		return false, nil
	}
	return false, refusal(resp, asClient, "check manifest "+repo+"@"+d.String())
}

// CheckPull decides whether the client credentials (an Authorization
// value, empty for none) may pull from repo, by listing at most one of
// its tags upstream. A 404 (no such repository) allows the caller on:
// distribution checks access first, and a registry that hides
// repositories behind 404 leaks nothing more through Signet, whose next
// step is a manifest check with the same credentials. Only a 200 is
// cached, since only it proves the upstream would serve this client.
func (p *Proxy) CheckPull(ctx context.Context, repo, authorization string) error {
	key := pullKey{credKey(authorization), repo}
	if _, ok := p.pulls.get(key); ok {
		return nil
	}
	resp, err := p.do(ctx, http.MethodGet, "/v2/"+repo+"/tags/list", url.Values{"n": {"1"}}, authorization, true, "")
	if err != nil {
		return unavailable(fmt.Errorf("pull check on %s: %w", repo, err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		p.pulls.add(key, struct{}{}, 1, p.ttl)
		return nil
	case http.StatusNotFound:
		return nil
	}
	return refusal(resp, true, "pull check on "+repo)
}

// CheckLogin decides whether the upstream accepts the client credentials
// at all (its /v2/ ping).
func (p *Proxy) CheckLogin(ctx context.Context, authorization string) error {
	resp, err := p.do(ctx, http.MethodGet, "/v2/", nil, authorization, true, "")
	if err != nil {
		return unavailable(fmt.Errorf("login check: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return refusal(resp, true, "login check")
	}
	return nil
}

// CheckPush decides whether the client credentials may push to repo. It
// starts a blob upload upstream (POST /v2/<repo>/blobs/uploads/), which
// the upstream accepts with 202 only for a client allowed to push there,
// and cancels it at once (DELETE on the upload's Location). The upload
// holds no data; if the cancel is refused (registries with token auth want
// the delete action for it), the upstream's own purge of stale uploads
// removes it. Never cached: a signature write must be backed by a
// present-tense grant.
func (p *Proxy) CheckPush(ctx context.Context, repo, authorization string) error {
	resp, err := p.do(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, authorization, true, "")
	if err != nil {
		return unavailable(fmt.Errorf("push check on %s: %w", repo, err))
	}
	if resp.StatusCode != http.StatusAccepted {
		return refusal(resp, true, "push check on "+repo)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		p.cancelUpload(ctx, loc, authorization)
	}
	// A client that may push may pull.
	p.pulls.add(pullKey{credKey(authorization), repo}, struct{}{}, 1, p.ttl)
	return nil
}

func (p *Proxy) cancelUpload(ctx context.Context, location, authorization string) {
	u, err := p.base.Parse(location)
	if err != nil || !sameOrigin(u, p.base) {
		// Never send the client's credentials to another host.
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := p.raw.RoundTrip(req)
	if err != nil {
		p.log.DebugContext(ctx, "cancel push-check upload", "err", err)
		return
	}
	drain(resp.Body)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		p.log.DebugContext(ctx, "cancel push-check upload", "status", resp.StatusCode)
	}
}

// refusal maps an upstream answer other than the expected one. With the
// client's credentials, 401 and 403 are the client's problem and pass on
// (a 401 with the upstream's challenge); with the service credentials
// they are Signet's configuration problem, which its client sees as 503.
func refusal(resp *http.Response, asClient bool, what string) error {
	status := resp.StatusCode
	switch {
	case status == http.StatusTooManyRequests:
		return &Error{API: errcode.TooManyRequests.WithDetail(nil)}
	case asClient && status == http.StatusUnauthorized:
		return &Error{API: errcode.Unauthorized.WithDetail(nil), challenge: resp.Header.Get("WWW-Authenticate")}
	case asClient && status >= 400 && status < 500:
		return &Error{API: errcode.Denied.WithDetail(nil), cause: fmt.Errorf("%s: upstream status %d", what, status)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &Error{API: errcode.Unavailable.WithMessage("the upstream registry refused Signet's service credentials"),
			cause: fmt.Errorf("%s: status %d", what, status)}
	}
	return unavailable(fmt.Errorf("%s: upstream status %d", what, status))
}

// errNotRegistry: the upstream answered /v2/ with something other than
// 200 or 401.
var errNotRegistry = errors.New("the upstream does not answer /v2/ like a registry")

// Ready reports whether the upstream answers its /v2/ ping (200, or 401
// asking for credentials). The answer is reused for a second, so frequent
// probes cannot load the upstream.
func (p *Proxy) Ready(ctx context.Context) error {
	p.healthMu.Lock()
	if !p.healthAt.IsZero() && p.now().Sub(p.healthAt) < healthTTL {
		err := p.healthErr
		p.healthMu.Unlock()
		return err
	}
	p.healthMu.Unlock()
	resp, err := p.do(ctx, http.MethodGet, "/v2/", nil, "", true, "")
	if err == nil && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		err = fmt.Errorf("%w (status %d)", errNotRegistry, resp.StatusCode)
	}
	p.healthMu.Lock()
	p.healthAt, p.healthErr = p.now(), err
	p.healthMu.Unlock()
	return err
}

// do sends one of Signet's own requests and returns the answer with its
// body read (bounded) and closed.
func (p *Proxy) do(ctx context.Context, method, path string, query url.Values, authorization string, asClient bool, accept string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, p.checkTimeout)
	defer cancel()
	u := *p.base
	u.Path = path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	var rt http.RoundTripper = p.svc
	if asClient {
		rt = p.raw
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	drain(resp.Body)
	return resp, nil
}
