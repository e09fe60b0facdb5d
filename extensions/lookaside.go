package extensions

import (
	"fmt"
	"net/http"
	"strconv"
)

// GetLookasideSignature serves GET and HEAD
// /sigstore/<repository>@sha256=<hex>/signature-<index>: the raw bytes of
// the image's index-th signature (from 1) in the store's order, which is
// the registries.d lookaside layout containers/image reads when a
// registry has no extension API. Past the last signature, for an image
// with none and for an unknown image it answers 404, the end of the list
// for those clients. Access was decided by the front before this runs.
func (h *Handler) GetLookasideSignature(w http.ResponseWriter, r *http.Request, repository, hex, index string) {
	n, err := strconv.Atoi(index)
	if err != nil || n < 1 {
		h.fail(w, r, invalidf("signature index %q is not a number from 1", truncate(index)))
		return
	}
	l, ok := h.listImage(w, r, repository, "sha256:"+hex)
	if !ok {
		return
	}
	if n > l.Len() {
		h.fail(w, r, errLookasideEnd)
		return
	}
	body, err := l.Content(n - 1)
	if err != nil {
		h.fail(w, r, fmt.Errorf("lookaside signature %d: %w", n, err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
