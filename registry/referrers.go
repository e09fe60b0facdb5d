package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// OCI 1.1 referrers. The embedded distribution app neither indexes a
// manifest's subject nor serves GET /v2/<name>/referrers/<digest>, so the
// front does both: it records the descriptor of every manifest PUT that
// names a subject in the signature store's referrers index, and serves the
// index from there.

const (
	mediaTypeIndex = "application/vnd.oci.image.index.v1+json"
	// maxManifestBytes is distribution's own manifest body limit.
	maxManifestBytes = 4 << 20
	// defaultReferrersPage bounds one referrers response; the rest is
	// reached through the Link header.
	defaultReferrersPage = 500
)

// untrustedManifest holds the fields of a manifest the referrers index
// needs. Parsed leniently: distribution validates the manifest itself.
type untrustedManifest struct {
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
	Annotations map[string]string `json:"annotations"`
}

// referrerOf returns the subject and descriptor of a manifest body that
// names a valid subject.
func referrerOf(body []byte, contentType string) (digest.Digest, signaturestore.Descriptor, bool) {
	var m untrustedManifest
	if err := json.Unmarshal(body, &m); err != nil || m.Subject == nil {
		return "", signaturestore.Descriptor{}, false
	}
	subject, err := digest.Parse(m.Subject.Digest)
	if err != nil {
		return "", signaturestore.Descriptor{}, false
	}
	mt := m.MediaType
	if mt == "" {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.TrimSpace(mt)
	}
	artifactType := m.ArtifactType
	if artifactType == "" && m.Config != nil && mt != mediaTypeIndex {
		// OCI 1.1: an image manifest without artifactType is listed
		// with its config's media type.
		artifactType = m.Config.MediaType
	}
	sum := sha256.Sum256(body)
	return subject, signaturestore.Descriptor{
		MediaType:    mt,
		Digest:       digest.Digest("sha256:" + hex.EncodeToString(sum[:])),
		Size:         int64(len(body)),
		ArtifactType: artifactType,
		Annotations:  m.Annotations,
	}, true
}

// manifestPutTarget extracts <name> from PUT /v2/<name>/manifests/<ref>.
func manifestPutTarget(r *http.Request) (string, bool) {
	if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v2/") {
		return "", false
	}
	rest := r.URL.Path[len("/v2/"):]
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// subjectWriter adds OCI-Subject to a successful manifest PUT answer.
type subjectWriter struct {
	http.ResponseWriter
	subject digest.Digest
	status  int
}

func (sw *subjectWriter) WriteHeader(code int) {
	if sw.status == 0 {
		sw.status = code
		if code == http.StatusCreated {
			sw.Header().Set("OCI-Subject", sw.subject.String())
		}
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *subjectWriter) Write(p []byte) (int, error) {
	if sw.status == 0 {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriter.Write(p)
}

func (sw *subjectWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// withReferrers indexes manifest PUTs that name a subject. The descriptor
// is recorded as pending before the app stores the manifest and settled
// after, so a crash in between is repaired at the next start.
func (s *Server) withReferrers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, ok := manifestPutTarget(r)
		if !ok || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		head, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
		if err != nil {
			// Let the app see the same failure on its own read.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), r.Body))
			next.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), r.Body))
		if len(head) > maxManifestBytes {
			next.ServeHTTP(w, r)
			return
		}
		subject, desc, ok := referrerOf(head, r.Header.Get("Content-Type"))
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.referrers.BeginReferrer(r.Context(), repo, subject, desc); err != nil {
			s.log.ErrorContext(r.Context(), "index referrer", "repository", repo, "digest", desc.Digest.String(), "err", err)
			writeAPIError(w, err)
			return
		}
		sw := &subjectWriter{ResponseWriter: w, subject: subject}
		next.ServeHTTP(sw, r)
		ctx := context.WithoutCancel(r.Context())
		stored := sw.status == http.StatusCreated
		if !stored {
			// A failed re-push leaves an existing manifest in place.
			stored, _ = s.manifests.ManifestExists(ctx, repo, desc.Digest)
		}
		key := signaturestore.ReferrerKey{Repository: repo, Digest: desc.Digest}
		if err := s.referrers.EndReferrer(ctx, key, stored); err != nil {
			s.log.ErrorContext(ctx, "settle referrer; repaired at next start", "repository", repo, "digest", desc.Digest.String(), "err", err)
		}
	})
}

// recoverReferrers settles referrers whose manifest PUT was interrupted.
func (s *Server) recoverReferrers(ctx context.Context) error {
	pending, err := s.referrers.PendingReferrers(ctx)
	if err != nil {
		return err
	}
	for _, key := range pending {
		exists, err := s.manifests.ManifestExists(ctx, key.Repository, key.Digest)
		if err != nil {
			return err
		}
		if err := s.referrers.EndReferrer(ctx, key, exists); err != nil {
			return err
		}
	}
	return nil
}

// referrersIndex is the body of GET /v2/<name>/referrers/<digest>.
type referrersIndex struct {
	SchemaVersion int                         `json:"schemaVersion"`
	MediaType     string                      `json:"mediaType"`
	Manifests     []signaturestore.Descriptor `json:"manifests"`
}

// serveReferrers serves GET /v2/<name>/referrers/<digest>: always 200 with
// an image index (empty when nothing refers to the digest), filtered by
// ?artifactType= and paged through Link.
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, v routeVars) {
	repo := v.name
	subject, err := extensions.ParseDigest(v.digest)
	if err != nil {
		errcode.Write(w, errcode.DigestInvalid.WithMessage("invalid digest"))
		return
	}
	q := r.URL.Query()
	artifactType := q.Get("artifactType")
	var last digest.Digest
	if l := q.Get("last"); l != "" {
		if last, err = extensions.ParseDigest(l); err != nil {
			errcode.Write(w, errcode.DigestInvalid.WithMessage("invalid last"))
			return
		}
	}
	out := referrersIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []signaturestore.Descriptor{}}
	more := false
	// scan walks the index; lastListed is the cursor for the next page.
	scan, lastListed := last, last
	for !more {
		chunk, err := s.referrers.Referrers(r.Context(), repo, subject, scan, s.referrersPage+1)
		if err != nil {
			s.log.ErrorContext(r.Context(), "list referrers", "repository", repo, "err", err)
			writeAPIError(w, err)
			return
		}
		for _, d := range chunk {
			if artifactType != "" && d.ArtifactType != artifactType {
				continue
			}
			if len(out.Manifests) == s.referrersPage {
				more = true
				break
			}
			out.Manifests = append(out.Manifests, d)
			lastListed = d.Digest
		}
		if len(chunk) <= s.referrersPage {
			break
		}
		scan = chunk[len(chunk)-1].Digest
	}
	body, err := json.Marshal(out)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", mediaTypeIndex)
	if artifactType != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if more {
		next := url.Values{"last": {lastListed.String()}}
		if artifactType != "" {
			next.Set("artifactType", artifactType)
		}
		h.Set("Link", "</v2/"+repo+"/referrers/"+subject.String()+"?"+next.Encode()+`>; rel="next"`)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
