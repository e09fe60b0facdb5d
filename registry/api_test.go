package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/registry/errcode"
)

func recordsPath(repo, dgst string) string {
	return "/signet/v1/repositories/" + repo + "/signatures/" + dgst
}

func (e *testEnv) records(repo, dgst string) extensions.RecordList {
	e.t.Helper()
	r := e.do("GET", recordsPath(repo, dgst), nil, nil)
	if r.status != 200 {
		e.t.Fatalf("GET records: %d %s", r.status, r.body)
	}
	var l extensions.RecordList
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func TestSaveStatusRoundTrip(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	name := sigName(dgst)
	content := []byte("the signature bytes")
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, content)), nil); r.status != 201 {
		t.Fatal(r.status)
	}
	l := e.records("ns/app", dgst)
	if len(l.Signatures) != 1 || l.Signatures[0].Status != nil || l.Signatures[0].Created.IsZero() {
		t.Fatalf("fresh record %+v", l)
	}

	ok := `{"trusted":true,"imageIdentity":"example.com/ns/app:v1","signedClaims":{"creator":"skopeo","timestamp":"1700000000"},"issuedBy":{"commonName":"0123456789ABCDEF"},"issuedTo":{"publicKeyID":"AAAA0123456789ABCDEF0123456789ABCDEF0123"}}`
	r := e.do("PUT", recordsPath("ns/app", dgst)+"/"+name+"/status", strings.NewReader(ok), nil)
	if r.status != 200 {
		t.Fatalf("save: %d %s", r.status, r.body)
	}
	st := e.records("ns/app", dgst).Signatures[0].Status
	if !st.Trusted() || len(st.Conditions) != 2 || st.Conditions[0].Reason != "manually verified" ||
		st.Conditions[0].Message != `verified by user "anonymous"` || st.Conditions[1].Type != "ForImage" ||
		st.IssuedBy.CommonName != "0123456789ABCDEF" || st.IssuedTo.PublicKeyID == "" ||
		st.SignedClaims["creator"] != "skopeo" || st.ImageIdentity != "example.com/ns/app:v1" {
		t.Fatalf("saved status %+v", st)
	}
	firstTransition := st.Conditions[0].LastTransitionTime

	// A failed verification records Trusted=False and leaves the
	// signature itself byte-identical (the OpenShift bug zeroed it).
	time.Sleep(1100 * time.Millisecond)
	bad := `{"trusted":false,"reason":"signature by unknown key 0123456789ABCDEF"}`
	if r := e.do("PUT", recordsPath("ns/app", dgst)+"/"+name+"/status", strings.NewReader(bad), nil); r.status != 200 {
		t.Fatalf("save failure: %d %s", r.status, r.body)
	}
	rec := e.records("ns/app", dgst).Signatures[0]
	if rec.Status.Trusted() || rec.Status.Conditions[0].Status != "False" || rec.Status.Conditions[0].Reason == "" || rec.Status.IssuedBy != nil {
		t.Fatalf("failed status %+v", rec.Status)
	}
	if !rec.Status.Conditions[0].LastTransitionTime.After(firstTransition) {
		t.Fatalf("transition time did not move on True->False")
	}
	if rec.Name != name || rec.Type != "atomic" || !bytes.Equal(rec.Content, content) {
		t.Fatalf("signature changed by a failed save: %+v", rec)
	}
	if l := e.list("ns/app", dgst); len(l.Signatures) != 1 || !bytes.Equal(l.Signatures[0].Content, content) {
		t.Fatalf("extension GET changed: %+v", l)
	}

	// Removing the status leaves the signature.
	if r := e.do("DELETE", recordsPath("ns/app", dgst)+"/"+name+"/status", nil, nil); r.status != 204 {
		t.Fatalf("delete status: %d %s", r.status, r.body)
	}
	if rec := e.records("ns/app", dgst).Signatures[0]; rec.Status != nil || !bytes.Equal(rec.Content, content) {
		t.Fatalf("after status delete: %+v", rec)
	}
}

func TestSignetAPIErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	name := sigName(dgst)
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, []byte("x"))), nil); r.status != 201 {
		t.Fatal(r.status)
	}
	statusPath := recordsPath("ns/app", dgst) + "/" + name + "/status"
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string
	}{
		{"unknown signature", "PUT", recordsPath("ns/app", dgst) + "/" + sigName(dgst) + "/status", `{"trusted":true}`, 404, "SIGNATURE_UNKNOWN"},
		{"name of other digest", "PUT", recordsPath("ns/app", dgst) + "/" + sigName(sha([]byte("o"))) + "/status", `{"trusted":true}`, 400, "SIGNATURE_INVALID"},
		{"unknown field", "PUT", statusPath, `{"trusted":true,"conditions":[]}`, 400, "SIGNATURE_INVALID"},
		{"trailing data", "PUT", statusPath, `{"trusted":true}{}`, 400, "SIGNATURE_INVALID"},
		{"failure without reason", "PUT", statusPath, `{"trusted":false}`, 400, "SIGNATURE_INVALID"},
		{"oversized field", "PUT", statusPath, fmt.Sprintf(`{"trusted":true,"imageIdentity":%q}`, strings.Repeat("a", 2000)), 400, "SIGNATURE_INVALID"},
		{"body over limit", "PUT", statusPath, fmt.Sprintf(`{"trusted":false,"reason":%q}`, strings.Repeat("a", 70000)), 413, "SIZE_INVALID"},
		{"unknown image", "GET", recordsPath("ns/app", sha([]byte("none"))), "", 404, "MANIFEST_UNKNOWN"},
		{"delete unknown signature", "DELETE", recordsPath("ns/app", dgst) + "/" + sigName(dgst), "", 404, "SIGNATURE_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var r response
			if body != nil {
				r = e.do(tt.method, tt.path, body, nil)
			} else {
				r = e.do(tt.method, tt.path, nil, nil)
			}
			if r.status != tt.wantStatus || errorCode(t, r.body) != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if rec := e.records("ns/app", dgst).Signatures[0]; rec.Status != nil {
		t.Fatalf("rejected saves left a status: %+v", rec.Status)
	}
}

func TestDeleteSignatures(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("ns/app", "v1")
	names := []string{sigName(dgst), sigName(dgst), sigName(dgst)}
	for i, n := range names {
		if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(n, []byte{byte(i), 9})), nil); r.status != 201 {
			t.Fatal(r.status)
		}
	}
	if r := e.do("DELETE", recordsPath("ns/app", dgst)+"/"+names[1], nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete one: %d %s", r.status, r.body)
	}
	l := e.list("ns/app", dgst)
	if len(l.Signatures) != 2 || l.Signatures[0].Name != names[0] || l.Signatures[1].Name != names[2] {
		t.Fatalf("after delete one: %+v", l)
	}
	r := e.do("DELETE", recordsPath("ns/app", dgst), nil, nil)
	if r.status != 200 || string(r.body) != `{"deleted":2}` {
		t.Fatalf("remove all: %d %s", r.status, r.body)
	}
	if l := e.list("ns/app", dgst); len(l.Signatures) != 0 {
		t.Fatalf("after remove all: %+v", l)
	}
}

// headerAuth is a test Authorizer: the X-Test-User header names the user,
// and only "alice" may do anything beyond pulling.
type headerAuth struct{ calls []Access }

func (a *headerAuth) Authenticate(r *http.Request) (string, bool) {
	u := r.Header.Get("X-Test-User")
	return u, u != ""
}

func (a *headerAuth) Authorize(r *http.Request, repo string, access Access) (string, error) {
	a.calls = append(a.calls, access)
	u := r.Header.Get("X-Test-User")
	switch {
	case u == "":
		return "", errcode.Unauthorized.WithDetail(nil)
	case u != "alice" && (access > AccessPull || repo == ""):
		return "", errcode.Denied.WithDetail(nil)
	}
	return u, nil
}

func TestAuthorizationBeforeExistence(t *testing.T) {
	auth := &headerAuth{}
	e := newTestEnvAuth(t, nil, auth)
	e.hdr = map[string]string{"X-Test-User": "alice"}
	dgst := e.pushImage("ns/app", "v1")
	e.hdr = nil
	missing := sha([]byte("missing"))
	name := sigName(dgst)
	alice := map[string]string{"X-Test-User": "alice"}
	bob := map[string]string{"X-Test-User": "bob"}
	if r := e.do("PUT", sigPath("ns/app", dgst), strings.NewReader(sigBody(name, []byte("s"))), alice); r.status != 201 {
		t.Fatalf("alice PUT: %d %s", r.status, r.body)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		wantStatus int
	}{
		{"anonymous GET of a missing image is 401, not 404", "GET", sigPath("ns/app", missing), nil, 401},
		{"anonymous GET of a missing repo is 401", "GET", sigPath("no/such", missing), nil, 401},
		{"bob PUT to a missing image is 403, not 404", "PUT", sigPath("ns/app", missing), bob, 403},
		{"bob status save is 403", "PUT", recordsPath("ns/app", dgst) + "/" + name + "/status", bob, 403},
		{"bob remove-all is 403", "DELETE", recordsPath("ns/app", dgst), bob, 403},
		{"bob may read", "GET", sigPath("ns/app", dgst), bob, 200},
		{"alice reading a missing image gets 404", "GET", sigPath("ns/app", missing), alice, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.method == "PUT" && strings.HasPrefix(tt.path, "/extensions/") {
				body = strings.NewReader(sigBody(sigName(missing), []byte("s")))
			} else if tt.method == "PUT" {
				body = strings.NewReader(`{"trusted":true}`)
			}
			var r response
			if body != nil {
				r = e.do(tt.method, tt.path, body, tt.hdr)
			} else {
				r = e.do(tt.method, tt.path, nil, tt.hdr)
			}
			if r.status != tt.wantStatus {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.wantStatus)
			}
		})
	}
	// The saved status names the authorised user.
	if r := e.do("PUT", recordsPath("ns/app", dgst)+"/"+name+"/status", strings.NewReader(`{"trusted":true}`), alice); r.status != 200 {
		t.Fatalf("alice save: %d %s", r.status, r.body)
	}
	r := e.do("GET", recordsPath("ns/app", dgst), nil, alice)
	var l extensions.RecordList
	if err := json.Unmarshal(r.body, &l); err != nil || len(l.Signatures) != 1 {
		t.Fatalf("records %d %s", r.status, r.body)
	}
	if st := l.Signatures[0].Status; st == nil || st.Conditions[0].Message != `verified by user "alice"` {
		t.Fatalf("status %+v", st)
	}
}

func TestDigestLookup(t *testing.T) {
	e := newTestEnv(t, nil)
	r := e.do("GET", "/signet/v1/digests/"+sha([]byte("x")), nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"repositories":[]`) {
		t.Fatalf("empty registry: %d %s", r.status, r.body)
	}
	a := e.pushImage("ns/a", "v1")
	b := e.pushImage("ns/b", "v1")
	var got DigestLookup
	r = e.do("GET", "/signet/v1/digests/"+a, nil, nil)
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Repositories) != 1 || got.Repositories[0] != "ns/a" {
		t.Fatalf("lookup a: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/signet/v1/digests/"+b, nil, nil)
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Repositories) != 1 || got.Repositories[0] != "ns/b" {
		t.Fatalf("lookup b: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/signet/v1/digests/sha256:nothex", nil, nil); r.status != 400 {
		t.Fatalf("bad digest: %d", r.status)
	}
}

func TestV2Authorization(t *testing.T) {
	e := newTestEnvAuth(t, nil, &headerAuth{})
	alice := map[string]string{"X-Test-User": "alice"}
	bob := map[string]string{"X-Test-User": "bob"}
	e.hdr = alice
	dgst := e.pushImage("ns/app", "v1")
	e.hdr = nil

	// The anonymous ping is 401 with a challenge and the capability
	// header: clients read the header from exactly this response.
	r := e.do("GET", "/v2/", nil, nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != Challenge || r.header.Get(SupportsSignaturesHeader) != "1" {
		t.Fatalf("anonymous ping: %d %v", r.status, r.header)
	}
	if r := e.do("GET", "/v2/", nil, bob); r.status != 200 {
		t.Fatalf("authenticated ping: %d", r.status)
	}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"anonymous manifest GET", "GET", "/v2/ns/app/manifests/v1", nil, 401},
		{"anonymous GET of a missing repo is 401", "GET", "/v2/no/such/manifests/v1", nil, 401},
		{"bob may pull", "GET", "/v2/ns/app/manifests/v1", map[string]string{"X-Test-User": "bob", "Accept": "application/vnd.oci.image.manifest.v1+json"}, 200},
		{"bob may not push", "PUT", "/v2/ns/app/manifests/v2", bob, 403},
		{"bob may not start an upload", "POST", "/v2/ns/app/blobs/uploads/", bob, 403},
		{"bob may not delete a missing manifest: 403, not 404", "DELETE", "/v2/ns/app/manifests/" + sha([]byte("x")), bob, 403},
		{"bob may not list the catalog", "GET", "/v2/_catalog", bob, 403},
		{"alice may list the catalog", "GET", "/v2/_catalog", alice, 200},
		{"tags list needs pull", "GET", "/v2/ns/app/tags/list", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, nil, tt.hdr)
			if r.status != tt.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.want)
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") != Challenge {
				t.Fatalf("401 without challenge")
			}
		})
	}
	if got := e.do("GET", "/v2/ns/app/manifests/"+dgst, nil, map[string]string{"X-Test-User": "alice", "Accept": "application/vnd.oci.image.manifest.v1+json"}); got.status != 200 {
		t.Fatalf("manifest gone after refused requests: %d", got.status)
	}
}

// mountAuth lets "carol" push to ns/mine but read nothing else.
type mountAuth struct{}

func (mountAuth) Authenticate(r *http.Request) (string, bool) {
	u := r.Header.Get("X-Test-User")
	return u, u != ""
}

func (mountAuth) Authorize(r *http.Request, repo string, access Access) (string, error) {
	switch u := r.Header.Get("X-Test-User"); {
	case u == "admin":
		return u, nil
	case u == "carol" && repo == "ns/mine":
		return u, nil
	case u == "":
		return "", errcode.Unauthorized.WithDetail(nil)
	}
	return "", errcode.Denied.WithDetail(nil)
}

func TestCrossRepositoryMountNeedsReadOnSource(t *testing.T) {
	e := newTestEnvAuth(t, nil, mountAuth{})
	e.hdr = map[string]string{"X-Test-User": "admin"}
	secret := e.pushBlob("ns/secret", []byte("secret layer"))
	e.hdr = nil
	carol := map[string]string{"X-Test-User": "carol"}
	r := e.do("POST", "/v2/ns/mine/blobs/uploads/?mount="+secret+"&from=ns/secret", nil, carol)
	if r.status != 403 {
		t.Fatalf("mount from an unreadable repository: %d %s", r.status, r.body)
	}
	if r := e.do("HEAD", "/v2/ns/mine/blobs/"+secret, nil, carol); r.status != 404 {
		t.Fatalf("blob reachable in ns/mine after refused mount: %d", r.status)
	}
	// A plain upload to her own repository works.
	if r := e.do("POST", "/v2/ns/mine/blobs/uploads/", nil, carol); r.status != 202 {
		t.Fatalf("own upload: %d %s", r.status, r.body)
	}
}

func TestUploadBodyCap(t *testing.T) {
	e := newTestEnv(t, func(c *config.Config) { c.Server.MaxUploadBytes = 1 << 20 })
	r := e.do("POST", "/v2/ns/app/blobs/uploads/", nil, nil)
	if r.status != 202 {
		t.Fatal(r.status)
	}
	loc := r.header.Get("Location")
	u, _ := url.Parse(loc)
	big := bytes.Repeat([]byte("z"), 2<<20)
	r = e.do("PATCH", u.RequestURI(), bytes.NewReader(big), map[string]string{"Content-Type": "application/octet-stream"})
	if r.status != 413 || errorCode(t, r.body) != "SIZE_INVALID" {
		t.Fatalf("declared oversized chunk: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("PATCH", e.url+u.RequestURI(), io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || errorCode(t, b) != "SIZE_INVALID" {
		t.Fatalf("chunked oversized chunk: %d %s", resp.StatusCode, b)
	}
}

func TestInFlightLimit(t *testing.T) {
	e := newTestEnv(t, func(c *config.Config) { c.Server.MaxInFlight = 1 })
	// Hold the only slot with a PUT whose body never finishes.
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("PUT", e.url+sigPath("ns/app", sha([]byte("a"))), pr)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	_, _ = pw.Write([]byte("{"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do("GET", "/v2/", nil, nil)
		if r.status == 429 {
			if r.header.Get("Retry-After") == "" || errorCode(t, r.body) != "TOOMANYREQUESTS" {
				t.Fatalf("429 without Retry-After or code: %v %s", r.header, r.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never saw 429 with the only slot held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := e.do("GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatalf("healthz while saturated: %d", r.status)
	}
	pw.Close()
	<-done
	if r := e.do("GET", "/v2/", nil, nil); r.status != 200 {
		t.Fatalf("slot not released: %d", r.status)
	}
}
