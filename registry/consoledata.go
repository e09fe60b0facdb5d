package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/console"
	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// The web console (package console) is mounted under /ui/. It has its own
// login sessions and decides pull access per repository itself, through
// ConsoleUsers, on every page and before any lookup; at this level it is
// an AccessNone route like /healthz. This file is its data source: the
// in-memory repository catalog and console.Registry over distribution's
// storage (over the upstream in proxy mode: consoleupstream.go),
// console.Signatures over the signature store.

// RouteUI names console requests in metrics and the access log.
const RouteUI = "ui"

// ConsoleUsers is what the console needs of the users file; the
// auth.Authorizer implements it. Options.ConsoleUsers is nil without a
// users file.
type ConsoleUsers interface {
	// Login reports whether secret is user's password or API token.
	Login(user, secret string) bool
	// Allows decides access from the grants alone; false for unknown users.
	Allows(user, repository string, access Access) bool
}

// maxCatalog bounds the repository names the console keeps in memory
// (about 60 bytes each). Past it new repositories are left out of the
// console's list, with a warning in the log; the API is unaffected.
const maxCatalog = 250_000

// maxConsoleReferrers bounds the referrers read for one image.
const maxConsoleReferrers = 1000

// consoleUI is the mounted console with its catalog.
type consoleUI struct {
	handler http.Handler
	catalog *repoCatalog
}

func newConsoleUI(ctx context.Context, s *Server, opts Options) (*consoleUI, error) {
	var (
		reg console.Registry
		cat *repoCatalog
	)
	if s.upstream != nil {
		// Proxy mode: the images are upstream (consoleupstream.go); the
		// embedded registry holds nothing and needs no catalog.
		reg = upstreamConsole{proxy: s.upstream.proxy}
	} else {
		cat = newRepoCatalog(maxCatalog, s.log)
		// The walk is finite; a start-up context that ends early must
		// not leave the catalog failed.
		go cat.load(context.WithoutCancel(ctx), s.manifests.ns)
		reg = &consoleRegistry{ns: s.manifests.ns, catalog: cat, referrers: opts.Store}
	}
	var users console.Users
	switch {
	case opts.ConsoleUsers != nil:
		users = consoleUsers{opts.ConsoleUsers}
	case opts.Authorizer != nil:
		// Access control without a user directory: nobody can log in,
		// so the console shows nothing rather than everything.
		users = denyAll{}
	}
	c, err := console.New(console.Options{
		Registry:   reg,
		Signatures: opts.Store,
		Users:      users,
		Logger:     opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &consoleUI{handler: c, catalog: cat}, nil
}

// ServeHTTP serves /ui and everything under /ui/.
func (u *consoleUI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setRouteName(w, RouteUI)
	switch {
	case r.URL.Path == "/ui":
		http.Redirect(w, r, console.Prefix, http.StatusMovedPermanently)
	case len(r.URL.Path) >= len(console.Prefix) && r.URL.Path[:len(console.Prefix)] == console.Prefix:
		u.handler.ServeHTTP(w, r)
	default:
		errcode.Write(w, errcode.NotFound.WithDetail(nil))
	}
}

// observe adds the repository of every manifest PUT answered 201 to the
// catalog. That is the only way a repository comes to exist (distribution
// lists a repository once it has a manifest link, and never removes one),
// so the catalog stays what /v2/_catalog would list, without walking the
// file system per request. Tags, digests and signatures are read live on
// every page, so deletes need no invalidation here. Proxy mode has no
// catalog (the proxy follows the upstream's).
func (u *consoleUI) observe(next http.Handler) http.Handler {
	if u.catalog == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := manifestPutTarget(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusCreated {
			u.catalog.add(name)
		}
	})
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.status == 0 {
		sw.status = code
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(p []byte) (int, error) {
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	return sw.ResponseWriter.Write(p)
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

type consoleUsers struct{ u ConsoleUsers }

func (c consoleUsers) Login(user, secret string) bool { return c.u.Login(user, secret) }
func (c consoleUsers) CanPull(user, repository string) bool {
	return c.u.Allows(user, repository, AccessPull)
}

type denyAll struct{}

func (denyAll) Login(string, string) bool   { return false }
func (denyAll) CanPull(string, string) bool { return false }

// repoCatalog is the sorted set of repository names, loaded once by a
// walk at start-up and then kept current by observe. Readers share an
// immutable sorted snapshot, rebuilt only after a change.
type repoCatalog struct {
	max   int
	log   *slog.Logger
	ready chan struct{}

	mu        sync.Mutex
	names     map[string]struct{}
	sorted    []string // nil after a change
	loadErr   error
	truncated bool
}

func newRepoCatalog(max int, log *slog.Logger) *repoCatalog {
	return &repoCatalog{max: max, log: log, ready: make(chan struct{}), names: map[string]struct{}{}}
}

// load walks the registry's repositories once. Repositories pushed during
// the walk are added by observe meanwhile; the set takes both.
func (c *repoCatalog) load(ctx context.Context, ns distribution.Namespace) {
	defer close(c.ready)
	enum, ok := ns.(distribution.RepositoryEnumerator)
	if !ok {
		c.fail(errors.New("registry storage cannot enumerate repositories"))
		return
	}
	err := enum.Enumerate(ctx, func(name string) error {
		c.add(name)
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		c.fail(fmt.Errorf("walk repositories: %w", err))
	}
}

func (c *repoCatalog) fail(err error) {
	c.log.Error("console: repository catalog", "err", err)
	c.mu.Lock()
	c.loadErr = err
	c.mu.Unlock()
}

func (c *repoCatalog) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.names[name]; ok {
		return
	}
	if len(c.names) >= c.max {
		if !c.truncated {
			c.truncated = true
			c.log.Warn("console: repository catalog full; newer repositories are not listed in the console", "max", c.max)
		}
		return
	}
	c.names[name] = struct{}{}
	c.sorted = nil
}

// snapshot waits for the start-up walk and returns the sorted names.
// The slice is shared: callers must not modify it.
func (c *repoCatalog) snapshot(ctx context.Context) ([]string, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loadErr != nil {
		return nil, c.loadErr
	}
	if c.sorted == nil {
		s := make([]string, 0, len(c.names))
		for n := range c.names {
			s = append(s, n)
		}
		slices.Sort(s)
		c.sorted = s
	}
	return c.sorted, nil
}

func (c *repoCatalog) has(ctx context.Context, name string) (bool, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.names[name]
	return ok, nil
}

// consoleRegistry implements console.Registry over distribution's storage
// and the referrers index. Every read is bounded.
type consoleRegistry struct {
	ns        distribution.Namespace
	catalog   *repoCatalog
	referrers signaturestore.ReferrersIndex
}

var (
	_ console.Registry   = (*consoleRegistry)(nil)
	_ console.Signatures = signaturestore.Store(nil)
)

func notFound(what string) error { return fmt.Errorf("%s: %w", what, cosign.ErrNotFound) }

func (c *consoleRegistry) Repositories(ctx context.Context, keep func(string) bool, offset, limit int) ([]string, int, error) {
	names, err := c.catalog.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	page, total := pageOf(names, keep, offset, limit)
	return page, total, nil
}

// pageOf returns the names keep accepts, skipping offset of them and
// returning at most limit, and how many keep accepts in all.
func pageOf(names []string, keep func(string) bool, offset, limit int) ([]string, int) {
	var page []string
	total := 0
	for _, n := range names {
		if !keep(n) {
			continue
		}
		if total >= offset && len(page) < limit {
			page = append(page, n)
		}
		total++
	}
	return page, total
}

// repository opens a repository the catalog knows.
func (c *consoleRegistry) repository(ctx context.Context, name string) (distribution.Repository, error) {
	ok, err := c.catalog.has(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("repository " + name)
	}
	named, err := reference.WithName(name)
	if err != nil {
		return nil, notFound("repository " + name)
	}
	repo, err := c.ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", name, err)
	}
	return repo, nil
}

func (c *consoleRegistry) Tags(ctx context.Context, name string) ([]string, error) {
	repo, err := c.repository(ctx, name)
	if err != nil {
		return nil, err
	}
	tags, err := repo.Tags(ctx).All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &unknown) {
		// Only untagged manifests (or every tag deleted).
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", name, err)
	}
	return tags, nil
}

func (c *consoleRegistry) TagDigest(ctx context.Context, name, tag string) (digest.Digest, error) {
	repo, err := c.repository(ctx, name)
	if err != nil {
		return "", err
	}
	desc, err := repo.Tags(ctx).Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	if errors.As(err, &unknown) {
		return "", notFound("tag " + name + ":" + tag)
	}
	if err != nil {
		return "", fmt.Errorf("resolve %s:%s: %w", name, tag, err)
	}
	return desc.Digest, nil
}

// Manifest implements cosign.Registry: by digest, or by tag.
func (c *consoleRegistry) Manifest(ctx context.Context, name, ref string) (digest.Digest, []byte, error) {
	dgst, err := digest.Parse(ref)
	if err != nil {
		if dgst, err = c.TagDigest(ctx, name, ref); err != nil {
			return "", nil, err
		}
	}
	repo, err := c.repository(ctx, name)
	if err != nil {
		return "", nil, err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("open manifests of %s: %w", name, err)
	}
	m, err := ms.Get(ctx, dgst)
	var unknown distribution.ErrManifestUnknownRevision
	if errors.As(err, &unknown) || errors.Is(err, distribution.ErrBlobUnknown) {
		return "", nil, notFound("manifest " + name + "@" + dgst.String())
	}
	if err != nil {
		return "", nil, fmt.Errorf("read manifest %s@%s: %w", name, dgst, err)
	}
	_, body, err := m.Payload()
	if err != nil {
		return "", nil, fmt.Errorf("read manifest %s@%s: %w", name, dgst, err)
	}
	if len(body) > maxManifestBytes {
		return "", nil, fmt.Errorf("manifest %s@%s is over %d bytes", name, dgst, maxManifestBytes)
	}
	return digest.FromBytes(body), body, nil
}

// Blob implements cosign.Registry: at most limit bytes, digest checked.
func (c *consoleRegistry) Blob(ctx context.Context, name string, d digest.Digest, limit int64) ([]byte, error) {
	repo, err := c.repository(ctx, name)
	if err != nil {
		return nil, err
	}
	blobs := repo.Blobs(ctx)
	desc, err := blobs.Stat(ctx, d)
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return nil, notFound("blob " + d.String())
	}
	if err != nil {
		return nil, fmt.Errorf("stat blob %s in %s: %w", d, name, err)
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, over %d", d, desc.Size, limit)
	}
	b, err := blobs.Get(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("read blob %s in %s: %w", d, name, err)
	}
	if int64(len(b)) > limit || digest.FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s in %s does not match its digest", d, name)
	}
	return b, nil
}

// newReferrersIndex is an empty referrers index.
func newReferrersIndex() referrersIndex {
	return referrersIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []signaturestore.Descriptor{}}
}

// Referrers implements cosign.Registry from the referrers index.
func (c *consoleRegistry) Referrers(ctx context.Context, name string, subject digest.Digest, artifactType string) ([]byte, error) {
	descs, err := c.referrers.Referrers(ctx, name, subject, "", maxConsoleReferrers)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %w", name, subject, err)
	}
	index := newReferrersIndex()
	for _, d := range descs {
		if artifactType == "" || d.ArtifactType == artifactType {
			index.Manifests = append(index.Manifests, d)
		}
	}
	return json.Marshal(index)
}
