package extensions

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/internal/slogtext"
	"github.com/signet-registry/signet/signaturestore"
)

// AuditLog records who changed what: event, user, repository, digest and
// whatever the caller adds, as a record "audit" with log=audit, apart
// from the access log so it can be shipped on its own. Records are
// written before the change is acknowledged, never buffered.
type AuditLog struct {
	// Logger receives the records; nil discards them.
	Logger *slog.Logger
	// Text, when set, receives each record as the exact line that
	// Logger.With("log", "audit") over a slog TextHandler would write
	// (audit_test.go compares them), in one Write, without slog's
	// per-record cost: a fifteenth of a signature PUT. Set it only where
	// the log is text and lets INFO through. Records with an attribute
	// of another kind than string, bool or integer go through Logger.
	Text io.Writer
	// pool holds line buffers for Text.
	pool *sync.Pool
}

// NewAuditLog returns an AuditLog (see its fields).
func NewAuditLog(logger *slog.Logger, text io.Writer) AuditLog {
	a := AuditLog{Logger: logger, Text: text}
	if text != nil {
		a.pool = &sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	}
	return a
}

// Record writes one audit record for a request.
func (a AuditLog) Record(r *http.Request, event string, key signaturestore.ImageKey, attrs ...slog.Attr) {
	user := reqctx.User(r.Context())
	if a.Text != nil && a.pool != nil && textKinds(attrs) {
		bp := a.pool.Get().(*[]byte)
		b := appendAuditLine((*bp)[:0], time.Now(), event, user, key, r.RemoteAddr, attrs)
		_, _ = a.Text.Write(b)
		*bp = b
		a.pool.Put(bp)
		return
	}
	if a.Logger == nil {
		return
	}
	base := []slog.Attr{
		slog.String("event", event),
		slog.String("user", user),
		slog.String("repository", key.Repository),
		slog.String("digest", key.Digest.String()),
		slog.String("remote", r.RemoteAddr),
	}
	a.Logger.LogAttrs(r.Context(), slog.LevelInfo, "audit", append(base, attrs...)...)
}

// textKinds reports whether appendAuditLine can write every attribute.
func textKinds(attrs []slog.Attr) bool {
	for _, a := range attrs {
		switch a.Value.Kind() {
		case slog.KindString, slog.KindBool, slog.KindInt64:
		default:
			return false
		}
	}
	return true
}

func appendAuditLine(b []byte, t time.Time, event, user string, key signaturestore.ImageKey, remote string, attrs []slog.Attr) []byte {
	b = append(b, "time="...)
	b = slogtext.AppendTime(b, t)
	b = append(b, " level=INFO msg=audit log=audit event="...)
	b = slogtext.AppendString(b, event)
	b = append(b, " user="...)
	b = slogtext.AppendString(b, user)
	b = append(b, " repository="...)
	b = slogtext.AppendString(b, key.Repository)
	b = append(b, " digest="...)
	b = slogtext.AppendString(b, key.Digest.String())
	b = append(b, " remote="...)
	b = slogtext.AppendString(b, remote)
	for _, a := range attrs {
		b = append(b, ' ')
		b = slogtext.AppendString(b, a.Key)
		b = append(b, '=')
		switch a.Value.Kind() {
		case slog.KindString:
			b = slogtext.AppendString(b, a.Value.String())
		case slog.KindBool:
			b = strconv.AppendBool(b, a.Value.Bool())
		case slog.KindInt64:
			b = strconv.AppendInt(b, a.Value.Int64(), 10)
		}
	}
	return append(b, '\n')
}
