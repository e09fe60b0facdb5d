package signaturestore

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// Descriptor is an OCI content descriptor as the referrers API lists it.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ReferrerKey names one referrer manifest in one repository.
type ReferrerKey struct {
	Repository string
	Digest     digest.Digest
}

// ReferrersIndex records which manifests name which subject (OCI 1.1
// referrers). A manifest PUT records its descriptor as pending before the
// registry stores it and confirms or drops it afterwards, so a crash in
// between is settled at the next start by checking the manifest exists.
type ReferrersIndex interface {
	// BeginReferrer records desc as a pending referrer of subject.
	BeginReferrer(ctx context.Context, repository string, subject digest.Digest, desc Descriptor) error
	// EndReferrer confirms (stored) or drops a pending referrer. Settling
	// a referrer that is not recorded is not an error.
	EndReferrer(ctx context.Context, key ReferrerKey, stored bool) error
	// RemoveReferrer drops the record of a deleted manifest, if any.
	RemoveReferrer(ctx context.Context, key ReferrerKey) error
	// Referrers lists the confirmed referrers of subject in repository,
	// ordered by digest, starting after the digest last (empty: from the
	// beginning), at most limit of them (0: no limit).
	Referrers(ctx context.Context, repository string, subject digest.Digest, last digest.Digest, limit int) ([]Descriptor, error)
	// PendingReferrers lists unsettled referrers.
	PendingReferrers(ctx context.Context) ([]ReferrerKey, error)
}
