package registry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

func TestRouteTable(t *testing.T) {
	m := mux.NewRouter()
	for _, rt := range routeTable() {
		m.Handle(rt.path, http.NotFoundHandler()).Methods(rt.method).Name(rt.name)
	}
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		method, path string
		wantRoute    string
		wantVars     map[string]string
	}{
		{"GET", "/extensions/v2/ns/name/signatures/" + dgst, RouteSignaturesGet, map[string]string{"name": "ns/name", "digest": dgst}},
		{"PUT", "/extensions/v2/ns/name/signatures/" + dgst, RouteSignaturesPut, map[string]string{"name": "ns/name", "digest": dgst}},
		{"GET", "/extensions/v2/a/b/c/signatures/" + dgst, RouteSignaturesGet, map[string]string{"name": "a/b/c", "digest": dgst}},
		{"GET", "/extensions/v2/single/signatures/" + dgst, RouteSignaturesGet, map[string]string{"name": "single", "digest": dgst}},
		{"GET", "/extensions/v2/ns/math-voila/signatures/sha256:zz", RouteSignaturesGet, map[string]string{"name": "ns/math-voila", "digest": "sha256:zz"}},
		{"GET", "/signet/v1/repositories/ns/name/signatures/" + dgst, RouteRecordsGet, map[string]string{"name": "ns/name", "digest": dgst}},
		{"DELETE", "/signet/v1/repositories/ns/name/signatures/" + dgst, RouteSignaturesDel, map[string]string{"name": "ns/name", "digest": dgst}},
		{"DELETE", "/signet/v1/repositories/ns/name/signatures/" + dgst + "/" + dgst + "@00", RouteSignatureDel, map[string]string{"name": "ns/name", "digest": dgst, "signature": dgst + "@00"}},
		{"PUT", "/signet/v1/repositories/a/b/c/signatures/" + dgst + "/x/status", RouteStatusPut, map[string]string{"name": "a/b/c", "digest": dgst, "signature": "x"}},
		{"DELETE", "/signet/v1/repositories/signatures/signatures/" + dgst + "/x/status", RouteStatusDelete, map[string]string{"name": "signatures", "digest": dgst, "signature": "x"}},
		{"GET", "/signet/v1/repositories/ns/name/signatures/sha256:abc", "", nil},
		{"GET", "/signet/v1/backup", RouteBackup, map[string]string{}},
		{"PUT", "/signet/v1/backup", "", nil},
		{"GET", "/signet/v1/backup/x", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-1", RouteSigstoreGet, map[string]string{"name": "ns/name", "hex": hex, "index": "1"}},
		{"HEAD", "/sigstore/ns/name@sha256=" + hex + "/signature-12", RouteSigstoreHead, map[string]string{"name": "ns/name", "hex": hex, "index": "12"}},
		{"GET", "/sigstore/docker.io/library/nginx@sha256=" + hex + "/signature-3", RouteSigstoreGet, map[string]string{"name": "docker.io/library/nginx", "hex": hex, "index": "3"}},
		{"GET", "/sigstore/127.0.0.1:5000/a/b-c@sha256=" + hex + "/signature-1", RouteSigstoreGet, map[string]string{"name": "127.0.0.1:5000/a/b-c", "hex": hex, "index": "1"}},
		{"GET", "/sigstore/single@sha256=" + hex + "/signature-1", RouteSigstoreGet, map[string]string{"name": "single", "hex": hex, "index": "1"}},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-0", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-01", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-12345678", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex[:63] + "/signature-1", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + strings.ToUpper(hex) + "/signature-1", "", nil},
		{"GET", "/sigstore/ns/name@sha512=" + hex + "/signature-1", "", nil},
		{"GET", "/sigstore/ns/name@sha256:" + hex + "/signature-1", "", nil},
		{"GET", "/sigstore/ns/Name@sha256=" + hex + "/signature-1", "", nil},
		{"GET", "/sigstore/ns/name@sha256=" + hex + "/signature-1/x", "", nil},
		{"GET", "/sigstore/ns@x/name@sha256=" + hex + "/signature-1", "", nil},
		{"PUT", "/sigstore/ns/name@sha256=" + hex + "/signature-1", "", nil},
		{"DELETE", "/sigstore/ns/name@sha256=" + hex + "/signature-1", "", nil},
		{"GET", "/healthz", RouteHealthz, map[string]string{}},
		{"GET", "/readyz", RouteReadyz, map[string]string{}},
		{"GET", "/metrics", RouteMetrics, map[string]string{}},
		// A component may not start with a separator: no route.
		{"GET", "/extensions/v2/ns/-bad/signatures/" + dgst, "", nil},
		{"GET", "/extensions/v2/ns/name/signatures/", "", nil},
		{"DELETE", "/extensions/v2/ns/name/signatures/" + dgst, "", nil},
		{"GET", "/extensions/v2/ns/name/signature/" + dgst, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var match mux.RouteMatch
			ok := m.Match(httptest.NewRequest(tt.method, tt.path, nil), &match)
			if tt.wantRoute == "" {
				if ok && match.MatchErr == nil {
					t.Fatalf("matched route %q, want none", match.Route.GetName())
				}
				return
			}
			if !ok || match.MatchErr != nil {
				t.Fatalf("no match (%v)", match.MatchErr)
			}
			if got := match.Route.GetName(); got != tt.wantRoute {
				t.Fatalf("route %q, want %q", got, tt.wantRoute)
			}
			if len(match.Vars) != len(tt.wantVars) {
				t.Fatalf("vars %v, want %v", match.Vars, tt.wantVars)
			}
			for k, v := range tt.wantVars {
				if match.Vars[k] != v {
					t.Fatalf("var %s = %q, want %q", k, match.Vars[k], v)
				}
			}
		})
	}
}

func TestRouteOf(t *testing.T) {
	tests := map[string]string{
		"/v2/":                          "v2.base",
		"/v2":                           "v2.base",
		"/v2/_catalog":                  "v2.catalog",
		"/v2/ns/img/manifests/latest":   "v2.manifest",
		"/v2/ns/img/blobs/sha256:ab":    "v2.blob",
		"/v2/ns/img/blobs/uploads/":     "v2.blob_upload",
		"/v2/ns/img/blobs/uploads/uuid": "v2.blob_upload",
		"/v2/ns/img/tags/list":          "v2.tags",
		"/elsewhere":                    "other",
	}
	for path, want := range tests {
		if got := routeOf(path); got != want {
			t.Errorf("routeOf(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestRedactAuthorization(t *testing.T) {
	tests := map[string]string{
		"":                                  "",
		"Basic dXNlcjpzZWNyZXQ=":            "Basic [redacted]",
		"Bearer abc.def.ghi":                "Bearer [redacted]",
		"secret-without-a-scheme":           "[redacted]",
		"averyveryverylongsecretvalue rest": "[redacted]",
	}
	for in, want := range tests {
		if got := redactAuthorization(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	tests := map[string]bool{
		"/v2/":                        true,
		"/v2":                         true,
		"/":                           true,
		"/v2/ns/app/blobs/uploads/":   true,
		"/extensions/v2/ns/app/x":     true,
		"/v2//ns":                     false,
		"/v2/ns/../app":               false,
		"/v2/ns/./app":                false,
		"/v2/ns/..":                   false,
		"/extensions/v2/ns/app/..":    false,
		"":                            false,
		"v2/ns":                       false,
		"/v2/ns/app//":                false,
		"/v2/ns/app/manifests/..%2fx": true, // only decoded paths are checked; %2f is decoded before this
	}
	for p, want := range tests {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}
