package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA writes a CA and a server certificate for 127.0.0.1 and returns
// the CA file, certificate and key paths.
func testCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Signet Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for p, b := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(p, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

func signetOK(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := signet(t, env, args...)
	if err != nil {
		t.Fatalf("signet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// createToken runs `signet token create` and returns what it printed on
// stdout: the token alone.
func createToken(t *testing.T, user, usersFile string) string {
	t.Helper()
	out, err := exec.Command(signetBin, "token", "create", user, "--users-file", usersFile).Output()
	if err != nil {
		t.Fatalf("token create %s: %v", user, err)
	}
	return strings.TrimSpace(string(out))
}

// hashPassword runs `signet token hash-password` with the password on stdin.
func hashPassword(t *testing.T, password string) string {
	t.Helper()
	cmd := exec.Command(signetBin, "token", "hash-password")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestTLSWithUsersAndRoles drives the documented workflows over HTTPS with
// a test CA and a users file: curl with <user>:<token>@, skopeo with
// --dest-creds and --dest-cert-dir, signet verify --save as an auditor.
func TestTLSWithUsersAndRoles(t *testing.T) {
	requireTools(t, "skopeo", "gpg", "curl")
	tmp := t.TempDir()
	caFile, certFile, keyFile := testCA(t, tmp)
	usersFile := filepath.Join(tmp, "users.yaml")
	users := fmt.Sprintf(`version: 1
users:
  alice:
    password: %q
  carol: {}
  bob: {}
grants:
  - repositories: ["team/**"]
    users: [alice]
    roles: [writer, signer]
  - repositories: ["team/**"]
    users: [carol]
    roles: [auditor]
  - repositories: ["team/**"]
    users: [bob]
    roles: [reader]
`, hashPassword(t, "alice-password"))
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	aliceToken := createToken(t, "alice", usersFile)
	carolToken := createToken(t, "carol", usersFile)
	if !strings.HasPrefix(aliceToken, "sgt_") || strings.Contains(string(mustRead(t, usersFile)), aliceToken) {
		t.Fatalf("token %q missing or stored in plain text", aliceToken)
	}

	s := startServer(t, filepath.Join(tmp, "data"), "--tls-cert", certFile, "--tls-key", keyFile, "--users-file", usersFile)
	base := "https://" + s.addr

	// Anonymous: 401 with a challenge and the capability header.
	out := run(t, nil, "curl", "-sS", "-i", "--cacert", caFile, base+"/v2/")
	if !strings.HasPrefix(out, "HTTP/1.1 401") && !strings.HasPrefix(out, "HTTP/2 401") {
		t.Fatalf("anonymous ping:\n%s", out)
	}
	lower := strings.ToLower(out)
	if !strings.Contains(lower, `www-authenticate: basic realm="signet"`) || !strings.Contains(lower, "x-registry-supports-signatures: 1") {
		t.Fatalf("anonymous ping headers:\n%s", out)
	}

	// skopeo signs and pushes over TLS with --dest-creds and --dest-cert-dir.
	g := newGnuPG(t, "TLS Signer <tls@example.com>")
	certDir := filepath.Join(tmp, "certs.d")
	_ = os.Mkdir(certDir, 0o755)
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), mustRead(t, caFile), 0o644); err != nil {
		t.Fatal(err)
	}
	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "over tls\n")
	ref := s.addr + "/team/app:v1"
	run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-cert-dir", certDir,
		"--dest-creds", "alice:alice-password", "--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	// bob may read but not push.
	if out, err := runErr(nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-cert-dir", certDir,
		"--dest-creds", "bob:wrong", "oci:"+src+":v1", "docker://"+s.addr+"/team/bob:v1")...); err == nil {
		t.Fatalf("push with a wrong password succeeded:\n%s", out)
	}

	// The digest, via the CLI with --ca-file and a token from the environment.
	aliceEnv := []string{"SIGNET_USERNAME=alice", "SIGNET_PASSWORD=" + aliceToken}
	dgst := strings.TrimSpace(signetOK(t, aliceEnv, "digest", "--ca-file", caFile, ref))

	// Without the CA the CLI explains how to trust it.
	out, err := signet(t, aliceEnv, "digest", ref)
	if err == nil || !strings.Contains(out, "hint:") || !strings.Contains(out, "--ca-file") {
		t.Fatalf("untrusted CA without a hint: %v\n%s", err, out)
	}
	// SSL_CERT_FILE is honoured.
	if out, err := signet(t, append(aliceEnv, "SSL_CERT_FILE="+caFile), "digest", ref); err != nil || strings.TrimSpace(out) != dgst {
		t.Fatalf("SSL_CERT_FILE: %v\n%s", err, out)
	}

	// The README's curl workflow over HTTPS with <user>:<token>@.
	curlSignatureJSON(t, g, s.addr+"/team/app:v1", dgst, tmp)
	putURL := "https://alice:" + aliceToken + "@" + s.addr + "/extensions/v2/team/app/signatures/" + dgst
	code := run(t, nil, "sh", "-c", fmt.Sprintf(`cd %q && curl -sS -o /dev/null -w '%%{http_code}' --cacert %q -X PUT --data @signature.json %s`, tmp, caFile, putURL))
	if code != "201" {
		t.Fatalf("curl PUT with token: %s", code)
	}
	got := run(t, nil, "curl", "-sS", "--cacert", caFile, "https://alice:"+aliceToken+"@"+s.addr+"/extensions/v2/team/app/signatures/"+dgst)
	var list struct {
		Signatures []wireSignature `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(got), &list); err != nil || len(list.Signatures) != 2 {
		t.Fatalf("curl GET: %v %s", err, got)
	}
	// A wrong password is 401.
	code = run(t, nil, "sh", "-c", fmt.Sprintf(`cd %q && curl -sS -o /dev/null -w '%%{http_code}' --cacert %q -X PUT --data @signature.json https://alice:wrong@%s/extensions/v2/team/app/signatures/%s`, tmp, caFile, s.addr, dgst))
	if code != "401" {
		t.Fatalf("wrong password: %s", code)
	}

	// carol (auditor) verifies with --save; the status names her.
	key := filepath.Join(tmp, "key.gpg")
	g.exportPublic(t, key)
	carolEnv := []string{"SIGNET_TOKEN=" + carolToken}
	image := s.addr + "/team/app@" + dgst
	signetOK(t, carolEnv, "verify-image-signature", "--ca-file", caFile, image, "--expected-identity", ref, "--public-key", key, "--save")
	desc := signetOK(t, carolEnv, "describe", "--ca-file", caFile, "-o", "json", image)
	if !strings.Contains(desc, `verified by user \"carol\"`) {
		t.Fatalf("describe does not name the auditor:\n%s", desc)
	}
	// alice (writer+signer) may not save a status.
	if out, err := signet(t, aliceEnv, "verify-image-signature", "--ca-file", caFile, image, "--expected-identity", ref, "--public-key", key, "--save"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("signer saved a status: %v\n%s", err, out)
	}
	// The audit log names who did what; no secret reaches the log.
	logs := s.logs.String()
	for _, want := range []string{"event=signature.put user=alice", "event=status.save user=carol"} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
	for _, secret := range []string{aliceToken, carolToken, "alice-password", base64.StdEncoding.EncodeToString([]byte("alice:" + aliceToken))} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a credential reached the log")
		}
	}

	// A token created while the server runs works without a restart, and
	// a revoked one stops working.
	bobToken := createToken(t, "bob", usersFile)
	bobEnv := []string{"SIGNET_TOKEN=" + bobToken}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := signet(t, bobEnv, "digest", "--ca-file", caFile, ref); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new token never accepted: users file not reloaded")
		}
		time.Sleep(200 * time.Millisecond)
	}
	id := strings.Split(bobToken, "_")[1]
	signetOK(t, nil, "token", "revoke", "bob", id, "--users-file", usersFile)
	deadline = time.Now().Add(15 * time.Second)
	for {
		if _, err := signet(t, bobEnv, "digest", "--ca-file", caFile, ref); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked token still accepted")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// TLS below 1.2 is refused.
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}) //nolint:gosec // probing the server
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}
	// Plain HTTP to the TLS port does not reach the API.
	if resp, err := http.Get("http://" + s.addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP served: %d", resp.StatusCode)
		}
	}
}

// curlSignatureJSON writes signature.json in dir: a gpg-made signature of
// ref's manifest digest.
func curlSignatureJSON(t *testing.T, g *gnupg, ref, dgst, dir string) {
	t.Helper()
	payload := fmt.Sprintf(`{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":%q},"identity":{"docker-reference":%q}},"optional":{"creator":"curl","timestamp":%d}}`,
		dgst, ref, time.Now().Unix())
	pf := filepath.Join(dir, "payload.json")
	_ = os.WriteFile(pf, []byte(payload), 0o644)
	sf := filepath.Join(dir, "payload.sig")
	run(t, g.env, "gpg", "--batch", "--yes", "--local-user", g.fpr, "--output", sf, "--sign", pf)
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	name := dgst + "@" + hex.EncodeToString(suffix[:])
	writeJSON(t, filepath.Join(dir, "signature.json"), map[string]any{
		"schemaVersion": 2, "name": name, "type": "atomic", "content": base64.StdEncoding.EncodeToString(mustRead(t, sf)),
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusesAnonymousOnNonLoopback: without a users file, binding to a
// non-loopback address is refused before anything listens.
func TestRefusesAnonymousOnNonLoopback(t *testing.T) {
	out, err := signet(t, nil, "serve", "--addr", "0.0.0.0:0", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, "refusing to serve") {
		t.Fatalf("anonymous non-loopback serve: %v\n%s", err, out)
	}
}
