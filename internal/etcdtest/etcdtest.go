// Package etcdtest runs a real etcd server for tests: the etcd binary from
// Debian's etcd-server package (or any etcd on PATH), started the way an
// operator would start a one-member cluster, on loopback ports chosen at
// random and a data directory of the test's own.
//
// It must not be used outside tests, and it never skips: a missing etcd
// binary is a failure, because `make deps` and .ci/run install it.
//
// Several tests may each start their own server; a server can be stopped,
// killed and restarted on the same ports and data, which is how the store's
// failure tests take etcd away and bring it back.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the etcd executable looked up on PATH.
const Binary = "etcd"

// startTimeout bounds how long a start may take to report healthy.
const startTimeout = 30 * time.Second

// Options tune the server. The zero value is a plain one-member cluster.
type Options struct {
	// MaxRequestBytes is etcd's --max-request-bytes; zero keeps etcd's
	// default (1.5 MiB), which the tests mean to exercise.
	MaxRequestBytes int
	// TLS, when set, serves clients over HTTPS and requires a client
	// certificate signed by TLS.CAFile.
	TLS *TLSFiles
}

// TLSFiles are PEM files for a TLS client port.
type TLSFiles struct {
	CertFile, KeyFile string // the server's certificate, valid for 127.0.0.1
	CAFile            string // verifies client certificates
	// Client is a certificate the health check presents.
	ClientCertFile, ClientKeyFile string
}

// Server is one running (or stopped) etcd member.
type Server struct {
	dir         string
	clientURL   string
	peerURL     string
	opts        Options
	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{}
	exitErr     error
	log         *lockedBuffer
	name        string
	stopTimeout time.Duration
}

// lockedBuffer keeps the server's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Bound what is kept: etcd is chatty at info level over a long test.
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
		b.buf.WriteString("[earlier output dropped]\n")
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs etcd for the test and stops it when the test ends. It fails
// the test when etcd is not installed or does not become healthy.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Fatalf("%s is not installed; run `make deps` (Debian package etcd-server): %v", Binary, err)
	}
	s, err := StartDir(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stop etcd: %v", err)
		}
	})
	return s
}

// StartDir runs etcd with its data in dir/data until Stop or Kill. It is
// for callers without a testing.TB (a TestMain); Start is the usual way.
func StartDir(dir string, opts Options) (*Server, error) {
	var lastErr error
	// Ports are picked by binding :0 and releasing them, so another
	// process may take one before etcd binds it; try again with new ones.
	for range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		scheme := "http"
		if opts.TLS != nil {
			scheme = "https"
		}
		s := &Server{
			dir:         dir,
			clientURL:   fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[0]),
			peerURL:     fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
			opts:        opts,
			name:        "signet-test",
			stopTimeout: 30 * time.Second,
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// Endpoint is the client URL, e.g. http://127.0.0.1:41234.
func (s *Server) Endpoint() string { return s.clientURL }

// Endpoints is Endpoint as a list, as clients take it.
func (s *Server) Endpoints() []string { return []string{s.clientURL} }

// DataDir is etcd's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// Log is what etcd has printed so far.
func (s *Server) Log() string { return s.log.String() }

func (s *Server) args() []string {
	a := []string{
		"--name", s.name,
		"--data-dir", s.DataDir(),
		"--listen-client-urls", s.clientURL,
		"--advertise-client-urls", s.clientURL,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", s.name + "=" + s.peerURL,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "signet-test",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	if s.opts.MaxRequestBytes > 0 {
		a = append(a, "--max-request-bytes", fmt.Sprint(s.opts.MaxRequestBytes))
	}
	if t := s.opts.TLS; t != nil {
		a = append(a, "--cert-file", t.CertFile, "--key-file", t.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", t.CAFile)
	}
	return a
}

// httpClient is what the health check uses: with TLS, it trusts the CA
// and presents the client certificate.
func (s *Server) httpClient() (*http.Client, error) {
	c := &http.Client{Timeout: time.Second}
	t := s.opts.TLS
	if t == nil {
		return c, nil
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	return c, nil
}

// start launches the process and waits until /health says true.
func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("etcd is already running")
	}
	if s.log == nil {
		s.log = &lockedBuffer{}
	}
	cmd := exec.Command(Binary, s.args()...)
	// The Debian package's service reads /etc/default/etcd; a test
	// server must not pick up ETCD_* settings from the environment.
	cmd.Env = cleanEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Its own process group, so a kill takes nothing else with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("run %s: %w", Binary, err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	client, err := s.httpClient()
	if err != nil {
		_ = s.Kill()
		return err
	}
	for {
		select {
		case <-done:
			s.mu.Lock()
			s.cmd = nil
			err := s.exitErr
			s.mu.Unlock()
			return fmt.Errorf("etcd exited during start (%v):\n%s", err, s.log.String())
		default:
		}
		if healthy(client, s.clientURL) {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.Kill()
			return fmt.Errorf("etcd not healthy after %s:\n%s", startTimeout, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func healthy(c *http.Client, base string) bool {
	resp, err := c.Get(base + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"health":"true"`))
}

// Restart starts a stopped or killed server again on the same ports and
// data directory.
func (s *Server) Restart() error { return s.start() }

// Stop ends the server with SIGTERM (a clean shutdown) and waits. Stopping
// a server that is not running does nothing.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(s.stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	return nil
}

// WaitHealthy waits until the server answers healthy, for tests that
// restart it and then expect clients to recover.
func (s *Server) WaitHealthy(ctx context.Context) error {
	c, err := s.httpClient()
	if err != nil {
		return err
	}
	for !healthy(c, s.clientURL) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// cleanEnv drops ETCD_* variables, which etcd reads as flags.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "ETCD_") {
			out = append(out, kv)
		}
	}
	return out
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
