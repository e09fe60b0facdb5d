package cosign

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/internal/strictjson"
)

const (
	// SimpleSigningType is critical.type of a legacy cosign payload.
	SimpleSigningType = "cosign container image signature"
	// SignPredicateType is the in-toto predicate type `cosign sign`
	// writes into a bundle; other predicate types are attestations.
	SignPredicateType = "https://sigstore.dev/cosign/sign/v1"

	inTotoStatementV1 = "https://in-toto.io/Statement/v1"
	inTotoPayloadType = "application/vnd.in-toto+json"

	// maxPayloadBytes bounds a signed payload; cosign's are a few hundred
	// bytes plus the annotations.
	maxPayloadBytes = 1 << 20
)

// Payload is a verified signature's claims in cosign's output form:
// {"critical": {...}, "optional": {...}}. For a bundle, critical.type is
// the in-toto predicate type and optional the subject's annotations, as
// `cosign verify` prints them.
type Payload struct {
	Critical Critical       `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Critical is the critical section of a simple-signing payload.
type Critical struct {
	Identity struct {
		DockerReference string `json:"docker-reference"`
	} `json:"identity"`
	Image struct {
		DockerManifestDigest string `json:"docker-manifest-digest"`
	} `json:"image"`
	Type string `json:"type"`
}

// parseSimpleSigning parses a legacy payload strictly: only "critical"
// and "optional" at the top (cosign writes "optional": null when there are
// no annotations); critical has exactly identity{docker-reference},
// image{docker-manifest-digest} and type, which must be
// SimpleSigningType; no duplicate keys anywhere, nothing after the object.
func parseSimpleSigning(untrusted []byte) (*Payload, digest.Digest, error) {
	if len(untrusted) > maxPayloadBytes {
		return nil, "", fmt.Errorf("payload larger than %d bytes", maxPayloadBytes)
	}
	v, err := strictjson.Parse(untrusted)
	if err != nil {
		return nil, "", err
	}
	if err := onlyKeys(v, []string{"critical"}, "optional"); err != nil {
		return nil, "", err
	}
	critical, _ := v.Get("critical")
	if err := strictjson.ExactObject(critical, "identity", "image", "type"); err != nil {
		return nil, "", fmt.Errorf("critical: %w", err)
	}
	p := &Payload{}
	if p.Critical.Type, err = strictjson.StringField(critical, "type"); err != nil {
		return nil, "", fmt.Errorf("critical: %w", err)
	}
	if p.Critical.Type != SimpleSigningType {
		return nil, "", fmt.Errorf("critical.type %q is not %q", p.Critical.Type, SimpleSigningType)
	}
	identity, _ := critical.Get("identity")
	if err := strictjson.ExactObject(identity, "docker-reference"); err != nil {
		return nil, "", fmt.Errorf("critical.identity: %w", err)
	}
	if p.Critical.Identity.DockerReference, err = strictjson.StringField(identity, "docker-reference"); err != nil {
		return nil, "", fmt.Errorf("critical.identity: %w", err)
	}
	image, _ := critical.Get("image")
	if err := strictjson.ExactObject(image, "docker-manifest-digest"); err != nil {
		return nil, "", fmt.Errorf("critical.image: %w", err)
	}
	if p.Critical.Image.DockerManifestDigest, err = strictjson.StringField(image, "docker-manifest-digest"); err != nil {
		return nil, "", fmt.Errorf("critical.image: %w", err)
	}
	d, err := digest.Parse(p.Critical.Image.DockerManifestDigest)
	if err != nil {
		return nil, "", fmt.Errorf("critical.image.docker-manifest-digest: %w", err)
	}
	if optional, ok := v.Get("optional"); ok && optional.Kind != strictjson.Null {
		if optional.Kind != strictjson.Object {
			return nil, "", fmt.Errorf("optional must be an object or null, got %v", optional.Kind)
		}
		p.Optional = toAny(optional).(map[string]any)
	}
	return p, d, nil
}

// statement is the part of an in-toto statement a cosign bundle signs.
type statement struct {
	predicateType string
	sha256        string // hex digest of the single subject
	annotations   map[string]any
}

// parseStatement parses an in-toto v1 statement strictly: exactly the
// statement keys, one subject (cosign signs one image per bundle) with a
// sha256 digest, no duplicate keys.
func parseStatement(untrusted []byte) (*statement, error) {
	if len(untrusted) > maxPayloadBytes {
		return nil, fmt.Errorf("statement larger than %d bytes", maxPayloadBytes)
	}
	v, err := strictjson.Parse(untrusted)
	if err != nil {
		return nil, err
	}
	if err := onlyKeys(v, []string{"_type", "subject", "predicateType"}, "predicate"); err != nil {
		return nil, err
	}
	typ, err := strictjson.StringField(v, "_type")
	if err != nil {
		return nil, err
	}
	if typ != inTotoStatementV1 {
		return nil, fmt.Errorf("statement _type %q is not %q", typ, inTotoStatementV1)
	}
	s := &statement{}
	if s.predicateType, err = strictjson.StringField(v, "predicateType"); err != nil {
		return nil, err
	}
	subjects, _ := v.Get("subject")
	if subjects.Kind != strictjson.Array || len(subjects.Elems) != 1 {
		return nil, errors.New("statement must have exactly one subject")
	}
	subject := subjects.Elems[0]
	if err := onlyKeys(subject, []string{"digest"}, "name", "uri", "content", "downloadLocation", "mediaType", "annotations"); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	digests, _ := subject.Get("digest")
	if digests.Kind != strictjson.Object {
		return nil, errors.New("subject.digest must be an object")
	}
	for _, m := range digests.Members {
		if m.Value.Kind != strictjson.String {
			return nil, fmt.Errorf("subject.digest.%s must be a string", m.Key)
		}
	}
	if s.sha256, err = strictjson.StringField(digests, "sha256"); err != nil {
		return nil, fmt.Errorf("subject.digest: %w", err)
	}
	s.annotations = map[string]any{}
	if a, ok := subject.Get("annotations"); ok && a.Kind != strictjson.Null {
		if a.Kind != strictjson.Object {
			return nil, errors.New("subject.annotations must be an object")
		}
		s.annotations = toAny(a).(map[string]any)
	}
	return s, nil
}

// onlyKeys checks that v is an object holding every required key and no
// key outside required and optional.
func onlyKeys(v strictjson.Value, required []string, optional ...string) error {
	if v.Kind != strictjson.Object {
		return fmt.Errorf("expected an object, got %v", v.Kind)
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, required...), optional...) {
		allowed[k] = true
	}
	for _, m := range v.Members {
		if !allowed[m.Key] {
			return fmt.Errorf("unknown key %q", m.Key)
		}
	}
	for _, k := range required {
		if _, ok := v.Get(k); !ok {
			return fmt.Errorf("missing key %q", k)
		}
	}
	return nil
}

// toAny converts a parsed value for output; numbers keep their literal.
func toAny(v strictjson.Value) any {
	switch v.Kind {
	case strictjson.Bool:
		return v.Bool
	case strictjson.Number:
		return json.Number(v.Number)
	case strictjson.String:
		return v.String
	case strictjson.Array:
		out := make([]any, 0, len(v.Elems))
		for _, e := range v.Elems {
			out = append(out, toAny(e))
		}
		return out
	case strictjson.Object:
		out := make(map[string]any, len(v.Members))
		for _, m := range v.Members {
			out[m.Key] = toAny(m.Value)
		}
		return out
	}
	return nil
}

// checkAnnotations is the last step: every -a key=value must be a string
// member of the signed annotations with exactly that value.
func checkAnnotations(signed map[string]any, required map[string]string) error {
	keys := make([]string, 0, len(required))
	for k := range required {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := signed[k]
		if !ok {
			return reject(StepAnnotations, ErrAnnotationMissing, "%q", k)
		}
		if s, isString := got.(string); !isString || s != required[k] {
			return reject(StepAnnotations, ErrAnnotationMismatch, "%q is %v, want %q", k, jsonString(got), required[k])
		}
	}
	return nil
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
