package integration

// Lookaside signature stores (issue 5) with real clients: skopeo reads
// signatures for an image hosted by a plain registry (no extension API)
// from Signet's /sigstore/ tree and from an exported static tree; signet
// import-signatures brings them into another Signet.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // registers the inmemory driver
	"github.com/sirupsen/logrus"
)

// startPlainRegistry runs distribution's registry in-process: the image
// host of these tests. It sends no X-Registry-Supports-Signatures, so
// skopeo looks for signatures in the registries.d lookaside store.
func startPlainRegistry(t *testing.T) string {
	t.Helper()
	logrus.SetOutput(io.Discard)
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	cfg.HTTP.Secret = strings.Repeat("s", 32)
	cfg.Catalog.MaxEntries = 1000
	srv := httptest.NewServer(handlers.NewApp(context.Background(), cfg))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// serveDir serves a directory as a static web server would.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// writeRegistriesD writes a registries.d whose lookaside for scope is url.
func writeRegistriesD(t *testing.T, dir, scope, url string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("docker:\n  %q:\n    lookaside: %s\n", scope, url)
	if err := os.WriteFile(filepath.Join(dir, "lookaside.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// externalSignet starts Signet with signatures.externalRepositories
// holding pattern.
func externalSignet(t *testing.T, tmp, name, pattern string) *server {
	t.Helper()
	cfg := filepath.Join(tmp, name+".yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 1\nsignatures:\n  externalRepositories: [%q]\n", pattern)), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, filepath.Join(tmp, name), "--config", cfg)
}

// standaloneSign signs the manifest of image (fetched from its registry)
// for identity with g's key, as skopeo standalone-sign does.
func standaloneSign(t *testing.T, g *gnupg, dir, host, repo, tag string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mf := filepath.Join(dir, "manifest-"+g.fpr+".json")
	if err := os.WriteFile(mf, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sig-"+g.fpr)
	run(t, g.env, "skopeo", "standalone-sign", mf, host+"/"+repo+":"+tag, g.fpr, "-o", out)
	return mustRead(t, out)
}

// putSignature stores one signature through s's extension API.
func putSignature(t *testing.T, s *server, repo, dgst string, content []byte) {
	t.Helper()
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	body := fmt.Sprintf(`{"schemaVersion":2,"name":"%s@%x","type":"atomic","content":%q}`, dgst, suffix, base64.StdEncoding.EncodeToString(content))
	req, _ := http.NewRequest(http.MethodPut, s.url("/extensions/v2/"+repo+"/signatures/"+dgst), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT signature for %s: %d %s", repo, resp.StatusCode, b)
	}
}

// skopeoPull copies docker://ref out under policy and returns the error
// and output.
func skopeoPull(t *testing.T, regD, policy, ref, dest string) (string, error) {
	t.Helper()
	return runErr(nil, "skopeo", append(skopeoArgs(regD, policy), "copy", "--src-tls-verify=false", "--remove-signatures",
		"docker://"+ref, "oci:"+dest+":v1")...)
}

// lookasideFixture is an image on a plain registry, signed by good, with
// Signet holding the signature under an external prefix.
type lookasideFixture struct {
	tmp         string
	host        string // the plain registry
	dgst        string
	signet      *server
	good, other *gnupg
	goodPolicy  string
	badPolicy   string
	sig         []byte
}

func newLookasideFixture(t *testing.T) *lookasideFixture {
	t.Helper()
	requireTools(t, "skopeo", "gpg")
	f := &lookasideFixture{tmp: t.TempDir()}
	f.host = startPlainRegistry(t)
	f.dgst = pushUnsigned(t, &server{t: t, addr: f.host}, f.tmp, "ns/app", "v1")
	f.good = newGnuPG(t, "Lookaside Signer <lookaside@example.com>")
	f.other = newGnuPG(t, "Someone Else <else@example.com>")
	f.signet = externalSignet(t, f.tmp, "signet", f.host+"/**")
	f.sig = standaloneSign(t, f.good, f.tmp, f.host, "ns/app", "v1")
	putSignature(t, f.signet, f.host+"/ns/app", f.dgst, f.sig)
	goodKey, badKey := filepath.Join(f.tmp, "good.gpg"), filepath.Join(f.tmp, "bad.gpg")
	f.good.exportPublic(t, goodKey)
	f.other.exportPublic(t, badKey)
	f.goodPolicy, f.badPolicy = filepath.Join(f.tmp, "good-policy.json"), filepath.Join(f.tmp, "bad-policy.json")
	writeJSON(t, f.goodPolicy, signedByPolicy(f.host, goodKey))
	writeJSON(t, f.badPolicy, signedByPolicy(f.host, badKey))
	return f
}

// checkSkopeoReads: with registries.d pointing at base, a signedBy pull
// of the image passes with the signer's key and fails with another.
func (f *lookasideFixture) checkSkopeoReads(t *testing.T, name, base string) {
	t.Helper()
	regD := writeRegistriesD(t, filepath.Join(f.tmp, name+"-registries.d"), f.host, base)
	ref := f.host + "/ns/app:v1"
	if out, err := skopeoPull(t, regD, f.goodPolicy, ref, filepath.Join(f.tmp, name+"-good")); err != nil {
		t.Fatalf("%s: signedBy pull with the signer's key failed: %v\n%s", name, err, out)
	}
	out, err := skopeoPull(t, regD, f.badPolicy, ref, filepath.Join(f.tmp, name+"-bad"))
	if err == nil || !strings.Contains(out, "Source image rejected") {
		t.Fatalf("%s: signedBy pull with another key: %v\n%s", name, err, out)
	}
}

// TestLookasideServedToSkopeo: Signet is the lookaside store of an image
// it does not host, and skopeo's signedBy policy reads it from /sigstore/.
func TestLookasideServedToSkopeo(t *testing.T) {
	f := newLookasideFixture(t)
	// Without a lookaside the plain registry has no signatures to offer.
	empty := filepath.Join(f.tmp, "empty.d")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := skopeoPull(t, empty, f.goodPolicy, f.host+"/ns/app:v1", filepath.Join(f.tmp, "none")); err == nil || !strings.Contains(out, "Source image rejected") {
		t.Fatalf("pull passed without any signature source:\n%s", out)
	}
	f.checkSkopeoReads(t, "signet", f.signet.url("/sigstore/"+f.host))

	// The raw bytes are served as stored, then 404 ends the list.
	base := f.signet.url("/sigstore/" + f.host + "/ns/app@sha256=" + strings.TrimPrefix(f.dgst, "sha256:"))
	for n, want := range map[int]int{1: 200, 2: 404} {
		resp, err := http.Get(fmt.Sprintf("%s/signature-%d", base, n))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && string(b) != string(f.sig)) {
			t.Fatalf("signature-%d: %d (%d bytes), want %d", n, resp.StatusCode, len(b), want)
		}
	}
}

// TestExportSigstoreServedStatically: the export of Signet's store,
// served by a plain file server, is read by skopeo the same way; the
// export is refused while the server holds the database, and a second
// export writes nothing.
func TestExportSigstoreServedStatically(t *testing.T) {
	f := newLookasideFixture(t)
	out := filepath.Join(f.tmp, "export")
	msg, err := signet(t, nil, "export-sigstore", out, "--data-dir", f.signet.dataDir)
	if err == nil || !strings.Contains(msg, "locked") || !strings.Contains(msg, "signet backup") {
		t.Fatalf("export while the server runs: %v\n%s", err, msg)
	}
	if err := f.signet.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	msg, err = signet(t, nil, "export-sigstore", out, "--data-dir", f.signet.dataDir)
	if err != nil || !strings.Contains(msg, "exported 1 signatures of 1 images") || !strings.Contains(msg, "1 written") {
		t.Fatalf("export: %v\n%s", err, msg)
	}
	msg, err = signet(t, nil, "export-sigstore", out, "--data-dir", f.signet.dataDir)
	if err != nil || !strings.Contains(msg, "0 written, 1 unchanged, 0 removed") {
		t.Fatalf("second export: %v\n%s", err, msg)
	}
	// A filter that matches nothing exports nothing and removes nothing.
	msg, err = signet(t, nil, "export-sigstore", out, "--data-dir", f.signet.dataDir, "--repository", "other/**")
	if err != nil || !strings.Contains(msg, "exported 0 signatures of 0 images") || !strings.Contains(msg, "0 removed") {
		t.Fatalf("filtered export: %v\n%s", err, msg)
	}
	sigFile := filepath.Join(out, f.host, "ns", "app@sha256="+strings.TrimPrefix(f.dgst, "sha256:"), "signature-1")
	if b := mustRead(t, sigFile); string(b) != string(f.sig) {
		t.Fatal("exported bytes differ from the stored signature")
	}
	f.checkSkopeoReads(t, "static", serveDir(t, out)+"/"+f.host)
}

// signatureTree writes a static lookaside tree holding blobs for
// repo@dgst (no host: the base URL carries it).
func signatureTree(t *testing.T, root, repo, dgst string, blobs ...[]byte) {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(repo)+"@sha256="+strings.TrimPrefix(dgst, "sha256:"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("signature-%d", i+1)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportSignaturesFromStaticTree: import-signatures stores exactly the
// signatures of a static lookaside tree, unverified; a second run adds
// nothing; push --import-signatures brings them along with the image, and
// they stay Unverified until verify-image-signature --save.
func TestImportSignaturesFromStaticTree(t *testing.T) {
	f := newLookasideFixture(t)
	second := standaloneSign(t, f.other, f.tmp, f.host, "ns/app", "v1")
	tree := filepath.Join(f.tmp, "tree")
	signatureTree(t, tree, "ns/app", f.dgst, f.sig, second)
	regD := writeRegistriesD(t, filepath.Join(f.tmp, "import.d"), f.host, serveDir(t, tree))
	dest := externalSignet(t, f.tmp, "dest", f.host+"/**")

	importArgs := []string{"import-signatures", f.host + "/ns/app:v1", "--registries.d", regD, "--to", dest.addr, "--insecure", "--src-insecure"}
	msg, err := signet(t, nil, importArgs...)
	if err != nil || !strings.Contains(msg, "imported 2 signatures, unverified, for 1 images (0 already stored, 0 images failed)") ||
		!strings.Contains(msg, "into "+f.host+"/ns/app") {
		t.Fatalf("import: %v\n%s", err, msg)
	}
	got := signatures(t, dest, f.host+"/ns/app", f.dgst)
	if len(got) != 2 || string(got[0].Content) != string(f.sig) || string(got[1].Content) != string(second) {
		t.Fatalf("stored %d signatures, want the tree's two in order", len(got))
	}
	msg, err = signet(t, nil, importArgs...)
	if err != nil || !strings.Contains(msg, "imported 0 signatures, unverified, for 1 images (2 already stored") {
		t.Fatalf("second import: %v\n%s", err, msg)
	}
	if n := len(signatures(t, dest, f.host+"/ns/app", f.dgst)); n != 2 {
		t.Fatalf("%d signatures after the second run", n)
	}

	// The same image pushed into Signet with its signatures.
	msg, err = signet(t, nil, "push", "docker://"+f.host+"/ns/app:v1", dest.addr+"/team/app:v1",
		"--import-signatures", "--registries.d", regD, "--insecure")
	if err != nil || !strings.Contains(msg, "imported 2 signatures") {
		t.Fatalf("push --import-signatures: %v\n%s", err, msg)
	}
	image := dest.addr + "/team/app:v1"
	d := describeImage(t, image)
	if d.Digest != f.dgst || len(d.Signatures) != 2 {
		t.Fatalf("describe %+v", d)
	}
	for _, s := range d.Signatures {
		if s.State != "Unverified" || s.Status != nil {
			t.Fatalf("imported signature is %s, want Unverified", s.State)
		}
	}
	goodKey := filepath.Join(f.tmp, "good.gpg")
	msg, err = signet(t, nil, "verify-image-signature", image, "--expected-identity", f.host+"/ns/app:v1",
		"--public-key", goodKey, "--save", "--insecure")
	if err != nil || !strings.Contains(msg, "identity is now confirmed") {
		t.Fatalf("verify --save: %v\n%s", err, msg)
	}
	states := map[string]int{}
	for _, s := range describeImage(t, image).Signatures {
		states[s.State]++
	}
	if states["Verified"] != 1 || states["Failed"] != 1 {
		t.Fatalf("after verify --save: %v, want one Verified (good key) and one Failed (other key)", states)
	}

	// --all walks the source registry's catalog.
	pushUnsigned(t, &server{t: t, addr: f.host}, f.tmp, "ns/unsigned", "v1")
	pushUnsigned(t, &server{t: t, addr: f.host}, f.tmp, "elsewhere/app", "v1")
	msg, err = signet(t, nil, "import-signatures", f.host, "--all", "--repository", "ns/**", "--registries.d", regD,
		"--to", dest.addr, "--insecure", "--src-insecure")
	if err != nil || !strings.Contains(msg, "for 2 images (2 already stored, 0 images failed)") || strings.Contains(msg, "elsewhere") {
		t.Fatalf("import --all: %v\n%s", err, msg)
	}
}

// TestImportSignaturesFromRegistry: --from-registry reads another Signet's
// extension API.
func TestImportSignaturesFromRegistry(t *testing.T) {
	requireTools(t, "gpg")
	tmp := t.TempDir()
	g := newGnuPG(t, "Source Signer <source@example.com>")
	src := startServer(t, filepath.Join(tmp, "src"))
	dgst := pushUnsigned(t, src, tmp, "ns/app", "v1")
	if out, err := signet(t, g.env, "sign", "--insecure", "--sign-by", g.fpr, src.addr+"/ns/app:v1"); err != nil {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	dest := externalSignet(t, tmp, "dest", src.addr+"/**")
	msg, err := signet(t, nil, "import-signatures", src.addr+"/ns/app:v1", "--from-registry", "--to", dest.addr, "--insecure", "--src-insecure")
	if err != nil || !strings.Contains(msg, "imported 1 signatures") {
		t.Fatalf("import --from-registry: %v\n%s", err, msg)
	}
	want := signatures(t, src, "ns/app", dgst)
	got := signatures(t, dest, src.addr+"/ns/app", dgst)
	if len(got) != 1 || string(got[0].Content) != string(want[0].Content) {
		t.Fatalf("imported %d signatures", len(got))
	}
}

// TestImportSignaturesEdgeCases: a source that misbehaves fails only its
// image and stores nothing of it; the others are imported.
func TestImportSignaturesEdgeCases(t *testing.T) {
	tmp := t.TempDir()
	const host = "registry.example.com"
	digestOf := func(name string) string { return fmt.Sprintf("sha256:%064x", len(name)*7919+int(name[0])) }
	blob := func(name string, n int) []byte { return []byte(fmt.Sprintf("\xa3\x01%s signature %d", name, n)) }
	type image struct {
		name   string
		reply  func(n int) (int, []byte)
		stored int // -1: the import of this image must fail
	}
	images := []image{
		{"good", func(n int) (int, []byte) {
			if n <= 2 {
				return 200, blob("good", n)
			}
			return 404, nil
		}, 2},
		{"gap", func(n int) (int, []byte) {
			if n == 1 || n == 3 {
				return 200, blob("gap", n)
			}
			return 404, nil
		}, 1},
		{"endless", func(n int) (int, []byte) { return 200, blob("endless", n) }, -1},
		{"html", func(n int) (int, []byte) {
			if n == 2 {
				return 200, []byte("<!DOCTYPE html><html><body>Please sign in</body></html>")
			}
			return 200, blob("html", n)
		}, -1},
		{"broken", func(n int) (int, []byte) {
			if n == 3 {
				return 500, []byte("internal error")
			}
			return 200, blob("broken", n)
		}, -1},
	}
	var requests [8]atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i, img := range images {
			prefix := "/sigs/ns/" + img.name + "@sha256=" + strings.TrimPrefix(digestOf(img.name), "sha256:") + "/signature-"
			if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
				requests[i].Add(1)
				var n int
				fmt.Sscanf(rest, "%d", &n)
				status, body := img.reply(n)
				w.WriteHeader(status)
				_, _ = w.Write(body)
				return
			}
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	regD := writeRegistriesD(t, filepath.Join(tmp, "registries.d"), host, srv.URL+"/sigs")
	dest := externalSignet(t, tmp, "dest", host+"/**")

	args := []string{"import-signatures", "--registries.d", regD, "--to", dest.addr, "--insecure"}
	for _, img := range images {
		args = append(args, host+"/ns/"+img.name+"@"+digestOf(img.name))
	}
	msg, err := signet(t, nil, args...)
	if err == nil || !strings.Contains(msg, "3 of 5 images failed") {
		t.Fatalf("import: %v, want failures reported\n%s", err, msg)
	}
	for _, want := range []string{"ns/endless@", "more than 128 signatures", "ns/html@", "not an OpenPGP binary message", "ns/broken@", "500 Internal Server Error",
		"imported 3 signatures, unverified, for 2 images"} {
		if !strings.Contains(msg, want) {
			t.Errorf("output lacks %q:\n%s", want, msg)
		}
	}
	for _, img := range images {
		got := signatures(t, dest, host+"/ns/"+img.name, digestOf(img.name))
		if img.stored < 0 {
			if len(got) != 0 {
				t.Errorf("%s: %d signatures stored from a failing source", img.name, len(got))
			}
			continue
		}
		if len(got) != img.stored {
			t.Errorf("%s: %d signatures stored, want %d", img.name, len(got), img.stored)
		}
		for j, s := range got {
			if string(s.Content) != string(blob(img.name, j+1)) {
				t.Errorf("%s: signature %d is %q", img.name, j+1, s.Content)
			}
		}
	}
	if n := requests[2].Load(); n != 129 {
		t.Errorf("the endless source got %d requests, want 129 (128 and one to see there are more)", n)
	}
}
