package registry

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/gorilla/mux"
)

// agreeWithMux checks that where fastRoute answers, the router would
// have chosen the same route with the same variables.
func agreeWithMux(t *testing.T, m *mux.Router, method, path string) {
	t.Helper()
	r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}}
	name, vars, ok := fastRoute(r)
	if !ok {
		return
	}
	var match mux.RouteMatch
	if !m.Match(r, &match) || match.Route == nil || match.MatchErr != nil {
		t.Fatalf("%s %q: fastRoute says %s, the router matches nothing", method, path, name)
	}
	if got := match.Route.GetName(); got != name {
		t.Fatalf("%s %q: fastRoute says %s, the router %s", method, path, name, got)
	}
	want, known := varsOf(match.Vars)
	if !known {
		t.Fatalf("%s %q: the router matched variables routeVars cannot hold: %v", method, path, match.Vars)
	}
	if name != RouteV2 && vars != want {
		t.Fatalf("%s %q: fastRoute vars %+v, the router's %v", method, path, vars, match.Vars)
	}
}

func testMux() *mux.Router {
	handlers := map[string]http.Handler{RouteUI: http.NotFoundHandler(), RouteV2: http.NotFoundHandler()}
	for _, rt := range routeTable() {
		handlers[rt.name] = http.NotFoundHandler()
	}
	return routeMux(handlers)
}

var fastRouteNames = []string{"a", "ns/app", "Example.com:5000/ns/app", "[::1]:5000/x", "a/signatures/b",
	"ns/app@x", "UPPER", "a//b", "a_", "ns/-a", strings.Repeat("a", 300), "a/referrers/b", "sigstore", "v2"}

var fastRouteTails = []string{"sha256:" + strings.Repeat("ab", 32), "x", "", "a/b", "sha256:AB", "%2F"}

// TestFastRouteAgreesWithRouter covers every hot route shape with good
// and bad names and tails, and checks that fastRoute does take them.
func TestFastRouteAgreesWithRouter(t *testing.T) {
	m := testMux()
	hex := strings.Repeat("0f", 32)
	taken := 0
	for _, method := range []string{"GET", "HEAD", "PUT", "DELETE", "POST"} {
		for _, name := range fastRouteNames {
			for _, tail := range fastRouteTails {
				for _, p := range []string{
					"/extensions/v2/" + name + "/signatures/" + tail,
					"/extensions/v2/" + name + "/signatures" + tail,
					"/sigstore/" + name + "@sha256=" + hex + "/signature-1" + tail,
					"/sigstore/" + name + "@sha256=" + hex + "/signature-" + tail,
					"/sigstore/" + name + "@sha256=" + tail + "/signature-12",
					"/sigstore/" + name + "@sha256=" + hex + "/signature-1234567",
					"/sigstore/" + name + "@sha256=" + hex + "/signature-12345678",
					"/sigstore/" + name + "@sha256=" + hex + "/signature-0",
					"/v2/" + name + "/manifests/" + tail,
					"/v2/" + name + "/referrers/" + tail,
					"/v2" + tail,
					"/v2/",
					"/v2",
				} {
					agreeWithMux(t, m, method, p)
					if _, _, ok := fastRoute(&http.Request{Method: method, URL: &url.URL{Path: p}}); ok {
						taken++
					}
				}
			}
		}
	}
	// The fast path must actually serve the hot routes.
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/extensions/v2/ns/app/signatures/sha256:" + hex, RouteSignaturesGet},
		{"PUT", "/extensions/v2/ns/app/signatures/sha256:" + hex, RouteSignaturesPut},
		{"GET", "/sigstore/ns/app@sha256=" + hex + "/signature-1", RouteSigstoreGet},
		{"HEAD", "/sigstore/ns/app@sha256=" + hex + "/signature-1", RouteSigstoreHead},
		{"GET", "/v2/ns/app/manifests/sha256:" + hex, RouteV2},
		{"PUT", "/v2/ns/app/blobs/uploads/x", RouteV2},
	} {
		if name, _, ok := fastRoute(&http.Request{Method: c.method, URL: &url.URL{Path: c.path}}); !ok || name != c.want {
			t.Errorf("%s %s: fastRoute = %q, %v; want %s", c.method, c.path, name, ok, c.want)
		}
	}
	if taken == 0 {
		t.Fatal("fastRoute took none of the generated requests")
	}
}

func FuzzFastRoute(f *testing.F) {
	hex := strings.Repeat("0f", 32)
	f.Add(uint8(0), "/extensions/v2/ns/app/signatures/sha256:"+hex)
	f.Add(uint8(0), "/sigstore/ns/app@sha256="+hex+"/signature-1")
	f.Add(uint8(1), "/sigstore/Example.com:5000/a@sha256="+hex+"/signature-1234567")
	f.Add(uint8(0), "/v2/ns/app/referrers/sha256:"+hex)
	f.Add(uint8(2), "/v2/ns/app/blobs/uploads/")
	m := testMux()
	methods := []string{"GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"}
	f.Fuzz(func(t *testing.T, method uint8, path string) {
		agreeWithMux(t, m, methods[int(method)%len(methods)], path)
	})
}

// agreeWithV2Router checks fastV2Need against distribution's own route
// table, which v2Needs otherwise consults.
func agreeWithV2Router(t *testing.T, routes *mux.Router, method, path string) {
	t.Helper()
	r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}}
	need, ok := fastV2Need(r)
	if !ok {
		return
	}
	var match mux.RouteMatch
	if !routes.Match(r, &match) || match.Route == nil {
		t.Fatalf("%s %q: fastV2Need says %+v, distribution's router matches nothing", method, path, need)
	}
	if got := "v2." + match.Route.GetName(); got != need.route || match.Vars["name"] != need.repository || need.access != AccessPull {
		t.Fatalf("%s %q: fastV2Need says %+v, the router %s name=%q", method, path, need, got, match.Vars["name"])
	}
	if match.Handler != nil {
		t.Fatalf("%s %q: the router redirects (strict slash), fastV2Need took it", method, path)
	}
}

func TestFastV2NeedAgreesWithRouter(t *testing.T) {
	taken := 0
	routes := v2.RouterWithPrefix("")
	refs := []string{"latest", "v1.0-rc_1", "_x", ".x", "-x", strings.Repeat("t", 128), strings.Repeat("t", 129),
		"sha256:" + strings.Repeat("ab", 32), "sha256:AB", "sha256:", ":abc", "sha256+x.y_z-w:abc=_-", "SHA256:ab",
		"a..b:c", "a.:c", "a:b:c", "x/y", "", "uploads", "uploads/", "list"}
	for _, method := range []string{"GET", "HEAD", "PUT", "DELETE"} {
		for _, name := range fastRouteNames {
			for _, ref := range refs {
				for _, p := range []string{"/v2/" + name + "/manifests/" + ref, "/v2/" + name + "/blobs/" + ref,
					"/v2/" + name + "/blobs/uploads/" + ref, "/v2/" + name + "/tags/" + ref, "/v2/" + name + "/manifests/" + ref + "/"} {
					agreeWithV2Router(t, routes, method, p)
					if _, ok := fastV2Need(&http.Request{Method: method, URL: &url.URL{Path: p}}); ok {
						taken++
					}
				}
			}
		}
	}
	if taken == 0 {
		t.Fatal("fastV2Need took none of the generated requests")
	}
}

func FuzzFastV2Need(f *testing.F) {
	f.Add(uint8(0), "/v2/ns/app/manifests/latest")
	f.Add(uint8(1), "/v2/ns/app/blobs/sha256:"+strings.Repeat("ab", 32))
	f.Add(uint8(0), "/v2/Example.com:5000/a/manifests/sha256+b.c:x=")
	methods := []string{"GET", "HEAD", "PUT"}
	routes := v2.RouterWithPrefix("")
	f.Fuzz(func(t *testing.T, method uint8, path string) {
		agreeWithV2Router(t, routes, methods[int(method)%len(methods)], path)
	})
}
