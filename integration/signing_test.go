package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signet runs the CLI against s and returns its combined output.
func signet(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	return runErr(env, signetBin, args...)
}

type describeJSON struct {
	Image      string `json:"image"`
	Digest     string `json:"digest"`
	Signatures []struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		KeyID         string `json:"keyID"`
		KeyIDVerified bool   `json:"keyIDVerified"`
		State         string `json:"state"`
		Status        *struct {
			Conditions []struct {
				Type, Status, Reason, Message string
			} `json:"conditions"`
			ImageIdentity string            `json:"imageIdentity"`
			SignedClaims  map[string]string `json:"signedClaims"`
			IssuedBy      *struct {
				CommonName string `json:"commonName"`
			} `json:"issuedBy"`
			IssuedTo *struct {
				PublicKeyID string `json:"publicKeyID"`
			} `json:"issuedTo"`
		} `json:"status"`
	} `json:"signatures"`
}

func describeImage(t *testing.T, image string) describeJSON {
	t.Helper()
	out, err := signet(t, nil, "describe", "--insecure", "-o", "json", image)
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	var d describeJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe output %q: %v", out, err)
	}
	return d
}

// TestSignetSignInteropWithSkopeo: `signet sign` with a key that lives in
// the GnuPG keyring (no export) is accepted by skopeo standalone-verify
// and by a signedBy policy pull.
func TestSignetSignInteropWithSkopeo(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Signet CLI <cli@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))
	dgst := pushUnsigned(t, s, tmp, "ns/signed", "v1")
	ref := s.addr + "/ns/signed:v1"

	out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, ref)
	if err != nil {
		t.Fatalf("signet sign: %v\n%s", err, out)
	}
	if d, err := signet(t, nil, "digest", "--insecure", ref); err != nil || strings.TrimSpace(d) != dgst {
		t.Fatalf("signet digest = %q (%v), want %s", d, err, dgst)
	}
	sigs := signatures(t, s, "ns/signed", dgst)
	if len(sigs) != 1 {
		t.Fatalf("%d signatures", len(sigs))
	}
	manifestFile := filepath.Join(tmp, "manifest.json")
	raw := run(t, nil, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	if err := os.WriteFile(manifestFile, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(tmp, "signet.sig")
	if err := os.WriteFile(sigFile, sigs[0].Content, 0o644); err != nil {
		t.Fatal(err)
	}
	out = run(t, g.env, "skopeo", "standalone-verify", manifestFile, ref, g.fpr, sigFile)
	if !strings.Contains(out, "Signature verified") {
		t.Fatalf("standalone-verify: %s", out)
	}
	// The same signature for another identity is refused by skopeo.
	if out, err := runErr(g.env, "skopeo", "standalone-verify", manifestFile, s.addr+"/ns/signed:v2", g.fpr, sigFile); err == nil {
		t.Fatalf("standalone-verify accepted another identity: %s", out)
	}
	regD := filepath.Join(tmp, "registries.d")
	_ = os.Mkdir(regD, 0o755)
	key := filepath.Join(tmp, "key.gpg")
	g.exportPublic(t, key)
	pol := filepath.Join(tmp, "policy.json")
	writeJSON(t, pol, signedByPolicy(s.addr, key))
	run(t, nil, "skopeo", append(skopeoArgs(regD, pol), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+filepath.Join(tmp, "pulled")+":v1")...)
}

// TestVerifySkopeoSignatureAndSave: a signature made by skopeo passes
// signet verify-image-signature; --save is visible in describe; a failed
// --save records Trusted=False and leaves the signature byte-identical.
func TestVerifySkopeoSignatureAndSave(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Skopeo Signer <skopeo@example.com>")
	stranger := newGnuPG(t, "Stranger <stranger@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))
	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "verify me\n")
	ref := s.addr + "/team/app:v1"
	run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), "copy", "--dest-tls-verify=false",
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
	dgst := manifestDigest(t, s, "team/app", "v1")
	before := signatures(t, s, "team/app", dgst)
	image := s.addr + "/team/app@" + dgst

	goodKey := filepath.Join(tmp, "good.gpg")
	g.exportPublic(t, goodKey)
	badKey := filepath.Join(tmp, "bad.gpg")
	stranger.exportPublic(t, badKey)

	// Wrong key, with --save: exit non-zero, Trusted=False recorded.
	out, err := signet(t, nil, "verify-image-signature", "--insecure", image, "--expected-identity", ref, "--public-key", badKey, "--save")
	if err == nil {
		t.Fatalf("verified with a stranger's key:\n%s", out)
	}
	d := describeImage(t, image)
	if len(d.Signatures) != 1 || d.Signatures[0].State != "Failed" || d.Signatures[0].Status.Conditions[0].Status != "False" {
		t.Fatalf("after failed save: %+v", d)
	}
	if after := signatures(t, s, "team/app", dgst); !bytes.Equal(after[0].Content, before[0].Content) || after[0].Name != before[0].Name {
		t.Fatal("a failed --save changed the signature")
	}

	// Wrong identity: rejected for the identity.
	out, err = signet(t, nil, "verify-image-signature", "--insecure", image, "--expected-identity", s.addr+"/team/app:v2", "--public-key", goodKey)
	if err == nil || !strings.Contains(out, "identity") {
		t.Fatalf("tag mismatch not rejected for identity:\n%s", out)
	}

	// The right key and identity, with --save.
	out, err = signet(t, nil, "verify-image-signature", "--insecure", image, "--expected-identity", ref, "--public-key", goodKey, "--save")
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	keyID := g.fpr[24:]
	want := fmt.Sprintf("image %q identity is now confirmed (signed by GPG key %q)", image, keyID)
	if !strings.Contains(out, want) {
		t.Fatalf("output %q lacks %q", out, want)
	}
	d = describeImage(t, image)
	sig := d.Signatures[0]
	if sig.State != "Verified" || !sig.KeyIDVerified || sig.KeyID != keyID || sig.Status.IssuedTo.PublicKeyID != g.fpr ||
		sig.Status.ImageIdentity != ref || sig.Status.SignedClaims["timestamp"] == "" || sig.Status.SignedClaims["creator"] == "" {
		t.Fatalf("describe after save: %+v %+v", sig, sig.Status)
	}
	if c := sig.Status.Conditions; len(c) != 2 || c[0].Type != "Trusted" || c[0].Status != "True" || c[0].Reason != "manually verified" ||
		c[0].Message != `verified by user "anonymous"` || c[1].Type != "ForImage" || c[1].Status != "True" {
		t.Fatalf("conditions %+v", c)
	}
	text, err := signet(t, nil, "describe", "--insecure", image)
	if err != nil || !strings.Contains(text, "Status:       Verified") || !strings.Contains(text, keyID) {
		t.Fatalf("text describe:\n%s", text)
	}

	// A bare digest resolves when exactly one repository holds it.
	out, err = signet(t, nil, "verify-image-signature", "--insecure", "--registry-url", "http://"+s.addr, dgst, "--expected-identity", ref, "--public-key", goodKey)
	if err != nil {
		t.Fatalf("bare digest verify: %v\n%s", err, out)
	}

	// Keyring from $GNUPGHOME/pubring.gpg by default.
	gh := t.TempDir()
	g.exportPublic(t, filepath.Join(gh, "pubring.gpg"))
	out, err = signet(t, []string{"GNUPGHOME=" + gh}, "verify-image-signature", "--insecure", image, "--expected-identity", ref)
	if err != nil {
		t.Fatalf("default keyring: %v\n%s", err, out)
	}

	// --remove-all deletes every signature; the image then has none and
	// verification is an error.
	out, err = signet(t, nil, "verify-image-signature", "--insecure", image, "--remove-all")
	if err != nil || !strings.Contains(out, "removed 1 signature") {
		t.Fatalf("remove-all: %v\n%s", err, out)
	}
	if out, err := signet(t, nil, "verify-image-signature", "--insecure", image, "--expected-identity", ref, "--public-key", goodKey); err == nil || !strings.Contains(out, "no signatures") {
		t.Fatalf("verify with no signatures: %v\n%s", err, out)
	}
}

// TestReplayRejected: a valid signature for image A stored under image B
// is stored (the API cannot judge content) but never verifies as B.
func TestReplayRejected(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Replay <replay@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))
	a := pushUnsigned(t, s, tmp, "ns/app", "a")
	b := pushUnsigned(t, s, tmp, "ns/app", "b")
	if out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, s.addr+"/ns/app:a"); err != nil {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	sigA := signatures(t, s, "ns/app", a)[0]
	body := fmt.Sprintf(`{"schemaVersion":2,"name":"%s@0123456789abcdef0123456789abcdef","type":"atomic","content":%q}`, b, base64.StdEncoding.EncodeToString(sigA.Content))
	run(t, nil, "curl", "-sS", "-f", "-X", "PUT", "--data", body, "http://"+s.addr+"/extensions/v2/ns/app/signatures/"+b)
	key := filepath.Join(tmp, "key.gpg")
	g.exportPublic(t, key)
	out, err := signet(t, nil, "verify-image-signature", "--insecure", s.addr+"/ns/app@"+b, "--expected-identity", s.addr+"/ns/app:a", "--public-key", key)
	if err == nil || !strings.Contains(out, "manifest digest") {
		t.Fatalf("replayed signature not rejected at the digest step:\n%s", out)
	}
}

// TestSignWithKeyFileWithoutGnuPG: --key-file signs with no gpg on PATH,
// including a passphrase-protected key whose passphrase comes from a file.
func TestSignWithKeyFileWithoutGnuPG(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Key File <keyfile@example.com>")
	// A second, passphrase-protected key in the same home.
	run(t, g.env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "hunter2",
		"--quick-gen-key", "Protected <protected@example.com>", "rsa3072", "sign", "never")
	keyFile := filepath.Join(tmp, "secret.asc")
	exp := run(t, g.env, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "hunter2", "--armor", "--export-secret-keys", "protected@example.com")
	if err := os.WriteFile(keyFile, []byte(exp), 0o600); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(tmp, "pass")
	if err := os.WriteFile(passFile, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(tmp, "data"))
	dgst := pushUnsigned(t, s, tmp, "ns/keyfile", "v1")
	noGPG := []string{"PATH=" + t.TempDir(), "GNUPGHOME=" + t.TempDir()}
	// Without the passphrase the protected key cannot sign.
	if out, err := signet(t, noGPG, "sign", "--insecure", "--sign-by", "protected@example.com", "--key-file", keyFile, s.addr+"/ns/keyfile:v1"); err == nil {
		t.Fatalf("signed without the passphrase:\n%s", out)
	}
	out, err := signet(t, noGPG, "sign", "--insecure", "--sign-by", "protected@example.com", "--key-file", keyFile, "--passphrase-file", passFile, s.addr+"/ns/keyfile:v1")
	if err != nil {
		t.Fatalf("sign with key file: %v\n%s", err, out)
	}
	// The passphrase may also come from the environment.
	out, err = signet(t, append(noGPG, "SIGNET_PASSPHRASE=hunter2"), "sign", "--insecure", "--sign-by", "protected@example.com", "--key-file", keyFile, s.addr+"/ns/keyfile:v1")
	if err != nil {
		t.Fatalf("sign with env passphrase: %v\n%s", err, out)
	}
	if n := len(signatures(t, s, "ns/keyfile", dgst)); n != 2 {
		t.Fatalf("%d signatures stored, want 2", n)
	}
	key := filepath.Join(tmp, "key.gpg")
	pub := run(t, g.env, "gpg", "--batch", "--export", "protected@example.com")
	if err := os.WriteFile(key, []byte(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := signet(t, nil, "verify-image-signature", "--insecure", s.addr+"/ns/keyfile@"+dgst, "--expected-identity", s.addr+"/ns/keyfile:v1", "--public-key", key); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestPushThenSign: `signet push` copies from an OCI layout and a
// docker-archive tarball, and from another registry, then signs.
func TestPushThenSign(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Pusher <push@example.com>")
	s := startServer(t, filepath.Join(tmp, "data"))
	other := startServer(t, filepath.Join(tmp, "other"))
	key := filepath.Join(tmp, "key.gpg")
	g.exportPublic(t, key)

	layout := filepath.Join(tmp, "layout")
	ociImage(t, layout, "v1", "pushed by signet\n")
	archive := filepath.Join(tmp, "image.tar")
	regD, anything := skopeoDirs(t, tmp)
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), "copy", "oci:"+layout+":v1", "docker-archive:"+archive+":example/app:v1")...)
	otherRef := pushUnsigned(t, other, tmp, "upstream/app", "v1")

	for _, tc := range []struct{ src, dest string }{
		{"oci:" + layout + ":v1", s.addr + "/pushed/oci:v1"},
		{"docker-archive:" + archive, s.addr + "/pushed/archive:v1"},
		{"docker://" + other.addr + "/upstream/app@" + otherRef, s.addr + "/pushed/remote:v1"},
	} {
		out, err := signet(t, g.env, "push", "--insecure", "--sign-by", g.fpr, tc.src, tc.dest)
		if err != nil {
			t.Fatalf("push %s: %v\n%s", tc.src, err, out)
		}
		repo := strings.TrimPrefix(strings.TrimSuffix(tc.dest, ":v1"), s.addr+"/")
		dgst := manifestDigest(t, s, repo, "v1")
		if n := len(signatures(t, s, repo, dgst)); n != 1 {
			t.Fatalf("%s: %d signatures", tc.dest, n)
		}
		if out, err := signet(t, nil, "verify-image-signature", "--insecure", s.addr+"/"+repo+"@"+dgst, "--expected-identity", tc.dest, "--public-key", key); err != nil {
			t.Fatalf("verify %s: %v\n%s", tc.dest, err, out)
		}
	}
	if out, err := signet(t, g.env, "push", "--insecure", "--sign-by", g.fpr, "ftp:x", s.addr+"/pushed/bad:v1"); err == nil || !strings.Contains(out, "unsupported transport") {
		t.Fatalf("bad source accepted: %v\n%s", err, out)
	}
}
