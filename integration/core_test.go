package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// skopeoArgs are the global flags every skopeo call uses: an empty
// registries.d, so nothing but the extension API can carry signatures,
// and an explicit policy.
func skopeoArgs(registriesD, policy string) []string {
	return []string{"--registries.d", registriesD, "--policy", policy}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// skopeoDirs creates a registries.d directory and a policy that accepts
// any image (acceptAnything) under tmp, for skopeoArgs.
func skopeoDirs(t *testing.T, tmp string) (regD, anything string) {
	t.Helper()
	regD = filepath.Join(tmp, "registries.d")
	if err := os.Mkdir(regD, 0o755); err != nil {
		t.Fatal(err)
	}
	anything = filepath.Join(tmp, "anything.json")
	writeJSON(t, anything, acceptAnything())
	return regD, anything
}

func acceptAnything() map[string]any {
	return map[string]any{"default": []any{map[string]any{"type": "insecureAcceptAnything"}}}
}

func signedByPolicy(scope, keyPath string) map[string]any {
	return map[string]any{
		"default": []any{map[string]any{"type": "reject"}},
		"transports": map[string]any{
			"docker": map[string]any{
				scope: []any{map[string]any{"type": "signedBy", "keyType": "GPGKeys", "keyPath": keyPath}},
			},
		},
	}
}

// pushUnsigned pushes a fresh one-layer image to repo:tag with skopeo and
// returns its manifest digest as the registry serves it.
func pushUnsigned(t *testing.T, s *server, tmp, repo, tag string) string {
	t.Helper()
	dir, err := os.MkdirTemp(tmp, "push")
	if err != nil {
		t.Fatal(err)
	}
	regD := filepath.Join(dir, "registries.d")
	if err := os.Mkdir(regD, 0o755); err != nil {
		t.Fatal(err)
	}
	anything := filepath.Join(dir, "anything.json")
	writeJSON(t, anything, acceptAnything())
	src := filepath.Join(dir, "layout")
	ociImage(t, src, tag, repo+":"+tag+"\n")
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"oci:"+src+":"+tag, "docker://"+s.addr+"/"+repo+":"+tag)...)
	return manifestDigest(t, s, repo, tag)
}

// TestSkopeoSignedPushAndPolicyPull: skopeo pushes and signs through the
// extension API on its own (it sees X-Registry-Supports-Signatures), and a
// signedBy policy accepts the signer's key and rejects another key.
func TestSkopeoSignedPushAndPolicyPull(t *testing.T) {
	requireTools(t, "skopeo")
	tmp := t.TempDir()
	g := newGnuPG(t, "Signet Signer <signer@example.com>")
	other := newGnuPG(t, "Someone Else <else@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))

	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "hello from signet\n")

	ref := s.addr + "/ns/app:v1"
	out := run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	if !strings.Contains(out, "Storing signatures") {
		t.Fatalf("skopeo did not store signatures:\n%s", out)
	}
	dgst := manifestDigest(t, s, "ns/app", "v1")
	sigs := signatures(t, s, "ns/app", dgst)
	if len(sigs) != 1 || sigs[0].Type != "atomic" || !strings.HasPrefix(sigs[0].Name, dgst+"@") {
		t.Fatalf("stored signatures %+v", sigs)
	}
	// The stored bytes are a signature gpg itself accepts.
	sigFile := filepath.Join(tmp, "sig.gpg")
	if err := os.WriteFile(sigFile, sigs[0].Content, 0o644); err != nil {
		t.Fatal(err)
	}
	payload := run(t, g.env, "gpg", "--batch", "--decrypt", sigFile)
	if !strings.Contains(payload, `"docker-manifest-digest":"`+dgst+`"`) || !strings.Contains(payload, `"docker-reference":"`+ref+`"`) {
		t.Fatalf("payload %s", payload)
	}

	// An unsigned re-push leaves the stored signature alone.
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"oci:"+src+":v1", "docker://"+ref)...)
	if n := len(signatures(t, s, "ns/app", dgst)); n != 1 {
		t.Fatalf("%d signatures after unsigned re-push, want 1", n)
	}
	// A second signing (a later timestamp, so different bytes) adds one.
	time.Sleep(1100 * time.Millisecond)
	run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	if n := len(signatures(t, s, "ns/app", dgst)); n != 2 {
		t.Fatalf("%d signatures after second signed push, want 2", n)
	}

	// Pull with a policy requiring this key: accepted.
	goodKey := filepath.Join(tmp, "good.gpg")
	g.exportPublic(t, goodKey)
	goodPolicy := filepath.Join(tmp, "good-policy.json")
	writeJSON(t, goodPolicy, signedByPolicy(s.addr, goodKey))
	run(t, nil, "skopeo", append(skopeoArgs(regD, goodPolicy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "pulled")+":v1")...)

	// Pull with a policy requiring another key: rejected.
	badKey := filepath.Join(tmp, "bad.gpg")
	other.exportPublic(t, badKey)
	badPolicy := filepath.Join(tmp, "bad-policy.json")
	writeJSON(t, badPolicy, signedByPolicy(s.addr, badKey))
	out, err := runErr(nil, "skopeo", append(skopeoArgs(regD, badPolicy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "rejected")+":v1")...)
	if err == nil {
		t.Fatalf("pull with another key's policy succeeded:\n%s", out)
	}
	if !strings.Contains(out, "Source image rejected") {
		t.Fatalf("pull failed for an unexpected reason:\n%s", out)
	}

	// Durability: the signatures survive a crash (SIGKILL) and a clean
	// restart, byte for byte.
	before := signatures(t, s, "ns/app", dgst)
	_ = s.stop(syscall.SIGKILL)
	s2 := startServer(t, s.dataDir, "--addr", s.addr)
	after := signatures(t, s2, "ns/app", dgst)
	if len(after) != len(before) {
		t.Fatalf("%d signatures before crash, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i].Name != after[i].Name || !bytes.Equal(before[i].Content, after[i].Content) {
			t.Fatalf("signature %d changed across restart", i)
		}
	}
	// And the restarted server still satisfies the policy pull.
	run(t, nil, "skopeo", append(skopeoArgs(regD, goodPolicy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "pulled2")+":v1")...)
	if err := s2.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, s2.logs.String())
	}
}

// TestCurlWorkflow follows the documented curl workflow verbatim, with a
// signature made by the gpg command-line tool.
func TestCurlWorkflow(t *testing.T) {
	requireTools(t, "skopeo", "curl", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Curl Signer <curl@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))
	dgst := pushUnsigned(t, s, tmp, "myproject/myimage", "latest")

	payload := fmt.Sprintf(`{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":%q},"identity":{"docker-reference":%q}},"optional":{"creator":"curl test","timestamp":%d}}`,
		dgst, s.addr+"/myproject/myimage:latest", time.Now().Unix())
	payloadFile := filepath.Join(tmp, "payload.json")
	_ = os.WriteFile(payloadFile, []byte(payload), 0o644)
	sigFile := filepath.Join(tmp, "payload.sig")
	run(t, g.env, "gpg", "--batch", "--yes", "--local-user", g.fpr, "--output", sigFile, "--sign", payloadFile)
	content, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	name := dgst + "@" + hex.EncodeToString(suffix[:])
	writeJSON(t, filepath.Join(tmp, "signature.json"), map[string]any{
		"schemaVersion": 2, "name": name, "type": "atomic", "content": base64.StdEncoding.EncodeToString(content),
	})

	// curl -X PUT --data @signature.json http://<user>:<token>@<host>/extensions/v2/<ns>/<name>/signatures/sha256:<digest>
	putURL := "http://admin:token123@" + s.addr + "/extensions/v2/myproject/myimage/signatures/" + dgst
	cmd := fmt.Sprintf(`cd %q && curl -sS -o /dev/null -w '%%{http_code}' -X PUT --data @signature.json %s`, tmp, putURL)
	if code := run(t, nil, "sh", "-c", cmd); code != "201" {
		t.Fatalf("curl PUT: status %s", code)
	}
	// The audit record, written before the 201, in slog's text format
	// (the server writes it without slog; this is the real binary's log).
	s.waitLog("level=INFO msg=audit log=audit event=signature.put user=anonymous repository=myproject/myimage digest="+dgst+
		" remote=127.0.0.1:", 10*time.Second)
	s.waitLog(" signature="+name+"\n", 10*time.Second)
	body := run(t, nil, "curl", "-sS", "-i", "http://admin:token123@"+s.addr+"/extensions/v2/myproject/myimage/signatures/"+dgst)
	head, jsonBody, _ := strings.Cut(body, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(strings.ToLower(head), "content-type: application/json; charset=utf-8") {
		t.Fatalf("curl GET headers:\n%s", head)
	}
	var list struct {
		Signatures []wireSignature `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(jsonBody), &list); err != nil {
		t.Fatalf("curl GET body %q: %v", jsonBody, err)
	}
	if len(list.Signatures) != 1 || list.Signatures[0].SchemaVersion != 2 || list.Signatures[0].Name != name ||
		list.Signatures[0].Type != "atomic" || !bytes.Equal(list.Signatures[0].Content, content) {
		t.Fatalf("curl GET list %+v", list)
	}
	// The same PUT again is a duplicate.
	if code := run(t, nil, "sh", "-c", cmd); code != "409" {
		t.Fatalf("duplicate curl PUT: status %s", code)
	}
	// The password in the URL never reaches the log. The access log is
	// batched, so wait until the credentialed request's line is out.
	s.waitLog("Basic [redacted]", 10*time.Second)
	if strings.Contains(s.logs.String(), "token123") || strings.Contains(s.logs.String(), base64.StdEncoding.EncodeToString([]byte("admin:token123"))) {
		t.Fatalf("credentials in the log:\n%s", s.logs.String())
	}
}

// TestGracefulShutdownDrains: a PUT whose body is still arriving when
// SIGTERM lands completes with 201, and the store closes cleanly (the
// next start opens the same database at once).
func TestGracefulShutdownDrains(t *testing.T) {
	requireTools(t, "skopeo")
	tmp := t.TempDir()
	s := startServer(t, filepath.Join(tmp, "data"))
	dgst := pushUnsigned(t, s, tmp, "ns/drain", "v1")

	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	name := dgst + "@" + hex.EncodeToString(suffix[:])
	body := fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":%q}`, name, base64.StdEncoding.EncodeToString([]byte("in flight")))
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /extensions/v2/ns/drain/signatures/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", dgst, s.addr, len(body))
	half := len(body) / 2
	if _, err := conn.Write([]byte(body[:half])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server start reading
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitLog("shutting down", 10*time.Second)
	// New connections are refused while the old one drains. The log line
	// comes just before the listener closes, so allow that moment.
	refused := eventually(5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if !refused {
		t.Errorf("listener still accepting 5 s after SIGTERM")
	}
	if _, err := conn.Write([]byte(body[half:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request was cut: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight PUT: %d", resp.StatusCode)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, s.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit after draining")
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Fatalf("no clean stop in log:\n%s", s.logs.String())
	}
	s2 := startServer(t, s.dataDir)
	if sigs := signatures(t, s2, "ns/drain", dgst); len(sigs) != 1 || sigs[0].Name != name {
		t.Fatalf("drained PUT not stored: %+v", sigs)
	}
}
