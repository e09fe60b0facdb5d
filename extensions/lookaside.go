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
	raw, err := h.rawContents(l)
	if err != nil {
		h.fail(w, r, fmt.Errorf("lookaside signature %d: %w", n, err))
		return
	}
	hdr := w.Header()
	hdr["Content-Type"] = h.octetStream
	hdr["Content-Length"] = raw.lengths[n-1]
	hdr["Cache-Control"] = h.noStore
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(raw.contents[n-1])
	}
}

// LookasideList is a List's signatures decoded, the bodies lookaside
// GETs answer, kept by Options.Lookaside.
type LookasideList struct {
	// from is the id of the List these were decoded from: an entry
	// serves only while the image's current List is that one, so it
	// needs no invalidation of its own to stay correct. (An id, not a
	// pointer, so the cache does not keep old Lists alive.)
	from     uint64
	contents [][]byte
	lengths  [][]string
}

func (r *LookasideList) size() int64 {
	n := int64(128)
	for _, c := range r.contents {
		n += int64(len(c)) + 64
	}
	return n
}

// rawContents returns l's signatures decoded, from the cache when it
// holds them for this very List.
func (h *Handler) rawContents(l *List) (*LookasideList, error) {
	cache := h.opts.Lookaside
	if cache != nil {
		if raw, ok := cache.Get(l.key); ok && raw.from == l.id {
			return raw, nil
		}
	}
	raw := &LookasideList{from: l.id, contents: make([][]byte, l.Len()), lengths: make([][]string, l.Len())}
	for i := range raw.contents {
		c, err := l.Content(i)
		if err != nil {
			return nil, err
		}
		raw.contents[i], raw.lengths[i] = c, []string{strconv.Itoa(len(c))}
	}
	if cache != nil {
		cache.Put(l.key, raw, raw.size(), cache.Gen())
	}
	return raw, nil
}
