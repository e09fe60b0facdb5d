package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Helpers of the reliability tests (crash, soak, disk full, restart):
// plain HTTP against the registry, so nothing but Signet decides what
// happens, and a bounded client whose every request has a deadline.

const ociManifestType = "application/vnd.oci.image.manifest.v1+json"

// writeConfig writes a signet configuration file and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "signet.yaml")
	if err := os.WriteFile(p, []byte("version: 1\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newHTTPClient returns a client with its own connection pool, bounded
// per request.
func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: tr, Timeout: timeout}
}

// reply is one HTTP answer, read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send does one request; err is a transport failure (no answer).
func send(c *http.Client, method, u string, body []byte, hdr map[string]string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

// errorCodeOf returns the first code of an error envelope, or "".
func errorCodeOf(body []byte) string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b monolithically (POST, then PUT with the digest).
func pushBlob(c *http.Client, base, repo string, b []byte) (string, error) {
	r, err := send(c, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return "", err
	}
	if r.status != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %d %s", r.status, r.body)
	}
	loc, err := uploadURL(base, r.header.Get("Location"), url.Values{"digest": {sha256Digest(b)}})
	if err != nil {
		return "", err
	}
	r, err = send(c, "PUT", loc, b, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return "", err
	}
	if r.status != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %d %s", r.status, r.body)
	}
	return sha256Digest(b), nil
}

// uploadURL resolves an upload Location against base and adds query.
func uploadURL(base, location string, query url.Values) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	loc, err := b.Parse(location)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", location, err)
	}
	q := loc.Query()
	for k, v := range query {
		q[k] = v
	}
	loc.RawQuery = q.Encode()
	return loc.String(), nil
}

// rebase moves an absolute URL to another server, keeping path and query.
func rebase(base, u string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	return base + parsed.RequestURI(), nil
}

// testImage is a pushed image: its manifest and blobs as sent.
type testImage struct {
	repo, tag string
	manifest  []byte
	digest    string
	blobs     map[string][]byte // digest -> bytes
}

// pushImage pushes an image of one random layer of layerSize bytes and a
// unique config, tagged tag.
func pushImage(c *http.Client, base, repo, tag string, layerSize int) (*testImage, error) {
	layer := make([]byte, layerSize)
	_, _ = rand.Read(layer)
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Labels":{"nonce":%q}},"rootfs":{"type":"layers","diff_ids":[]}}`, hex.EncodeToString(nonce)))
	img := &testImage{repo: repo, tag: tag, blobs: map[string][]byte{}}
	for _, b := range [][]byte{layer, cfg} {
		d, err := pushBlob(c, base, repo, b)
		if err != nil {
			return nil, err
		}
		img.blobs[d] = b
	}
	img.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		ociManifestType, sha256Digest(cfg), len(cfg), sha256Digest(layer), len(layer)))
	img.digest = sha256Digest(img.manifest)
	r, err := send(c, "PUT", base+"/v2/"+repo+"/manifests/"+tag, img.manifest, map[string]string{"Content-Type": ociManifestType})
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusCreated {
		return nil, fmt.Errorf("push manifest %s:%s: %d %s", repo, tag, r.status, r.body)
	}
	return img, nil
}

// verifyImage checks that the registry serves the image byte for byte.
func verifyImage(c *http.Client, base string, img *testImage) error {
	r, err := send(c, "GET", base+"/v2/"+img.repo+"/manifests/"+img.digest, nil, map[string]string{"Accept": ociManifestType})
	if err != nil {
		return err
	}
	if r.status != http.StatusOK || !bytes.Equal(r.body, img.manifest) {
		return fmt.Errorf("manifest %s@%s: %d, %d bytes, identical=%v", img.repo, img.digest, r.status, len(r.body), bytes.Equal(r.body, img.manifest))
	}
	for d, b := range img.blobs {
		r, err := send(c, "GET", base+"/v2/"+img.repo+"/blobs/"+d, nil, nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, b) {
			return fmt.Errorf("blob %s@%s: %d, %d bytes", img.repo, d, r.status, len(r.body))
		}
	}
	return nil
}

// newSignature returns a unique name for dgst and random content of n
// bytes, with its PUT body.
func newSignature(dgst string, n int) (name string, content, body []byte) {
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	name = dgst + "@" + hex.EncodeToString(suffix[:])
	content = make([]byte, n)
	_, _ = rand.Read(content)
	body = []byte(fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":%q}`, name, base64.StdEncoding.EncodeToString(content)))
	return name, content, body
}

// listSignatures GETs an image's extension list.
func listSignatures(c *http.Client, base, repo, dgst string) ([]wireSignature, error) {
	r, err := send(c, "GET", base+"/extensions/v2/"+repo+"/signatures/"+dgst, nil, nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("GET signatures of %s@%s: %d %s", repo, dgst, r.status, r.body)
	}
	var list struct {
		Signatures []wireSignature `json:"signatures"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		return nil, fmt.Errorf("decode signature list: %w", err)
	}
	return list.Signatures, nil
}

// signetCheck runs `signet check` and returns its output and exit code.
func signetCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(signetBin, append([]string{"check"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("signet check: %v", err)
	}
	return string(out), 0
}

// mustCheck fails the test unless `signet check --data-dir dir` passes.
func mustCheck(t *testing.T, dataDir string) string {
	t.Helper()
	out, code := signetCheck(t, "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, ": ok: ") {
		t.Fatalf("signet check --data-dir %s: exit %d\n%s", dataDir, code, out)
	}
	return strings.TrimSpace(out)
}

// metricsOf scrapes /metrics and returns the unlabelled samples asked for.
func metricsOf(c *http.Client, base string, names ...string) (map[string]float64, error) {
	r, err := send(c, "GET", base+"/metrics", nil, nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", r.status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.body), "\n") {
		for _, n := range names {
			if v, ok := strings.CutPrefix(line, n+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return nil, fmt.Errorf("metric %s: %w", n, err)
				}
				out[n] = f
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("metric %s missing", n)
		}
	}
	return out, nil
}

// shortOr is full, or short under go test -short (make test-unit).
func shortOr[T any](full, short T) T {
	if testing.Short() {
		return short
	}
	return full
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envDuration reads a positive duration from the environment, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 60s", name, v)
	}
	return d
}
