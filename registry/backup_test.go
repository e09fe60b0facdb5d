package registry

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// TestBackupEndpoint: GET /signet/v1/backup is a complete bbolt file that
// passes the integrity check and holds every signature, byte for byte.
func TestBackupEndpoint(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	want := map[string][]byte{}
	for i := range 5 {
		name, content := sigName(dgst), []byte(fmt.Sprintf("signature %d", i))
		if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, content)), nil); r.status != http.StatusCreated {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		want[name] = content
	}
	r := e.do("GET", "/signet/v1/backup", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET backup: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != BackupContentType {
		t.Fatalf("content type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Fatalf("Content-Length %s, body %d bytes", cl, len(r.body))
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := boltstore.CheckFile(path, time.Second)
	if err != nil {
		t.Fatalf("backup fails the check: %v", err)
	}
	if rep.Signatures != 5 {
		t.Fatalf("backup holds %d signatures, want 5", rep.Signatures)
	}
	restored, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	got, err := restored.List(t.Context(), signaturestore.ImageKey{Repository: "ns/app", Digest: digest.Digest(dgst)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if !bytes.Equal(want[s.Name], s.Content) {
			t.Fatalf("restored %s differs", s.Name)
		}
		delete(want, s.Name)
	}
	if len(want) != 0 {
		t.Fatalf("backup lacks %d signatures", len(want))
	}
}

// TestStorageFullTranslation: the embedded app's 500 for a full disk
// becomes 507 STORAGE_FULL; every other answer passes through untouched.
func TestStorageFullTranslation(t *testing.T) {
	enospc := `{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"write /data/registry/_uploads/x/data: ` + syscall.ENOSPC.Error() + `"}]}`
	edquot := `{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"write x: ` + syscall.EDQUOT.Error() + `"}]}`
	other := `{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"write x: input/output error"}]}`
	huge := strings.Repeat("x", maxHeldErrorBody+10) + syscall.ENOSPC.Error()
	tests := []struct {
		name       string
		status     int
		body       string
		flush      bool
		wantStatus int
		wantCode   string // "" : body passes unchanged
	}{
		{"enospc", 500, enospc, false, 507, "STORAGE_FULL"},
		{"edquot", 500, edquot, false, 507, "STORAGE_FULL"},
		{"503 enospc", 503, enospc, false, 507, "STORAGE_FULL"},
		{"other 500", 500, other, false, 500, ""},
		{"created", 201, "", false, 201, ""},
		{"400 mentioning it", 400, enospc, false, 400, ""},
		{"over the hold limit", 500, huge, false, 500, ""},
		{"flushed before the body", 500, enospc, true, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
				w.WriteHeader(tt.status)
				if tt.flush {
					w.(http.Flusher).Flush()
				}
				_, _ = w.Write([]byte(tt.body))
			})
			s := &Server{log: slog.New(slog.DiscardHandler)}
			rec := httptest.NewRecorder()
			s.storageFull(app).ServeHTTP(rec, httptest.NewRequest("PATCH", "/v2/ns/app/blobs/uploads/x", nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantCode == "" {
				if rec.Body.String() != tt.body {
					t.Fatalf("body changed: %.200q", rec.Body.String())
				}
				return
			}
			if got := errorCode(t, rec.Body.Bytes()); got != tt.wantCode {
				t.Fatalf("code %s, want %s", got, tt.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Fatalf("content type %q", ct)
			}
			if cl := rec.Header().Get("Content-Length"); cl != "" {
				t.Fatalf("stale Content-Length %s kept", cl)
			}
			if v := rec.Header().Get("Docker-Distribution-Api-Version"); v != "registry/2.0" {
				t.Fatalf("API version header dropped")
			}
		})
	}
}
