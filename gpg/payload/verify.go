package payload

import (
	"errors"
	"fmt"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"

	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/policy"
)

var (
	// ErrDigestMismatch: the signed docker-manifest-digest is not the digest
	// of the manifest actually served (SPEC section 3 step 4). This is what
	// rejects a replayed signature (SPEC section 6): a valid signature for
	// digest A presented for image B.
	ErrDigestMismatch = errors.New("signed manifest digest does not match the manifest")
	// ErrIdentityMismatch: the signed docker-reference is not acceptable for
	// the expected identity under the rule (SPEC section 3 step 5). The
	// rule's own error (e.g. policy.ErrIdentityMismatch) is wrapped too.
	ErrIdentityMismatch = errors.New("signed identity rejected")
)

// Step names a stage of the verification order.
type Step int

// The verification steps, in the order they run (SPEC section 3).
const (
	StepSignature      Step = iota + 1 // steps 1-2: message structure and cryptography (gpg)
	StepPayload                        // step 3: strict payload parsing
	StepManifestDigest                 // step 4: signed digest vs the served manifest
	StepIdentity                       // step 5: identity rule
)

func (s Step) String() string {
	switch s {
	case StepSignature:
		return "signature"
	case StepPayload:
		return "payload"
	case StepManifestDigest:
		return "manifest digest"
	case StepIdentity:
		return "identity"
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// VerificationError reports which step rejected an image signature. Err
// wraps the step's sentinel: a gpg.Err* for StepSignature, ErrInvalidPayload,
// ErrDigestMismatch or ErrIdentityMismatch.
type VerificationError struct {
	Step Step
	Err  error
}

func (e *VerificationError) Error() string {
	return fmt.Sprintf("image signature rejected at %s step: %v", e.Step, e.Err)
}

func (e *VerificationError) Unwrap() error { return e.Err }

// Verifier is the signature check VerifyImageSignature needs; *gpg.Mechanism
// implements it.
type Verifier interface {
	VerifyDetailed(untrustedSignature []byte) (gpg.Result, error)
}

// IdentityRule decides whether a signed identity is acceptable; every
// gpg/policy rule implements it. A nil IdentityRule means policy.Default()
// (matchRepoDigestOrExact).
type IdentityRule interface {
	Match(expectedIdentity, signedIdentity string) error
}

var _ Verifier = (*gpg.Mechanism)(nil)

// VerifiedSignature is an image signature that passed every step.
type VerifiedSignature struct {
	Payload Payload
	// Signer describes the key and signature; Signer.Contents holds the raw payload.
	Signer gpg.Result
}

// VerifyImageSignature verifies untrustedSignature for the manifest bytes
// actually served and the expected identity, in the order of SPEC section 3,
// each step only after the previous one passed:
//
//  1. the signature (structure, key, expiry, revocation) via v;
//  2. the payload, parsed strictly;
//  3. the signed digest against manifest, with containers/image's
//     manifest.MatchesDigest (so Docker schema1 manifests, whose digest
//     excludes their embedded JWS signatures, work);
//  4. the signed identity against expectedIdentity under rule.
//
// Errors are *VerificationError.
func VerifyImageSignature(v Verifier, untrustedSignature, manifestBytes []byte, expectedIdentity string, rule IdentityRule) (*VerifiedSignature, error) {
	return verify(v, untrustedSignature, expectedIdentity, rule, func(signed digest.Digest) error {
		ok, err := manifest.MatchesDigest(manifestBytes, signed)
		if err != nil {
			return fmt.Errorf("%w: computing manifest digest: %w", ErrDigestMismatch, err)
		}
		if !ok {
			return fmt.Errorf("%w: signature is for %s", ErrDigestMismatch, signed)
		}
		return nil
	})
}

// VerifyImageSignatureForDigest is VerifyImageSignature for callers that
// know only the manifest's digest (e.g. the registry, whose storage is
// content-addressed). The signed digest must equal manifestDigest exactly,
// algorithm included. For schema1 manifests pass the digest of the manifest
// without its signatures, as manifest.Digest computes it.
func VerifyImageSignatureForDigest(v Verifier, untrustedSignature []byte, manifestDigest digest.Digest, expectedIdentity string, rule IdentityRule) (*VerifiedSignature, error) {
	if err := manifestDigest.Validate(); err != nil {
		return nil, &VerificationError{Step: StepManifestDigest, Err: fmt.Errorf("%w: invalid expected digest %q: %w", ErrDigestMismatch, manifestDigest, err)}
	}
	return verify(v, untrustedSignature, expectedIdentity, rule, func(signed digest.Digest) error {
		if signed != manifestDigest {
			return fmt.Errorf("%w: signature is for %s, manifest is %s", ErrDigestMismatch, signed, manifestDigest)
		}
		return nil
	})
}

func verify(v Verifier, untrustedSignature []byte, expectedIdentity string, rule IdentityRule, checkDigest func(digest.Digest) error) (*VerifiedSignature, error) {
	if v == nil {
		return nil, &VerificationError{Step: StepSignature, Err: errors.New("no signature verifier")}
	}
	if rule == nil {
		rule = policy.Default()
	}
	signer, err := v.VerifyDetailed(untrustedSignature)
	if err != nil {
		return nil, &VerificationError{Step: StepSignature, Err: err}
	}
	// Authentic bytes, but still untrusted content until steps 3-5 pass.
	untrusted, err := ParseUntrusted(signer.Contents)
	if err != nil {
		return nil, &VerificationError{Step: StepPayload, Err: err}
	}
	if err := checkDigest(untrusted.ManifestDigest); err != nil {
		return nil, &VerificationError{Step: StepManifestDigest, Err: err}
	}
	if err := rule.Match(expectedIdentity, untrusted.DockerReference); err != nil {
		return nil, &VerificationError{Step: StepIdentity, Err: fmt.Errorf("%w: %w", ErrIdentityMismatch, err)}
	}
	return &VerifiedSignature{Payload: untrusted, Signer: signer}, nil
}

// Signer is the signing half of a mechanism; *gpg.Mechanism implements it.
type Signer interface {
	Sign(input []byte, keyIdentity string) ([]byte, error)
}

var _ Signer = (*gpg.Mechanism)(nil)

// SignImage signs manifestBytes as dockerReference with keyIdentity: it
// computes the manifest digest the way clients verify it (manifest.Digest),
// builds the payload and signs it. creator and timestamp are optional claims.
func SignImage(s Signer, manifestBytes []byte, dockerReference, keyIdentity, creator string, timestamp time.Time) ([]byte, error) {
	d, err := manifest.Digest(manifestBytes)
	if err != nil {
		return nil, fmt.Errorf("computing manifest digest: %w", err)
	}
	p, err := New(d, dockerReference, creator, timestamp)
	if err != nil {
		return nil, err
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(b, keyIdentity)
	if err != nil {
		return nil, fmt.Errorf("signing payload: %w", err)
	}
	return sig, nil
}
