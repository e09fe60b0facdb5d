package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// runSignet runs the binary to completion within timeout and returns its
// combined output, exit code and how long it took.
func runSignet(t *testing.T, timeout time.Duration, args ...string) (string, int, time.Duration) {
	t.Helper()
	cmd := exec.Command(signetBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start)
		var ee *exec.ExitError
		switch {
		case err == nil:
			return out.String(), 0, took
		case errors.As(err, &ee):
			return out.String(), ee.ExitCode(), took
		default:
			t.Fatalf("signet %s: %v", strings.Join(args, " "), err)
		}
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("signet %s still running after %v (hung?):\n%s", strings.Join(args, " "), timeout, out.String())
	}
	return "", -1, 0
}

// dirDigest maps every regular file under dir to its contents.
func dirDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = sha256Digest(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestSecondServerFailsFast: a second signet serve on a data directory in
// use exits within seconds with a clear message, changes no file, and the
// first server keeps serving.
func TestSecondServerFailsFast(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	s := startServer(t, dataDir)
	base := "http://" + s.addr
	c := newHTTPClient(2, 10*time.Second)
	img, err := pushImage(c, base, "ns/app", "v1", 1024)
	if err != nil {
		t.Fatal(err)
	}
	name, content, body := newSignature(img.digest, 100)
	if r, err := send(c, "PUT", base+"/extensions/v2/ns/app/signatures/"+img.digest, body, nil); err != nil || r.status != http.StatusCreated {
		t.Fatalf("PUT: %v %d", err, r.status)
	}
	before := dirDigest(t, dataDir)

	serveOut, code, took := runSignet(t, 30*time.Second, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	out := serveOut
	if code == 0 || !strings.Contains(out, "data directory "+dataDir+" is in use by another signet process") {
		t.Fatalf("second serve: exit %d after %v:\n%s", code, took, out)
	}
	if took > 10*time.Second {
		t.Fatalf("second serve took %v to give up", took)
	}
	if strings.Contains(out, "listening") {
		t.Fatalf("second serve started listening:\n%s", out)
	}
	if after := dirDigest(t, dataDir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the failed start changed the data directory:\nbefore %v\nafter  %v", before, after)
	}
	// signet check refuses too, and says why, without waiting long.
	out, code, _ = runSignet(t, 30*time.Second, "check", "--data-dir", dataDir)
	if code != 2 || !strings.Contains(out, "in use by a running signet process") {
		t.Fatalf("check on a running server's data: exit %d:\n%s", code, out)
	}
	sigs, err := listSignatures(c, base, "ns/app", img.digest)
	if err != nil || len(sigs) != 1 || sigs[0].Name != name || !bytes.Equal(sigs[0].Content, content) {
		t.Fatalf("first server after the second start: %v %+v", err, sigs)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Logf("second serve refused in %v: %s", took.Round(time.Millisecond), lastLine(serveOut))
	mustCheck(t, dataDir)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// writeSchema rewrites the schema version of a stopped server's database.
func writeSchema(t *testing.T, path string, version uint32) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint32(nil, version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSchemaVersionRefused: a database written by a newer Signet (schema
// 3) or by no released one (schema 0) is refused at start with a message
// naming both versions, before anything listens or is written; signet
// check reports it with exit status 1. (Schema 1 is upgraded at start:
// signaturestore/boltstore's upgrade tests.)
func TestSchemaVersionRefused(t *testing.T) {
	tests := []struct {
		version uint32
		want    string
	}{
		{3, "database has schema version 3, this build of signet supports version 2; upgrade signet"},
		{0, "database has schema version 0, this build of signet supports version 2"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.version), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			s := startServer(t, dataDir)
			if err := s.stop(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dataDir, "signatures.db")
			writeSchema(t, db, tt.version)
			before := dirDigest(t, dataDir)

			out, code, took := runSignet(t, 30*time.Second, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
			if code == 0 || !strings.Contains(out, "unsupported signature database schema: "+tt.want) || strings.Contains(out, "listening") {
				t.Fatalf("serve on schema %d: exit %d after %v:\n%s", tt.version, code, took, out)
			}
			if after := dirDigest(t, dataDir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatal("the refused start changed the data directory")
			}
			out, code, _ = runSignet(t, 30*time.Second, "check", "--data-dir", dataDir)
			if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, tt.want) {
				t.Fatalf("check on schema %d: exit %d:\n%s", tt.version, code, out)
			}
			t.Logf("schema %d refused: %s", tt.version, lastLine(out))
		})
	}
}

// TestCheckCommand: signet check's exit status tells a sound database
// (0) from a damaged one (1) from one it cannot check (2).
func TestCheckCommand(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	s := startServer(t, dataDir)
	base := "http://" + s.addr
	c := newHTTPClient(2, 10*time.Second)
	img, err := pushImage(c, base, "ns/app", "v1", 1024)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		_, _, body := newSignature(img.digest, 400)
		if r, err := send(c, "PUT", base+"/extensions/v2/ns/app/signatures/"+img.digest, body, nil); err != nil || r.status != http.StatusCreated {
			t.Fatalf("PUT: %v %d", err, r.status)
		}
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dataDir, "signatures.db")
	garbage := filepath.Join(tmp, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	// A torn page: the root page of the image's signature records is
	// overwritten with noise, as a write cut off by power loss on a disk
	// without atomic page writes would leave it.
	torn := filepath.Join(tmp, "torn.db")
	b, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	page := sigsRootPage(t, dbPath, "ns/app", img.digest)
	for i := range 4096 {
		b[page*4096+i] ^= 0x5a
	}
	if err := os.WriteFile(torn, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"sound", []string{"--data-dir", dataDir}, 0, ": ok: 40 signatures in 1 repositories"},
		{"garbage", []string{"--file", garbage}, 1, "FAILED"},
		{"torn page", []string{"--file", torn}, 1, "FAILED"},
		{"missing", []string{"--data-dir", filepath.Join(tmp, "nowhere")}, 2, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code, _ := runSignet(t, 30*time.Second, append([]string{"check"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("check %v: exit %d, want %d with %q:\n%s", tt.args, code, tt.code, tt.want, out)
			}
		})
	}
}

// TestBackupRestore: signet backup takes a consistent snapshot while
// writers keep writing; the file passes signet check; a server started on
// a data directory restored from it (the registry files copied, the backup
// as signatures.db) serves every signature acknowledged before the backup
// began, byte for byte, and nothing that was not written.
func TestBackupRestore(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	cfg := writeConfig(t, tmp, "log:\n  accessLog: false\nsignatures:\n  maxPerImage: 1024\n  maxBytesPerImage: 2097152\n")
	s := startServer(t, dataDir, "--config", cfg)
	base := "http://" + s.addr
	c := newHTTPClient(8, 30*time.Second)
	img, err := pushImage(c, base, "ns/app", "v1", 4096)
	if err != nil {
		t.Fatal(err)
	}
	u := base + "/extensions/v2/ns/app/signatures/" + img.digest
	var mu sync.Mutex
	sent := map[string][]byte{}
	put := func() (string, error) {
		name, content, body := newSignature(img.digest, 200)
		mu.Lock()
		sent[name] = content
		mu.Unlock()
		r, err := send(c, "PUT", u, body, nil)
		if err != nil || r.status != http.StatusCreated {
			return "", fmt.Errorf("PUT: %v %d %s", err, r.status, r.body)
		}
		return name, nil
	}
	var before []string
	for range 100 {
		name, err := put()
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, name)
	}
	// Writers keep going while the backup is taken: it is online.
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && !stop.Load(); i++ {
				if _, err := put(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	backup := filepath.Join(tmp, "backup.db")
	out, code, took := runSignet(t, 60*time.Second, "backup", backup, "--registry-url", s.addr, "--insecure")
	stop.Store(true)
	wg.Wait()
	if code != 0 || !strings.Contains(out, "checked") {
		t.Fatalf("signet backup: exit %d:\n%s", code, out)
	}
	t.Logf("online backup in %v while 4 writers wrote: %s", took.Round(time.Millisecond), strings.TrimSpace(out))
	if out, code, _ := runSignet(t, 30*time.Second, "backup", backup, "--registry-url", s.addr, "--insecure"); code == 0 || !strings.Contains(out, "exists") {
		t.Fatalf("backup over an existing file: exit %d:\n%s", code, out)
	}
	if out, code := signetCheck(t, "--file", backup); code != 0 {
		t.Fatalf("signet check --file backup: exit %d\n%s", code, out)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Restore: the registry files as they are, the backup as the database.
	restored := filepath.Join(tmp, "restored")
	if out, err := exec.Command("cp", "-a", filepath.Join(dataDir, "registry"), filepath.Join(dataDir, "http-secret"), mkdirAll(t, restored)).CombinedOutput(); err != nil {
		t.Fatalf("copy registry files: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", backup, filepath.Join(restored, "signatures.db")).CombinedOutput(); err != nil {
		t.Fatalf("restore backup: %v: %s", err, out)
	}
	s = startServer(t, restored, "--config", cfg)
	base = "http://" + s.addr
	sigs, err := listSignatures(c, base, "ns/app", img.digest)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sg := range sigs {
		if !bytes.Equal(sent[sg.Name], sg.Content) {
			t.Fatalf("restored %s was never written as is", sg.Name)
		}
		got[sg.Name] = true
	}
	for _, name := range before {
		if !got[name] {
			t.Fatalf("restored server lacks %s, acknowledged before the backup", name)
		}
	}
	if err := verifyImage(c, base, img); err != nil {
		t.Fatal(err)
	}
	// The restored server takes writes as usual.
	_, _, body := newSignature(img.digest, 100)
	if r, err := send(c, "PUT", base+"/extensions/v2/ns/app/signatures/"+img.digest, body, nil); err != nil || r.status != http.StatusCreated {
		t.Fatalf("PUT on the restored server: %v %d", err, r.status)
	}
	t.Logf("restored server serves %d signatures (%d acknowledged before the backup, %d written during it)", len(sigs), len(before), len(sigs)-len(before))
}

// sigsRootPage finds the root page of the signature records (schema 2
// keeps every image's records in one sigs bucket; bbolt's 4096-byte pages
// on this platform).
func sigsRootPage(t *testing.T, path, repo, dgst string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var page int
	err = db.View(func(tx *bbolt.Tx) error {
		if tx.DB().Info().PageSize != 4096 {
			return fmt.Errorf("page size %d", tx.DB().Info().PageSize)
		}
		page = int(tx.Bucket([]byte("sigs")).Root())
		return nil
	})
	if err != nil || page < 2 {
		t.Fatalf("find the signature records' page: %v (page %d)", err, page)
	}
	return page
}

func mkdirAll(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}
