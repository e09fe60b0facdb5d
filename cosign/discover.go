package cosign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/strictjson"
)

// Media types and annotations of cosign's two storage formats (SPEC
// section 5).
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeDSSE          = "application/vnd.dsse.envelope.v1+json"
	MediaTypeBundle        = "application/vnd.dev.sigstore.bundle.v0.3+json"

	annotationSignature     = "dev.cosignproject.cosign/signature"
	annotationCertificate   = "dev.sigstore.cosign/certificate"
	annotationBundle        = "dev.sigstore.cosign/bundle"
	annotationPredicateType = "dev.sigstore.bundle.predicateType"
	annotationCreated       = "org.opencontainers.image.created"
)

const (
	// MaxSignatures bounds the signatures examined per image, over both
	// formats (cosign's own limit, after CVE-2024-29903). The rest are
	// counted in Found.Skipped, never read.
	MaxSignatures = 100
	// maxBundleBytes bounds one sigstore bundle.
	maxBundleBytes = 4 << 20
)

// Registry is what discovery reads. Implementations bound every read and
// wrap ErrNotFound for a 404.
type Registry interface {
	// Manifest fetches repo's manifest by tag or digest; the digest is
	// computed from the bytes received (and must equal ref if ref is one).
	Manifest(ctx context.Context, repo, ref string) (digest.Digest, []byte, error)
	// Blob fetches at most limit bytes of a blob and checks its digest.
	Blob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error)
	// Referrers returns the OCI 1.1 referrers index of subject in repo,
	// filtered by artifactType if the registry supports filtering.
	Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]byte, error)
}

// Format is how a signature is stored.
type Format int

// The two storage formats.
const (
	FormatLegacy Format = iota + 1 // a layer of the sha256-<hex>.sig (or .att) tag
	FormatBundle                   // a sigstore bundle v0.3 pushed as an OCI referrer
)

func (f Format) String() string {
	switch f {
	case FormatLegacy:
		return "legacy .sig tag"
	case FormatBundle:
		return "bundle v0.3 referrer"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// Kind tells signatures from attestations.
type Kind int

// Kinds of cosign artifacts.
const (
	KindSignature Kind = iota + 1
	KindAttestation
)

func (k Kind) String() string {
	if k == KindAttestation {
		return "attestation"
	}
	return "signature"
}

// Candidate is one signature or attestation found for an image. Nothing
// in it is verified.
type Candidate struct {
	Format Format
	Kind   Kind
	// Location says where it was found, for messages.
	Location string
	// Image is the digest of the image it was found for.
	Image digest.Digest
	// UntrustedPredicateType is the in-toto predicate type a bundle
	// referrer or legacy attestation claims in its annotations.
	UntrustedPredicateType string
	// UntrustedCreated is the org.opencontainers.image.created annotation.
	UntrustedCreated string
	// UntrustedPayload and UntrustedAnnotations are a legacy layer's bytes
	// and annotations.
	UntrustedPayload     []byte
	UntrustedAnnotations map[string]string
	// UntrustedBundle is a sigstore bundle's JSON.
	UntrustedBundle []byte
}

// Problem is an entry that was found but could not be read.
type Problem struct {
	Location string
	Err      error
}

// Found is what Discover returns.
type Found struct {
	Candidates []Candidate
	Problems   []Problem
	// Skipped counts entries beyond MaxSignatures, not examined.
	Skipped int
}

// DiscoverOptions select what to look for.
type DiscoverOptions struct {
	// Attestations adds attestations (legacy .att layers and bundles
	// with another predicate type); verification ignores them.
	Attestations bool
}

// Discover finds the cosign signatures of image in repo, the image's own
// repository or the signature repository: sigstore bundle referrers first
// (through the referrers API, or the sha256-<hex> fallback tag of
// registries without it), then the legacy sha256-<hex>.sig tag. A 404 means
// "none"; any other registry failure is returned.
func Discover(ctx context.Context, reg Registry, repo string, image digest.Digest, opts DiscoverOptions) (*Found, error) {
	if err := image.Validate(); err != nil {
		return nil, fmt.Errorf("image digest %q: %w", image, err)
	}
	d := &discovery{ctx: ctx, reg: reg, repo: repo, image: image, opts: opts, found: &Found{}}
	if err := d.bundles(); err != nil {
		return nil, err
	}
	if err := d.legacy(".sig", MediaTypeSimpleSigning, KindSignature); err != nil {
		return nil, err
	}
	if opts.Attestations {
		if err := d.legacy(".att", MediaTypeDSSE, KindAttestation); err != nil {
			return nil, err
		}
	}
	return d.found, nil
}

type discovery struct {
	ctx   context.Context
	reg   Registry
	repo  string
	image digest.Digest
	opts  DiscoverOptions
	found *Found
}

// budget reports whether another entry may be examined, counting the
// ones that may not.
func (d *discovery) budget() bool {
	if len(d.found.Candidates)+len(d.found.Problems) < MaxSignatures {
		return true
	}
	d.found.Skipped++
	return false
}

func (d *discovery) problem(location string, err error) {
	d.found.Problems = append(d.found.Problems, Problem{Location: location, Err: err})
}

// untrustedDescriptor is an OCI descriptor as manifests and indexes hold it.
type untrustedDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
}

// untrustedManifest is an OCI image manifest or image index.
type untrustedManifest struct {
	MediaType    string                `json:"mediaType"`
	ArtifactType string                `json:"artifactType"`
	Layers       []untrustedDescriptor `json:"layers"`
	Manifests    []untrustedDescriptor `json:"manifests"`
	Subject      *untrustedDescriptor  `json:"subject"`
	Annotations  map[string]string     `json:"annotations"`
}

// parseManifest rejects duplicate keys and invalid UTF-8 (strictjson)
// before decoding, so that no two readers of these bytes can disagree.
func parseManifest(untrusted []byte) (*untrustedManifest, error) {
	if _, err := strictjson.Parse(untrusted); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var m untrustedManifest
	if err := json.Unmarshal(untrusted, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &m, nil
}

func (d *discovery) bundles() error {
	body, err := d.reg.Referrers(d.ctx, d.repo, d.image, MediaTypeBundle)
	if errors.Is(err, ErrNotFound) {
		// No referrers API: the OCI 1.1 fallback tag holds the index.
		_, body, err = d.reg.Manifest(d.ctx, d.repo, tagFor(d.image, ""))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("list referrers of %s in %s: %w", d.image, d.repo, err)
	}
	index, err := parseManifest(body)
	if err != nil {
		return fmt.Errorf("referrers of %s in %s: %w", d.image, d.repo, err)
	}
	for _, desc := range index.Manifests {
		// Filtered here too: a registry may ignore ?artifactType=.
		if desc.ArtifactType != MediaTypeBundle {
			continue
		}
		pt := desc.Annotations[annotationPredicateType]
		if !d.opts.Attestations && pt != "" && pt != SignPredicateType {
			continue
		}
		if !d.budget() {
			continue
		}
		loc := d.repo + "@" + desc.Digest.String()
		c, err := d.bundle(desc.Digest)
		if err != nil {
			d.problem(loc, err)
			continue
		}
		c.Location, c.Image = loc, d.image
		d.found.Candidates = append(d.found.Candidates, *c)
	}
	return nil
}

func (d *discovery) bundle(ref digest.Digest) (*Candidate, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("%w: referrer digest: %w", ErrMalformed, err)
	}
	_, body, err := d.reg.Manifest(d.ctx, d.repo, ref.String())
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(body)
	if err != nil {
		return nil, err
	}
	// The index is the registry's word; the manifest's own subject is
	// what the referrer claims.
	if m.Subject == nil || m.Subject.Digest != d.image {
		return nil, fmt.Errorf("%w: referrer's subject is not %s", ErrMalformed, d.image)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeBundle {
		return nil, fmt.Errorf("%w: referrer is not one %s layer", ErrMalformed, MediaTypeBundle)
	}
	layer := m.Layers[0]
	if layer.Size < 0 || layer.Size > maxBundleBytes {
		return nil, fmt.Errorf("%w: bundle of %d bytes exceeds %d", ErrMalformed, layer.Size, maxBundleBytes)
	}
	if err := layer.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: bundle digest: %w", ErrMalformed, err)
	}
	b, err := d.reg.Blob(d.ctx, d.repo, layer.Digest, maxBundleBytes)
	if err != nil {
		return nil, err
	}
	pt := m.Annotations[annotationPredicateType]
	kind := KindSignature
	if pt != "" && pt != SignPredicateType {
		kind = KindAttestation
	}
	return &Candidate{
		Format:                 FormatBundle,
		Kind:                   kind,
		UntrustedPredicateType: pt,
		UntrustedCreated:       m.Annotations[annotationCreated],
		UntrustedBundle:        b,
	}, nil
}

// tagFor is cosign's tag scheme: sha256:<hex> becomes sha256-<hex><suffix>.
func tagFor(d digest.Digest, suffix string) string {
	return d.Algorithm().String() + "-" + d.Encoded() + suffix
}

func (d *discovery) legacy(suffix, mediaType string, kind Kind) error {
	tag := tagFor(d.image, suffix)
	_, body, err := d.reg.Manifest(d.ctx, d.repo, tag)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch %s:%s: %w", d.repo, tag, err)
	}
	m, err := parseManifest(body)
	if err != nil {
		d.problem(d.repo+":"+tag, err)
		return nil
	}
	for i, layer := range m.Layers {
		if !d.budget() {
			continue
		}
		loc := fmt.Sprintf("%s:%s layer %d", d.repo, tag, i)
		c, err := d.legacyLayer(layer, mediaType, kind)
		if err != nil {
			d.problem(loc, err)
			continue
		}
		c.Location, c.Image = loc, d.image
		d.found.Candidates = append(d.found.Candidates, *c)
	}
	return nil
}

func (d *discovery) legacyLayer(layer untrustedDescriptor, mediaType string, kind Kind) (*Candidate, error) {
	if layer.MediaType != mediaType {
		return nil, fmt.Errorf("%w: layer media type %q, want %q", ErrMalformed, layer.MediaType, mediaType)
	}
	limit := int64(maxPayloadBytes)
	if kind == KindAttestation {
		limit = maxBundleBytes
	}
	if layer.Size < 0 || layer.Size > limit {
		return nil, fmt.Errorf("%w: layer of %d bytes exceeds %d", ErrMalformed, layer.Size, limit)
	}
	if err := layer.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%w: layer digest: %w", ErrMalformed, err)
	}
	b, err := d.reg.Blob(d.ctx, d.repo, layer.Digest, limit)
	if err != nil {
		return nil, err
	}
	annotations := make(map[string]string, len(layer.Annotations))
	for k, v := range layer.Annotations {
		annotations[k] = v
	}
	c := &Candidate{
		Format:               FormatLegacy,
		Kind:                 kind,
		UntrustedPayload:     b,
		UntrustedAnnotations: annotations,
	}
	if kind == KindAttestation {
		c.UntrustedPredicateType = annotations["predicateType"]
	}
	return c, nil
}
