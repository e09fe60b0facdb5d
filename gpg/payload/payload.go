// Package payload owns the simple-signing payload ("atomic container
// signature", SPEC section 3): building it for signing, parsing it strictly
// after the signature has been verified, and the one function that runs the
// whole verification order (VerifyImageSignature).
//
// It must not do cryptography (that is gpg's job) and must not decide which
// identities are acceptable (that is gpg/policy's job); it only moves the
// verified bytes between them, in the order SPEC section 3 prescribes.
// Model: containers/image signature/simple.go.
package payload

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"

	"github.com/signet-registry/signet/internal/strictjson"
)

// Type is the value of critical.type (SPEC section 3).
const Type = "atomic container signature"

// MaxSize caps a payload; it matches gpg.MaxContentsSize, the most the
// mechanism ever returns.
const MaxSize = 4 << 20

// ErrInvalidPayload: the contents are not a valid simple-signing payload.
var ErrInvalidPayload = errors.New("invalid simple-signing payload")

// Payload is a simple-signing payload. A Payload returned by ParseUntrusted
// is only as trustworthy as the checks its caller has completed: use
// VerifyImageSignature, which returns one only after all of them.
type Payload struct {
	// ManifestDigest is critical.image.docker-manifest-digest.
	ManifestDigest digest.Digest
	// DockerReference is critical.identity.docker-reference, as signed (not normalized).
	DockerReference string
	// Creator is optional.creator, nil when absent.
	Creator *string
	// Timestamp is optional.timestamp (Unix seconds), nil when absent.
	Timestamp *time.Time
}

// New returns the payload for signing manifestDigest as dockerReference.
// An empty creator and a zero timestamp are omitted. dockerReference must
// carry a tag or digest: a name-only identity can never pass the default
// identity rule (SPEC section 3), so signing one is always a mistake.
func New(manifestDigest digest.Digest, dockerReference, creator string, timestamp time.Time) (Payload, error) {
	if err := manifestDigest.Validate(); err != nil {
		return Payload{}, fmt.Errorf("%w: manifest digest %q: %w", ErrInvalidPayload, manifestDigest, err)
	}
	ref, err := reference.ParseNormalizedNamed(dockerReference)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: docker reference %q: %w", ErrInvalidPayload, dockerReference, err)
	}
	if reference.IsNameOnly(ref) {
		return Payload{}, fmt.Errorf("%w: docker reference %q has neither tag nor digest", ErrInvalidPayload, dockerReference)
	}
	p := Payload{ManifestDigest: manifestDigest, DockerReference: dockerReference}
	if creator != "" {
		p.Creator = &creator
	}
	if !timestamp.IsZero() {
		ts := time.Unix(timestamp.Unix(), 0)
		p.Timestamp = &ts
	}
	return p, nil
}

// wire is the JSON layout. Field order gives the byte-for-byte output of
// containers/image (which marshals maps, hence sorted keys).
type wire struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional struct {
		Creator   *string `json:"creator,omitempty"`
		Timestamp *int64  `json:"timestamp,omitempty"`
	} `json:"optional"`
}

// Marshal returns the JSON payload to sign.
func (p Payload) Marshal() ([]byte, error) {
	if p.ManifestDigest == "" || p.DockerReference == "" {
		return nil, fmt.Errorf("%w: manifest digest and docker reference are required", ErrInvalidPayload)
	}
	var w wire
	w.Critical.Identity.DockerReference = p.DockerReference
	w.Critical.Image.DockerManifestDigest = p.ManifestDigest.String()
	w.Critical.Type = Type
	w.Optional.Creator = p.Creator
	if p.Timestamp != nil {
		ts := p.Timestamp.Unix()
		w.Optional.Timestamp = &ts
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("marshaling payload: %w", err)
	}
	return b, nil
}

// ParseUntrusted parses the contents of a verified signature strictly (SPEC
// section 3 step 3): the top level has exactly "critical" and "optional";
// "critical" has exactly type, image{docker-manifest-digest} and
// identity{docker-reference}; type is the fixed string; no key is duplicated
// anywhere; nothing follows the object; unknown keys in "optional" are
// ignored, but a present creator must be a string and a present timestamp an
// integer literal.
//
// Stricter than containers/image in two ways, both of which real signers
// never trigger: timestamps such as 1.0 or 1e9 are rejected (containers/image
// accepts integral floats), and duplicate keys inside ignored optional values
// are rejected.
func ParseUntrusted(untrustedContents []byte) (Payload, error) {
	p, err := parseUntrusted(untrustedContents)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	return p, nil
}

func parseUntrusted(untrusted []byte) (Payload, error) {
	if len(untrusted) > MaxSize {
		return Payload{}, fmt.Errorf("%d bytes exceeds the %d byte limit", len(untrusted), MaxSize)
	}
	v, err := strictjson.Parse(untrusted)
	if err != nil {
		return Payload{}, err
	}
	if err := strictjson.ExactObject(v, "critical", "optional"); err != nil {
		return Payload{}, err
	}
	critical, _ := v.Get("critical")
	if err := strictjson.ExactObject(critical, "type", "image", "identity"); err != nil {
		return Payload{}, fmt.Errorf("critical: %w", err)
	}
	typ, err := strictjson.StringField(critical, "type")
	if err != nil {
		return Payload{}, fmt.Errorf("critical: %w", err)
	}
	if typ != Type {
		return Payload{}, fmt.Errorf("critical.type %q is not %q", typ, Type)
	}
	image, _ := critical.Get("image")
	if err := strictjson.ExactObject(image, "docker-manifest-digest"); err != nil {
		return Payload{}, fmt.Errorf("critical.image: %w", err)
	}
	digestString, err := strictjson.StringField(image, "docker-manifest-digest")
	if err != nil {
		return Payload{}, fmt.Errorf("critical.image: %w", err)
	}
	d, err := digest.Parse(digestString)
	if err != nil {
		return Payload{}, fmt.Errorf("critical.image.docker-manifest-digest %q: %w", digestString, err)
	}
	identity, _ := critical.Get("identity")
	if err := strictjson.ExactObject(identity, "docker-reference"); err != nil {
		return Payload{}, fmt.Errorf("critical.identity: %w", err)
	}
	ref, err := strictjson.StringField(identity, "docker-reference")
	if err != nil {
		return Payload{}, fmt.Errorf("critical.identity: %w", err)
	}
	if ref == "" {
		return Payload{}, errors.New("critical.identity.docker-reference is empty")
	}
	p := Payload{ManifestDigest: d, DockerReference: ref}

	optional, _ := v.Get("optional")
	if optional.Kind != strictjson.Object {
		return Payload{}, fmt.Errorf("optional: expected an object, got %v", optional.Kind)
	}
	if c, ok := optional.Get("creator"); ok {
		if c.Kind != strictjson.String {
			return Payload{}, fmt.Errorf("optional.creator must be a string, got %v", c.Kind)
		}
		creator := c.String
		p.Creator = &creator
	}
	if t, ok := optional.Get("timestamp"); ok {
		ts, err := parseTimestamp(t)
		if err != nil {
			return Payload{}, err
		}
		p.Timestamp = &ts
	}
	return p, nil
}

func parseTimestamp(v strictjson.Value) (time.Time, error) {
	if v.Kind != strictjson.Number {
		return time.Time{}, fmt.Errorf("optional.timestamp must be an integer, got %v", v.Kind)
	}
	if !isIntegerLiteral(v.Number.String()) {
		return time.Time{}, fmt.Errorf("optional.timestamp %s is not an integer", v.Number)
	}
	secs, err := strconv.ParseInt(v.Number.String(), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("optional.timestamp %s: %w", v.Number, err)
	}
	return time.Unix(secs, 0), nil
}

// isIntegerLiteral reports whether s is a JSON number without fraction or
// exponent (the JSON grammar already excludes leading zeros and "+").
func isIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
