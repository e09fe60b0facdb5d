package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// signetBin is the binary built once by TestMain.
var signetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	signetBin = filepath.Join(dir, "signet")
	build := exec.Command("go", "build", "-tags", "containers_image_openpgp", "-o", signetBin, "../cmd/signet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if raceBuild {
		// make test-race: the server is race-checked too, under every
		// load these tests put on it (startServer fails on a report).
		build = exec.Command("go", "build", "-race", "-tags", "containers_image_openpgp", "-o", signetBin, "../cmd/signet")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build signet:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTools fails (not skips) when a client the test drives is missing:
// `make test` and .ci/run install them, so a missing tool is a broken
// setup, not a reason to pass.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; run `make deps`", tool)
		}
	}
}

// logBuffer collects a process's output and lets tests wait for a line.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	dataDir string
	logs    *logBuffer
	done    chan error
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs `signet serve` on a free loopback port over dataDir.
func startServer(t *testing.T, dataDir string, extraArgs ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extraArgs...)
	cmd := exec.Command(signetBin, args...)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, dataDir: dataDir, logs: &logBuffer{lines: make(chan string, 1024)}, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.mu.Lock()
			s.logs.buf.WriteString(line + "\n")
			s.logs.mu.Unlock()
			select {
			case s.logs.lines <- line:
			default:
			}
		}
		s.done <- cmd.Wait()
	}()
	deadline := time.After(30 * time.Second)
	for s.addr == "" {
		select {
		case line := <-s.logs.lines:
			if m := listenRE.FindStringSubmatch(line); m != nil {
				s.addr = m[1]
			}
		case err := <-s.done:
			t.Fatalf("signet exited before listening: %v\n%s", err, s.logs.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("signet did not start listening:\n%s", s.logs.String())
		}
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		// A race-built server (make test-race) reports races on stderr.
		if logs := s.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
			i := strings.Index(logs, "WARNING: DATA RACE")
			t.Errorf("the server reported a data race:\n%.20000s", logs[i:])
		}
	})
	return s
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// waitLog waits until a log line contains want.
func (s *server) waitLog(want string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		if strings.Contains(s.logs.String(), want) {
			return
		}
		select {
		case <-s.logs.lines:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("log never said %q:\n%s", want, s.logs.String())
		}
	}
}

// stop sends sig and waits for the process to exit; it returns the exit
// error (nil for status 0).
func (s *server) stop(sig syscall.Signal) error {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Fatalf("signet did not exit after %v:\n%s", sig, s.logs.String())
		return nil
	}
}

// run executes a command and fails the test with its output on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// gnupg is a throwaway GnuPG home with one signing key.
type gnupg struct {
	home string
	fpr  string
	env  []string
}

func newGnuPG(t *testing.T, uid string) *gnupg {
	t.Helper()
	requireTools(t, "gpg", "gpgconf")
	// Keep the path short: gpg-agent's socket path is length-limited.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{home: home, env: []string{"GNUPGHOME=" + home}}
	t.Cleanup(func() {
		_, _ = runErr(g.env, "gpgconf", "--kill", "all")
		os.RemoveAll(home)
	})
	run(t, g.env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", uid, "ed25519", "sign", "never")
	out := run(t, g.env, "gpg", "--batch", "--with-colons", "--list-secret-keys")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "fpr:") {
			g.fpr = strings.Split(line, ":")[9]
			break
		}
	}
	if len(g.fpr) != 40 {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	return g
}

// exportPublic writes the public key to a keyring file for policy.json.
func (g *gnupg) exportPublic(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("gpg", "--homedir", g.home, "--batch", "--export", g.fpr).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("export key: %v", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ociImage writes a one-layer OCI layout at dir, tagged tag, and returns
// the manifest digest.
func ociImage(t *testing.T, dir, tag, fileContent string) string {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(fileContent)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(fileContent))
	_ = tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(tarBuf.Bytes())
	_ = zw.Close()

	writeBlob := func(b []byte) string {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h
	}
	diffID := sha256.Sum256(tarBuf.Bytes())
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, hex.EncodeToString(diffID[:]))
	layerDigest := writeBlob(gz.Bytes())
	configDigest := writeBlob([]byte(config))
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		configDigest, len(config), layerDigest, gz.Len())
	manifestDigest := writeBlob([]byte(manifest))
	index := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":%q}}]}`,
		manifestDigest, len(manifest), tag)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return manifestDigest
}

// manifestDigest asks the registry for the digest of repo:tag.
func manifestDigest(t *testing.T, s *server, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url("/v2/"+repo+"/manifests/"+tag), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET manifest %s:%s: %d %s", repo, tag, resp.StatusCode, body)
	}
	sum := sha256.Sum256(body)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Fatalf("Docker-Content-Digest %q, body digest %q", got, d)
	}
	return d
}

type wireSignature struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	Content       []byte `json:"content"`
}

// signatures GETs the extension list.
func signatures(t *testing.T, s *server, repo, dgst string) []wireSignature {
	t.Helper()
	resp, err := http.Get(s.url("/extensions/v2/" + repo + "/signatures/" + dgst))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET signatures: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Signatures []wireSignature `json:"signatures"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return list.Signatures
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
