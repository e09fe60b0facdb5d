package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-registry/signet/internal/etcdtest"
)

// eventually polls cond every 50 ms until it holds or limit passes.
func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// cacheHits reads signet_cache_hits_total{cache=name} from /metrics.
func cacheHits(t *testing.T, c *http.Client, s *server, name string) float64 {
	t.Helper()
	resp, err := send(c, http.MethodGet, s.url("/metrics"), nil, nil)
	if err != nil || resp.status != http.StatusOK {
		t.Fatalf("metrics: %+v %v", resp, err)
	}
	prefix := `signet_cache_hits_total{cache="` + name + `"} `
	for _, line := range strings.Split(string(resp.body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("no %s in /metrics", prefix)
	return 0
}

// TestThreeReplicas: three `signet serve` processes on one etcd (Debian's
// etcd-server) and one object store (MinIO), as behind a load balancer
// whose name, registry.example.com, is the identity images are signed
// for. Push through replica 1, sign and verify with --save through
// replica 2, pull with a signedBy policy through replica 3, and describe
// the same status on all three. Then: a write on one replica is seen by
// another's cache; a manifest delete on one makes the others forget the
// image; kill -9 of a replica during concurrent PUTs loses nothing that
// was acknowledged; with etcd stopped, writes get 503 and cached reads
// stop within the cache lease; with etcd back, writes work again without
// restarting any replica.
func TestThreeReplicas(t *testing.T) {
	requireTools(t, "skopeo", "gpg", etcdtest.Binary)
	tmp := t.TempDir()
	const bucket = "signet-replicas"
	m := startMinio(t, bucket)
	etcd := etcdtest.Start(t, etcdtest.Options{})
	t.Setenv("AWS_ACCESS_KEY_ID", m.accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.secretKey)
	cfg := etcdConfig(t, tmp, etcd, fmt.Sprintf(`  registry:
    driver: s3
    parameters:
      bucket: %s
      region: us-east-1
      regionendpoint: %s
      forcepathstyle: true
      secure: false
      rootdirectory: /replicas
`, bucket, m.endpoint))
	dirs := []string{filepath.Join(tmp, "r1"), filepath.Join(tmp, "r2"), filepath.Join(tmp, "r3")}
	r1 := startServer(t, dirs[0], "--config", cfg)
	// Replicas share the upload-state secret (README, "Scale-out storage").
	secret, err := os.ReadFile(filepath.Join(dirs[0], "http-secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs[1:] {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "http-secret"), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r2 := startServer(t, dirs[1], "--config", cfg)
	r3 := startServer(t, dirs[2], "--config", cfg)
	replicas := []*server{r1, r2, r3}

	g := newGnuPG(t, "Replica Signer <replicas@example.com>")
	key := filepath.Join(tmp, "key.gpg")
	g.exportPublic(t, key)
	stranger := newGnuPG(t, "Stranger <stranger@example.com>")
	strangerKey := filepath.Join(tmp, "stranger.gpg")
	stranger.exportPublic(t, strangerKey)
	const identity = "registry.example.com/team/app:v1"

	// Push through replica 1; every replica serves it.
	dgst := pushUnsigned(t, r1, tmp, "team/app", "v1")
	for _, r := range replicas {
		if got := manifestDigest(t, r, "team/app", "v1"); got != dgst {
			t.Fatalf("replica %s serves %s, pushed %s", r.addr, got, dgst)
		}
	}

	// Sign, and verify with --save, through replica 2.
	if out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, "--identity", identity, r2.addr+"/team/app:v1"); err != nil {
		t.Fatalf("sign through replica 2: %v\n%s", err, out)
	}
	if out, err := signet(t, nil, "verify-image-signature", "--insecure", r2.addr+"/team/app@"+dgst,
		"--expected-identity", identity, "--public-key", key, "--save"); err != nil {
		t.Fatalf("verify --save through replica 2: %v\n%s", err, out)
	}

	// describe shows the same status on every replica.
	var first string
	for _, r := range replicas {
		d := describeImage(t, r.addr+"/team/app@"+dgst)
		if len(d.Signatures) != 1 || d.Signatures[0].State != "Verified" || d.Signatures[0].Status == nil {
			t.Fatalf("describe through %s: %+v", r.addr, d)
		}
		b, _ := json.Marshal(d.Signatures)
		if first == "" {
			first = string(b)
		} else if string(b) != first {
			t.Fatalf("replicas disagree:\n%s\n%s", first, b)
		}
	}

	// Pull through replica 3 with a signedBy policy; a policy naming
	// another key refuses the same image.
	regD := filepath.Join(tmp, "registries.d")
	if err := os.Mkdir(regD, 0o755); err != nil {
		t.Fatal(err)
	}
	policy := func(keyPath string) string {
		p := filepath.Join(tmp, filepath.Base(keyPath)+".policy.json")
		writeJSON(t, p, map[string]any{
			"default": []any{map[string]any{"type": "reject"}},
			"transports": map[string]any{"docker": map[string]any{r3.addr + "/team/app": []any{map[string]any{
				"type": "signedBy", "keyType": "GPGKeys", "keyPath": keyPath,
				"signedIdentity": map[string]any{"type": "exactRepository", "dockerRepository": "registry.example.com/team/app"},
			}}}},
		})
		return p
	}
	run(t, nil, "skopeo", append(skopeoArgs(regD, policy(key)), "copy", "--src-tls-verify=false",
		"docker://"+r3.addr+"/team/app:v1", "dir:"+filepath.Join(tmp, "pulled"))...)
	if out, err := runErr(nil, "skopeo", append(skopeoArgs(regD, policy(strangerKey)), "copy", "--src-tls-verify=false",
		"docker://"+r3.addr+"/team/app:v1", "dir:"+filepath.Join(tmp, "refused"))...); err == nil {
		t.Fatalf("a policy naming another key accepted the image:\n%s", out)
	}

	// A write through one replica reaches another's cached list.
	c := newHTTPClient(64, 30*time.Second)
	list := func(r *server, repo, d string) (int, int) {
		resp, err := send(c, http.MethodGet, r.url("/extensions/v2/"+repo+"/signatures/"+d), nil, nil)
		if err != nil {
			return 0, -1
		}
		var l struct {
			Signatures []wireSignature `json:"signatures"`
		}
		_ = json.Unmarshal(resp.body, &l)
		return resp.status, len(l.Signatures)
	}
	hitsBefore := cacheHits(t, c, r3, "signatures")
	for range 3 { // fill replica 3's cache, then hit it
		if st, n := list(r3, "team/app", dgst); st != http.StatusOK || n != 1 {
			t.Fatalf("replica 3 list: %d, %d signatures", st, n)
		}
	}
	if hits := cacheHits(t, c, r3, "signatures"); hits < hitsBefore+2 {
		t.Fatalf("replica 3 served the list from its cache %v times of 3: the test would not show invalidation", hits-hitsBefore)
	}
	putSignature(t, r1, "team/app", dgst, []byte("a second signature, through replica 1"))
	if !eventually(5*time.Second, func() bool { _, n := list(r3, "team/app", dgst); return n == 2 }) {
		t.Fatal("replica 3 still serves one signature after replica 1 stored a second")
	}

	// A manifest deleted through replica 1 is gone from the others,
	// whose caches had it.
	gone := pushUnsigned(t, r1, tmp, "team/gone", "v1")
	putSignature(t, r1, "team/gone", gone, []byte("signature of an image about to go"))
	manifestPath := "/v2/team/gone/manifests/" + gone
	accept := map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}
	for _, r := range []*server{r2, r3} {
		for range 2 {
			if resp, err := send(c, http.MethodGet, r.url(manifestPath), nil, accept); err != nil || resp.status != http.StatusOK {
				t.Fatalf("GET manifest through %s: %+v %v", r.addr, resp, err)
			}
			if st, n := list(r, "team/gone", gone); st != http.StatusOK || n != 1 {
				t.Fatalf("list through %s: %d %d", r.addr, st, n)
			}
		}
	}
	if resp, err := send(c, http.MethodDelete, r1.url(manifestPath), nil, nil); err != nil || resp.status != http.StatusAccepted {
		t.Fatalf("DELETE through replica 1: %+v %v", resp, err)
	}
	for _, r := range []*server{r2, r3} {
		if !eventually(5*time.Second, func() bool {
			resp, err := send(c, http.MethodGet, r.url(manifestPath), nil, accept)
			st, _ := list(r, "team/gone", gone)
			return err == nil && resp.status == http.StatusNotFound && st == http.StatusNotFound
		}) {
			t.Fatalf("replica %s still serves the deleted manifest or its signatures", r.addr)
		}
	}

	// kill -9 replica 2 during concurrent PUTs spread over all three:
	// every acknowledged signature is readable from the survivors.
	var images []string
	for i := range 3 {
		images = append(images, pushUnsigned(t, r1, tmp, "team/load", fmt.Sprintf("v%d", i)))
	}
	type acked struct{ dgst, name, content string }
	var mu sync.Mutex
	var acks []acked
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 40; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := replicas[(w+n)%3]
				d := images[(w+n)%len(images)]
				content := fmt.Sprintf("writer %d signature %d", w, n)
				num := w*1000 + n
				resp, err := send(c, http.MethodPut, r.url("/extensions/v2/team/load/signatures/"+d), signatureBody(d, num, []byte(content)), nil)
				if err == nil && resp.status == http.StatusCreated {
					mu.Lock()
					acks = append(acks, acked{d, fmt.Sprintf("%s@%032x", d, num), content})
					mu.Unlock()
				}
			}
		}()
	}
	eventually(20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acks) >= 40 })
	if err := r2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stop)
	<-r2.done
	if len(acks) < 40 {
		t.Fatalf("only %d PUTs acknowledged", len(acks))
	}
	for _, r := range []*server{r1, r3} {
		have := map[string]string{}
		for _, d := range images {
			for _, s := range signatures(t, r, "team/load", d) {
				have[s.Name] = string(s.Content)
			}
		}
		for _, a := range acks {
			if have[a.name] != a.content {
				t.Fatalf("replica %s lost acknowledged signature %s", r.addr, a.name)
			}
		}
	}
	t.Logf("%d acknowledged PUTs, all readable from both survivors", len(acks))

	// etcd stopped: writes get 503 with a JSON error; replica 3's cached
	// list stops being served within the lease (2 s) plus a probe.
	for range 3 {
		if st, _ := list(r3, "team/app", dgst); st != http.StatusOK {
			t.Fatalf("replica 3 list before the outage: %d", st)
		}
	}
	if err := etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resp, err := send(c, http.MethodPut, r1.url("/extensions/v2/team/app/signatures/"+dgst), signatureBody(dgst, 99999, []byte("during the outage")), nil)
	if err != nil || resp.status != http.StatusServiceUnavailable || !strings.Contains(string(resp.body), `"UNAVAILABLE"`) {
		t.Fatalf("PUT with etcd stopped: %+v %v", resp, err)
	}
	if !eventually(6*time.Second, func() bool { st, _ := list(r3, "team/app", dgst); return st == http.StatusServiceUnavailable }) {
		t.Fatalf("replica 3 still served its cached list %s after etcd stopped", time.Since(stopped))
	}
	t.Logf("cached reads stopped %s after etcd did", time.Since(stopped).Round(10*time.Millisecond))

	// etcd back: the same processes write again.
	if err := etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	if !eventually(30*time.Second, func() bool {
		resp, err := send(c, http.MethodPut, r1.url("/extensions/v2/team/app/signatures/"+dgst), signatureBody(dgst, 100000, []byte("after the outage")), nil)
		return err == nil && resp.status == http.StatusCreated
	}) {
		t.Fatal("replica 1 did not accept writes after etcd came back")
	}
	if !eventually(10*time.Second, func() bool { st, n := list(r3, "team/app", dgst); return st == http.StatusOK && n == 3 }) {
		st, n := list(r3, "team/app", dgst)
		t.Fatalf("replica 3 after the outage: %d, %d signatures (want 3)", st, n)
	}
}
