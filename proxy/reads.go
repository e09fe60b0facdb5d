package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/refname"
)

// Signet's own reads of what the upstream holds, for the web console in
// proxy mode: the repository catalog, a repository's tags, manifests, small
// blobs and the referrers API. Every read carries the service credentials
// (never a client's: the console decides its own access before it asks),
// is bounded in time and size, and checks digests against the bytes
// received. A 404 is ErrNotFound; a refusal of the service credentials,
// an outage or any other status is an *Error that maps to 503 (429 for
// the upstream's rate limit).

const (
	// catalogTTL is how long the upstream's repository list is reused.
	// Every console list page reads it; without the cache each page view
	// would walk the whole catalog. 30 s bounds that to one walk per 30 s
	// however many pages are viewed; a repository pushed through Signet
	// is listed at once (observe drops a list that lacks it), one pushed
	// to the upstream directly within catalogTTL.
	catalogTTL = 30 * time.Second
	// maxCatalogNames bounds the names kept, as the embedded console's
	// catalog is bounded; past it the rest are left out, with a warning.
	maxCatalogNames = 250_000
	// maxTagNames bounds one repository's tag list.
	maxTagNames = 100_000
	// listPageSize is the n= asked of paginated lists (distribution's
	// default catalog.maxentries).
	listPageSize = 1000
	// maxListPageBytes bounds one page of a list: 1,000 names of at most
	// 255 bytes, JSON-quoted, fit with room to spare.
	maxListPageBytes = 4 << 20
	// maxListPages bounds the pages followed, for upstreams that page in
	// small steps; listTimeout bounds a whole walk.
	maxListPages = 5000
	listTimeout  = 2 * time.Minute
	// maxReferrersIndex bounds a referrers answer (the index clients
	// accept).
	maxReferrersIndex = 4 << 20
	// maxRedirects bounds the redirects followed by one read (a blob
	// GET redirected to object storage).
	maxRedirects = 3
)

// ErrNotFound: the upstream answered 404 to one of Signet's reads, or the
// name asked for cannot exist.
var ErrNotFound = errors.New("not found in the upstream registry")

var (
	errDigestMismatch = errors.New("the upstream's bytes do not match their digest")
	errTooLarge       = errors.New("the upstream's answer is over the size limit")
	errBadPagination  = errors.New("the upstream's pagination link is unusable")
)

// catalogCache is the upstream's repository list, reused for catalogTTL.
// Concurrent readers of a stale list share one walk.
type catalogCache struct {
	mu    sync.Mutex
	names []string // sorted, unique; shared with readers, never modified
	at    time.Time
	// fresh is false until a walk succeeds, and after a push through
	// Signet created a repository the list lacks.
	fresh bool
	// full: the list reached maxCatalogNames.
	full bool
	// gen counts invalidations; a walk that saw one while running does
	// not make its list fresh.
	gen  uint64
	fill *catalogFill
}

// catalogFill is one walk; done is closed once names or err is set.
type catalogFill struct {
	done  chan struct{}
	names []string
	err   error
}

// saw records a repository that exists upstream (a manifest PUT through
// Signet answered 201).
func (c *catalogCache) saw(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, found := slices.BinarySearch(c.names, repo); (found && c.fill == nil) || c.full {
		return
	}
	c.gen++
	c.fresh = false
}

// Catalog returns the upstream's repository names, sorted, from a list at
// most catalogTTL old. The slice is shared: callers must not modify it.
// Names that are not valid repository names are left out.
func (p *Proxy) Catalog(ctx context.Context) ([]string, error) {
	c := &p.catalog
	c.mu.Lock()
	if c.fresh && p.now().Sub(c.at) < catalogTTL {
		names := c.names
		c.mu.Unlock()
		return names, nil
	}
	f, leader := c.fill, false
	if f == nil {
		f, leader = &catalogFill{done: make(chan struct{})}, true
		c.fill = f
	}
	gen := c.gen
	c.mu.Unlock()
	if leader {
		p.fillCatalog(ctx, f, gen)
	}
	select {
	case <-f.done:
		return f.names, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Proxy) fillCatalog(ctx context.Context, f *catalogFill, gen uint64) {
	start := p.now()
	// Other readers wait for this walk: it must not end with the
	// request that started it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
	defer cancel()
	names, full, err := p.list(ctx, p.endpoint("/v2/_catalog"), maxCatalogNames, repositoriesOf, validName, "list the upstream's repositories")
	c := &p.catalog
	c.mu.Lock()
	if err == nil {
		if full && !c.full {
			p.log.WarnContext(ctx, "console: the upstream's catalog has more repositories than are listed", "max", maxCatalogNames)
		}
		c.names, c.at, c.full, c.fresh = names, start, full, c.gen == gen
	}
	c.fill = nil
	c.mu.Unlock()
	f.names, f.err = names, err
	close(f.done)
}

// Tags returns repo's tags, sorted; ErrNotFound when the upstream does
// not know the repository. Tags that are not valid tags are left out.
func (p *Proxy) Tags(ctx context.Context, repo string) ([]string, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	valid := func(tag string) bool {
		_, err := reference.WithTag(named, tag)
		return err == nil
	}
	tags, full, err := p.list(ctx, p.endpoint("/v2/"+repo+"/tags/list"), maxTagNames, tagsOf, valid, "list the tags of "+repo)
	if full {
		p.log.WarnContext(ctx, "console: a repository has more tags than are listed", "repository", repo, "max", maxTagNames)
	}
	return tags, err
}

// untrustedList is a page of the catalog or of a tag list.
type untrustedList struct {
	Repositories []string `json:"repositories"`
	Tags         []string `json:"tags"`
}

func repositoriesOf(l untrustedList) []string { return l.Repositories }
func tagsOf(l untrustedList) []string         { return l.Tags }

// validName is reference.WithName's check without its regexp (a catalog
// walk checks up to maxCatalogNames names).
func validName(name string) bool { return refname.Valid(name) }

// list walks a paginated list (the catalog or a tag list; pick takes the
// names from a page) through its Link headers, and returns at most
// maxNames of the names valid accepts, sorted and unique, and whether it
// stopped there.
func (p *Proxy) list(ctx context.Context, u *url.URL, maxNames int, pick func(untrustedList) []string, valid func(string) bool, what string) ([]string, bool, error) {
	endpoint := u.Path
	u.RawQuery = url.Values{"n": {strconv.Itoa(listPageSize)}}.Encode()
	names := map[string]struct{}{}
	seen := map[string]bool{}
	full := false
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, false, fmt.Errorf("%s: more than %d pages", what, maxListPages)
		}
		seen[u.RawQuery] = true
		resp, body, err := p.readOne(ctx, u, "application/json", maxListPageBytes)
		if err != nil {
			return nil, false, readFailure(what, err)
		}
		if resp.StatusCode == http.StatusBadRequest && page == 0 && u.RawQuery != "" {
			// distribution refuses an n= above its catalog.maxentries
			// (PAGINATION_NUMBER_INVALID): take its own page size.
			u.RawQuery = ""
			page--
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, false, readRefusal(resp, what)
		}
		var untrusted untrustedList
		if err := json.Unmarshal(body, &untrusted); err != nil {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
		for _, n := range pick(untrusted) {
			if !valid(n) {
				continue
			}
			if len(names) == maxNames {
				full = true
				break
			}
			names[n] = struct{}{}
		}
		next, ok := nextLink(resp.Header.Values("Link"), u)
		if !ok || full {
			break
		}
		// The service credentials go to the same list on the upstream
		// and nowhere else, and every page must move on.
		if !sameOrigin(next, p.base) || next.Path != endpoint || seen[next.RawQuery] {
			return nil, false, fmt.Errorf("%s: %w: %q", what, errBadPagination, truncateForLog(next.String()))
		}
		u = next
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, full, nil
}

// nextLink finds the rel="next" target among RFC 8288 Link values and
// resolves it against the URL of the page that carried it.
func nextLink(values []string, page *url.URL) (*url.URL, bool) {
	for _, v := range values {
		refs, text := linkRefs(v)
		for i, ref := range refs {
			// A reference's parameters run to the next reference.
			if relNext(text[i+1]) {
				u, err := page.Parse(ref)
				return u, err == nil
			}
		}
	}
	return nil, false
}

// relNext reports whether link parameters (`; rel="next", ...`) name the
// next relation.
func relNext(params string) bool {
	for _, p := range strings.FieldsFunc(params, func(r rune) bool { return r == ';' || r == ',' }) {
		key, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "rel") {
			continue
		}
		for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
			if strings.EqualFold(rel, "next") {
				return true
			}
		}
	}
	return false
}

// Manifest fetches repo's manifest by tag or digest, at most 4 MiB, and
// returns its digest, computed from the bytes received: by digest they
// must hash to it, by tag they must agree with the Docker-Content-Digest
// the upstream names. Manifests by digest come from the manifest cache
// when they can, and verified ones are cached.
func (p *Proxy) Manifest(ctx context.Context, repo, ref string) (digest.Digest, []byte, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return "", nil, fmt.Errorf("repository %q: %w", repo, ErrNotFound)
	}
	want, refErr := digest.Parse(ref)
	if refErr == nil {
		if m, ok := p.manifests.get(imageKey{repo, want}); ok {
			return want, m.body, nil
		}
	} else if _, err := reference.WithTag(named, ref); err != nil {
		return "", nil, fmt.Errorf("tag %q: %w", ref, ErrNotFound)
	}
	what := "read manifest " + repo + ":" + ref
	if refErr == nil {
		what = "read manifest " + repo + "@" + ref
	}
	ctx, cancel := context.WithTimeout(ctx, p.checkTimeout)
	defer cancel()
	resp, body, err := p.readOne(ctx, p.endpoint("/v2/"+repo+"/manifests/"+ref), manifestAccept, maxCachedManifest)
	if err != nil {
		return "", nil, readFailure(what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, readRefusal(resp, what)
	}
	alg := digest.Canonical
	if refErr == nil {
		alg = want.Algorithm()
	}
	got := alg.FromBytes(body)
	claimed, claimErr := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	switch {
	case refErr == nil && got != want:
		return "", nil, fmt.Errorf("%s: %w", what, errDigestMismatch)
	case refErr != nil && claimErr == nil && claimed.Algorithm() == got.Algorithm() && claimed != got:
		return "", nil, fmt.Errorf("%s: %w (the upstream names %s)", what, errDigestMismatch, claimed)
	}
	if ct := resp.Header.Get("Content-Type"); got.Algorithm() == digest.SHA256 && isManifestType(mediaType(ct)) {
		p.manifests.add(imageKey{repo, got}, &cachedManifest{contentType: ct, body: body}, int64(len(body))+manifestEntryOverhead, p.ttl)
	}
	return got, body, nil
}

// Blob fetches at most limit bytes of a blob and checks its digest.
// A redirect (to object storage) is followed without the credentials.
func (p *Proxy) Blob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	if !validName(repo) {
		return nil, fmt.Errorf("repository %q: %w", repo, ErrNotFound)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", d, ErrNotFound)
	}
	what := "read blob " + d.String() + " in " + repo
	ctx, cancel := context.WithTimeout(ctx, p.checkTimeout)
	defer cancel()
	resp, body, err := p.readOne(ctx, p.endpoint("/v2/"+repo+"/blobs/"+d.String()), "", limit)
	if err != nil {
		return nil, readFailure(what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, readRefusal(resp, what)
	}
	if d.Algorithm().FromBytes(body) != d {
		return nil, fmt.Errorf("%s: %w", what, errDigestMismatch)
	}
	return body, nil
}

// Referrers returns the first page of the upstream's OCI 1.1 referrers
// index of subject in repo, filtered by artifactType if the upstream
// filters. An upstream without the referrers API answers 404, which is
// ErrNotFound like any other.
func (p *Proxy) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]byte, error) {
	if !validName(repo) {
		return nil, fmt.Errorf("repository %q: %w", repo, ErrNotFound)
	}
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("subject digest %q: %w", subject, ErrNotFound)
	}
	what := "read the referrers of " + repo + "@" + subject.String()
	u := p.endpoint("/v2/" + repo + "/referrers/" + subject.String())
	if artifactType != "" {
		u.RawQuery = url.Values{"artifactType": {artifactType}}.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, p.checkTimeout)
	defer cancel()
	resp, body, err := p.readOne(ctx, u, "application/vnd.oci.image.index.v1+json", maxReferrersIndex)
	if err != nil {
		return nil, readFailure(what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, readRefusal(resp, what)
	}
	return body, nil
}

// endpoint is path on the upstream.
func (p *Proxy) endpoint(path string) *url.URL {
	u := *p.base
	u.Path = path
	return &u
}

// readOne sends one GET and, for a 200, reads at most limit bytes of its
// body (more is errTooLarge); other answers come back with their body
// drained and closed. Redirects are followed, at most maxRedirects: on the
// upstream's own origin with the service credentials, elsewhere (object
// storage) without any.
func (p *Proxy) readOne(ctx context.Context, u *url.URL, accept string, limit int64) (*http.Response, []byte, error) {
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		var rt http.RoundTripper = p.raw
		if sameOrigin(u, p.base) {
			rt = p.svc
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return nil, nil, err
		}
		if isRedirect(resp.StatusCode) && hop < maxRedirects && resp.Header.Get("Location") != "" {
			next, err := u.Parse(resp.Header.Get("Location"))
			drain(resp.Body)
			if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
				return nil, nil, fmt.Errorf("redirect to an unusable location")
			}
			u = next
			continue
		}
		if resp.StatusCode != http.StatusOK {
			drain(resp.Body)
			return resp, nil, nil
		}
		body, err := readLimited(resp, limit)
		if err != nil {
			return nil, nil, err
		}
		return resp, body, nil
	}
}

// readLimited reads and closes a body of at most limit bytes.
func readLimited(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, over %d", errTooLarge, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return body, nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// readRefusal maps an answer other than 200 to a read: 404 is ErrNotFound,
// the rest as refusal maps answers to the service credentials.
func readRefusal(resp *http.Response, what string) error {
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return refusal(resp, false, what)
}

// readFailure maps a read that got no usable answer: an answer over its
// size limit is the upstream's fault, anything else (network, timeout)
// makes the upstream unavailable.
func readFailure(what string, err error) error {
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return unavailable(fmt.Errorf("%s: %w", what, err))
}

// truncateForLog shortens an untrusted value put in an error.
func truncateForLog(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
