package registry

import "net/http"

// sigstore serves GET and HEAD /sigstore/<repository>@sha256=<hex>/signature-<N>,
// the registries.d lookaside layout, from the same store as the extension
// API and under the same access rule (pull on the repository, decided by
// guard before anything is looked up).
func (s *Server) sigstore(w http.ResponseWriter, r *http.Request, v routeVars) {
	s.sigs.GetLookasideSignature(w, r, v.name, v.hex, v.index)
}
