package registry

import (
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/signet-registry/signet/internal/slogtext"
)

// accessEntry is one access log record.
type accessEntry struct {
	method, path, route, remote, userAgent, authorization string
	status                                                int
	bytes                                                 int64
	duration                                              time.Duration
}

// textAccessLog writes access log lines exactly as slog's TextHandler
// would write them (accesslog_test.go compares the two), without slog's
// per-record machinery, which was most of the cost of a cached GET.
type textAccessLog struct {
	w    io.Writer
	pool sync.Pool
}

func newTextAccessLog(w io.Writer) *textAccessLog {
	return &textAccessLog{w: w, pool: sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}}
}

func (l *textAccessLog) log(t time.Time, e accessEntry) {
	bp := l.pool.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], t, e)
	_, _ = l.w.Write(b)
	*bp = b
	l.pool.Put(bp)
}

func appendAccessLine(b []byte, t time.Time, e accessEntry) []byte {
	b = append(b, "time="...)
	b = slogtext.AppendTime(b, t)
	b = append(b, " level=INFO msg=request method="...)
	b = slogtext.AppendString(b, e.method)
	b = append(b, " path="...)
	b = slogtext.AppendString(b, e.path)
	b = append(b, " route="...)
	b = slogtext.AppendString(b, e.route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " duration="...)
	b = append(b, e.duration.String()...)
	b = append(b, " remote="...)
	b = slogtext.AppendString(b, e.remote)
	b = append(b, " user_agent="...)
	b = slogtext.AppendString(b, e.userAgent)
	b = append(b, " authorization="...)
	b = slogtext.AppendString(b, e.authorization)
	return append(b, '\n')
}
