package registry

import (
	"net/http"
	"strings"

	"github.com/signet-registry/signet/internal/refname"
)

// routeVars are a route's path variables, by the names the route table
// gives them; a route leaves the ones it does not have empty.
type routeVars struct {
	name, digest, signature, hex, index string
}

// varsOf takes the variables the router matched. ok is false if the
// router matched a variable routeVars has no field for.
func varsOf(m map[string]string) (v routeVars, ok bool) {
	for k, val := range m {
		switch k {
		case "name":
			v.name = val
		case "digest":
			v.digest = val
		case "signature":
			v.signature = val
		case "hex":
			v.hex = val
		case "index":
			v.index = val
		default:
			return v, false
		}
	}
	return v, true
}

// fastRoute finds the route of the hottest requests (signature GETs and
// PUTs, lookaside GETs, and everything under /v2) by the shape of the
// path, without the router's regexps, which cost a third of a signature
// GET, and without the map and request copy the router's variables
// cost. It gives exactly the route and variables the router would
// (fastroute_test.go compares them, also under fuzzing), and ok=false for
// every other request, which the router then matches.
func fastRoute(r *http.Request) (name string, vars routeVars, ok bool) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v2"):
		// Only the referrers route is matched before the /v2 prefix.
		if strings.Contains(p, "/referrers/") {
			return "", vars, false
		}
		return RouteV2, vars, true
	case (r.Method == http.MethodGet || r.Method == http.MethodPut) && strings.HasPrefix(p, "/extensions/v2/"):
		rest := p[len("/extensions/v2/"):]
		slash := strings.LastIndexByte(rest, '/')
		if slash < 0 || slash == len(rest)-1 {
			return "", vars, false
		}
		repo, found := strings.CutSuffix(rest[:slash], "/signatures")
		if !found || !refname.Grammar(repo) {
			return "", vars, false
		}
		name := RouteSignaturesGet
		if r.Method == http.MethodPut {
			name = RouteSignaturesPut
		}
		return name, routeVars{name: repo, digest: rest[slash+1:]}, true
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(p, "/sigstore/"):
		rest := p[len("/sigstore/"):]
		at := strings.Index(rest, "@sha256=")
		if at < 0 || !refname.Grammar(rest[:at]) {
			return "", vars, false
		}
		tail := rest[at+len("@sha256="):]
		if len(tail) < 64 || !lowerHex(tail[:64]) {
			return "", vars, false
		}
		index, found := strings.CutPrefix(tail[64:], "/signature-")
		if !found || !signatureIndex(index) {
			return "", vars, false
		}
		name := RouteSigstoreGet
		if r.Method == http.MethodHead {
			name = RouteSigstoreHead
		}
		return name, routeVars{name: rest[:at], hex: tail[:64], index: index}, true
	}
	return "", vars, false
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// signatureIndex matches [1-9][0-9]{0,6}, the route table's pattern.
func signatureIndex(s string) bool {
	if len(s) < 1 || len(s) > 7 || s[0] < '1' || s[0] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fastV2Need classifies GET and HEAD of a manifest or a blob, most of
// what a registry serves, without distribution's route regexps (half
// the cost of a cached manifest GET). It agrees with v2Needs's router
// match wherever it answers (fastroute_test.go).
func fastV2Need(r *http.Request) (v2Need, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return v2Need{}, false
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		return v2Need{}, false
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return v2Need{}, false
	}
	last := rest[slash+1:]
	if repo, ok := strings.CutSuffix(rest[:slash], "/manifests"); ok && (tagRef(last) || ociDigest(last)) && refname.Grammar(repo) {
		return v2Need{route: "v2.manifest", repository: repo, access: AccessPull}, true
	}
	if repo, ok := strings.CutSuffix(rest[:slash], "/blobs"); ok && ociDigest(last) && refname.Grammar(repo) {
		return v2Need{route: "v2.blob", repository: repo, access: AccessPull}, true
	}
	return v2Need{}, false
}

func wordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// tagRef matches reference.TagRegexp: [\w][\w.-]{0,127}.
func tagRef(s string) bool {
	if len(s) < 1 || len(s) > 128 || !wordChar(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !wordChar(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// ociDigest matches go-digest's DigestRegexp, which distribution's routes
// use: [a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+.
func ociDigest(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon == len(s)-1 {
		return false
	}
	alg, enc := s[:colon], s[colon+1:]
	lowerAlnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !lowerAlnum(alg[0]) || !lowerAlnum(alg[len(alg)-1]) {
		return false
	}
	for i := 1; i < len(alg); i++ {
		c := alg[i]
		if lowerAlnum(c) {
			continue
		}
		if c != '.' && c != '+' && c != '_' && c != '-' || !lowerAlnum(alg[i-1]) {
			return false
		}
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '=' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
