// Package slogtext appends values exactly as log/slog's TextHandler
// writes them, for hot log records (the access log, audit records) that
// are written without slog's per-record machinery. The callers' tests
// compare their lines with slog's own output.
package slogtext

import (
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// AppendTime formats t as the TextHandler does: RFC 3339 with exactly
// three fractional digits.
func AppendTime(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// AppendString appends s, quoted when the TextHandler would quote it (a
// key or a string value).
func AppendString(b []byte, s string) []byte {
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
