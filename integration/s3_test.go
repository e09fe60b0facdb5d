package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"

	"github.com/signet-registry/signet/internal/etcdtest"
)

// minioVersion is the MinIO server .ci/run and `make deps` install with
// `go install github.com/minio/minio@…`: the newest module version on the
// Go module proxy, which builds with Go 1.26.
const minioVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// goBin finds a tool on PATH or where `go install` puts it, and fails (not
// skips) without it, like requireTools.
func goBin(t *testing.T, name, module, version string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("%s is not installed; run `make deps` or `go install %s@%s`", name, module, version)
	return ""
}

// minio is a MinIO server on loopback with its data in a test directory.
type minio struct {
	endpoint  string
	accessKey string
	secretKey string
	client    *s3.S3
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startMinio runs `minio server` as an operator would, on random loopback
// ports, and creates bucket.
func startMinio(t *testing.T, bucket string) *minio {
	t.Helper()
	bin := goBin(t, "minio", "github.com/minio/minio", minioVersion)
	m := &minio{accessKey: "signet-test", secretKey: "signet-test-secret-key"}
	var logs bytes.Buffer
	for attempt := 0; ; attempt++ {
		port, console := freeLoopbackPort(t), freeLoopbackPort(t)
		m.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
		cmd := exec.Command(bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), filepath.Join(t.TempDir(), "minio"))
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.accessKey, "MINIO_ROOT_PASSWORD="+m.secretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		logs.Reset()
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		if waitHTTP(m.endpoint+"/minio/health/live", 30*time.Second, done) {
			break
		}
		if attempt == 2 {
			t.Fatalf("minio did not start:\n%s", logs.String())
		}
	}
	sess, err := session.NewSession(aws.NewConfig().
		WithEndpoint(m.endpoint).WithRegion("us-east-1").WithS3ForcePathStyle(true).WithDisableSSL(true).
		WithCredentials(credentials.NewStaticCredentials(m.accessKey, m.secretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	m.client = s3.New(sess)
	if _, err := m.client.CreateBucket(&s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return m
}

// waitHTTP polls url until it answers 200, the process exits, or timeout.
func waitHTTP(url string, timeout time.Duration, exited <-chan error) bool {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := c.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// objects lists the keys under prefix in bucket.
func (m *minio) objects(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	err := m.client.ListObjectsV2Pages(&s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)},
		func(p *s3.ListObjectsV2Output, _ bool) bool {
			for _, o := range p.Contents {
				keys = append(keys, aws.StringValue(o.Key))
			}
			return true
		})
	if err != nil {
		t.Fatalf("list %s/%s: %v", bucket, prefix, err)
	}
	return keys
}

// layoutBlobs reads every blob of an OCI layout by digest.
func layoutBlobs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out["sha256:"+e.Name()] = b
	}
	return out
}

// TestS3BlobStorage: with storage.registry.driver s3, blobs and manifests
// live in a real S3-compatible server (MinIO) and nowhere on local disk.
// skopeo pushes an image in and copies it out byte for byte; the
// signature API's manifest checks (PUT, GET, delete) go through the same
// driver, so they see the pushed manifest; signatures are in etcd. The
// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not
// the configuration file.
func TestS3BlobStorage(t *testing.T) {
	requireTools(t, "skopeo", etcdtest.Binary)
	tmp := t.TempDir()
	const bucket, root = "signet-blobs", "/registry-it"
	m := startMinio(t, bucket)
	etcd := etcdtest.Start(t, etcdtest.Options{})
	t.Setenv("AWS_ACCESS_KEY_ID", m.accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.secretKey)
	cfgPath := etcdConfig(t, tmp, etcd, fmt.Sprintf(`  registry:
    driver: s3
    parameters:
      bucket: %s
      region: us-east-1
      regionendpoint: %s
      forcepathstyle: true
      secure: false
      rootdirectory: %s
`, bucket, m.endpoint, root))
	dataDir := filepath.Join(tmp, "data")
	s := startServer(t, dataDir, "--config", cfgPath)

	// Push.
	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "src")
	srcDigest := ociImage(t, src, "v1", strings.Repeat("blob bytes on object storage\n", 4096))
	ref := s.addr + "/team/app:v1"
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false", "oci:"+src+":v1", "docker://"+ref)...)
	if got := manifestDigest(t, s, "team/app", "v1"); got != srcDigest {
		t.Fatalf("registry serves manifest %s, pushed %s", got, srcDigest)
	}

	// Everything went to the bucket, nothing to the data directory.
	stored := m.objects(t, bucket, strings.TrimPrefix(root, "/")+"/docker/registry/v2/")
	srcBlobs := layoutBlobs(t, src)
	for dgst := range srcBlobs {
		hex := strings.TrimPrefix(dgst, "sha256:")
		want := fmt.Sprintf("%s/docker/registry/v2/blobs/sha256/%s/%s/data", strings.TrimPrefix(root, "/"), hex[:2], hex)
		if !strings.Contains(strings.Join(stored, "\n"), want) {
			t.Fatalf("blob %s is not in the bucket; objects:\n%s", dgst, strings.Join(stored, "\n"))
		}
	}
	_ = filepath.WalkDir(filepath.Join(dataDir, "registry"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file on local disk with the s3 driver: %s", p)
		}
		return nil
	})

	// Pull: byte-identical.
	dest := filepath.Join(tmp, "dest")
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dest+":v1")...)
	destBlobs := layoutBlobs(t, dest)
	if len(destBlobs) != len(srcBlobs) {
		t.Fatalf("pulled %d blobs, pushed %d", len(destBlobs), len(srcBlobs))
	}
	for dgst, b := range srcBlobs {
		if !bytes.Equal(destBlobs[dgst], b) {
			t.Fatalf("blob %s differs after the round trip through S3", dgst)
		}
	}

	// The signature API finds the manifest through the driver.
	putSignature(t, s, "team/app", srcDigest, []byte("a signature"))
	if got := signatures(t, s, "team/app", srcDigest); len(got) != 1 || string(got[0].Content) != "a signature" {
		t.Fatalf("signatures %+v", got)
	}
	c := newHTTPClient(2, 30*time.Second)
	if r, err := send(c, http.MethodGet, s.url("/extensions/v2/team/app/signatures/sha256:"+strings.Repeat("0", 64)), nil, nil); err != nil || r.status != http.StatusNotFound {
		t.Fatalf("GET signatures of a manifest not in the bucket: %+v %v", r, err)
	}
	// Deleting the manifest deletes it from the bucket, and its signatures.
	r, err := send(c, http.MethodDelete, s.url("/v2/team/app/manifests/"+srcDigest), nil, nil)
	if err != nil || r.status != http.StatusAccepted {
		t.Fatalf("DELETE manifest: %+v %v", r, err)
	}
	if r, err := send(c, http.MethodGet, s.url("/signet/v1/repositories/team/app/signatures/"+srcDigest), nil, nil); err != nil || r.status != http.StatusNotFound {
		t.Fatalf("signatures after the manifest delete: %+v %v", r, err)
	}
	c2 := newHTTPClient(2, 30*time.Second)
	if r, err := send(c2, http.MethodPut, s.url("/extensions/v2/team/app/signatures/"+srcDigest), signatureBody(srcDigest, 9, []byte("late")), nil); err != nil || r.status != http.StatusNotFound {
		t.Fatalf("PUT after the manifest delete: %+v %v", r, err)
	}
}
