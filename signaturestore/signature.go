package signaturestore

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// TypeAtomic is the only signature type real clients (containers/image)
// write and read: the GnuPG "atomic container signature".
const TypeAtomic = "atomic"

// ImageKey names one image: a manifest digest within one repository.
// Signatures are always scoped to a repository, so that ns/math and
// ns/math-voila never see each other's signatures.
type ImageKey struct {
	Repository string
	Digest     digest.Digest
}

func (k ImageKey) String() string { return k.Repository + "@" + k.Digest.String() }

// Signature is one stored signature.
type Signature struct {
	// Name is "<digest>@<32 lowercase hex>", unique per image.
	Name string
	// Type is TypeAtomic.
	Type string
	// Content is the raw signature blob (for atomic: an OpenPGP signed
	// message). It is untrusted: storing it proves nothing.
	Content []byte
	// Created is when the store accepted the signature (UTC).
	Created time.Time
	// Status is the recorded verification status; nil when the signature
	// has never been verified.
	Status *Status
}

// Condition mirrors OpenShift's SignatureCondition.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	LastProbeTime      time.Time `json:"lastProbeTime"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
}

// Condition types and statuses used in a Status.
const (
	ConditionTrusted  = "Trusted"
	ConditionForImage = "ForImage"
	ConditionTrue     = "True"
	ConditionFalse    = "False"
)

// Issuer names who issued the signing key (for GPG: the key id).
type Issuer struct {
	Organization string `json:"organization,omitempty"`
	CommonName   string `json:"commonName,omitempty"`
}

// Subject names the key holder (for GPG: the full fingerprint).
type Subject struct {
	Organization string `json:"organization,omitempty"`
	CommonName   string `json:"commonName,omitempty"`
	PublicKeyID  string `json:"publicKeyID,omitempty"`
}

// Status is a recorded verification result. It is written by an auditor
// after verifying a signature, and never changes the signature itself.
type Status struct {
	Conditions    []Condition       `json:"conditions,omitempty"`
	ImageIdentity string            `json:"imageIdentity,omitempty"`
	SignedClaims  map[string]string `json:"signedClaims,omitempty"`
	IssuedBy      *Issuer           `json:"issuedBy,omitempty"`
	IssuedTo      *Subject          `json:"issuedTo,omitempty"`
}

// Trusted reports whether the status holds a Trusted=True condition, which
// is what "verified" means.
func (s *Status) Trusted() bool {
	if s == nil {
		return false
	}
	for _, c := range s.Conditions {
		if c.Type == ConditionTrusted && c.Status == ConditionTrue {
			return true
		}
	}
	return false
}

// Limits bound what one image may hold, so that the GET list always fits
// the 4 MiB limit that containers/image enforces on a whole response.
type Limits struct {
	// MaxPerImage is the most signatures one image may have.
	MaxPerImage int
	// MaxBytesPerImage bounds the sum of Content lengths of one image.
	MaxBytesPerImage int64
}

// Domain errors. Backends wrap them with context; callers test with
// errors.Is.
var (
	// ErrExists: a signature with the same name, or the same type and
	// content, is already stored for the image.
	ErrExists = errors.New("signature already exists")
	// ErrNotFound: no signature with that name is stored for the image.
	ErrNotFound = errors.New("signature not found")
	// ErrLimit: storing the signature would exceed the image's Limits.
	ErrLimit = errors.New("signature limit for image reached")
	// ErrInvalid: the signature or key is malformed (empty name or
	// content, bad digest). Handlers validate first; this is the
	// backend's own guard.
	ErrInvalid = errors.New("invalid signature")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("signature store closed")
	// ErrNoSpace: the write failed because the storage is full (or over
	// quota). Nothing of it was stored, and the store stays usable:
	// the same write succeeds once space is freed.
	ErrNoSpace = errors.New("signature store out of disk space")
	// ErrUnavailable: the storage could not be reached or did not answer
	// in time (a networked backend such as etcd lost its cluster). A
	// write that fails with it may or may not have been applied;
	// retrying is safe, since a duplicate is refused with ErrExists.
	// The store recovers by itself once the storage is back.
	ErrUnavailable = errors.New("signature store unavailable")
)

// Store keeps signatures durably. A nil error from a write means the write
// is on stable storage. Implementations are safe for concurrent use.
type Store interface {
	// Put stores sig for key. It fills sig.Created when zero and
	// rejects duplicates with ErrExists and overflow with ErrLimit.
	Put(ctx context.Context, key ImageKey, sig Signature) error
	// List returns the image's signatures in a stable order (the order
	// they were stored). No signatures is an empty, non-nil slice.
	List(ctx context.Context, key ImageKey) ([]Signature, error)
	// SetStatus replaces the verification status of one signature,
	// leaving its name, type and content untouched. A nil status
	// removes it.
	SetStatus(ctx context.Context, key ImageKey, name string, status *Status) error
	// Delete removes one signature by name.
	Delete(ctx context.Context, key ImageKey, name string) error
	// DeleteAll removes every signature of the image and reports how
	// many there were.
	DeleteAll(ctx context.Context, key ImageKey) (int, error)
	// Count is the number of signatures stored in total.
	Count(ctx context.Context) (int64, error)
	// Close flushes pending writes and releases the store.
	Close() error
}

// Walker visits every image that holds signatures; the lookaside export
// reads the whole store through it.
type Walker interface {
	// Walk calls fn once for each image with at least one signature, in
	// repository then digest order, with the image's signatures in the
	// order List returns them. Every call sees the same consistent
	// snapshot of the store. fn runs while that snapshot is held, so it
	// must not write to the store. An error from fn stops the walk and
	// is returned.
	Walk(ctx context.Context, fn func(key ImageKey, sigs []Signature) error) error
}

// DeleteJournal makes "a manifest delete takes its signatures with it"
// crash-safe. The registry records the intent before it deletes a
// manifest and settles it afterwards; on start-up, pending intents are
// settled by checking whether the manifest still exists.
type DeleteJournal interface {
	// BeginImageDelete durably records that key's manifest is about to
	// be deleted.
	BeginImageDelete(ctx context.Context, key ImageKey) error
	// EndImageDelete settles the intent. When deleted is true, the
	// image's signatures are removed in the same commit as the intent.
	EndImageDelete(ctx context.Context, key ImageKey, deleted bool) error
	// PendingImageDeletes lists unsettled intents.
	PendingImageDeletes(ctx context.Context) ([]ImageKey, error)
}

// CommitObserver receives one call per storage commit; backends use it to
// report commit latency and group-commit batch size.
type CommitObserver interface {
	ObserveCommit(d time.Duration, batchSize int)
}
