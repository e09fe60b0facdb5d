package registry

import (
	"bytes"
	"io"
	"net/http"
	"syscall"

	"github.com/signet-registry/signet/registry/errcode"
)

// maxHeldErrorBody bounds how much of a 5xx body is held back to be read.
const maxHeldErrorBody = 64 << 10

// storageFull turns the embedded app's 500 for a full disk into 507
// STORAGE_FULL. distribution reports every storage error as UNKNOWN/500
// and names the cause only in the error detail, which carries the error
// text ("write …/data: no space left on device"). Signature writes never
// get here: the store maps ENOSPC itself, and extensions.APIError sends
// it as STORAGE_FULL.
func (s *Server) storageFull(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &fullWriter{ResponseWriter: w}
		next.ServeHTTP(fw, r)
		if fw.finish() {
			s.log.ErrorContext(r.Context(), "registry storage full", "method", r.Method, "path", r.URL.Path)
		}
	})
}

// fullWriter holds back a 5xx answer until the handler is done, so that
// its body can be inspected. Other answers pass straight through.
type fullWriter struct {
	http.ResponseWriter
	status int // a held 5xx status; 0 while passing through
	wrote  bool
	held   bytes.Buffer
}

func (f *fullWriter) WriteHeader(code int) {
	if f.wrote || f.status != 0 {
		return
	}
	if code >= 500 {
		f.status = code
		return
	}
	f.wrote = true
	f.ResponseWriter.WriteHeader(code)
}

func (f *fullWriter) Write(p []byte) (int, error) {
	if f.status == 0 {
		f.wrote = true
		return f.ResponseWriter.Write(p)
	}
	if f.held.Len()+len(p) > maxHeldErrorBody {
		// Not an error envelope we know; stop holding.
		f.release()
		return f.ResponseWriter.Write(p)
	}
	return f.held.Write(p)
}

// ReadFrom passes a body through to the writer's ReadFrom (readFrom);
// one held back goes through Write.
func (f *fullWriter) ReadFrom(src io.Reader) (int64, error) {
	if f.status != 0 {
		return io.Copy(writeOnly{f}, src)
	}
	f.wrote = true
	return readFrom(f.ResponseWriter, src)
}

var _ io.ReaderFrom = (*fullWriter)(nil)

// release sends the held status and body as they were.
func (f *fullWriter) release() {
	status := f.status
	f.status = 0
	f.wrote = true
	f.ResponseWriter.WriteHeader(status)
	_, _ = f.ResponseWriter.Write(f.held.Bytes())
	f.held.Reset()
}

// finish sends what is held, as STORAGE_FULL when the body names a full
// disk, and reports whether it did.
func (f *fullWriter) finish() bool {
	if f.status == 0 {
		return false
	}
	if !bytesNameNoSpace(f.held.Bytes()) {
		f.release()
		return false
	}
	h := f.ResponseWriter.Header()
	for k := range h {
		if k != SupportsSignaturesHeader && k != "Docker-Distribution-Api-Version" {
			delete(h, k)
		}
	}
	f.status = 0
	f.wrote = true
	errcode.Write(f.ResponseWriter, errcode.StorageFull.WithDetail(nil))
	return true
}

func (f *fullWriter) Flush() {
	if f.status != 0 {
		// Flushing commits the status: it can no longer be replaced.
		f.release()
	}
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (f *fullWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// bytesNameNoSpace reports whether an error body carries the text of
// ENOSPC or EDQUOT, as Go's syscall package spells them.
func bytesNameNoSpace(body []byte) bool {
	return bytes.Contains(body, []byte(syscall.ENOSPC.Error())) || bytes.Contains(body, []byte(syscall.EDQUOT.Error()))
}
