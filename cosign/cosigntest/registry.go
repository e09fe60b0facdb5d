package cosigntest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
)

const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
)

// Registry is an in-memory OCI registry with the referrers API. It
// implements cosign.Registry and, as an http.Handler, the GET side of the
// distribution API that the client uses.
type Registry struct {
	mu        sync.Mutex
	manifests map[string][]byte // "repo@digest" -> bytes
	tags      map[string]string // "repo:tag" -> digest
	blobs     map[string][]byte // "repo@digest" -> bytes
	// NoReferrersAPI makes the referrers API answer 404, as registries
	// without OCI 1.1 do; referrers are then found through the fallback tag.
	NoReferrersAPI bool
}

var _ cosign.Registry = (*Registry)(nil)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{manifests: map[string][]byte{}, tags: map[string]string{}, blobs: map[string][]byte{}}
}

func digestOf(b []byte) digest.Digest {
	sum := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// PutBlob stores a blob and returns its digest.
func (r *Registry) PutBlob(repo string, b []byte) digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := digestOf(b)
	r.blobs[repo+"@"+d.String()] = b
	return d
}

// PutManifest stores a manifest, tags it when tag is not empty, and
// returns its digest.
func (r *Registry) PutManifest(repo, tag string, b []byte) digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := digestOf(b)
	r.manifests[repo+"@"+d.String()] = b
	if tag != "" {
		r.tags[repo+":"+tag] = d.String()
	}
	return d
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptor       `json:"config,omitempty"`
	Layers        []descriptor      `json:"layers,omitempty"`
	Manifests     []descriptor      `json:"manifests,omitempty"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// mustJSON marshals the types above, which cannot fail to marshal.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// PushImage stores a small image manifest under repo:tag.
func (r *Registry) PushImage(repo, tag, content string) digest.Digest {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte(content)
	m := manifest{
		SchemaVersion: 2, MediaType: mediaTypeManifest,
		Config: &descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: r.PutBlob(repo, cfg), Size: int64(len(cfg))},
		Layers: []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: r.PutBlob(repo, layer), Size: int64(len(layer))}},
	}
	return r.PutManifest(repo, tag, mustJSON(m))
}

// PushLegacy adds layers to the sha256-<hex>.sig manifest of image in
// repo, as `cosign sign --new-bundle-format=false` does.
func (r *Registry) PushLegacy(repo string, image digest.Digest, layers ...Layer) digest.Digest {
	tag := image.Algorithm().String() + "-" + image.Encoded() + ".sig"
	var m manifest
	r.mu.Lock()
	if d, ok := r.tags[repo+":"+tag]; ok {
		_ = json.Unmarshal(r.manifests[repo+"@"+d], &m)
	}
	r.mu.Unlock()
	if m.SchemaVersion == 0 {
		cfg := []byte(`{}`)
		m = manifest{SchemaVersion: 2, MediaType: mediaTypeManifest,
			Config: &descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: r.PutBlob(repo, cfg), Size: int64(len(cfg))}}
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, descriptor{
			MediaType: cosign.MediaTypeSimpleSigning, Digest: r.PutBlob(repo, l.Payload),
			Size: int64(len(l.Payload)), Annotations: l.Annotations,
		})
	}
	return r.PutManifest(repo, tag, mustJSON(m))
}

// PushBundle pushes a sigstore bundle as a referrer of image in repo, as
// `cosign sign` does by default.
func (r *Registry) PushBundle(repo string, image digest.Digest, bundleJSON []byte, predicateType string) digest.Digest {
	empty := []byte(`{}`)
	m := manifest{
		SchemaVersion: 2, MediaType: mediaTypeManifest, ArtifactType: cosign.MediaTypeBundle,
		Config: &descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: r.PutBlob(repo, empty), Size: 2},
		Layers: []descriptor{{MediaType: cosign.MediaTypeBundle, Digest: r.PutBlob(repo, bundleJSON), Size: int64(len(bundleJSON))}},
		Annotations: map[string]string{
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": predicateType,
			"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
		},
		Subject: &descriptor{MediaType: mediaTypeManifest, Digest: image, Size: 1},
	}
	d := r.PutManifest(repo, "", mustJSON(m))
	if r.NoReferrersAPI {
		// The OCI 1.1 fallback: an index tagged sha256-<hex>.
		tag := image.Algorithm().String() + "-" + image.Encoded()
		r.PutManifest(repo, tag, mustJSON(r.referrers(repo, image, "")))
	}
	return d
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, cosign.ErrNotFound) }

// Manifest implements cosign.Registry.
func (r *Registry) Manifest(_ context.Context, repo, ref string) (digest.Digest, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := repo + "@" + ref
	if d, ok := r.tags[repo+":"+ref]; ok {
		key = repo + "@" + d
	}
	b, ok := r.manifests[key]
	if !ok {
		return "", nil, notFound("manifest " + repo + ":" + ref)
	}
	return digestOf(b), b, nil
}

// Blob implements cosign.Registry.
func (r *Registry) Blob(_ context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blobs[repo+"@"+d.String()]
	if !ok {
		return nil, notFound("blob " + d.String())
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s larger than %d bytes", d, limit)
	}
	return b, nil
}

// Referrers implements cosign.Registry.
func (r *Registry) Referrers(_ context.Context, repo string, subject digest.Digest, artifactType string) ([]byte, error) {
	if r.NoReferrersAPI {
		return nil, notFound("referrers API")
	}
	return mustJSON(r.referrers(repo, subject, artifactType)), nil
}

func (r *Registry) referrers(repo string, subject digest.Digest, artifactType string) manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := manifest{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{}}
	keys := make([]string, 0, len(r.manifests))
	for k := range r.manifests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, repo+"@") {
			continue
		}
		var m manifest
		if json.Unmarshal(r.manifests[k], &m) != nil || m.Subject == nil || m.Subject.Digest != subject {
			continue
		}
		if artifactType != "" && m.ArtifactType != artifactType {
			continue
		}
		b := r.manifests[k]
		out.Manifests = append(out.Manifests, descriptor{
			MediaType: m.MediaType, Digest: digestOf(b), Size: int64(len(b)),
			ArtifactType: m.ArtifactType, Annotations: m.Annotations,
		})
	}
	return out
}

// ServeHTTP serves /v2/, manifests, blobs and referrers for GET.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	p := req.URL.Path
	if p == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		i := strings.LastIndex(p, kind)
		if !strings.HasPrefix(p, "/v2/") || i < len("/v2/") {
			continue
		}
		repo, ref := p[len("/v2/"):i], p[i+len(kind):]
		var body []byte
		var err error
		contentType := "application/octet-stream"
		switch kind {
		case "/manifests/":
			_, body, err = r.Manifest(req.Context(), repo, ref)
			var m manifest
			_ = json.Unmarshal(body, &m)
			contentType = m.MediaType
		case "/blobs/":
			body, err = r.Blob(req.Context(), repo, digest.Digest(ref), 1<<30)
		case "/referrers/":
			if r.NoReferrersAPI {
				err = notFound("referrers API")
				break
			}
			at := req.URL.Query().Get("artifactType")
			body = mustJSON(r.referrers(repo, digest.Digest(ref), at))
			contentType = mediaTypeIndex
			if at != "" {
				w.Header().Set("OCI-Filters-Applied", "artifactType")
			}
		}
		if err != nil {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
		return
	}
	http.NotFound(w, req)
}

// PushAttestation adds layers (DSSE envelopes) to the sha256-<hex>.att
// manifest of image in repo, as `cosign attest --new-bundle-format=false`
// does.
func (r *Registry) PushAttestation(repo string, image digest.Digest, layers ...Layer) digest.Digest {
	tag := image.Algorithm().String() + "-" + image.Encoded() + ".att"
	cfg := []byte(`{}`)
	m := manifest{SchemaVersion: 2, MediaType: mediaTypeManifest,
		Config: &descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: r.PutBlob(repo, cfg), Size: int64(len(cfg))}}
	for _, l := range layers {
		m.Layers = append(m.Layers, descriptor{
			MediaType: cosign.MediaTypeDSSE, Digest: r.PutBlob(repo, l.Payload),
			Size: int64(len(l.Payload)), Annotations: l.Annotations,
		})
	}
	return r.PutManifest(repo, tag, mustJSON(m))
}
