package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/registry/errcode"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// chrome is what every page's frame shows.
type chrome struct {
	Title string
	User  string
	// CSRF is the session's token for the logout form.
	CSRF string
	// Open: no access control, so no login and no logout.
	Open   bool
	Crumbs []crumb
	// Style and Script are the asset URLs, versioned by content.
	Style, Script, Icon string
}

type crumb struct{ Name, URL string }

type pages struct {
	loginPage, repositories, repository, image, errorPage *template.Template
	// assets is filled in by New, for the versioned asset URLs.
	assets *assets
}

var funcs = template.FuncMap{
	"short": shortDigest,
	"size":  humanSize,
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

func parsePages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		return t, nil
	}
	p := &pages{}
	for _, x := range []struct {
		dst  **template.Template
		name string
	}{
		{&p.loginPage, "login.html"},
		{&p.repositories, "repositories.html"},
		{&p.repository, "repository.html"},
		{&p.image, "image.html"},
		{&p.errorPage, "error.html"},
	} {
		t, err := parse(x.name)
		if err != nil {
			return nil, err
		}
		*x.dst = t
	}
	return p, nil
}

// render executes a page into a buffer first, so a template error can
// never leave a half-written page.
func (p *pages) render(w http.ResponseWriter, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base.html", data); err != nil {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(errcode.Unknown.Status())
		_, _ = fmt.Fprintln(w, "the page could not be rendered")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *pages) chrome(title string, s *session, crumbs ...crumb) chrome {
	c := chrome{Title: title, Crumbs: crumbs}
	if p.assets != nil {
		c.Style, c.Script, c.Icon = p.assets.url("style.css"), p.assets.url("console.js"), p.assets.url("icon.svg")
	}
	if s != nil {
		c.User, c.CSRF, c.Open = s.user, s.csrf, s.open
	}
	return c
}

type errorView struct {
	chrome
	Status  int
	Code    string
	Message string
}

func (p *pages) error(w http.ResponseWriter, s *session, e errcode.Error) {
	d := e.Code.Descriptor()
	msg := e.Message
	if msg == "" {
		msg = d.Message
	}
	w.Header().Set("Cache-Control", "no-store")
	p.render(w, p.errorPage, d.Status, errorView{
		chrome:  p.chrome(http.StatusText(d.Status), s),
		Status:  d.Status,
		Code:    d.Value,
		Message: msg,
	})
}

type loginView struct {
	chrome
	Next   string
	CSRF   string
	User   string
	Failed bool
}

func (p *pages) login(w http.ResponseWriter, status int, v loginView) {
	v.chrome = p.chrome("Log in", nil)
	p.render(w, p.loginPage, status, v)
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d any) string {
	s := fmt.Sprint(d)
	alg, hexPart, ok := strings.Cut(s, ":")
	if !ok || len(hexPart) <= 12 {
		return s
	}
	return alg + ":" + hexPart[:12]
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// repositoryURL and imageURL build console links. Repository names, tags
// and digests have been validated, so they need no escaping beyond what
// html/template does in an href.
func repositoryURL(name string) string { return Prefix + "repositories/" + name }

func imageURL(repository string, dgst digest.Digest, tag string) string {
	u := Prefix + "images/" + repository + "@" + dgst.String()
	if tag != "" {
		u += "?tag=" + tag
	}
	return u
}

// assets are the embedded stylesheet, script and icon, served with a
// content hash as ETag and in their versioned URLs.
type assets struct {
	files map[string]asset
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func loadAssets() (*assets, error) {
	a := &assets{files: map[string]asset{}}
	for name, ct := range map[string]string{
		"style.css":  "text/css; charset=utf-8",
		"console.js": "text/javascript; charset=utf-8",
		"icon.svg":   "image/svg+xml",
	} {
		b, err := staticFS.ReadFile(path.Join("static", name))
		if err != nil {
			return nil, fmt.Errorf("console: embedded asset %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		a.files[name] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return a, nil
}

func (a *assets) url(name string) string {
	f := a.files[name]
	return Prefix + "static/" + name + "?v=" + strings.Trim(f.etag, `"`)
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := a.files[name]
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(errcode.NotFound.Status())
		_, _ = fmt.Fprintln(w, "not found")
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
