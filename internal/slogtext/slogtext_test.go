package slogtext

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// slogLine is what slog's TextHandler writes for a record at t with one
// string attribute key=value, and nothing else.
func slogLine(t *testing.T, at time.Time, key, value string) string {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}})
	r := slog.NewRecord(at, slog.LevelInfo, "", 0)
	r.AddAttrs(slog.String(key, value))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// ourLine is the same line written with this package.
func ourLine(at time.Time, key, value string) string {
	b := append([]byte("time="), AppendTime(nil, at)...)
	b = append(AppendString(append(b, ' '), key), '=')
	return string(append(AppendString(b, value), '\n'))
}

var samples = []string{
	"", "plain", "with space", "a=b", `quote"d`, `back\slash`, "tab\tx", "nl\nx", "\x00",
	"\x7f", "é", "日本", "\u00a0nbsp", "\u2028", "\u200b", "\xff", "a\xffb", "emoji😀", "-", "=", " ",
	"sha256:0123456789abcdef@ffff", "/extensions/v2/ns/app/signatures/sha256:00",
}

// TestMatchesSlog: keys and string values, quoted or not, and record
// times are written byte for byte as slog's TextHandler writes them.
func TestMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 4, 5, 123456789, time.UTC)
	for _, s := range samples {
		if got, want := ourLine(at, "k", s), slogLine(t, at, "k", s); got != want {
			t.Errorf("value %q:\n got %s\nwant %s", s, got, want)
		}
		if s == "" {
			continue // slog drops an attribute with an empty key
		}
		if got, want := ourLine(at, s, "v"), slogLine(t, at, s, "v"); got != want {
			t.Errorf("key %q:\n got %s\nwant %s", s, got, want)
		}
	}
	east := time.FixedZone("east", 5*3600+30*60)
	for _, tm := range []time.Time{
		at,
		at.Truncate(time.Second),      // no fraction: still three digits
		at.Truncate(time.Millisecond), // exact milliseconds
		time.Date(2026, 1, 1, 0, 0, 0, 999_999_999, time.UTC), // not rounded up to the next second
		at.In(east),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		if got, want := ourLine(tm, "k", "v"), slogLine(t, tm, "k", "v"); got != want {
			t.Errorf("time %v:\n got %s\nwant %s", tm, got, want)
		}
	}
}

// FuzzAppendString holds AppendString to slog for any key and value.
func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	at := time.Unix(1, 2)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ourLine(at, "k", s), slogLine(t, at, "k", s); got != want {
			t.Fatalf("value %q:\n got %s\nwant %s", s, got, want)
		}
		if s == "" {
			return
		}
		if got, want := ourLine(at, s, "v"), slogLine(t, at, s, "v"); got != want {
			t.Fatalf("key %q:\n got %s\nwant %s", s, got, want)
		}
	})
}
