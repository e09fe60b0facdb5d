package extensions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/gencache"
	"github.com/signet-registry/signet/internal/keylock"
	"github.com/signet-registry/signet/internal/refname"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// ManifestChecker answers whether a repository holds a manifest. The
// registry implements it over its blob store.
type ManifestChecker interface {
	ManifestExists(ctx context.Context, repository string, dgst digest.Digest) (bool, error)
}

// ErrManifestUnknown: the image is not in the repository.
var ErrManifestUnknown = errors.New("manifest unknown")

// Options configure a Handler.
type Options struct {
	Store     signaturestore.Store
	Manifests ManifestChecker
	// Recheck, when set, is asked again once a signature PUT has
	// committed, without any cache, and the signature is taken back
	// when the manifest is gone. Replicas that share the store and the
	// blob storage need it: Locks orders a PUT against a manifest
	// delete only within one process, so another replica can delete
	// the manifest and its signatures between this PUT's check and its
	// commit, which would leave the signature behind (hidden, and back
	// if the same digest is pushed again).
	Recheck ManifestChecker
	// Locks orders signature writes against manifest deletes.
	Locks *keylock.Locks
	// MaxBodyBytes caps a PUT body.
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Audit receives one record per signature write, status save and
	// removal; the zero AuditLog discards them.
	Audit AuditLog
	// External names the repositories of images Signet does not host
	// (signatures.externalRepositories); for them no manifest is
	// required. Nil means none.
	External ExternalRepositories
	// Lists caches each image's encoded GET response by ImageKey.
	// Whoever writes to Store must invalidate the
	// image's key after each change commits, status changes included
	// (the registry wraps the store to do so). Nil turns the cache off.
	Lists *gencache.Cache[signaturestore.ImageKey, *List]
	// Lookaside caches the decoded bodies lookaside GETs serve. An entry
	// is used only with the exact List it was decoded from, so it is
	// correct without invalidation. Nil turns it off.
	Lookaside *gencache.Cache[signaturestore.ImageKey, *LookasideList]
}

// ExternalRepositories matches repositories whose signatures are kept
// without the manifest (repoglob.Set implements it).
type ExternalRepositories interface {
	Match(repository string) bool
}

// Handler serves the signature extension API.
type Handler struct {
	opts Options
	// Header values of every list response, allocated once. They are
	// never modified (an Add would copy: len == cap).
	jsonType, noStore, octetStream []string
	// listIDs numbers the Lists built (List.id).
	listIDs atomic.Uint64
}

// NewHandler returns a Handler; every option but Logger is required.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Store == nil || opts.Manifests == nil || opts.Locks == nil || opts.MaxBodyBytes <= 0 {
		return nil, errors.New("extensions: store, manifest checker, locks and a positive body limit are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, jsonType: []string{"application/json; charset=utf-8"}, noStore: []string{"no-store"},
		octetStream: []string{"application/octet-stream"}}, nil
}

// LockKey is the keylock key of an image, shared with the registry's
// manifest delete path.
func LockKey(repository string, dgst digest.Digest) string {
	return repository + "@" + dgst.String()
}

// parseImage validates the URL variables. Access has already been decided
// by the caller, so reporting a malformed name here leaks nothing.
func parseImage(repository, rawDigest string) (signaturestore.ImageKey, error) {
	if !refname.Valid(repository) {
		return signaturestore.ImageKey{}, errNameInvalid
	}
	dgst, err := ParseDigest(rawDigest)
	if err != nil {
		return signaturestore.ImageKey{}, err
	}
	return signaturestore.ImageKey{Repository: repository, Digest: dgst}, nil
}

var errNameInvalid = errors.New("invalid repository name")

// errLookasideEnd: the lookaside index is past the image's last signature.
var errLookasideEnd = errors.New("no signature with that index")

func (h *Handler) requireManifest(ctx context.Context, key signaturestore.ImageKey) error {
	if h.opts.External != nil && h.opts.External.Match(key.Repository) {
		// Signet cannot know whether an image held elsewhere exists;
		// the signature's own digest binding is what protects readers.
		return nil
	}
	ok, err := h.opts.Manifests.ManifestExists(ctx, key.Repository, key.Digest)
	if err != nil {
		return fmt.Errorf("check manifest %s: %w", key, err)
	}
	if !ok {
		return ErrManifestUnknown
	}
	return nil
}

// recheck asks Options.Recheck about a signature just committed and takes
// it back when the manifest is gone (a delete on another replica won the
// race). It returns the error to answer, nil to answer 201. A recheck
// that fails leaves the signature: the check before the commit passed.
func (h *Handler) recheck(ctx context.Context, key signaturestore.ImageKey, name string) error {
	if h.opts.Recheck == nil || (h.opts.External != nil && h.opts.External.Match(key.Repository)) {
		return nil
	}
	ok, err := h.opts.Recheck.ManifestExists(ctx, key.Repository, key.Digest)
	if err != nil {
		h.opts.Logger.WarnContext(ctx, "signature stored; could not check its manifest again", "image", key.String(), "signature", name, "err", err)
		return nil
	}
	if ok {
		return nil
	}
	// Not under ctx: the request may be gone, the signature must go.
	if err := h.opts.Store.Delete(context.WithoutCancel(ctx), key, name); err != nil && !errors.Is(err, signaturestore.ErrNotFound) {
		return fmt.Errorf("take back signature %s of %s, whose manifest was deleted meanwhile: %w", name, key, err)
	}
	h.opts.Logger.InfoContext(ctx, "signature taken back: its manifest was deleted while it was stored", "image", key.String(), "signature", name)
	return ErrManifestUnknown
}

// List is one image's signatures as the extension API's GET body, and
// where each signature's base64 content lies in it: what GET and
// /sigstore/ serve, half the memory of the decoded signatures. It is
// shared by cache readers and must not be modified.
type List struct {
	// key is the image the list is of; id tells this List from every
	// other the Handler built.
	key     signaturestore.ImageKey
	id      uint64
	Encoded []byte
	// contentLength is the Content-Length header value of Encoded.
	contentLength []string
	// contents are the [start, end) offsets of each signature's base64
	// content in Encoded.
	contents [][2]int
}

// Len is the number of signatures.
func (l *List) Len() int { return len(l.contents) }

// Content is the raw content of signature i (0-based).
func (l *List) Content(i int) ([]byte, error) {
	src := l.Encoded[l.contents[i][0]:l.contents[i][1]]
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	return dst[:n], err
}

func (l *List) size() int64 { return int64(len(l.Encoded)+16*len(l.contents)) + 128 }

// requireImage validates the image and requires its manifest, even when
// its list is cached, so a deleted image stops answering at once; on
// failure it has already answered.
func (h *Handler) requireImage(w http.ResponseWriter, r *http.Request, repository, rawDigest string) (signaturestore.ImageKey, bool) {
	key, err := parseImage(repository, rawDigest)
	if err == nil {
		err = h.requireManifest(r.Context(), key)
	}
	if err != nil {
		h.fail(w, r, err)
		return key, false
	}
	return key, true
}

// listImage is the image's List, from the cache when it has not changed
// since it was encoded; on failure it has already answered.
func (h *Handler) listImage(w http.ResponseWriter, r *http.Request, repository, rawDigest string) (*List, bool) {
	key, ok := h.requireImage(w, r, repository, rawDigest)
	if !ok {
		return nil, false
	}
	cache := h.opts.Lists
	var gen uint64
	if cache != nil {
		if l, ok := cache.Get(key); ok {
			return l, true
		}
		gen = cache.Gen()
	}
	// Encoded straight from the store's records: no Signature is built.
	var enc listEncoder
	// The usual name is "<digest>@<32 hex>", of type atomic.
	usual := len(key.Digest) + 1 + 32 + len(signaturestore.TypeAtomic)
	err := signaturestore.VisitList(r.Context(), h.opts.Store, key,
		func(n int, contentBytes int64) { enc.start(n, contentBytes, n*usual) }, enc.add)
	if err != nil {
		h.fail(w, r, fmt.Errorf("list signatures of %s: %w", key, err))
		return nil, false
	}
	l := &List{key: key, id: h.listIDs.Add(1)}
	l.Encoded, l.contents = enc.finish()
	l.contentLength = []string{strconv.Itoa(len(l.Encoded))}
	if cache != nil {
		cache.Put(key, l, l.size(), gen)
	}
	return l, true
}

// freshSignatures reads the image's signatures from the store, bypassing
// the cache: for the records API (creation times and statuses, which the
// cache does not keep) and for writers that decide from what they read (a
// change committed by another request is in the store before its
// invalidation reaches the cache).
func (h *Handler) freshSignatures(w http.ResponseWriter, r *http.Request, repository, rawDigest string) (signaturestore.ImageKey, []signaturestore.Signature, bool) {
	key, ok := h.requireImage(w, r, repository, rawDigest)
	if !ok {
		return key, nil, false
	}
	sigs, err := h.opts.Store.List(r.Context(), key)
	if err != nil {
		h.fail(w, r, fmt.Errorf("list signatures of %s: %w", key, err))
		return key, nil, false
	}
	return key, sigs, true
}

// GetSignatures serves GET /extensions/v2/<repository>/signatures/<digest>.
func (h *Handler) GetSignatures(w http.ResponseWriter, r *http.Request, repository, rawDigest string) {
	l, ok := h.listImage(w, r, repository, rawDigest)
	if !ok {
		return
	}
	// Assigned, not Set: the values are shared, canonical-keyed slices,
	// the hot path's only header allocations otherwise.
	hdr := w.Header()
	hdr["Content-Type"] = h.jsonType
	hdr["Content-Length"] = l.contentLength
	hdr["Cache-Control"] = h.noStore
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(l.Encoded)
}

// PutSignature serves PUT /extensions/v2/<repository>/signatures/<digest>.
// It answers 201 with an empty body only after the signature is on stable
// storage.
func (h *Handler) PutSignature(w http.ResponseWriter, r *http.Request, repository, rawDigest string) {
	key, err := parseImage(repository, rawDigest)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sig, err := DecodeSignature(key.Digest, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	unlock := h.opts.Locks.RLock(LockKey(key.Repository, key.Digest))
	defer unlock()
	if err := h.requireManifest(r.Context(), key); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.opts.Store.Put(r.Context(), key, sig); err != nil {
		h.fail(w, r, fmt.Errorf("store signature %s: %w", sig.Name, err))
		return
	}
	if gone := h.recheck(r.Context(), key, sig.Name); gone != nil {
		h.fail(w, r, gone)
		return
	}
	h.opts.Audit.Record(r, "signature.put", key, slog.String("signature", sig.Name))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// errTooLarge: the request body is over the limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string { return fmt.Sprintf("request body over %d bytes", e.limit) }

// readBody reads at most limit bytes. A declared Content-Length over the
// limit is refused before reading anything (CVE-2020-1702).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge{limit}
	}
	if n := r.ContentLength; n >= 0 {
		// A declared length within the limit: one buffer of that size.
		// net/http's body reader ends at the declared length and fails
		// a body cut short.
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, fmt.Errorf("%w: reading body: %v", ErrInvalid, err)
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge{limit}
		}
		return nil, fmt.Errorf("%w: reading body: %v", ErrInvalid, err)
	}
	return body, nil
}

// APIError maps a domain error to the API error it is sent as. It is the one
// place where errors become codes.
func APIError(err error) errcode.Error {
	var tooLarge errTooLarge
	var apiErr errcode.Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &tooLarge):
		return errcode.RequestTooLarge.WithMessage("%s", tooLarge.Error())
	case errors.Is(err, errNameInvalid):
		return errcode.NameInvalid.WithDetail(nil)
	case errors.Is(err, ErrInvalid), errors.Is(err, signaturestore.ErrInvalid):
		return errcode.SignatureInvalid.WithDetail(err.Error())
	case errors.Is(err, signaturestore.ErrExists):
		return errcode.SignatureExists.WithDetail(nil)
	case errors.Is(err, signaturestore.ErrLimit):
		return errcode.SignatureLimit.WithDetail(nil)
	case errors.Is(err, signaturestore.ErrNotFound), errors.Is(err, errLookasideEnd):
		return errcode.SignatureUnknown.WithDetail(nil)
	case errors.Is(err, ErrManifestUnknown):
		return errcode.ManifestUnknown.WithDetail(nil)
	case errors.Is(err, signaturestore.ErrNoSpace):
		return errcode.StorageFull.WithDetail(nil)
	case errors.Is(err, signaturestore.ErrUnavailable):
		return errcode.StoreUnavailable.WithDetail(nil)
	case errors.Is(err, signaturestore.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errcode.Unavailable.WithDetail(nil)
	default:
		return errcode.Unknown.WithDetail(nil)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	apiErr := APIError(err)
	if apiErr.Code.Status() >= 500 {
		h.opts.Logger.ErrorContext(r.Context(), "signature request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	errcode.Write(w, apiErr)
}
