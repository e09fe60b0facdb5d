package registry

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-registry/signet/config"
)

func sigstorePath(repo, dgst string, n int) string {
	return "/sigstore/" + repo + "@sha256=" + strings.TrimPrefix(dgst, "sha256:") + "/signature-" + strconv.Itoa(n)
}

// openpgpLike is stored content shaped like a gpg signature; the store
// itself does not care.
func openpgpLike(s string) []byte { return append([]byte{0xa3, 0x01}, s...) }

func TestSigstoreServesStoreOrder(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	voila := e.pushImage("ns/app-voila", "v1")
	var names []string
	for _, c := range []string{"first", "second", "third"} {
		name := sigName(dgst)
		if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, openpgpLike(c))), nil); r.status != 201 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		names = append(names, name)
	}
	for i, want := range []string{"first", "second", "third"} {
		r := e.do("GET", sigstorePath("ns/app", dgst, i+1), nil, nil)
		if r.status != 200 || string(r.body) != string(openpgpLike(want)) {
			t.Fatalf("signature-%d: %d %q", i+1, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	// The three GETs decoded the list once; the later two were hits.
	if hits, misses, _, _ := e.srv.lookaside.Stats(); hits != 2 || misses != 1 {
		t.Fatalf("lookaside cache: %d hits, %d misses; want 2 and 1", hits, misses)
	}
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"past the last", "GET", sigstorePath("ns/app", dgst, 4), 404, "SIGNATURE_UNKNOWN"},
		{"far past the last", "GET", sigstorePath("ns/app", dgst, 999999), 404, "SIGNATURE_UNKNOWN"},
		{"image without signatures", "GET", sigstorePath("ns/app-voila", voila, 1), 404, "SIGNATURE_UNKNOWN"},
		{"prefix sibling", "GET", sigstorePath("ns/app-voila", dgst, 1), 404, "MANIFEST_UNKNOWN"},
		{"unknown image", "GET", sigstorePath("ns/app", sha([]byte("none")), 1), 404, "MANIFEST_UNKNOWN"},
		{"unknown repository", "GET", sigstorePath("no/such", dgst, 1), 404, "MANIFEST_UNKNOWN"},
		{"not hosted, not external", "GET", sigstorePath("registry.example.com/ns/app", dgst, 1), 404, "MANIFEST_UNKNOWN"},
		{"zero", "GET", sigstorePath("ns/app", dgst, 0), 404, "NOT_FOUND"},
		{"read-only", "PUT", sigstorePath("ns/app", dgst, 1), 405, "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, nil, nil)
			if r.status != tt.status || errorCode(t, r.body) != tt.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
		})
	}

	// A client that percent-encodes the '@' reaches the same signature.
	encoded := strings.Replace(sigstorePath("ns/app", dgst, 1), "@", "%40", 1)
	if r := e.do("GET", encoded, nil, nil); r.status != 200 || string(r.body) != string(openpgpLike("first")) {
		t.Fatalf("%%40 for the @: %d %q", r.status, r.body)
	}

	head := e.do("HEAD", sigstorePath("ns/app", dgst, 2), nil, nil)
	if head.status != 200 || len(head.body) != 0 || head.header.Get("Content-Length") != strconv.Itoa(len(openpgpLike("second"))) {
		t.Fatalf("HEAD: %d %q %v", head.status, head.body, head.header)
	}
	if r := e.do("HEAD", sigstorePath("ns/app", dgst, 4), nil, nil); r.status != 404 {
		t.Fatalf("HEAD past the last: %d", r.status)
	}

	// Numbering follows the store: deleting the second shifts the third
	// down, with no gap a client would stop at.
	if r := e.do("DELETE", recordsPath("ns/app", dgst)+"/"+names[1], nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do("GET", sigstorePath("ns/app", dgst, 2), nil, nil); string(r.body) != string(openpgpLike("third")) {
		t.Fatalf("after delete signature-2 = %d %q", r.status, r.body)
	}
	if r := e.do("GET", sigstorePath("ns/app", dgst, 3), nil, nil); r.status != 404 {
		t.Fatalf("after delete signature-3: %d", r.status)
	}
}

func TestExternalRepositories(t *testing.T) {
	e := newTestEnv(t, func(c *config.Config) {
		c.Signatures.ExternalRepositories = []string{"registry.example.com/**", "127.0.0.1:5000/**"}
	})
	hosted := e.pushImage("ns/app", "v1")
	elsewhere := sha([]byte("an image Signet does not hold"))
	for _, repo := range []string{"registry.example.com/ns/app", "127.0.0.1:5000/ns/app"} {
		t.Run(repo, func(t *testing.T) {
			// Before any signature: the extension lists none (200, as
			// clients require) and the lookaside ends at once (404).
			if l := e.list(repo, elsewhere); len(l.Signatures) != 0 {
				t.Fatalf("list before PUT: %+v", l)
			}
			if r := e.do("GET", sigstorePath(repo, elsewhere, 1), nil, nil); r.status != 404 {
				t.Fatalf("sigstore before PUT: %d", r.status)
			}
			r := e.do("PUT", sigPath(repo, elsewhere), strings.NewReader(sigBody(sigName(elsewhere), openpgpLike(repo))), nil)
			if r.status != 201 {
				t.Fatalf("PUT without manifest under an external prefix: %d %s", r.status, r.body)
			}
			if l := e.list(repo, elsewhere); len(l.Signatures) != 1 {
				t.Fatalf("list: %+v", l)
			}
			if r := e.do("GET", sigstorePath(repo, elsewhere, 1), nil, nil); r.status != 200 || string(r.body) != string(openpgpLike(repo)) {
				t.Fatalf("sigstore: %d %q", r.status, r.body)
			}
			if rec := e.records(repo, elsewhere); len(rec.Signatures) != 1 || rec.Signatures[0].Status != nil {
				t.Fatalf("records: %+v", rec)
			}
		})
	}
	// Outside the prefixes the manifest is still required.
	for _, repo := range []string{"ns/app", "registry.example.co/ns/app", "other.example.com/ns/app"} {
		r := e.do("PUT", sigPath(repo, elsewhere), strings.NewReader(sigBody(sigName(elsewhere), openpgpLike("x"))), nil)
		if r.status != 404 || errorCode(t, r.body) != "MANIFEST_UNKNOWN" {
			t.Fatalf("PUT to %s: %d %s, want 404 MANIFEST_UNKNOWN", repo, r.status, r.body)
		}
	}
	if r := e.do("PUT", sigPath("ns/app", hosted), strings.NewReader(sigBody(sigName(hosted), openpgpLike("h"))), nil); r.status != 201 {
		t.Fatalf("hosted PUT: %d %s", r.status, r.body)
	}
}

func TestSigstoreAuthorizationBeforeExistence(t *testing.T) {
	auth := &headerAuth{}
	e := newTestEnvAuth(t, func(c *config.Config) {
		c.Signatures.ExternalRepositories = []string{"registry.example.com/**"}
	}, auth)
	alice := map[string]string{"X-Test-User": "alice"}
	e.hdr = alice
	dgst := e.pushImage("ns/app", "v1")
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(sigName(dgst), openpgpLike("s"))), nil); r.status != 201 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	e.hdr = nil
	missing := sha([]byte("missing"))
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
	}{
		{"anonymous, existing", sigstorePath("ns/app", dgst, 1), nil, 401},
		{"anonymous, missing image", sigstorePath("ns/app", missing, 1), nil, 401},
		{"anonymous, missing repository", sigstorePath("no/such", missing, 1), nil, 401},
		{"anonymous, external", sigstorePath("registry.example.com/ns/app", missing, 1), nil, 401},
		{"anonymous, past the last", sigstorePath("ns/app", dgst, 2), nil, 401},
		{"reader, existing", sigstorePath("ns/app", dgst, 1), map[string]string{"X-Test-User": "bob"}, 200},
		{"reader, missing", sigstorePath("ns/app", missing, 1), map[string]string{"X-Test-User": "bob"}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth.calls = nil
			r := e.do("GET", tt.path, nil, tt.hdr)
			if r.status != tt.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") != Challenge {
				t.Fatal("401 without the challenge")
			}
			if len(auth.calls) != 1 || auth.calls[0] != AccessPull {
				t.Fatalf("authorizer asked for %v, want one pull check", auth.calls)
			}
		})
	}
}
