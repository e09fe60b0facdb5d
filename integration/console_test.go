package integration

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostileAnnotation would run script in a console that did not escape
// it: each part sets window.__pwned and the title if it ever runs.
const hostileAnnotation = `<script>window.__pwned="script";document.title="pwned"</script>` +
	`"><img src=x onerror="window.__pwned='img';document.title='pwned'">` +
	`<svg onload="window.__pwned='svg'">`

// annotateOCI adds manifest annotations to the single image of an OCI
// layout written by ociImage, and returns the new manifest digest.
func annotateOCI(t *testing.T, dir string, annotations map[string]string) string {
	t.Helper()
	var index map[string]any
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "index.json")), &index); err != nil {
		t.Fatal(err)
	}
	desc := index["manifests"].([]any)[0].(map[string]any)
	old := strings.TrimPrefix(desc["digest"].(string), "sha256:")
	var manifest map[string]any
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "blobs", "sha256", old)), &manifest); err != nil {
		t.Fatal(err)
	}
	manifest["annotations"] = annotations
	b, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	raw := sha256.Sum256(b)
	sum := hex.EncodeToString(raw[:])
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", sum), b, 0o644); err != nil {
		t.Fatal(err)
	}
	desc["digest"], desc["size"] = "sha256:"+sum, len(b)
	writeJSON(t, filepath.Join(dir, "index.json"), index)
	return "sha256:" + sum
}

// screenshotDir is where the browser test leaves its screenshots:
// $SIGNET_TEST_OUTPUT/console, else a fixed directory under the system's
// temporary directory, so they can be looked at after the run.
func screenshotDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("SIGNET_TEST_OUTPUT")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "signet-console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWebConsoleInChromium drives the web console in real headless
// Chromium against the built `signet serve` with a users file: an image
// pushed and signed by skopeo, signed with cosign too, verified and saved
// by an auditor with `signet verify-image-signature --save`, and carrying
// a manifest annotation that would run script if it were not escaped.
func TestWebConsoleInChromium(t *testing.T) {
	requireTools(t, "skopeo", "gpg", "chromium")
	cosign := cosignBin(t)
	chromium, _ := exec.LookPath("chromium")
	tmp := t.TempDir()
	usersFile := filepath.Join(tmp, "users.yaml")
	users := fmt.Sprintf(`version: 1
users:
  alice: {password: %q}
  carol: {password: %q}
grants:
  - repositories: ["team/**", "secret/**"]
    users: [alice]
    roles: [writer, signer]
  - repositories: ["team/**"]
    users: [carol]
    roles: [auditor]
`, hashPassword(t, "alice-password"), hashPassword(t, "carol-password"))
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(tmp, "data"), "--users-file", usersFile)

	// alice pushes and signs team/app:v1 with skopeo, and pushes
	// secret/hidden, which carol may not see.
	g := newGnuPG(t, "Console Signer <console@example.com>")
	regD, anything := skopeoDirs(t, tmp)
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "console\n")
	dgst := annotateOCI(t, src, map[string]string{
		"org.opencontainers.image.description": hostileAnnotation,
		"org.opencontainers.image.title":       "console test image",
	})
	ref := s.addr + "/team/app:v1"
	creds := []string{"--dest-tls-verify=false", "--dest-creds", "alice:alice-password"}
	run(t, g.env, "skopeo", append(skopeoArgs(regD, anything), append(append([]string{"copy"}, creds...),
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)...)
	run(t, nil, "skopeo", append(skopeoArgs(regD, anything), append(append([]string{"copy"}, creds...),
		"oci:"+src+":v1", "docker://"+s.addr+"/secret/hidden:v1")...)...)
	aliceEnv := []string{"SIGNET_USERNAME=alice", "SIGNET_PASSWORD=alice-password"}
	if got := strings.TrimSpace(signetOK(t, aliceEnv, "digest", "--insecure", ref)); got != dgst {
		t.Fatalf("pushed digest %s, want %s (skopeo changed the manifest)", got, dgst)
	}

	// alice also signs with cosign (a bundle referrer).
	home := filepath.Join(tmp, "cosign-home")
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(home, ".docker", "config.json"), map[string]any{"auths": map[string]any{
		s.addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("alice:alice-password"))},
	}})
	cenv := []string{"COSIGN_PASSWORD=test-password", "HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"TUF_ROOT=" + filepath.Join(home, "tuf"), "COSIGN_REPOSITORY="}
	run(t, cenv, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(tmp, "cosign"))
	run(t, cenv, cosign, "sign", "--key", filepath.Join(tmp, "cosign.key"), "--allow-http-registry",
		"--use-signing-config=false", "--tlog-upload=false", "-y", s.addr+"/team/app@"+dgst)

	// carol, an auditor, verifies the GPG signature and saves the outcome.
	key := filepath.Join(tmp, "signer.gpg")
	g.exportPublic(t, key)
	carolEnv := []string{"SIGNET_USERNAME=carol", "SIGNET_PASSWORD=carol-password"}
	signetOK(t, carolEnv, "verify-image-signature", "--insecure", s.addr+"/team/app@"+dgst,
		"--expected-identity", ref, "--public-key", key, "--save")

	// The browser, started as the issue asks.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(tmp, "chromium")),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	// Every console message of every page, to catch CSP violations: a
	// blocked inline script means markup got through unescaped.
	var mu sync.Mutex
	var messages []string
	consoleMessages := chromedp.Console(ctx)
	go func() {
		for m, err := range consoleMessages {
			if err != nil {
				return
			}
			mu.Lock()
			messages = append(messages, m.String())
			mu.Unlock()
		}
	}()

	base := "http://" + s.addr
	shots := screenshotDir(t)
	t.Logf("console screenshots: %s", shots)
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		l, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v (at %s)", what, err, location())
		}
	}

	// Without a session the console shows the login form, nothing else.
	do("open the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("username")))
	if l := location(); !strings.HasPrefix(l, base+"/ui/login") {
		t.Fatalf("without a session the console went to %s", l)
	}
	if strings.Contains(text(), "team/app") {
		t.Fatal("the login page shows a repository")
	}
	shoot("0-login.png")
	do("log in",
		chromedp.SendKeys(chromedp.ID("username"), "carol"),
		chromedp.SendKeys(chromedp.ID("password"), "carol-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("table.list")),
	)
	list := text()
	if !strings.Contains(list, "team/app") || strings.Contains(list, "secret/hidden") || !strings.Contains(list, "Signed in as carol") {
		t.Fatalf("carol's repository list:\n%s", list)
	}
	shoot("1-repositories.png")

	do("open the repository",
		chromedp.Click(chromedp.CSS(`a[href="/ui/repositories/team/app"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.tags")),
	)
	repo := text()
	if !strings.Contains(repo, "v1") || !strings.Contains(repo, "1 GPG, 1 cosign") {
		t.Fatalf("repository page:\n%s", repo)
	}
	badge, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("table.tags .badge")))
	if err != nil || badge != "Verified" {
		t.Fatalf("tag badge %q: %v", badge, err)
	}
	shoot("2-repository.png")

	do("open the signed image",
		chromedp.Click(chromedp.CSS(`a[href^="/ui/images/team/app@`+dgst+`"]`)),
		chromedp.WaitVisible(chromedp.ID("sigs-h")),
	)
	image := text()
	for _, want := range []string{
		"Verified by carol",                 // status and who
		`verified by user "carol"`,          // the condition's message
		"manually verified",                 // the condition's reason
		g.fpr,                               // the verified fingerprint
		g.fpr[24:],                          // the key id
		hostileAnnotation,                   // shown, as text
		"Cosign signature",                  // the cosign bundle
		"bundle v0.3 referrer",              //
		"skopeo inspect --tls-verify=false", // a copyable command
		"/team/app@" + dgst,                 // pinned to the digest
	} {
		if !strings.Contains(image, want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[string](`typeof window.__pwned === "undefined" ? "" : String(window.__pwned)`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if pwned != "" || strings.Contains(title, "pwned") {
		t.Fatalf("script from the hostile annotation ran: __pwned=%q title=%q", pwned, title)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img, main svg, [onerror], [onload]").length`))
	if err != nil || injected != 0 {
		t.Fatalf("%d injected elements: %v", injected, err)
	}
	shoot("3-image.png")

	// At 375 px wide nothing overflows the page sideways.
	for _, path := range []string{"/ui/", "/ui/repositories/team/app", "/ui/images/team/app@" + dgst + "?tag=v1"} {
		do("narrow "+path, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("main")))
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil || width > 375 {
			t.Errorf("%s is %d px wide at 375 px: %v", path, width, err)
		}
	}
	shoot("4-image-375px.png")
	do("back to desktop", chromedp.EmulateViewport(1280, 900))

	// Logging out ends the session.
	do("log out",
		chromedp.Click(chromedp.CSS(`header form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(base+"/ui/repositories/team/app"),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	cancelTimeout()
	mu.Lock()
	defer mu.Unlock()
	for _, m := range messages {
		if strings.Contains(m, "Content Security Policy") || strings.Contains(m, "pwned") {
			t.Errorf("browser console: %s", m)
		}
	}
}
