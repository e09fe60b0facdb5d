package integration

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consoleBrowser is an HTTP client with a cookie jar that does not follow
// redirects, so a test sees the console's 303s.
func consoleBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func consoleGet(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleLogin logs c in through the console's login form.
func consoleLogin(t *testing.T, c *http.Client, base, user, password string) {
	t.Helper()
	status, body := consoleGet(t, c, base+"/ui/login")
	m := csrfRE.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("login form: %d\n%s", status, body)
	}
	resp, err := c.PostForm(base+"/ui/login", url.Values{"csrf": {m[1]}, "next": {"/ui/"}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login as %s: %d %q", user, resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestProxyConsole: the web console of `signet serve --upstream` in front
// of the stock distribution registry shows what the upstream holds with
// the trust state Signet stores. An image pushed and GPG-signed by skopeo
// through Signet, then verified and saved by an auditor, is Verified; an
// image pushed to the upstream directly is Unsigned; a repository the
// logged-in user has no grant for is neither listed nor shown. A
// passthrough-mode Signet without a users file (loopback) shows the
// console anonymously.
func TestProxyConsole(t *testing.T) {
	requireTools(t, "skopeo", "gpg")
	tmp := t.TempDir()
	up := startUpstream(t, filepath.Join(tmp, "upstream"), "")
	usersFile := filepath.Join(tmp, "users.yaml")
	users := `version: 1
users:
  alice: {password: "` + hashPassword(t, "alice-password") + `"}
  carol: {password: "` + hashPassword(t, "carol-password") + `"}
grants:
  - repositories: ["**"]
    users: [alice]
    roles: [writer, signer]
  - repositories: ["team/**"]
    users: [carol]
    roles: [auditor]
`
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(tmp, "signet.yaml")
	signetConfig(t, cfgPath, "http://"+up.addr, "signet", "")
	s := startServer(t, filepath.Join(tmp, "data"), "--config", cfgPath, "--users-file", usersFile)

	regD, anything := skopeoDirs(t, tmp)
	skopeo := func(env []string, args ...string) {
		t.Helper()
		run(t, env, "skopeo", append(skopeoArgs(regD, anything), args...)...)
	}

	// Two images pushed to the upstream directly, never through Signet.
	directSrc := filepath.Join(tmp, "direct")
	ociImage(t, directSrc, "v1", "pushed to the upstream directly\n")
	skopeo(nil, "copy", "--dest-tls-verify=false", "oci:"+directSrc+":v1", "docker://"+up.addr+"/team/direct:v1")
	skopeo(nil, "copy", "--dest-tls-verify=false", "oci:"+directSrc+":v1", "docker://"+up.addr+"/other/hidden:v1")

	// alice pushes and signs through Signet; carol verifies and saves.
	g := newGnuPG(t, "Proxy Console Signer <proxy-console@example.com>")
	src := filepath.Join(tmp, "layout")
	ociImage(t, src, "v1", "signed through the proxy\n")
	ref := s.addr + "/team/app:v1"
	skopeo(g.env, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-password",
		"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)
	upstreamServer := &server{t: t, addr: up.addr}
	dgst := manifestDigest(t, upstreamServer, "team/app", "v1")
	directDgst := manifestDigest(t, upstreamServer, "team/direct", "v1")
	key := filepath.Join(tmp, "signer.gpg")
	g.exportPublic(t, key)
	signetOK(t, []string{"SIGNET_USERNAME=carol", "SIGNET_PASSWORD=carol-password"}, "verify-image-signature", "--insecure",
		s.addr+"/team/app@"+dgst, "--expected-identity", ref, "--public-key", key, "--save")

	base := "http://" + s.addr
	c := consoleBrowser(t)
	if status, body := consoleGet(t, c, base+"/ui/"); status != http.StatusSeeOther || strings.Contains(body, "team/") {
		t.Fatalf("without a session: %d\n%s", status, body)
	}
	consoleLogin(t, c, base, "carol", "carol-password")
	page := func(path string, want int) string {
		t.Helper()
		status, body := consoleGet(t, c, base+path)
		if status != want {
			t.Fatalf("%s: %d, want %d\n%s", path, status, want, body)
		}
		return body
	}
	// The badge of a tag or image; the legend shows every badge, untitled.
	const verified, unsigned = `badge badge-verified" title=`, `badge badge-unsigned" title=`

	list := page("/ui/", http.StatusOK)
	for _, want := range []string{`href="/ui/repositories/team/app"`, `href="/ui/repositories/team/direct"`, "Signed in as"} {
		if !strings.Contains(list, want) {
			t.Errorf("repository list lacks %q", want)
		}
	}
	if strings.Contains(list, "other/hidden") {
		t.Error("carol's list shows a repository she has no grant for")
	}
	if p := page("/ui/repositories/team/app", http.StatusOK); !strings.Contains(p, ">v1</a>") || !strings.Contains(p, dgst) ||
		!strings.Contains(p, verified) || !strings.Contains(p, "1 GPG") {
		t.Errorf("signed repository page:\n%s", p)
	}
	if p := page("/ui/repositories/team/direct", http.StatusOK); !strings.Contains(p, ">v1</a>") || !strings.Contains(p, directDgst) ||
		!strings.Contains(p, unsigned) || strings.Contains(p, verified) {
		t.Errorf("repository pushed to the upstream directly:\n%s", p)
	}
	image := page("/ui/images/team/app@"+dgst+"?tag=v1", http.StatusOK)
	for _, want := range []string{verified, `by <strong class="verifier">carol</strong>`, g.fpr, "manually verified"} {
		if !strings.Contains(image, want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	if p := page("/ui/images/team/direct@"+directDgst, http.StatusOK); !strings.Contains(p, unsigned) {
		t.Errorf("directly pushed image page:\n%s", p)
	}
	// Refused before anything is looked up upstream: the same 403 for a
	// repository that exists and one that does not.
	page("/ui/repositories/other/hidden", http.StatusForbidden)
	page("/ui/repositories/other/never-pushed", http.StatusForbidden)
	if t.Failed() {
		return
	}

	// Passthrough mode without a users file on loopback: the console is
	// anonymous, as in embedded mode, and lists the upstream.
	ptCfg := filepath.Join(tmp, "passthrough.yaml")
	signetConfig(t, ptCfg, "http://"+up.addr, "passthrough", "")
	pt := startServer(t, filepath.Join(tmp, "data-passthrough"), "--config", ptCfg)
	status, body := consoleGet(t, consoleBrowser(t), "http://"+pt.addr+"/ui/")
	if status != http.StatusOK || !strings.Contains(body, "No access control") {
		t.Fatalf("anonymous passthrough console: %d\n%s", status, body)
	}
	for _, repo := range []string{"team/app", "team/direct", "other/hidden"} {
		if !strings.Contains(body, `href="/ui/repositories/`+repo+`"`) {
			t.Errorf("anonymous passthrough console does not list %s:\n%s", repo, body)
		}
	}
}
