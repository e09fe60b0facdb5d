package registry

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// slogLine is what the slog TextHandler writes for e at t, the format
// the access log had before it bypassed slog.
func slogLine(t time.Time, e accessEntry) []byte {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Time(slog.TimeKey, t)
		}
		return a
	}})
	slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", e.method),
		slog.String("path", e.path),
		slog.String("route", e.route),
		slog.Int("status", e.status),
		slog.Int64("bytes", e.bytes),
		slog.Duration("duration", e.duration),
		slog.String("remote", e.remote),
		slog.String("user_agent", e.userAgent),
		slog.String("authorization", e.authorization),
	)
	return buf.Bytes()
}

var accessStrings = []string{"", "GET", "/extensions/v2/ns/app/signatures/sha256:ab", "a b", "a=b", `q"uote`, `back\slash`,
	"tab\there", "nl\nx", "\x00", "\x7f", "é", "\u00a0", "\u2028", "\xff\xfe", "日本", "Basic [redacted]", "[redacted]", "💥"}

func TestAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 49, 39, 123456789, time.FixedZone("X", 3600))
	for _, s := range accessStrings {
		for _, d := range []time.Duration{0, 1500 * time.Nanosecond, 3 * time.Millisecond, 2 * time.Minute} {
			e := accessEntry{method: s, path: s, route: "signatures.get", remote: s, userAgent: s, authorization: s,
				status: 200, bytes: 1234, duration: d}
			got, want := appendAccessLine(nil, at, e), slogLine(at, e)
			if !bytes.Equal(got, want) {
				t.Errorf("for %q, %v:\n got %s\nwant %s", s, d, got, want)
			}
		}
	}
}

func FuzzAccessLine(f *testing.F) {
	for _, s := range accessStrings {
		f.Add(s, s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, a, b string, n int64) {
		at := time.Unix(0, n).UTC()
		e := accessEntry{method: a, path: b, route: a, remote: b, userAgent: a, authorization: b, status: int(n % 1000), bytes: n, duration: time.Duration(n)}
		if got, want := appendAccessLine(nil, at, e), slogLine(at, e); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}
