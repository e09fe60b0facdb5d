package proxy

import (
	"fmt"
	"net/http"
	"regexp"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
)

// routeReferrers names GET /v2/<name>/referrers/<digest>, which
// distribution's route table lacks.
const routeReferrers = "referrers"

// target is what one /v2/ request acts on.
type target struct {
	// route is distribution's route name, routeReferrers, or "" for a
	// path no registry route matches.
	route string
	repo  string
	// ref is the manifest reference (tag or digest), the blob digest or
	// the referrers subject, as the client wrote it.
	ref string
	// mountFrom is the source repository of a cross-repository mount.
	mountFrom string
}

// classifier parses /v2/ paths with distribution's own route table, so
// repository names are split exactly as registries split them.
type classifier struct {
	routes    *mux.Router
	referrers *regexp.Regexp
}

func newClassifier() (*classifier, error) {
	re, err := regexp.Compile(`^/v2/(` + reference.NameRegexp.String() + `)/referrers/([^/]+)$`)
	if err != nil {
		return nil, fmt.Errorf("compile referrers route: %w", err)
	}
	return &classifier{routes: v2.RouterWithPrefix(""), referrers: re}, nil
}

func (c *classifier) classify(r *http.Request) target {
	if m := c.referrers.FindStringSubmatch(r.URL.Path); m != nil {
		return target{route: routeReferrers, repo: m[1], ref: m[2]}
	}
	var match mux.RouteMatch
	if !c.routes.Match(r, &match) || match.Route == nil {
		return target{}
	}
	t := target{route: match.Route.GetName(), repo: match.Vars["name"]}
	switch t.route {
	case v2.RouteNameManifest:
		t.ref = match.Vars["reference"]
	case v2.RouteNameBlob:
		t.ref = match.Vars["digest"]
	case v2.RouteNameBlobUpload:
		q := r.URL.Query()
		if r.Method == http.MethodPost && q.Get("mount") != "" {
			if _, err := reference.WithName(q.Get("from")); err == nil {
				t.mountFrom = q.Get("from")
			}
		}
	}
	return t
}

// scopes are the token scopes (distribution's token specification) the
// request needs: pull for reads, pull and push for writes, delete for
// deletes, as distribution's own access controller asks for them.
func (t target) scopes(method string) []string {
	if t.route == v2.RouteNameCatalog {
		return []string{"registry:catalog:*"}
	}
	if t.repo == "" {
		return nil
	}
	actions := "pull,push"
	switch method {
	case http.MethodGet, http.MethodHead:
		actions = "pull"
	case http.MethodDelete:
		actions = "delete"
	}
	s := []string{"repository:" + t.repo + ":" + actions}
	if t.mountFrom != "" && t.mountFrom != t.repo {
		s = append(s, "repository:"+t.mountFrom+":pull")
	}
	return s
}
