package integration

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-registry/signet/internal/etcdtest"
)

// etcdConfig is a signet configuration that keeps signatures in etcd.
func etcdConfig(t *testing.T, dir string, etcd *etcdtest.Server, extra string) string {
	t.Helper()
	return writeConfig(t, dir, fmt.Sprintf(`storage:
  backend: etcd
  etcd:
    endpoints: [%s]
    prefix: /signet-it/
    requestTimeout: 2s
    dialTimeout: 2s
%s`, etcd.Endpoint(), extra))
}

// signatureBody is one extension API PUT body.
func signatureBody(dgst string, n int, content []byte) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"name":"%s@%032x","type":"atomic","content":%q}`, dgst, n, base64.StdEncoding.EncodeToString(content))
}

// TestEtcdBackend: `signet serve` with storage.backend etcd, against the
// Debian etcd-server binary. Signatures go to etcd and nowhere else; with
// etcd stopped, signature reads and writes get 503 with a JSON error (in
// bounded time) and /readyz turns 503; once etcd is back, the same server
// process accepts writes again, and everything acknowledged is there,
// also after a restart of signet.
func TestEtcdBackend(t *testing.T) {
	requireTools(t, "skopeo", etcdtest.Binary)
	tmp := t.TempDir()
	etcd := etcdtest.Start(t, etcdtest.Options{})
	dataDir := filepath.Join(tmp, "data")
	cfgPath := etcdConfig(t, tmp, etcd, "")
	s := startServer(t, dataDir, "--config", cfgPath)
	s.waitLog("signature store: etcd", 5*time.Second)

	dgst := pushUnsigned(t, s, tmp, "ns/app", "v1")
	c := newHTTPClient(4, 30*time.Second)
	sigURL := s.url("/extensions/v2/ns/app/signatures/" + dgst)
	put := func(n int) reply {
		t.Helper()
		r, err := send(c, http.MethodPut, sigURL, signatureBody(dgst, n, []byte(fmt.Sprintf("signature %d", n))), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := put(1); r.status != http.StatusCreated {
		t.Fatalf("PUT with etcd up: %d %s", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "signatures.db")); !os.IsNotExist(err) {
		t.Fatalf("the etcd backend created a bbolt file: %v", err)
	}

	if err := etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, url string
		body              []byte
	}{
		{"PUT", http.MethodPut, sigURL, signatureBody(dgst, 2, []byte("signature 2"))},
		{"GET", http.MethodGet, sigURL, nil},
		{"Signet API GET", http.MethodGet, s.url("/signet/v1/repositories/ns/app/signatures/" + dgst), nil},
	} {
		began := time.Now()
		r, err := send(c, tc.method, tc.url, tc.body, nil)
		if err != nil {
			t.Fatalf("%s with etcd stopped: %v", tc.name, err)
		}
		if r.status != http.StatusServiceUnavailable || errorCodeOf(r.body) != "UNAVAILABLE" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s with etcd stopped: %d %s %s; want 503 with a JSON UNAVAILABLE error", tc.name, r.status, r.header.Get("Content-Type"), r.body)
		}
		// requestTimeout is 2s; the client's own retries stay inside it.
		if took := time.Since(began); took > 10*time.Second {
			t.Fatalf("%s with etcd stopped took %s", tc.name, took)
		}
	}
	if r, err := send(c, http.MethodGet, s.url("/readyz"), nil, nil); err != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with etcd stopped: %+v %v", r, err)
	}

	if err := etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := put(2)
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("PUT after etcd came back: %d %s", r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := signatures(t, s, "ns/app", dgst); len(got) != 2 || string(got[0].Content) != "signature 1" || string(got[1].Content) != "signature 2" {
		t.Fatalf("after the outage the list is %+v", got)
	}

	// A restarted signet reads the same signatures back from etcd.
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("signet exit: %v", err)
	}
	s = startServer(t, dataDir, "--config", cfgPath)
	if got := signatures(t, s, "ns/app", dgst); len(got) != 2 {
		t.Fatalf("after a signet restart the list is %+v", got)
	}

	// signet backup works against the etcd backend: the server exports
	// a bbolt file, which signet check accepts and signet migrate loads
	// back into etcd (here under another prefix, as a restore would).
	backup := filepath.Join(tmp, "backup.db")
	if out, code, _ := runSignet(t, 60*time.Second, "backup", backup, "--registry-url", s.addr, "--insecure"); code != 0 {
		t.Fatalf("signet backup: exit %d:\n%s", code, out)
	}
	if out, code, _ := runSignet(t, 30*time.Second, "check", "--file", backup); code != 0 || !strings.Contains(out, "ok: 2 signatures") {
		t.Fatalf("signet check of the backup: exit %d:\n%s", code, out)
	}
	out, code, _ := runSignet(t, 60*time.Second, "migrate", "--from", "bbolt:"+backup, "--to", "etcd:"+etcd.Endpoint(), "--prefix", "/restored/")
	if code != 0 || !strings.Contains(out, "migrated 1 images: 2 signatures copied") {
		t.Fatalf("signet migrate of the backup: exit %d:\n%s", code, out)
	}
	restored := filepath.Join(tmp, "restored")
	if err := os.Mkdir(restored, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "signet.yaml"), bytes.Replace(mustRead(t, cfgPath), []byte("/signet-it/"), []byte("/restored/"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("signet exit: %v", err)
	}
	s = startServer(t, dataDir, "--config", filepath.Join(restored, "signet.yaml"))
	if got := signatures(t, s, "ns/app", dgst); len(got) != 2 || string(got[0].Content) != "signature 1" || string(got[1].Content) != "signature 2" {
		t.Fatalf("served from the restored prefix: %+v", got)
	}
}

// TestEtcdBackendRefusesToStartWithoutEtcd: a server whose etcd cannot be
// reached exits with a message naming the endpoint, rather than serving
// without its signature store.
func TestEtcdBackendRefusesToStartWithoutEtcd(t *testing.T) {
	requireTools(t, etcdtest.Binary)
	tmp := t.TempDir()
	etcd := etcdtest.Start(t, etcdtest.Options{})
	cfgPath := etcdConfig(t, tmp, etcd, "")
	if err := etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	out, err := runErr(nil, signetBin, "serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(tmp, "data"), "--config", cfgPath)
	if err == nil || !strings.Contains(out, "open signature store") || !strings.Contains(out, etcd.Endpoint()) {
		t.Fatalf("serve without etcd: %v\n%s", err, out)
	}
}
