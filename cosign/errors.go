package cosign

import (
	"errors"
	"fmt"
)

// Verification errors. Each rejection reason has its own sentinel, so the
// CLI and tests use errors.Is rather than matching strings. A rejected
// signature's error is a *VerificationError that wraps one of these.
var (
	// ErrNotFound: the registry has no such manifest, tag or blob. Registry
	// implementations wrap it for a 404.
	ErrNotFound = errors.New("not found")
	// ErrMalformed: a signature manifest, layer, annotation or bundle is not
	// in the expected format.
	ErrMalformed = errors.New("malformed cosign signature")
	// ErrCertificateChain: the signing certificate does not chain to a
	// trusted Fulcio CA at the signing time.
	ErrCertificateChain = errors.New("certificate does not chain to a trusted root")
	// ErrCertificateNotValid: the signing time lies outside the signing
	// certificate's validity (Fulcio certificates live for ten minutes).
	ErrCertificateNotValid = errors.New("certificate not valid at signing time")
	// ErrIssuerConflict: the certificate carries both Fulcio issuer
	// extensions (1.3.6.1.4.1.57264.1.1 and .1.8) and they disagree.
	ErrIssuerConflict = errors.New("certificate issuer extensions disagree")
	// ErrIssuerMismatch: the OIDC issuer is missing or not the expected one.
	ErrIssuerMismatch = errors.New("certificate issuer does not match")
	// ErrIdentityMismatch: no subject alternative name is the expected identity.
	ErrIdentityMismatch = errors.New("certificate identity does not match")
	// ErrNoTlogEntry: a transparency log entry is required and absent.
	ErrNoTlogEntry = errors.New("no transparency log entry")
	// ErrTlogEntry: the transparency log entry (SET or inclusion proof) does
	// not verify, is from an untrusted log, or is not bound to this
	// signature (CVE-2022-36056).
	ErrTlogEntry = errors.New("invalid transparency log entry")
	// ErrSignature: the signature does not verify with the key or
	// certificate, or was made with the wrong kind of key.
	ErrSignature = errors.New("invalid signature")
	// ErrPayload: the signed payload is not a valid cosign payload.
	ErrPayload = errors.New("invalid signed payload")
	// ErrDigestMismatch: the payload is for another image (signature replay).
	ErrDigestMismatch = errors.New("signed digest does not match the image")
	// ErrAnnotationMissing: a required annotation is absent from the payload.
	ErrAnnotationMissing = errors.New("required annotation missing")
	// ErrAnnotationMismatch: a required annotation has another value.
	ErrAnnotationMismatch = errors.New("annotation value does not match")
	// ErrPolicy: the verification policy itself is unusable.
	ErrPolicy = errors.New("invalid verification policy")
)

// Step names a check, in the order the checks run.
type Step int

// The checks. Keyless signatures go through StepCertificateChain to
// StepTlog; keyed ones through StepSignature and, unless the log is
// ignored, StepTlog. Both end with StepPayload to StepAnnotations.
const (
	StepFormat           Step = iota + 1 // the signature's own encoding
	StepCertificateChain                 // Fulcio chain at the signing time
	StepIssuer                           // OIDC issuer extensions
	StepIdentity                         // subject alternative name
	StepTlog                             // Rekor SET or inclusion proof
	StepSignature                        // the signature over the payload
	StepPayload                          // strict payload parsing
	StepDigest                           // payload digest == image digest
	StepAnnotations                      // -a key=value
)

func (s Step) String() string {
	switch s {
	case StepFormat:
		return "format"
	case StepCertificateChain:
		return "certificate chain"
	case StepIssuer:
		return "issuer"
	case StepIdentity:
		return "identity"
	case StepTlog:
		return "transparency log"
	case StepSignature:
		return "signature"
	case StepPayload:
		return "payload"
	case StepDigest:
		return "digest"
	case StepAnnotations:
		return "annotations"
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// VerificationError reports which check rejected a signature.
type VerificationError struct {
	Step Step
	Err  error
}

func (e *VerificationError) Error() string {
	return fmt.Sprintf("rejected at %s check: %v", e.Step, e.Err)
}

func (e *VerificationError) Unwrap() error { return e.Err }

func reject(step Step, sentinel error, format string, args ...any) error {
	if format == "" {
		return &VerificationError{Step: step, Err: sentinel}
	}
	return &VerificationError{Step: step, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

func rejectErr(step Step, sentinel, err error) error {
	return &VerificationError{Step: step, Err: fmt.Errorf("%w: %w", sentinel, err)}
}
