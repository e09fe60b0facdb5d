package registry

import (
	"errors"
	"io"
	"net/http"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/gorilla/mux"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/registry/errcode"
)

// v2Need is what one /v2/ request needs: the repository it acts on, the
// access, and for a cross-repository blob mount the repository it reads
// from.
type v2Need struct {
	route      string
	repository string
	access     Access
	mountFrom  string
	// base is the /v2/ ping: authentication only.
	base bool
}

// v2Needs classifies a /v2/ request with distribution's own route table,
// so the repository name is parsed exactly as the embedded app parses it.
func (s *Server) v2Needs(r *http.Request) v2Need {
	if need, ok := fastV2Need(r); ok {
		return need
	}
	var match mux.RouteMatch
	if !s.v2routes.Match(r, &match) || match.Route == nil {
		// Unknown path or method: the app answers 404/405, which says
		// nothing about any repository, but only to known callers.
		return v2Need{route: "v2.other", base: true}
	}
	name := match.Route.GetName()
	need := v2Need{route: "v2." + name, repository: match.Vars["name"], access: AccessPull}
	switch name {
	case v2.RouteNameBase:
		need.base = true
		return need
	case v2.RouteNameCatalog:
		// Listing every repository needs read access to all of them.
		need.repository = ""
		return need
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		need.access = AccessPush
	}
	if name == v2.RouteNameBlobUpload && r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
		// Mounting copies a blob out of another repository: the caller
		// must be able to read that one too.
		need.mountFrom = r.URL.Query().Get("from")
	}
	return need
}

// guardV2 decides access to the embedded registry before it runs, and
// bounds upload bodies.
func (s *Server) guardV2(next http.Handler) http.Handler {
	next = s.storageFull(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := s.v2Needs(r)
		setRouteName(w, need.route)
		// In passthrough mode the upstream decides /v2/ itself.
		if s.auth != nil && !s.upstream.isPassthrough() {
			if need.base {
				// Container clients send credentials only after a 401
				// on the ping, so the ping refuses anonymous callers
				// even where anonymous pulls are granted.
				user, ok := s.auth.Authenticate(r)
				if !ok {
					s.refuse(w, errcode.Unauthorized.WithDetail(nil))
					return
				}
				r = r.WithContext(reqctx.WithUser(r.Context(), user))
			} else {
				var ok bool
				if r, ok = s.authorize(w, r, need.repository, need.access); !ok {
					return
				}
				if need.mountFrom != "" {
					if _, ok = s.authorize(w, r, need.mountFrom, AccessPull); !ok {
						return
					}
				}
			}
		}
		if r.ContentLength > s.maxUpload {
			errcode.Write(w, errcode.RequestTooLarge.WithMessage("request body over %d bytes", s.maxUpload))
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &cappedBody{ReadCloser: r.Body, remaining: s.maxUpload}
		r.Body = body
		next.ServeHTTP(&capWriter{ResponseWriter: w, body: body, limit: s.maxUpload}, r)
	})
}

// cappedBody fails reads past the upload limit and remembers that it did.
type cappedBody struct {
	io.ReadCloser
	remaining int64
	tripped   bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		// Probe for one more byte: only a body that really goes on
		// is over the limit.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			b.tripped = true
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.ReadCloser.Read(p)
	b.remaining -= int64(n)
	return n, err
}

var errBodyTooLarge = errors.New("request body too large")

// capWriter turns the embedded app's 5xx for a body cut off at the limit
// into the 413 it really is: distribution reports any read error as
// UNKNOWN/500.
type capWriter struct {
	http.ResponseWriter
	body     *cappedBody
	limit    int64
	replaced bool
}

func (c *capWriter) WriteHeader(code int) {
	if code >= 500 && c.body.tripped {
		c.replaced = true
		h := c.ResponseWriter.Header()
		for k := range h {
			if k != SupportsSignaturesHeader && k != "Docker-Distribution-Api-Version" {
				delete(h, k)
			}
		}
		errcode.Write(c.ResponseWriter, errcode.RequestTooLarge.WithMessage("request body over %d bytes", c.limit))
		return
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.replaced {
		return len(p), nil
	}
	return c.ResponseWriter.Write(p)
}

// ReadFrom passes a body through to the writer's ReadFrom (readFrom),
// and swallows it as Write does once replaced.
func (c *capWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.replaced {
		return io.Copy(io.Discard, src)
	}
	return readFrom(c.ResponseWriter, src)
}

var _ io.ReaderFrom = (*capWriter)(nil)

func (c *capWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// limitInFlight bounds concurrent requests; past the bound it answers 429
// with Retry-After rather than queueing without limit. Health checks are
// exempt so that an overloaded server still reports itself alive.
func (s *Server) limitInFlight(n int, next http.Handler) http.Handler {
	sem := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			errcode.Write(w, errcode.TooManyRequests.WithDetail(nil))
		}
	})
}
