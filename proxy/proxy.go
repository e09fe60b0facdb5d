package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/registry/errcode"
)

// Config configures a Proxy.
type Config struct {
	// URL is the upstream registry: http:// or https://, a host and an
	// optional port, no path (the distribution API lives at /v2/).
	URL string
	// CAFile adds PEM certificates to the system roots for the upstream's
	// TLS certificate. InsecureSkipVerify turns verification off.
	CAFile             string
	InsecureSkipVerify bool
	// Username and Password are the service credentials Signet's own
	// requests use; empty means anonymous.
	Username string
	Password string
	// Passthrough forwards each client's Authorization header and passes
	// the upstream's 401 challenges back unchanged. Otherwise forwarded
	// requests carry the service credentials and a 401 from the upstream
	// becomes a 502.
	Passthrough bool
	// ConnectTimeout bounds dialing and the TLS handshake;
	// ResponseHeaderTimeout bounds the wait for response headers once a
	// request is sent. Bodies have no time limit: a blob streams for as
	// long as it takes.
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	// CheckTimeout bounds each of Signet's own requests (existence and
	// permission checks, readiness).
	CheckTimeout time.Duration
	// CacheTTL is how long existence answers, passthrough pull grants and
	// cached manifests are kept; 0 caches nothing.
	CacheTTL time.Duration
	// CacheEntries bounds the existence and pull-grant caches (each).
	CacheEntries int
	// ManifestCacheBytes bounds the manifest cache; 0 turns it off.
	ManifestCacheBytes int64
	Logger             *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Proxy forwards /v2/ to the upstream and answers Signet's questions
// about it. Safe for concurrent use.
type Proxy struct {
	base         *url.URL
	raw          *http.Transport
	svc          *serviceAuth
	passthrough  bool
	rp           *httputil.ReverseProxy
	cls          *classifier
	ttl          time.Duration
	checkTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time

	exist     *lru[imageKey, bool]
	pulls     *lru[pullKey, struct{}]
	manifests *lru[imageKey, *cachedManifest]
	// filling counts the bytes of manifest copies being taken for the
	// cache, bounded by maxFilling.
	filling atomic.Int64

	healthMu  sync.Mutex
	healthAt  time.Time
	healthErr error

	// catalog is the upstream's repository list (reads.go).
	catalog catalogCache
}

type imageKey struct {
	repo string
	dgst digest.Digest
}

// pullKey is one set of client credentials (hashed, never kept in clear)
// on one repository.
type pullKey struct {
	cred [sha256.Size]byte
	repo string
}

type cachedManifest struct {
	contentType string
	body        []byte
}

const (
	supportsSignaturesHeader = "X-Registry-Supports-Signatures"
	// maxCachedManifest is distribution's own manifest size limit.
	maxCachedManifest = 4 << 20
	// maxFilling bounds the manifest copies being taken at once, so
	// concurrent large manifest GETs cannot double their memory without
	// limit; past it a manifest is served but not cached.
	maxFilling = 16 << 20
	// manifestEntryOverhead is charged per cached manifest on top of its
	// body, so many tiny manifests cannot hide behind their byte count.
	manifestEntryOverhead = 256
	// healthTTL spaces out the readiness pings.
	healthTTL = time.Second
	// copyBuffer is the reverse proxy's copy size.
	copyBuffer = 128 << 10
	// statusClientClosed is recorded when the client left before the
	// upstream answered (nginx's 499); nobody reads that answer.
	statusClientClosed = 499
)

// manifestAccept is every manifest media type, sent with existence checks
// so that no registry refuses one for content negotiation.
var manifestAccept = strings.Join(manifestTypes, ", ")

// manifestTypes are the media types a manifest is served with.
var manifestTypes = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
}

// New validates cfg and builds the proxy. It does not contact the
// upstream: Signet starts while the upstream is down and reports it
// through readiness.
func New(cfg Config) (*Proxy, error) {
	base, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout <= 0 || cfg.ResponseHeaderTimeout <= 0 || cfg.CheckTimeout <= 0 {
		return nil, errors.New("proxy: connect, response header and check timeouts must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tlsCfg, err := tlsConfig(cfg.CAFile, cfg.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	raw := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		// Blobs pass through byte for byte: no transparent gzip.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
		ReadBufferSize:     64 << 10,
		WriteBufferSize:    64 << 10,
	}
	cls, err := newClassifier()
	if err != nil {
		return nil, err
	}
	entries := int64(max(cfg.CacheEntries, 0))
	p := &Proxy{
		base:         base,
		raw:          raw,
		passthrough:  cfg.Passthrough,
		cls:          cls,
		ttl:          cfg.CacheTTL,
		checkTimeout: cfg.CheckTimeout,
		log:          cfg.Logger,
		now:          cfg.Now,
		exist:        newLRU[imageKey, bool](entries, cfg.Now),
		pulls:        newLRU[pullKey, struct{}](entries, cfg.Now),
		manifests:    newLRU[imageKey, *cachedManifest](cfg.ManifestCacheBytes, cfg.Now),
	}
	p.svc = newServiceAuth(base, raw, cfg.Username, cfg.Password, cfg.CheckTimeout, cls)
	var forward http.RoundTripper = p.svc
	if p.passthrough {
		forward = raw
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      forward,
		FlushInterval:  -1,
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.fail,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// ParseURL checks an upstream URL: http or https, a host, no user info,
// path, query or fragment.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream URL %q: scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("upstream URL %q: no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("upstream URL %q: put credentials in username and passwordFile, not the URL", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("upstream URL %q: must not have a path, query or fragment (the registry API lives at /v2/)", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func tlsConfig(caFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // an explicit, documented setting
	if caFile == "" {
		return cfg, nil
	}
	f, err := os.Open(caFile)
	if err != nil {
		return nil, fmt.Errorf("upstream CA file: %w", err)
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("upstream CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream CA file %s: no PEM certificates", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Close releases idle upstream connections.
func (p *Proxy) Close() { p.raw.CloseIdleConnections() }

type targetKey struct{}

// ServeHTTP forwards one /v2/ request (or serves a manifest by digest from
// the cache). Access has been decided before it runs, by Signet in signet
// mode and by the upstream itself in passthrough mode.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := p.cls.classify(r)
	if p.serveCached(w, r, t) {
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.base)
	if !p.passthrough {
		// Signet decided access with these; the upstream gets the
		// service credentials instead (serviceAuth).
		pr.Out.Header.Del("Authorization")
		pr.Out.Header.Del("Cookie")
	}
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Forwarded-For", ip)
	}
}

// errServiceRefused: in signet mode the upstream answered 401 to the
// service credentials. Its challenge names the upstream's realm, which
// means nothing to Signet's clients, so it must not reach them.
var errServiceRefused = errors.New("the upstream registry refused Signet's service credentials")

func (p *Proxy) modifyResponse(resp *http.Response) error {
	h := resp.Header
	// Signet sets its own; never send the header twice.
	h.Del(supportsSignaturesHeader)
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", p.localize(loc))
	}
	if links := h.Values("Link"); len(links) > 0 {
		out := make([]string, len(links))
		for i, l := range links {
			out[i] = p.localizeLink(l)
		}
		h["Link"] = out
	}
	if resp.StatusCode == http.StatusUnauthorized && !p.passthrough {
		return errServiceRefused
	}
	t, _ := resp.Request.Context().Value(targetKey{}).(target)
	p.observe(resp, t)
	return nil
}

// localize turns an absolute URL on the upstream's own origin into a
// path-absolute reference (/v2/...?...). Clients resolve it against the
// address they used, so it points at Signet however Signet is reached
// (directly, behind a load balancer or a TLS terminator). Other URLs, such
// as a storage redirect, are left alone.
func (p *Proxy) localize(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || !sameOrigin(u, p.base) {
		return raw
	}
	out := (&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, Fragment: u.Fragment}).String()
	if !strings.HasPrefix(out, "/") {
		out = "/" + out
	}
	return out
}

// localizeLink localizes every <URI-Reference> of an RFC 8288 Link value.
func (p *Proxy) localizeLink(v string) string {
	refs, text := linkRefs(v)
	var b strings.Builder
	for i, ref := range refs {
		b.WriteString(text[i])
		b.WriteByte('<')
		b.WriteString(p.localize(ref))
		b.WriteByte('>')
	}
	b.WriteString(text[len(refs)])
	return b.String()
}

// linkRefs splits an RFC 8288 Link value into its <URI-Reference>s and
// the text around them: text[i] comes before refs[i], and the last text
// after the last reference (with any unterminated '<').
func linkRefs(v string) (refs, text []string) {
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		text = append(text, v[:i])
		refs = append(refs, v[i+1:i+j])
		v = v[i+j+1:]
	}
	return refs, append(text, v)
}

// sameOrigin compares scheme, host and port, with default ports filled in.
func sameOrigin(u, base *url.URL) bool {
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Hostname(), base.Hostname()) {
		return false
	}
	return portOf(u) == portOf(base)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// fail answers a request the upstream did not answer.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errServiceRefused):
		p.log.ErrorContext(r.Context(), "upstream refused the service credentials; check registry.upstream.username and passwordFile",
			"method", r.Method, "path", r.URL.Path)
		errcode.Write(w, errcode.BadGateway.WithMessage("the upstream registry refused Signet's service credentials"))
	case r.Context().Err() != nil:
		w.WriteHeader(statusClientClosed)
	default:
		p.log.WarnContext(r.Context(), "upstream request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg := "the upstream registry is unreachable"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			msg = "the upstream registry did not answer in time"
		}
		errcode.Write(w, errcode.BadGateway.WithMessage("%s", msg))
	}
}

// observe learns from an upstream answer: manifests that exist or were
// deleted, pull grants (passthrough), and manifest bodies to cache.
func (p *Proxy) observe(resp *http.Response, t target) {
	req := resp.Request
	method, status := req.Method, resp.StatusCode
	read := method == http.MethodGet || method == http.MethodHead
	if p.passthrough && read && status >= 200 && status < 300 && t.repo != "" {
		p.pulls.add(pullKey{credKey(req.Header.Get("Authorization")), t.repo}, struct{}{}, 1, p.ttl)
	}
	if t.route != v2.RouteNameManifest {
		return
	}
	ref, refErr := digest.Parse(t.ref)
	switch {
	case method == http.MethodPut && status == http.StatusCreated:
		if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
			p.exist.add(imageKey{t.repo, d}, true, 1, p.ttl)
		}
		p.catalog.saw(t.repo)
	case method == http.MethodDelete && status == http.StatusAccepted && refErr == nil:
		p.markGone(t.repo, ref)
	case read && status == http.StatusOK && refErr == nil:
		p.exist.add(imageKey{t.repo, ref}, true, 1, p.ttl)
	case read && status == http.StatusNotFound && refErr == nil && !p.passthrough:
		// With the service credentials a 404 is the upstream's word;
		// in passthrough mode it may only mean "not for you".
		p.markGone(t.repo, ref)
	}
	if method != http.MethodGet || status != http.StatusOK || p.ttl <= 0 ||
		resp.ContentLength <= 0 || resp.ContentLength > maxCachedManifest {
		return
	}
	ct := resp.Header.Get("Content-Type")
	if !isManifestType(mediaType(ct)) {
		return
	}
	want := ref
	if refErr != nil {
		// By tag: cache under the digest the upstream names, once the
		// body is seen to hash to it.
		d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
		if err != nil {
			return
		}
		want = d
	}
	if want.Algorithm() != digest.SHA256 {
		return
	}
	if p.filling.Add(resp.ContentLength) > maxFilling {
		p.filling.Add(-resp.ContentLength)
		return
	}
	key := imageKey{t.repo, want}
	resp.Body = &fillBody{ReadCloser: resp.Body, buf: make([]byte, 0, resp.ContentLength), size: resp.ContentLength,
		done: func(b []byte) {
			if digest.FromBytes(b) != want {
				return
			}
			p.manifests.add(key, &cachedManifest{contentType: ct, body: b}, int64(len(b))+manifestEntryOverhead, p.ttl)
		},
		release: func() { p.filling.Add(-resp.ContentLength) },
	}
}

// markGone records that the upstream no longer holds a manifest.
func (p *Proxy) markGone(repo string, d digest.Digest) {
	p.exist.add(imageKey{repo, d}, false, 1, p.ttl)
	p.manifests.remove(imageKey{repo, d})
}

// fillBody keeps a copy of a manifest body as it streams to the client
// and hands it over once the whole declared length has been read.
type fillBody struct {
	io.ReadCloser
	buf     []byte
	size    int64
	done    func([]byte)
	release func()
	over    bool
	closed  bool
}

// Close releases the copy's share of the fill budget.
func (f *fillBody) Close() error {
	if !f.closed {
		f.closed = true
		f.buf = nil
		f.release()
	}
	return f.ReadCloser.Close()
}

func (f *fillBody) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if !f.over {
		if int64(len(f.buf)+n) > f.size {
			f.over, f.buf = true, nil
		} else {
			f.buf = append(f.buf, p[:n]...)
		}
	}
	if errors.Is(err, io.EOF) && !f.over && int64(len(f.buf)) == f.size {
		f.done(f.buf)
		f.over, f.buf = true, nil
	}
	return n, err
}

// serveCached answers GET or HEAD of a manifest by digest from the cache.
// A manifest's bytes never change under its digest; only its deletion
// does, which is why entries expire.
func (p *Proxy) serveCached(w http.ResponseWriter, r *http.Request, t target) bool {
	if t.route != v2.RouteNameManifest || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	d, err := digest.Parse(t.ref)
	if err != nil {
		return false
	}
	if p.passthrough {
		// Only credentials the upstream itself accepted for this
		// repository may read from the cache.
		if _, ok := p.pulls.get(pullKey{credKey(r.Header.Get("Authorization")), t.repo}); !ok {
			return false
		}
	}
	m, ok := p.manifests.get(imageKey{t.repo, d})
	if !ok || !accepts(r.Header.Values("Accept"), mediaType(m.contentType)) {
		return false
	}
	h := w.Header()
	etag := `"` + d.String() + `"`
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", etag)
	h.Set("Content-Type", m.contentType)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	h.Set("Content-Length", strconv.Itoa(len(m.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.body)
	}
	return true
}

// accepts reports whether the Accept header values name mediaType exactly.
func accepts(values []string, mt string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if mediaType(part) == mt {
				return true
			}
		}
	}
	return false
}

func mediaType(v string) string {
	mt, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func isManifestType(mt string) bool {
	for _, t := range manifestTypes {
		if t == mt {
			return true
		}
	}
	return false
}

func credKey(authorization string) [sha256.Size]byte {
	return sha256.Sum256([]byte(authorization))
}

// bufferPool recycles the reverse proxy's copy buffers.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBuffer)
		return &b
	}}}
}

func (b *bufferPool) Get() []byte { return *(b.pool.Get().(*[]byte)) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBuffer {
		buf = buf[:copyBuffer]
		b.pool.Put(&buf)
	}
}
