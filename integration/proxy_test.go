package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

	"golang.org/x/crypto/bcrypt"
)

// Proxy mode against the stock distribution registry, started from its
// own binary with a configuration file, as an operator runs it.

// distributionVersion is what .ci/run and make deps install.
const distributionVersion = "v3.1.2"

// registryBin finds distribution's registry binary on PATH or where
// `go install` puts it, and fails (not skips) without it.
func registryBin(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p, err := exec.LookPath("registry"); err == nil {
		candidates = append(candidates, p)
	}
	if gobin, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && strings.TrimSpace(string(gobin)) != "" {
		candidates = append(candidates, filepath.Join(strings.TrimSpace(string(gobin)), "registry"))
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			candidates = append(candidates, filepath.Join(p, "bin", "registry"))
		}
	}
	for _, p := range candidates {
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err == nil && strings.Contains(string(out), "distribution/distribution/v3") {
			return p
		}
	}
	t.Fatalf("distribution's registry is not installed; run `make deps` or `go install github.com/distribution/distribution/v3/cmd/registry@%s`", distributionVersion)
	return ""
}

// upstream is a running distribution registry.
type upstream struct {
	t      *testing.T
	bin    string
	config string
	addr   string
	cmd    *exec.Cmd
	logs   *logBuffer
	done   chan error
}

var upstreamListenRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// startUpstream writes a configuration for filesystem storage in dir (and
// htpasswd auth when htpasswd is not empty) and starts the registry on a
// free loopback port.
func startUpstream(t *testing.T, dir, htpasswd string) *upstream {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, bin: registryBin(t), config: filepath.Join(dir, "config.yml")}
	u.writeConfig(dir, "127.0.0.1:0", htpasswd)
	u.start()
	// Later starts (after a stop) keep the port, so Signet's
	// configuration stays valid.
	u.writeConfig(dir, u.addr, htpasswd)
	return u
}

func (u *upstream) writeConfig(dir, addr, htpasswd string) {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
`, filepath.Join(dir, "storage"), addr, strings.Repeat("5", 32))
	if htpasswd != "" {
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: upstream-realm\n    path: %s\n", htpasswd)
	}
	if err := os.WriteFile(u.config, []byte(cfg), 0o600); err != nil {
		u.t.Fatal(err)
	}
}

func (u *upstream) start() {
	t := u.t
	t.Helper()
	cmd := exec.Command(u.bin, "serve", u.config)
	// No OpenTelemetry exporter to reach.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	u.cmd, u.logs, u.done = cmd, &logBuffer{lines: make(chan string, 1024)}, make(chan error, 1)
	logs, done := u.logs, u.done
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			logs.mu.Lock()
			logs.buf.WriteString(sc.Text() + "\n")
			logs.mu.Unlock()
			select {
			case logs.lines <- sc.Text():
			default:
			}
		}
		pr.Close()
		done <- cmd.Wait()
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line := <-logs.lines:
			if m := upstreamListenRE.FindStringSubmatch(line); m != nil {
				u.addr = m[1]
				t.Cleanup(func() { u.stop() })
				return
			}
		case err := <-done:
			t.Fatalf("registry exited before listening: %v\n%s", err, logs.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("registry did not start:\n%s", logs.String())
		}
	}
}

// stop kills the registry (a crash or a pulled cable, as Signet sees it).
func (u *upstream) stop() {
	if u.cmd.ProcessState != nil {
		return
	}
	_ = u.cmd.Process.Kill()
	<-u.done
}

func (u *upstream) url(path string) string { return "http://" + u.addr + path }

// htpasswdFile writes bcrypt entries, as `htpasswd -B` does.
func htpasswdFile(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	for user, pw := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", user, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// signetConfig writes a Signet configuration file for proxy mode.
func signetConfig(t *testing.T, path, upstreamURL, auth string, extra string) {
	t.Helper()
	cfg := fmt.Sprintf("version: 1\nregistry:\n  upstream:\n    url: %s\n    auth: %s\n%s", upstreamURL, auth, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func httpDo(t *testing.T, method, url string, body io.Reader, hdr map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return httpResult{resp.StatusCode, resp.Header, b}
}

// jsonErrorCode returns the first code of a registry error envelope, or
// fails.
func jsonErrorCode(t *testing.T, r httpResult) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || json.Unmarshal(r.body, &env) != nil || len(env.Errors) == 0 {
		t.Fatalf("status %d: not a JSON registry error: %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	return env.Errors[0].Code
}

func basicAuth(user, pw string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))}
}

func putProxySignature(t *testing.T, base, repo, dgst string, hdr map[string]string) httpResult {
	t.Helper()
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	body := fmt.Sprintf(`{"schemaVersion":2,"name":"%s@%s","type":"atomic","content":%q}`,
		dgst, hex.EncodeToString(suffix[:]), base64.StdEncoding.EncodeToString([]byte("not really a signature")))
	return httpDo(t, "PUT", base+"/extensions/v2/"+repo+"/signatures/"+dgst, strings.NewReader(body), hdr)
}

// TestProxySkopeo: in front of a stock distribution registry, skopeo's
// signed push through Signet stores the image upstream and the signature
// in Signet; a signedBy policy pull through Signet verifies; a direct pull
// from the upstream works; a manifest deleted upstream behind Signet's
// back has its signatures hidden by the sweep.
func TestProxySkopeo(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	up := startUpstream(t, filepath.Join(tmp, "upstream"), "")
	cfgPath := filepath.Join(tmp, "signet.yaml")
	// A cache TTL far longer than the test: only the sweep can notice
	// the deletion below.
	signetConfig(t, cfgPath, "http://"+up.addr, "signet", "    cacheTTL: 1h\n    sweepInterval: 1s\n")
	s := startServer(t, filepath.Join(tmp, "data"), "--config", cfgPath)
	g := newGnuPG(t, "Proxy Signer <proxy@example.com>")
	other := newGnuPG(t, "Someone Else <else@example.com>")

	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "hello through the proxy\n")

	ref := s.addr + "/ns/app:v1"
	out := run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	if !strings.Contains(out, "Storing signatures") {
		t.Fatalf("skopeo did not store signatures:\n%s", out)
	}

	// The image is upstream: same digest asked directly.
	upstreamServer := &server{t: t, addr: up.addr}
	dgst := manifestDigest(t, upstreamServer, "ns/app", "v1")
	if got := manifestDigest(t, s, "ns/app", "v1"); got != dgst {
		t.Fatalf("digest through Signet %s, upstream %s", got, dgst)
	}
	// ... and not in Signet's data directory.
	if _, err := os.Stat(filepath.Join(s.dataDir, "registry", "docker")); !os.IsNotExist(err) {
		t.Fatalf("blobs stored in Signet's data directory: %v", err)
	}
	// The signature is in Signet, and gpg accepts it for this digest.
	sigs := signatures(t, s, "ns/app", dgst)
	if len(sigs) != 1 {
		t.Fatalf("%d signatures in Signet", len(sigs))
	}
	sigFile := filepath.Join(tmp, "sig.gpg")
	if err := os.WriteFile(sigFile, sigs[0].Content, 0o644); err != nil {
		t.Fatal(err)
	}
	if payload := run(t, g.env, "gpg", "--batch", "--decrypt", sigFile); !strings.Contains(payload, dgst) {
		t.Fatalf("payload does not name %s: %s", dgst, payload)
	}

	// A direct pull from the upstream, which knows nothing of Signet.
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--src-tls-verify=false",
		"docker://"+up.addr+"/ns/app:v1", "oci:"+filepath.Join(tmp, "direct")+":v1")...)

	// A policy pull through Signet: the signer's key verifies, another
	// key is rejected.
	goodKey := filepath.Join(tmp, "good.gpg")
	g.exportPublic(t, goodKey)
	goodPolicy := filepath.Join(tmp, "good-policy.json")
	writeJSON(t, goodPolicy, signedByPolicy(s.addr, goodKey))
	run(t, nil, "skopeo", append(skopeoArgs(regD, goodPolicy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "verified")+":v1")...)
	badKey := filepath.Join(tmp, "bad.gpg")
	other.exportPublic(t, badKey)
	badPolicy := filepath.Join(tmp, "bad-policy.json")
	writeJSON(t, badPolicy, signedByPolicy(s.addr, badKey))
	out, err := runErr(nil, "skopeo", append(skopeoArgs(regD, badPolicy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "rejected")+":v1")...)
	if err == nil || !strings.Contains(out, "Source image rejected") {
		t.Fatalf("pull with another key's policy: %v\n%s", err, out)
	}

	// Deleted upstream, not through Signet: the sweep hides the
	// signatures (the cached answer alone would keep them for an hour).
	if r := httpDo(t, "DELETE", up.url("/v2/ns/app/manifests/"+dgst), nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("direct delete: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := httpDo(t, "GET", s.url("/extensions/v2/ns/app/signatures/"+dgst), nil, nil)
		if r.status == http.StatusNotFound && jsonErrorCode(t, r) == "MANIFEST_UNKNOWN" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("signatures still served 30 s after the manifest was deleted upstream: %d %s", r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.waitLog("its signatures are hidden", 5*time.Second)
}

// TestProxyPassthroughHtpasswd: with the upstream protected by htpasswd
// and Signet in passthrough mode, the upstream's credentials decide:
// pushes and signature PUTs with the right ones succeed, wrong or missing
// ones get the upstream's 401, and no signature is ever stored for a
// client that could not push upstream.
func TestProxyPassthroughHtpasswd(t *testing.T) {
	requireTools(t, "skopeo", "gpg", "curl")
	tmp := t.TempDir()
	htpasswd := filepath.Join(tmp, "htpasswd")
	htpasswdFile(t, htpasswd, map[string]string{"alice": "right-password"})
	up := startUpstream(t, filepath.Join(tmp, "upstream"), htpasswd)
	cfgPath := filepath.Join(tmp, "signet.yaml")
	signetConfig(t, cfgPath, "http://"+up.addr, "passthrough", "")
	s := startServer(t, filepath.Join(tmp, "data"), "--config", cfgPath)
	g := newGnuPG(t, "Alice <alice@example.com>")

	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "hello htpasswd\n")
	ref := s.addr + "/team/app:v1"

	// Wrong password: the push fails, nothing lands anywhere.
	out, err := runErr(g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--dest-creds", "alice:wrong", "--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	if err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("push with a wrong password: %v\n%s", err, out)
	}
	// Right password: image upstream, signature in Signet.
	out = run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--dest-creds", "alice:right-password", "--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	if !strings.Contains(out, "Storing signatures") {
		t.Fatalf("skopeo did not store signatures:\n%s", out)
	}
	alice := basicAuth("alice", "right-password")
	head := httpDo(t, "HEAD", up.url("/v2/team/app/manifests/v1"), nil, map[string]string{
		"Authorization": alice["Authorization"], "Accept": "application/vnd.oci.image.manifest.v1+json"})
	dgst := head.header.Get("Docker-Content-Digest")
	if head.status != http.StatusOK || !strings.HasPrefix(dgst, "sha256:") {
		t.Fatalf("image not upstream: %d %v", head.status, head.header)
	}
	count := func() int {
		r := httpDo(t, "GET", s.url("/extensions/v2/team/app/signatures/"+dgst), nil, alice)
		if r.status != http.StatusOK {
			t.Fatalf("GET signatures as alice: %d %s", r.status, r.body)
		}
		var list struct {
			Signatures []wireSignature `json:"signatures"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Signatures)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d signatures after the signed push", n)
	}

	// Signature PUTs and GETs that the upstream would refuse: 401 with
	// the upstream's own challenge, and nothing stored.
	for name, hdr := range map[string]map[string]string{
		"no credentials": nil,
		"wrong password": basicAuth("alice", "wrong"),
		"unknown user":   basicAuth("mallory", "right-password"),
	} {
		r := putProxySignature(t, s.url(""), "team/app", dgst, hdr)
		if r.status != http.StatusUnauthorized || jsonErrorCode(t, r) != "UNAUTHORIZED" ||
			!strings.Contains(r.header.Get("WWW-Authenticate"), `realm="upstream-realm"`) {
			t.Fatalf("signature PUT with %s: %d %q %s", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
		if r := httpDo(t, "GET", s.url("/extensions/v2/team/app/signatures/"+dgst), nil, hdr); r.status != http.StatusUnauthorized {
			t.Fatalf("signature GET with %s: %d", name, r.status)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("%d signatures after refused PUTs, want 1", n)
	}
	// The right credentials, through curl as the README shows.
	r := putProxySignature(t, s.url(""), "team/app", dgst, alice)
	if r.status != http.StatusCreated {
		t.Fatalf("signature PUT as alice: %d %s", r.status, r.body)
	}
	code := run(t, nil, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
		"http://alice:wrong@"+s.addr+"/extensions/v2/team/app/signatures/"+dgst)
	if code != "401" {
		t.Fatalf("curl with a wrong password: %s", code)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	// The push checks cancelled their uploads (distribution keeps an
	// empty hash state of a cancelled upload until its purge).
	for _, f := range []string{"data", "startedat"} {
		if left, _ := filepath.Glob(filepath.Join(tmp, "upstream", "storage", "docker/registry/v2/repositories/team/app/_uploads/*", f)); len(left) != 0 {
			t.Fatalf("push checks left uploads upstream: %v", left)
		}
	}
}

// TestProxyBlobsAndOutage: a 64 MiB blob pulled through Signet is
// byte-identical, Range requests work; with the upstream stopped, requests
// get 502/503 JSON errors at once and the server's goroutines stay level;
// once the upstream is back, so is Signet.
func TestProxyBlobsAndOutage(t *testing.T) {
	tmp := t.TempDir()
	up := startUpstream(t, filepath.Join(tmp, "upstream"), "")
	s := startServer(t, filepath.Join(tmp, "data"), "--upstream", "http://"+up.addr)

	blob := make([]byte, 64<<20)
	_, _ = rand.Read(blob)
	sum := sha256.Sum256(blob)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	r := httpDo(t, "POST", s.url("/v2/big/blob/blobs/uploads/"), nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/big/blob/blobs/uploads/") {
		t.Fatalf("Location %q does not point at Signet", loc)
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r = httpDo(t, "PUT", s.url(loc+sep+"digest="+dgst), bytes.NewReader(blob), map[string]string{"Content-Type": "application/octet-stream"})
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	for _, base := range []string{s.url(""), up.url("")} {
		r = httpDo(t, "GET", base+"/v2/big/blob/blobs/"+dgst, nil, nil)
		if got := sha256.Sum256(r.body); r.status != http.StatusOK || got != sum || len(r.body) != len(blob) {
			t.Fatalf("GET %s: %d, %d bytes, digest differs: %v", base, r.status, len(r.body), got != sum)
		}
	}
	r = httpDo(t, "GET", s.url("/v2/big/blob/blobs/"+dgst), nil, map[string]string{"Range": "bytes=1000000-1999999"})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, blob[1000000:2000000]) ||
		r.header.Get("Content-Range") != fmt.Sprintf("bytes 1000000-1999999/%d", len(blob)) {
		t.Fatalf("Range: %d %q, %d bytes", r.status, r.header.Get("Content-Range"), len(r.body))
	}

	client := &http.Client{Timeout: 30 * time.Second}
	goroutines := func() float64 {
		m, err := metricsOf(client, s.url(""), "go_goroutines")
		if err != nil {
			t.Fatal(err)
		}
		return m["go_goroutines"]
	}
	before := goroutines()

	up.stop()
	start := time.Now()
	r = httpDo(t, "GET", s.url("/v2/big/blob/blobs/"+dgst), nil, nil)
	if r.status != http.StatusBadGateway || jsonErrorCode(t, r) != "UNAVAILABLE" {
		t.Fatalf("blob GET with the upstream down: %d %s", r.status, r.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the 502 took %v", d)
	}
	r = putProxySignature(t, s.url(""), "big/blob", dgst, nil)
	if r.status != http.StatusServiceUnavailable || jsonErrorCode(t, r) != "UNAVAILABLE" {
		t.Fatalf("signature PUT with the upstream down: %d %s", r.status, r.body)
	}
	time.Sleep(1100 * time.Millisecond) // past the readiness answer's reuse
	if r := httpDo(t, "GET", s.url("/readyz"), nil, nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the upstream down: %d %s", r.status, r.body)
	}

	// A bounded burst while the upstream is down.
	var wg sync.WaitGroup
	var mu sync.Mutex
	unexpected := map[int]int{}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for i := range 25 {
				path := []string{"/v2/", "/v2/big/blob/blobs/" + dgst, "/v2/big/blob/manifests/v1",
					"/extensions/v2/big/blob/signatures/sha256:" + strings.Repeat(fmt.Sprint(w%10), 64)}[i%4]
				resp, err := c.Get(s.url(path))
				if err != nil {
					mu.Lock()
					unexpected[-1]++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
					mu.Lock()
					unexpected[resp.StatusCode]++
					mu.Unlock()
				}
			}
			c.CloseIdleConnections()
		}()
	}
	wg.Wait()
	if len(unexpected) != 0 {
		t.Fatalf("answers other than 502/503 while the upstream was down (-1: transport error): %v", unexpected)
	}
	// Goroutines come back to the level before the outage (connection
	// goroutines of closed client connections need a moment).
	deadline := time.Now().Add(20 * time.Second)
	after := goroutines()
	for after > before+3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		after = goroutines()
	}
	if after > before+3 {
		t.Fatalf("goroutines %v before the outage, %v after the burst", before, after)
	}

	// The upstream comes back on the same address: so does Signet.
	up.start()
	time.Sleep(1100 * time.Millisecond)
	if r := httpDo(t, "GET", s.url("/readyz"), nil, nil); r.status != http.StatusOK {
		t.Fatalf("readyz after the upstream came back: %d %s", r.status, r.body)
	}
	r = httpDo(t, "GET", s.url("/v2/big/blob/blobs/"+dgst), nil, map[string]string{"Range": "bytes=0-9"})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, blob[:10]) {
		t.Fatalf("blob after the upstream came back: %d", r.status)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, s.logs.String())
	}
}
