package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/net/html"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
	"github.com/signet-registry/signet/signaturestore"
)

func testUsers() *fakeUsers {
	return &fakeUsers{
		passwords: map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
		prefixes:  map[string][]string{"alice": {""}, "bob": {"team/"}},
	}
}

// checkSafeHTML parses a page and fails on anything that could run
// script: an inline <script>, a script from anywhere but the console's
// own static path, any on* attribute, a javascript: URL, or an element
// the console never writes (iframe, object, embed, base, meta refresh).
func checkSafeHTML(t *testing.T, body string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script":
				if n.FirstChild != nil {
					t.Errorf("inline script: %q", n.FirstChild.Data)
				}
				src := attr(n, "src")
				if !strings.HasPrefix(src, "/ui/static/") {
					t.Errorf("script from %q", src)
				}
			case "img":
				if src := attr(n, "src"); !strings.HasPrefix(src, "/ui/static/") {
					t.Errorf("image from %q", src)
				}
			case "iframe", "object", "embed", "base", "frame", "svg", "math", "style":
				t.Errorf("unexpected <%s> element", n.Data)
			case "meta":
				if attr(n, "http-equiv") != "" {
					t.Errorf("meta http-equiv %q", attr(n, "http-equiv"))
				}
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(strings.ToLower(a.Key), "on") {
					t.Errorf("<%s> has event handler %s=%q", n.Data, a.Key, a.Val)
				}
				if a.Key == "href" || a.Key == "src" || a.Key == "action" {
					v := strings.ToLower(strings.TrimSpace(a.Val))
					if !strings.HasPrefix(v, "/ui/") {
						t.Errorf("<%s %s=%q> leaves the console", n.Data, a.Key, a.Val)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is a page's visible text, entities decoded.
func textOf(t *testing.T, body string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return b.String()
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t, testUsers(), false)
	d := e.reg.pushImage(t, "team/app", "v1", nil)
	c := e.browser()
	anon := e.browser()
	e.login(c, "alice", "alice-pw")
	for _, tc := range []struct {
		client *http.Client
		method string
		path   string
		status int
	}{
		{c, "GET", "/ui/", 200},
		{c, "GET", "/ui/repositories/team/app", 200},
		{c, "GET", "/ui/images/team/app@" + d.String(), 200},
		{c, "GET", "/ui/static/style.css", 200},
		{c, "GET", "/ui/static/console.js", 200},
		{c, "GET", "/ui/static/nope.css", 404},
		{c, "GET", "/ui/nope", 404},
		{c, "PUT", "/ui/", 405},
		{c, "GET", "/ui/repositories/Bad..Name", 400},
		{c, "GET", "/ui/images/team/app@sha256:1234", 400},
		{anon, "GET", "/ui/login", 200},
		{anon, "GET", "/ui/", 303},
		{anon, "POST", "/ui/login", 403},
	} {
		p := e.do(tc.client, tc.method, tc.path, nil, nil)
		if p.status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, p.status, tc.status)
		}
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s %s: CSP %q lacks %q", tc.method, tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
			t.Errorf("%s %s: CSP %q allows inline or foreign script", tc.method, tc.path, csp)
		}
		if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, p.header)
		}
		if strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			checkSafeHTML(t, p.body)
			if !strings.HasPrefix(tc.path, "/ui/static/") && p.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: page cacheable: %q", tc.method, tc.path, p.header.Get("Cache-Control"))
			}
		}
	}
}

func TestNoDataWithoutLogin(t *testing.T) {
	e := newEnv(t, testUsers(), false)
	d := e.reg.pushImage(t, "team/secret-project", "v1", nil)
	anon := e.browser()
	for _, path := range []string{
		"/ui/",
		"/ui/?q=secret",
		"/ui/repositories/team/secret-project",
		"/ui/images/team/secret-project@" + d.String(),
		"/ui/repositories/team/does-not-exist",
	} {
		p := e.get(anon, path)
		if p.status != http.StatusSeeOther {
			t.Errorf("%s without a session: %d", path, p.status)
		}
		loc, err := url.Parse(p.header.Get("Location"))
		if err != nil || loc.Path != "/ui/login" || loc.Query().Get("next") != path {
			t.Errorf("%s: redirected to %q", path, p.header.Get("Location"))
		}
		// The body may only repeat the redirect's own URL.
		rest := strings.ReplaceAll(p.body, html.EscapeString(p.header.Get("Location")), "")
		if strings.Contains(rest, "secret-project") || strings.Contains(rest, d.Encoded()) {
			t.Errorf("%s: body shows data: %s", path, p.body)
		}
	}
	// A forged or expired session cookie is no session.
	for _, v := range []string{"x", strings.Repeat("A", 43), "../../etc"} {
		p := e.do(anon, "GET", "/ui/", nil, map[string]string{"Cookie": sessionCookie + "=" + v})
		if p.status != http.StatusSeeOther {
			t.Errorf("cookie %q: %d", v, p.status)
		}
	}
}

func TestLoginFlowAndCookies(t *testing.T) {
	for _, tlsServer := range []bool{false, true} {
		name := "http"
		if tlsServer {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, testUsers(), tlsServer)
			e.reg.pushImage(t, "team/app", "v1", nil)
			c := e.browser()
			form := e.get(c, "/ui/login?next=/ui/repositories/team/app")
			lc := cookieOf(form, loginCookie)
			if lc == nil || !lc.HttpOnly || lc.SameSite != http.SameSiteStrictMode || lc.Secure != tlsServer {
				t.Fatalf("login cookie %+v", lc)
			}
			tok := formToken(t, form.body)
			if !strings.Contains(form.body, `name="next" value="/ui/repositories/team/app"`) {
				t.Fatalf("next not kept:\n%s", form.body)
			}
			post := func(v url.Values, hdr map[string]string) page { return e.do(c, "POST", "/ui/login", v, hdr) }

			// Wrong password: 401, the form again, no session.
			p := post(url.Values{"csrf": {tok}, "username": {"alice"}, "password": {"nope"}}, nil)
			if p.status != http.StatusUnauthorized || cookieOf(p, sessionCookie) != nil || !strings.Contains(p.body, "Wrong user name or password") {
				t.Fatalf("wrong password: %d %v", p.status, p.header)
			}
			// Missing, wrong or cross-site anti-forgery token: 403.
			for _, bad := range []struct {
				v   url.Values
				hdr map[string]string
			}{
				{url.Values{"username": {"alice"}, "password": {"alice-pw"}}, nil},
				{url.Values{"csrf": {strings.Repeat("A", 43)}, "username": {"alice"}, "password": {"alice-pw"}}, nil},
				{url.Values{"csrf": {tok}, "username": {"alice"}, "password": {"alice-pw"}}, map[string]string{"Origin": "https://evil.example"}},
			} {
				if p := post(bad.v, bad.hdr); p.status != http.StatusForbidden || cookieOf(p, sessionCookie) != nil {
					t.Fatalf("forged login %v %v: %d", bad.v, bad.hdr, p.status)
				}
			}
			// A browser without the login cookie cannot use a token
			// read from someone else's form.
			other := e.browser()
			if p := e.do(other, "POST", "/ui/login", url.Values{"csrf": {tok}, "username": {"alice"}, "password": {"alice-pw"}}, nil); p.status != http.StatusForbidden {
				t.Fatalf("token without its cookie: %d", p.status)
			}
			// An oversized body is refused, not read.
			big := url.Values{"csrf": {tok}, "username": {"alice"}, "password": {strings.Repeat("x", maxLoginForm)}}
			if p := post(big, nil); p.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("oversized form: %d", p.status)
			}

			// Right password: 303 to next, with a strict session cookie.
			p = post(url.Values{"csrf": {tok}, "username": {"alice"}, "password": {"alice-pw"}, "next": {"/ui/repositories/team/app"}}, nil)
			sc := cookieOf(p, sessionCookie)
			if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/repositories/team/app" || sc == nil {
				t.Fatalf("login: %d %v", p.status, p.header)
			}
			if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure != tlsServer || sc.Path != "/ui/" || !wellFormedToken(sc.Value) {
				t.Fatalf("session cookie %+v", sc)
			}
			if raw := strings.Join(p.header.Values("Set-Cookie"), "\n"); !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") || strings.Contains(raw, "Secure") != tlsServer {
				t.Fatalf("Set-Cookie lines:\n%s", raw)
			}
			page := e.get(c, "/ui/repositories/team/app")
			if page.status != 200 || !strings.Contains(page.body, "Signed in as <strong>alice</strong>") {
				t.Fatalf("after login: %d\n%s", page.status, page.body)
			}
			// Logging in again while logged in goes straight on.
			if p := e.get(c, "/ui/login?next=/ui/"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
				t.Fatalf("login page while logged in: %d %q", p.status, p.header.Get("Location"))
			}

			// Logout needs the session's token.
			if p := e.do(c, "POST", "/ui/logout", url.Values{"csrf": {tok}}, nil); p.status != http.StatusForbidden {
				t.Fatalf("logout with the login token: %d", p.status)
			}
			if p := e.get(c, "/ui/logout"); p.status != http.StatusMethodNotAllowed {
				t.Fatalf("GET logout: %d", p.status)
			}
			p = e.do(c, "POST", "/ui/logout", url.Values{"csrf": {formToken(t, page.body)}}, nil)
			if p.status != http.StatusSeeOther || cookieOf(p, sessionCookie) == nil || cookieOf(p, sessionCookie).MaxAge >= 0 {
				t.Fatalf("logout: %d %v", p.status, p.header)
			}
			// The old cookie is dead on the server, not only in the jar.
			p = e.do(e.browser(), "GET", "/ui/", nil, map[string]string{"Cookie": sessionCookie + "=" + sc.Value})
			if p.status != http.StatusSeeOther {
				t.Fatalf("session after logout: %d", p.status)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "/ui/",
		"/ui/":                                "/ui/",
		"/ui/repositories/team/app":           "/ui/repositories/team/app",
		"/ui/?q=app&page=2":                   "/ui/?q=app&page=2",
		"https://evil.example/ui/":            "/ui/",
		"//evil.example/ui/":                  "/ui/",
		"/ui/\\evil":                          "/ui/",
		"/\\evil.example":                     "/ui/",
		"/ui/login":                           "/ui/",
		"/ui/logout":                          "/ui/",
		"/v2/_catalog":                        "/ui/",
		"javascript:alert(1)":                 "/ui/",
		"/ui/\r\nSet-Cookie: x=y":             "/ui/",
		"/ui/" + strings.Repeat("a", maxNext): "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPerRepositoryAccess(t *testing.T) {
	e := newEnv(t, testUsers(), false)
	d := e.reg.pushImage(t, "team/app", "v1", nil)
	secret := e.reg.pushImage(t, "secret/app", "v1", nil)
	e.reg.pushImage(t, "secret/other", "v1", nil)
	bob := e.browser()
	e.login(bob, "bob", "bob-pw")

	for _, path := range []string{"/ui/", "/ui/?q=app", "/ui/?q=secret"} {
		p := e.get(bob, path)
		if p.status != 200 || strings.Contains(p.body, "secret/") {
			t.Fatalf("%s shows a repository bob may not pull (%d):\n%s", path, p.status, p.body)
		}
	}
	if p := e.get(bob, "/ui/?q=app"); !strings.Contains(p.body, "team/app") || !strings.Contains(textOf(t, p.body), "1 repository matching") {
		t.Fatalf("bob's search:\n%s", p.body)
	}
	// Refused before anything is looked up: the same answer for an
	// existing and a missing repository or image.
	refusals := map[string]string{}
	for _, path := range []string{
		"/ui/repositories/secret/app",
		"/ui/repositories/secret/missing",
		"/ui/images/secret/app@" + secret.String(),
		"/ui/images/secret/missing@" + secret.String(),
		"/ui/images/secret/app@" + d.String(),
	} {
		p := e.get(bob, path)
		if p.status != http.StatusForbidden || strings.Contains(p.body, secret.Encoded()) {
			t.Fatalf("%s: %d\n%s", path, p.status, p.body)
		}
		refusals[strings.ReplaceAll(p.body, path, "")] = path
	}
	if len(refusals) != 1 {
		t.Fatalf("refusals differ between existing and missing repositories: %v", refusals)
	}
	// With access, what is missing is 404.
	alice := e.browser()
	e.login(alice, "alice", "alice-pw")
	if p := e.get(alice, "/ui/repositories/secret/missing"); p.status != http.StatusNotFound {
		t.Fatalf("missing repository: %d", p.status)
	}
	if p := e.get(alice, "/ui/images/secret/app@"+d.String()); p.status != http.StatusNotFound {
		t.Fatalf("image of another repository: %d", p.status)
	}
	if p := e.get(alice, "/ui/?q=secret"); !strings.Contains(p.body, "secret/app") || !strings.Contains(p.body, "secret/other") {
		t.Fatalf("alice's search:\n%s", p.body)
	}
}

// TestHostileContent stores attacker-controlled strings everywhere the
// console shows them and checks that none becomes markup, while each is
// still shown as text.
func TestHostileContent(t *testing.T) {
	const (
		script   = `<script>window.__pwned=1</script>`
		img      = `"><img src=x onerror="window.__pwned=2">`
		quotes   = `'"` + "`" + `&amp;&lt;`
		jsURL    = `javascript:alert(1)`
		verifier = `carol"><script>alert(3)</script>`
	)
	e := newEnv(t, testUsers(), false)
	// The longest names distribution accepts.
	longRepo := strings.Repeat("a", 100) + "/" + strings.Repeat("b", 100) + "/" + strings.Repeat("c", 53)
	longTag := strings.Repeat("t", 128)
	d := e.reg.pushImage(t, longRepo, longTag, map[string]string{
		"org.opencontainers.image.description": script + img,
		"org.opencontainers.image.url":         jsURL,
		script:                                 quotes,
		"long":                                 strings.Repeat("<b>", 5000),
	})
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	sig, keyID := gpgSign(t, d, "registry.example.com/"+script+img, img+quotes)
	st := verifiedStatus(verifier, keyID, script+img, now)
	st.SignedClaims = map[string]string{script: img, "creator": quotes}
	st.Conditions[0].Reason = img
	e.sigs.add(longRepo, d, signaturestore.Signature{Name: sigName(d), Type: signaturestore.TypeAtomic, Content: sig, Created: now, Status: st})
	e.sigs.add(longRepo, d, signaturestore.Signature{Name: sigName(d), Type: signaturestore.TypeAtomic, Content: []byte(script), Created: now,
		Status: failedStatus(verifier, script, now.Add(-time.Hour))})

	// A cosign keyless signature whose certificate claims hostile identities.
	authority, err := cosigntest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := authority.Certificate(cosigntest.Leaf{
		URIs:     []string{"https://evil.example/x?a=" + url.QueryEscape(script)},
		Emails:   []string{"x@evil.example"},
		IssuerV1: "https://issuer.example/" + script + img,
	})
	if err != nil {
		t.Fatal(err)
	}
	layer, err := authority.LegacyKeyless(cert, key, cosigntest.SimpleSigningPayload("x/"+script, d, nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sigManifest := e.reg.PushLegacy(longRepo, d, layer)
	e.reg.tag(longRepo, "sha256-"+d.Encoded()+".sig", sigManifest)

	c := e.browser()
	e.login(c, "alice", "alice-pw")
	pages := map[string]string{
		"list":       "/ui/?q=" + url.QueryEscape(strings.Repeat("a", 10)),
		"repository": "/ui/repositories/" + longRepo,
		"image":      "/ui/images/" + longRepo + "@" + d.String() + "?tag=" + longTag,
		// Hostile query parameters are never reflected unescaped.
		"tag param": "/ui/images/" + longRepo + "@" + d.String() + "?tag=" + url.QueryEscape("<i>zzz-marker</i>"),
		"search":    "/ui/?q=" + url.QueryEscape(img),
	}
	bodies := map[string]string{}
	for name, path := range pages {
		p := e.get(c, path)
		if p.status != 200 {
			t.Fatalf("%s: %d\n%s", name, p.status, p.body)
		}
		checkSafeHTML(t, p.body)
		for _, raw := range []string{script, `<img src=x`, `onerror="`, `<b><b>`, `carol"><`} {
			if strings.Contains(p.body, raw) {
				t.Errorf("%s: raw %q in the page", name, raw)
			}
		}
		bodies[name] = p.body
	}
	// Everything hostile is shown, as text.
	text := textOf(t, bodies["image"])
	for _, want := range []string{
		script + img,                       // annotation value and image identity
		quotes,                             // annotation value
		jsURL,                              // shown, never linked
		"registry.example.com/" + script,   // claimed identity
		verifier,                           // verifier name, unquoted
		keyID,                              // signer key
		"https://issuer.example/" + script, // cosign issuer claim
		longTag,                            // title
	} {
		if !strings.Contains(text, want) {
			t.Errorf("image page does not show %q", want)
		}
	}
	// Values over maxShown bytes are cut.
	if long := strings.Repeat("<b>", maxShown/3); !strings.Contains(text, long+"<…") || strings.Contains(text, long+"<b>") {
		t.Error("a long annotation was not cut at maxShown bytes")
	}
	if !strings.Contains(textOf(t, bodies["repository"]), longTag) || !strings.Contains(textOf(t, bodies["list"]), longRepo) {
		t.Error("long names not shown")
	}
	if strings.Contains(bodies["tag param"], "zzz-marker") {
		t.Error("an invalid tag parameter was echoed")
	}
	if !strings.Contains(textOf(t, bodies["search"]), img) {
		t.Error("search text not shown back")
	}
	// The hostile username of a failed login is escaped too.
	anon := e.browser()
	form := e.get(anon, "/ui/login")
	p := e.do(anon, "POST", "/ui/login", url.Values{"csrf": {formToken(t, form.body)}, "username": {img}, "password": {"x"}}, nil)
	checkSafeHTML(t, p.body)
	if strings.Contains(p.body, img) {
		t.Error("login echoes the user name unescaped")
	}
}

func TestImagePage(t *testing.T) {
	e := newEnv(t, nil, false)
	d := e.reg.pushImage(t, "team/app", "v1", map[string]string{"org.opencontainers.image.source": "https://example.com/src"})
	at := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	verified, keyID := gpgSign(t, d, "registry.example.com/team/app:v1", "skopeo")
	claimed, _ := gpgSign(t, d, "registry.example.com/team/app:v2", "signet")
	e.sigs.add("team/app", d, signaturestore.Signature{Name: sigName(d), Type: "atomic", Content: verified, Created: at,
		Status: verifiedStatus("carol", keyID, "registry.example.com/team/app:v1", at)})
	e.sigs.add("team/app", d, signaturestore.Signature{Name: sigName(d), Type: "atomic", Content: claimed, Created: at})
	// A keyed cosign bundle.
	signer, err := newECDSA()
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(d, cosign.SignPredicateType, nil))
	if err != nil {
		t.Fatal(err)
	}
	e.reg.PushBundle("team/app", d, bundle, cosign.SignPredicateType)

	c := e.browser()
	p := e.get(c, "/ui/images/team/app@"+d.String()+"?tag=v1")
	if p.status != 200 {
		t.Fatalf("%d\n%s", p.status, p.body)
	}
	text := strings.Join(strings.Fields(textOf(t, p.body)), " ")
	for _, want := range []string{
		"team/app:v1", d.String(), "application/vnd.oci.image.manifest.v1+json", "linux/arm64/v8", "2026-01-02T03:04:05Z",
		"org.opencontainers.image.source", "https://example.com/src",
		"GPG signature", "Verified by carol at 2026-11-22 09:30:00 UTC", keyID + " verified",
		"64EDC2C91E859F1EDAD96A2FE0D9E561F5BABBE8",
		"registry.example.com/team/app:v2 claimed, unverified", keyID + " claimed, unverified",
		"No verification recorded", "manually verified", `verified by user "carol"`,
		"Cosign signature", "bundle v0.3 referrer", "public key",
		"skopeo inspect --tls-verify=false docker://127.0.0.1:",
		"/team/app@" + d.String(),
		"--expected-identity 127.0.0.1:",
		"podman pull --tls-verify=false",
		"cosign verify --key cosign.pub --allow-http-registry",
		"No access control",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	// Commands pin the digest, never a tag.
	for _, cmd := range commands("registry.example.com", true, "team/app", d, "v1") {
		pinned := "registry.example.com/team/app@" + d.String()
		if !strings.Contains(cmd.Text, pinned) || strings.Contains(cmd.Text, "--tls-verify=false") || strings.Contains(cmd.Text, "--insecure") {
			t.Errorf("command %q", cmd.Text)
		}
	}
	// The badge of the image: verified (the latest verification).
	if !strings.Contains(p.body, `<span class="badge badge-verified" title="the most recent recorded verification succeeded">Verified</span>`) {
		t.Errorf("image badge missing")
	}
	// An unknown image and a bad digest.
	other := digest.FromString("other")
	if p := e.get(c, "/ui/images/team/app@"+other.String()); p.status != http.StatusNotFound {
		t.Errorf("unknown image: %d", p.status)
	}
	if p := e.get(c, "/ui/images/team/app@sha512:"+strings.Repeat("a", 128)); p.status != http.StatusBadRequest {
		t.Errorf("sha512 digest: %d", p.status)
	}
}

func TestRepositoryPageBadges(t *testing.T) {
	e := newEnv(t, nil, false)
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	unsigned := e.reg.pushImage(t, "ns/app", "unsigned", nil)
	unverified := e.reg.pushImage(t, "ns/app", "unverified", nil)
	verified := e.reg.pushImage(t, "ns/app", "verified", nil)
	failed := e.reg.pushImage(t, "ns/app", "failed", nil)
	cosigned := e.reg.pushImage(t, "ns/app", "cosigned", nil)
	_ = unsigned
	e.sigs.add("ns/app", unverified, signaturestore.Signature{Name: sigName(unverified), Type: "atomic", Content: []byte("x"), Created: at})
	e.sigs.add("ns/app", verified, signaturestore.Signature{Name: sigName(verified), Type: "atomic", Content: []byte("x"), Created: at, Status: verifiedStatus("carol", "K", "", at)})
	e.sigs.add("ns/app", failed, signaturestore.Signature{Name: sigName(failed), Type: "atomic", Content: []byte("x"), Created: at, Status: failedStatus("carol", "unknown key", at)})
	signer, err := newECDSA()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := (&cosigntest.Authority{}).LegacyKeyed(signer, cosigntest.SimpleSigningPayload("ns/app:cosigned", cosigned, nil), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	sigTag := "sha256-" + cosigned.Encoded() + ".sig"
	e.reg.tag("ns/app", sigTag, e.reg.PushLegacy("ns/app", cosigned, layer))

	p := e.get(e.browser(), "/ui/repositories/ns/app")
	if p.status != 200 {
		t.Fatalf("%d\n%s", p.status, p.body)
	}
	checkSafeHTML(t, p.body)
	rows := map[string]string{}
	doc, _ := html.Parse(strings.NewReader(p.body))
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			var b strings.Builder
			var txt func(*html.Node)
			txt = func(m *html.Node) {
				if m.Type == html.TextNode {
					b.WriteString(m.Data)
				}
				for c := m.FirstChild; c != nil; c = c.NextSibling {
					txt(c)
				}
			}
			txt(n)
			f := strings.Fields(b.String())
			if len(f) > 0 {
				rows[f[0]] = strings.Join(f, " ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for tag, want := range map[string]string{
		"unsigned":   "Unsigned",
		"unverified": "Unverified 1 GPG",
		"verified":   "Verified 1 GPG",
		"failed":     "Failed 1 GPG",
		"cosigned":   "Unverified 1 cosign",
	} {
		if !strings.Contains(rows[tag], want) {
			t.Errorf("tag %s: row %q, want %q", tag, rows[tag], want)
		}
	}
	if _, listed := rows[sigTag]; listed {
		t.Errorf("the cosign .sig tag is listed as an image")
	}
	if !strings.Contains(textOf(t, p.body), "1 cosign signature tag is not listed") {
		t.Errorf("hidden tag not mentioned")
	}
}

func TestImageBadge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := func(at time.Time) signaturestore.Signature {
		return signaturestore.Signature{Status: verifiedStatus("u", "k", "", at)}
	}
	bad := func(at time.Time) signaturestore.Signature {
		return signaturestore.Signature{Status: failedStatus("u", "r", at)}
	}
	none := signaturestore.Signature{}
	for _, tc := range []struct {
		name   string
		sigs   []signaturestore.Signature
		cosign int
		want   string
	}{
		{"nothing", nil, 0, stateUnsigned},
		{"cosign only", nil, 2, stateUnverified},
		{"gpg without status", []signaturestore.Signature{none}, 0, stateUnverified},
		{"verified", []signaturestore.Signature{none, ok(t0)}, 0, stateVerified},
		{"failed", []signaturestore.Signature{bad(t0)}, 1, stateFailed},
		{"later failure wins", []signaturestore.Signature{ok(t0), bad(t0.Add(time.Hour))}, 0, stateFailed},
		{"later success wins", []signaturestore.Signature{bad(t0), ok(t0.Add(time.Hour))}, 0, stateVerified},
		{"one run, one success", []signaturestore.Signature{bad(t0), ok(t0), bad(t0)}, 0, stateVerified},
		{"status without Trusted", []signaturestore.Signature{{Status: &signaturestore.Status{}}}, 0, stateUnverified},
	} {
		if got := imageBadge(tc.sigs, tc.cosign).State; got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := verifierOf(signaturestore.Condition{Message: `verified by user "a \"b\""`}); got != `a "b"` {
		t.Errorf("verifier %q", got)
	}
	if got := verifierOf(signaturestore.Condition{Message: `verified by someone`}); got != "" {
		t.Errorf("verifier %q", got)
	}
}

func TestPaginationAndSearch(t *testing.T) {
	e := newEnv(t, nil, false)
	for i := range 120 {
		ns := "alpha"
		if i%2 == 1 {
			ns = "beta"
		}
		e.reg.tag(ns+"/app-"+threeDigits(i), "", "")
	}
	c := e.browser()
	count := func(body string) int { return strings.Count(body, `<td class="name">`) }
	p := e.get(c, "/ui/")
	if count(p.body) != reposPerPage || !strings.Contains(p.body, "Page 1 of 3") || !strings.Contains(p.body, `href="/ui/?page=2"`) {
		t.Fatalf("page 1:\n%s", p.body)
	}
	p = e.get(c, "/ui/?page=3")
	if count(p.body) != 20 || !strings.Contains(p.body, "showing 101–120") {
		t.Fatalf("page 3: %d rows", count(p.body))
	}
	p = e.get(c, "/ui/?q=BETA&page=2")
	if count(p.body) != 10 || strings.Contains(p.body, "alpha/") || !strings.Contains(p.body, `href="/ui/?q=beta"`) {
		t.Fatalf("search page 2: %d rows\n%s", count(p.body), p.body)
	}
	for _, q := range []string{"page=0", "page=-4", "page=x", "page=99999999999999999999"} {
		if p := e.get(c, "/ui/?"+q); p.status != 200 {
			t.Errorf("%s: %d", q, p.status)
		}
	}
	if p := e.get(c, "/ui/?q="+strings.Repeat("a", maxQuery+1)); p.status != http.StatusBadRequest {
		t.Errorf("long search: %d", p.status)
	}
}

func threeDigits(i int) string {
	return string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

func TestSessionsBoundedAndExpiring(t *testing.T) {
	e := newEnv(t, testUsers(), false)
	e.reg.pushImage(t, "team/app", "v1", nil)
	first := e.browser()
	e.login(first, "alice", "alice-pw")
	// Idle expiry.
	e.advance(DefaultSessionIdle - time.Minute)
	if p := e.get(first, "/ui/"); p.status != 200 {
		t.Fatalf("session before idle timeout: %d", p.status)
	}
	e.advance(DefaultSessionIdle)
	if p := e.get(first, "/ui/"); p.status != http.StatusSeeOther {
		t.Fatalf("session after idle timeout: %d", p.status)
	}
	// Absolute lifetime, however active.
	e.login(first, "alice", "alice-pw")
	for elapsed := time.Duration(0); elapsed < DefaultSessionLifetime-DefaultSessionIdle; elapsed += 20 * time.Minute {
		e.advance(20 * time.Minute)
		if p := e.get(first, "/ui/"); p.status != 200 {
			t.Fatalf("active session ended after %v", elapsed)
		}
	}
	e.advance(DefaultSessionIdle - time.Minute)
	if p := e.get(first, "/ui/"); p.status != http.StatusSeeOther {
		t.Fatal("session outlived its lifetime")
	}
	// The table never holds more than MaxSessions (8 here).
	for range 20 {
		e.login(e.browser(), "bob", "bob-pw")
		e.advance(time.Second)
	}
	if n := e.c.sessions.count(); n > 8 {
		t.Fatalf("%d sessions held", n)
	}
	// Per user, the least recently used session is the one to go.
	s := newSessions(time.Hour, time.Hour*2, 100, 2, e.clock)
	id1, _, _ := s.create("u")
	e.advance(time.Second)
	id2, _, _ := s.create("u")
	e.advance(time.Second)
	s.get(id1)
	e.advance(time.Second)
	id3, _, _ := s.create("u")
	if s.get(id2) != nil || s.get(id1) == nil || s.get(id3) == nil {
		t.Fatal("per-user bound did not end the least recently used session")
	}
}

func TestRemovedUserSeesNothing(t *testing.T) {
	users := testUsers()
	e := newEnv(t, users, false)
	e.reg.pushImage(t, "team/app", "v1", nil)
	c := e.browser()
	e.login(c, "bob", "bob-pw")
	const link = `href="/ui/repositories/team/app"`
	if p := e.get(c, "/ui/"); !strings.Contains(p.body, link) {
		t.Fatal("bob does not see team/app")
	}
	delete(users.prefixes, "bob") // the grant is gone (users file reloaded)
	if p := e.get(c, "/ui/"); strings.Contains(p.body, link) {
		t.Fatal("bob still sees team/app after losing the grant")
	}
	if p := e.get(c, "/ui/repositories/team/app"); p.status != http.StatusForbidden {
		t.Fatalf("repository page after losing the grant: %d", p.status)
	}
}

func TestOpenConsoleWithoutAccessControl(t *testing.T) {
	e := newEnv(t, nil, false)
	e.reg.pushImage(t, "team/app", "v1", nil)
	c := e.browser()
	p := e.get(c, "/ui/")
	if p.status != 200 || !strings.Contains(p.body, "team/app") || !strings.Contains(p.body, "No access control") || strings.Contains(p.body, "Log out") {
		t.Fatalf("open console: %d\n%s", p.status, p.body)
	}
	if p := e.get(c, "/ui/login?next=/ui/repositories/team/app"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/repositories/team/app" {
		t.Fatalf("login page without access control: %d %q", p.status, p.header.Get("Location"))
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t, testUsers(), false)
	c := e.browser()
	p := e.get(c, "/ui/static/style.css")
	if p.status != 200 || p.header.Get("Content-Type") != "text/css; charset=utf-8" || p.header.Get("ETag") == "" {
		t.Fatalf("style.css: %d %v", p.status, p.header)
	}
	if r := e.do(c, "GET", "/ui/static/style.css", nil, map[string]string{"If-None-Match": p.header.Get("ETag")}); r.status != http.StatusNotModified {
		t.Fatalf("conditional GET: %d", r.status)
	}
	// The login page references the versioned assets.
	login := e.get(c, "/ui/login")
	if !strings.Contains(login.body, `/ui/static/style.css?v=`+strings.Trim(p.header.Get("ETag"), `"`)) {
		t.Fatalf("login page does not link the stylesheet:\n%s", login.body)
	}
	js := e.get(c, "/ui/static/console.js")
	if strings.Contains(js.body, "innerHTML") || strings.Contains(js.body, "eval(") {
		t.Fatal("console.js writes markup or evaluates code")
	}
}

// barrierRegistry holds the first want tag lookups until want of them are
// in flight together (or a generous deadline passes, which fails them),
// and records the most ever in flight at once.
type barrierRegistry struct {
	*fakeRegistry
	want     int32
	arrived  atomic.Int32
	inFlight atomic.Int32
	most     atomic.Int32
	all      chan struct{}
}

func (b *barrierRegistry) TagDigest(ctx context.Context, repository, tag string) (digest.Digest, error) {
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for m := b.most.Load(); n > m && !b.most.CompareAndSwap(m, n); m = b.most.Load() {
	}
	switch a := b.arrived.Add(1); {
	case a == b.want:
		close(b.all)
	case a < b.want:
		select {
		case <-b.all:
		case <-time.After(10 * time.Second):
			return "", errors.New("the other lookups never came: rows are resolved one at a time")
		}
	}
	return b.fakeRegistry.TagDigest(ctx, repository, tag)
}

// TestRepositoryRowsResolvedConcurrently: a page's tag rows are resolved
// rowWorkers at a time (in proxy mode each is a few upstream round trips),
// never more, and shown in tag order.
func TestRepositoryRowsResolvedConcurrently(t *testing.T) {
	reg := newFakeRegistry()
	var want []string
	for i := range 3 * rowWorkers {
		tag := fmt.Sprintf("t%02d", i)
		reg.pushImage(t, "ns/app", tag, nil)
		want = append(want, tag)
	}
	b := &barrierRegistry{fakeRegistry: reg, want: rowWorkers, all: make(chan struct{})}
	c, err := New(Options{Registry: b, Signatures: &fakeSignatures{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/ui/repositories/ns/app")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v\n%s", resp.StatusCode, err, body)
	}
	if strings.Contains(string(body), "could not be resolved") {
		t.Fatalf("rows were not resolved together:\n%s", body)
	}
	if most := b.most.Load(); most != rowWorkers {
		t.Fatalf("%d lookups in flight at most, want %d", most, rowWorkers)
	}
	last := -1
	for i, tag := range want {
		pos := strings.Index(string(body), ">"+tag+"</a>")
		if pos < 0 {
			t.Fatalf("tag %s not shown", tag)
		}
		if pos < last {
			t.Fatalf("tag %s (row %d) shown before the one above it", tag, i)
		}
		last = pos
	}
}
