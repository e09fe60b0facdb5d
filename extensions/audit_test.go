package extensions

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/signaturestore"
)

// slogAudit is what the audit logger, Logger.With("log", "audit") over a
// TextHandler, writes for the record at t.
func slogAudit(t time.Time, event, user string, key signaturestore.ImageKey, remote string, attrs []slog.Attr) []byte {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Time(slog.TimeKey, t)
		}
		return a
	}})
	l := NewAuditLog(slog.New(h).With("log", "audit"), nil)
	r := httptest.NewRequest("PUT", "/", nil)
	r.RemoteAddr = remote
	r = r.WithContext(reqctx.WithUser(r.Context(), user))
	l.Record(r, event, key, attrs...)
	return buf.Bytes()
}

// userOf is the user name Record logs for a request carrying user.
func userOf(user string) string {
	return reqctx.User(reqctx.WithUser(context.Background(), user))
}

var auditStrings = []string{"", "alice", "a b", "a=b", `q"uote`, `back\slash`, "tab\there", "nl\nx", "\x00", "é",
	"\u00a0", "\xff\xfe", "日本", "127.0.0.1:5000", "[::1]:40000", "sha256:ab@0123456789abcdef0123456789abcdef"}

func TestAuditLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 49, 39, 123456789, time.FixedZone("X", 3600))
	d := digest.Digest("sha256:" + strings.Repeat("ab", 32))
	for _, s := range auditStrings {
		key := signaturestore.ImageKey{Repository: s, Digest: d}
		for _, attrs := range [][]slog.Attr{
			nil,
			{slog.String("signature", s)},
			{slog.String("signature", s), slog.Bool("trusted", true)},
			{slog.Bool("trusted", false)},
			{slog.Int("removed", 42)},
			{slog.Int("removed", -7), slog.String(s+"k", s)},
		} {
			got := appendAuditLine(nil, at, "signature.put", userOf(s), key, s, attrs)
			want := slogAudit(at, "signature.put", s, key, s, attrs)
			if !bytes.Equal(got, want) {
				t.Errorf("for %q %v:\n got %s\nwant %s", s, attrs, got, want)
			}
		}
	}
}

// TestAuditLogDispatch: with Text set, records of the kinds the line
// writer handles go to Text, anything else to Logger; the zero AuditLog
// discards.
func TestAuditLogDispatch(t *testing.T) {
	var text, logged bytes.Buffer
	a := NewAuditLog(slog.New(slog.NewTextHandler(&logged, nil)).With("log", "audit"), &text)
	r := httptest.NewRequest("PUT", "/", nil)
	key := signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest("sha256:" + strings.Repeat("0f", 32))}
	a.Record(r, "signature.put", key, slog.String("signature", "s"))
	if !strings.Contains(text.String(), "msg=audit log=audit event=signature.put") || logged.Len() != 0 {
		t.Fatalf("text %q, logged %q", text.String(), logged.String())
	}
	text.Reset()
	a.Record(r, "odd", key, slog.Float64("ratio", 0.5))
	if text.Len() != 0 || !strings.Contains(logged.String(), "event=odd") || !strings.Contains(logged.String(), "ratio=0.5") {
		t.Fatalf("a float attribute: text %q, logged %q", text.String(), logged.String())
	}
	AuditLog{}.Record(r, "nothing", key) // must not panic
}

func FuzzAuditLine(f *testing.F) {
	for _, s := range auditStrings {
		f.Add(s, s, int64(len(s)), true)
	}
	f.Fuzz(func(t *testing.T, a, b string, n int64, flag bool) {
		at := time.Unix(0, n).UTC()
		key := signaturestore.ImageKey{Repository: a, Digest: digest.Digest(b)}
		attrs := []slog.Attr{slog.String(b, a), slog.Bool("trusted", flag), slog.Int64("n", n)}
		got := appendAuditLine(nil, at, a, userOf(b), key, a, attrs)
		if want := slogAudit(at, a, b, key, a, attrs); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}
