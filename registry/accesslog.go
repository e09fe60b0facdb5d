package registry

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
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
	b = appendRFC3339Millis(b, t)
	b = append(b, " level=INFO msg=request method="...)
	b = appendTextString(b, e.method)
	b = append(b, " path="...)
	b = appendTextString(b, e.path)
	b = append(b, " route="...)
	b = appendTextString(b, e.route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " duration="...)
	b = append(b, e.duration.String()...)
	b = append(b, " remote="...)
	b = appendTextString(b, e.remote)
	b = append(b, " user_agent="...)
	b = appendTextString(b, e.userAgent)
	b = append(b, " authorization="...)
	b = appendTextString(b, e.authorization)
	return append(b, '\n')
}

// appendRFC3339Millis formats t as slog does: RFC 3339 with exactly three
// fractional digits.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendTextString quotes s when slog's TextHandler would.
func appendTextString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			// What JSON would escape, and space and '='; a backslash
			// alone does not force quotes.
			if c != '\\' && (c < 0x20 || c == ' ' || c == '=' || c == '"') {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
