package registry

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// SupportsSignaturesHeader tells containers/image clients to use the
// signature extension API. They read it only from the /v2/ ping, including
// an unauthenticated 401, so it is set before anything can fail (SPEC §1).
const SupportsSignaturesHeader = "X-Registry-Supports-Signatures"

// recorder captures the status and size of a response for the access log
// and metrics. Unwrap lets http.ResponseController reach the connection.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// route is the matched route's name (setRouteName).
	route string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom passes src on to the connection's ReadFrom (readFrom), and
// counts it.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := readFrom(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

var _ io.ReaderFrom = (*recorder)(nil)

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.status == 0 {
			r.status = http.StatusOK
		}
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeOf classifies a request for metrics and logs without a second
// routing pass: named routes set it, /v2/ is classified by path shape.
func routeOf(path string) string {
	if !strings.HasPrefix(path, "/v2/") && path != "/v2" {
		return "other"
	}
	switch rest := path[len("/v2"):]; {
	case rest == "" || rest == "/":
		return "v2.base"
	case rest == "/_catalog":
		return "v2.catalog"
	case strings.Contains(rest, "/blobs/uploads"):
		return "v2.blob_upload"
	case strings.Contains(rest, "/blobs/"):
		return "v2.blob"
	case strings.Contains(rest, "/manifests/"):
		return "v2.manifest"
	case strings.HasSuffix(rest, "/tags/list"):
		return "v2.tags"
	}
	return "v2.other"
}

// redactAuthorization keeps the scheme of an Authorization header and
// drops the credential, so logs never hold passwords or tokens.
func redactAuthorization(h string) string {
	if h == "" {
		return ""
	}
	scheme, _, found := strings.Cut(h, " ")
	if !found || len(scheme) > 16 {
		// Not "<scheme> <credential>": the whole value may be secret.
		return "[redacted]"
	}
	return scheme + " [redacted]"
}

// instrument is the outermost middleware: capability header, access log
// and metrics.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Assigned, not Set: one shared value slice, never modified.
		w.Header()[SupportsSignaturesHeader] = s.supportsSignatures
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		name := rec.route
		if name == "" {
			name = routeOf(r.URL.Path)
		}
		s.metrics.observeRequest(name, r.Method, rec.status, elapsed)
		if s.accessLog && s.accessText != nil {
			s.accessText.log(start.Add(elapsed), accessEntry{
				method: r.Method, path: r.URL.Path, route: name, status: rec.status, bytes: rec.bytes,
				duration: elapsed, remote: r.RemoteAddr, userAgent: r.UserAgent(),
				authorization: redactAuthorization(r.Header.Get("Authorization")),
			})
		} else if s.accessLog {
			s.accessLogger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", name),
				slog.Int("status", rec.status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", elapsed),
				slog.String("remote", r.RemoteAddr),
				slog.String("user_agent", r.UserAgent()),
				slog.String("authorization", redactAuthorization(r.Header.Get("Authorization"))),
			)
		}
	})
}

// canonicalPath reports whether a request path is in canonical form: no
// empty, "." or ".." segments, after decoding (so %2e%2e and %2f count).
// Routers would otherwise "clean" such paths into a redirect to another
// repository (CVE-2024-3727 class); Signet refuses them instead.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	rest := strings.TrimSuffix(p[1:], "/")
	if rest == "" {
		return true
	}
	// strings.SplitSeq: no slice allocated on every request.
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
