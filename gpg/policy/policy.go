// Package policy holds the identity rules that decide whether the
// docker-reference in a signed simple-signing payload is acceptable for the
// image the user asked for (SPEC section 3, the table under step 5).
//
// The semantics follow containers/image's PolicyReferenceMatch
// implementations (signature/policy_reference_match.go) exactly, and the
// reference parsing is containers/image's own (docker/reference), so a
// signature Signet accepts is one podman/skopeo/CRI-O accept under the same
// rule and vice versa.
//
// This package only compares references. It must not look at signatures,
// keys or manifests: those checks belong to gpg and gpg/payload, and run
// before any rule is consulted.
package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.podman.io/image/v5/docker/reference"

	"github.com/signet-registry/signet/internal/strictjson"
)

var (
	// ErrIdentityMismatch: the signed identity is not acceptable under the rule.
	ErrIdentityMismatch = errors.New("signed identity does not match the expected identity")
	// ErrInvalidReference: the expected identity supplied by the caller is not
	// a valid image reference.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrInvalidRule: a rule was constructed or parsed from invalid input.
	ErrInvalidRule = errors.New("invalid identity rule")
)

// Rule decides whether signedIdentity (the docker-reference of a verified
// payload) is acceptable when the user expects expectedIdentity. Match
// returns nil on acceptance, and otherwise an error wrapping
// ErrIdentityMismatch (or ErrInvalidReference for a bad expectedIdentity).
//
// expectedIdentity is used as given; a name-only expectation matches nothing
// under the default rule. Callers implementing "oc adm
// verify-image-signature" semantics pass it through ExpectedIdentity first.
type Rule interface {
	Match(expectedIdentity, signedIdentity string) error
}

// Compile-time checks.
var (
	_ Rule = MatchRepoDigestOrExact{}
	_ Rule = MatchExact{}
	_ Rule = MatchRepository{}
	_ Rule = ExactReference{}
	_ Rule = ExactRepository{}
	_ Rule = RemapIdentity{}
)

// Default returns the rule used when none is configured (SPEC sections 3 and 4).
func Default() Rule { return MatchRepoDigestOrExact{} }

// ExpectedIdentity normalizes a user-supplied expected identity the way
// "oc adm verify-image-signature" does (SPEC section 4): it must parse, and
// a reference with neither tag nor digest gets ":latest".
func ExpectedIdentity(s string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidReference, s, err)
	}
	return reference.TagNameOnly(ref).String(), nil
}

func parseExpected(s string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("%w: expected identity %q: %w", ErrInvalidReference, s, err)
	}
	return ref, nil
}

// parseBoth parses the expected and the signed identity of one match.
func parseBoth(expectedIdentity, signedIdentity string) (expected, signed reference.Named, err error) {
	if expected, err = parseExpected(expectedIdentity); err != nil {
		return nil, nil, err
	}
	if signed, err = parseSigned(signedIdentity); err != nil {
		return nil, nil, err
	}
	return expected, signed, nil
}

func parseSigned(s string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("%w: signed identity %q is not a valid reference: %w", ErrIdentityMismatch, s, err)
	}
	return ref, nil
}

func mismatch(signed, expected string, why string) error {
	return fmt.Errorf("%w: signed %q, expected %q (%s)", ErrIdentityMismatch, signed, expected, why)
}

// MatchRepoDigestOrExact accepts when the expected reference is tagged and
// the full references are equal, or when the expected reference is digested
// and the repositories are equal (the digest itself is checked against the
// manifest before identity rules run). A name-only signed identity never
// matches. This is the default rule.
type MatchRepoDigestOrExact struct{}

func (MatchRepoDigestOrExact) String() string { return "matchRepoDigestOrExact" }

// Match implements Rule.
func (MatchRepoDigestOrExact) Match(expectedIdentity, signedIdentity string) error {
	expected, signed, err := parseBoth(expectedIdentity, signedIdentity)
	if err != nil {
		return err
	}
	return repoDigestOrExact(expected, signed)
}

func repoDigestOrExact(expected, signed reference.Named) error {
	if reference.IsNameOnly(signed) {
		return mismatch(signed.String(), expected.String(), "signed identity has neither tag nor digest")
	}
	switch expected.(type) {
	case reference.NamedTagged: // also tagged+digested
		if signed.String() != expected.String() {
			return mismatch(signed.String(), expected.String(), "references differ")
		}
		return nil
	case reference.Canonical:
		if signed.Name() != expected.Name() {
			return mismatch(signed.String(), expected.String(), "repositories differ")
		}
		return nil
	}
	return mismatch(signed.String(), expected.String(), "expected identity has neither tag nor digest")
}

// MatchExact accepts when the full references are equal and neither side is
// name-only.
type MatchExact struct{}

func (MatchExact) String() string { return "matchExact" }

// Match implements Rule.
func (MatchExact) Match(expectedIdentity, signedIdentity string) error {
	expected, signed, err := parseBoth(expectedIdentity, signedIdentity)
	if err != nil {
		return err
	}
	return exact(expected, signed)
}

func exact(expected, signed reference.Named) error {
	if reference.IsNameOnly(expected) || reference.IsNameOnly(signed) {
		return mismatch(signed.String(), expected.String(), "a reference has neither tag nor digest")
	}
	if signed.String() != expected.String() {
		return mismatch(signed.String(), expected.String(), "references differ")
	}
	return nil
}

// MatchRepository accepts when the repositories are equal, whatever the tag
// or digest.
type MatchRepository struct{}

func (MatchRepository) String() string { return "matchRepository" }

// Match implements Rule.
func (MatchRepository) Match(expectedIdentity, signedIdentity string) error {
	expected, signed, err := parseBoth(expectedIdentity, signedIdentity)
	if err != nil {
		return err
	}
	if signed.Name() != expected.Name() {
		return mismatch(signed.String(), expected.String(), "repositories differ")
	}
	return nil
}

// ExactReference accepts a signed identity equal to a fixed reference,
// ignoring the expected identity. Build it with NewExactReference; the zero
// value matches nothing.
type ExactReference struct{ dockerReference string }

// NewExactReference returns an exactReference rule; dockerReference must
// have a tag or digest.
func NewExactReference(dockerReference string) (ExactReference, error) {
	ref, err := reference.ParseNormalizedNamed(dockerReference)
	if err != nil {
		return ExactReference{}, fmt.Errorf("%w: exactReference %q: %w", ErrInvalidRule, dockerReference, err)
	}
	if reference.IsNameOnly(ref) {
		return ExactReference{}, fmt.Errorf("%w: exactReference %q has neither tag nor digest", ErrInvalidRule, dockerReference)
	}
	return ExactReference{dockerReference: dockerReference}, nil
}

func (r ExactReference) String() string { return "exactReference(" + r.dockerReference + ")" }

// Match implements Rule.
func (r ExactReference) Match(_, signedIdentity string) error {
	fixed, err := reference.ParseNormalizedNamed(r.dockerReference)
	if err != nil {
		return fmt.Errorf("%w: exactReference %q: %w", ErrInvalidRule, r.dockerReference, err)
	}
	signed, err := parseSigned(signedIdentity)
	if err != nil {
		return err
	}
	return exact(fixed, signed)
}

// ExactRepository accepts a signed identity in a fixed repository, ignoring
// the expected identity. Build it with NewExactRepository; the zero value
// matches nothing.
type ExactRepository struct{ dockerRepository string }

// NewExactRepository returns an exactRepository rule.
func NewExactRepository(dockerRepository string) (ExactRepository, error) {
	if _, err := reference.ParseNormalizedNamed(dockerRepository); err != nil {
		return ExactRepository{}, fmt.Errorf("%w: exactRepository %q: %w", ErrInvalidRule, dockerRepository, err)
	}
	return ExactRepository{dockerRepository: dockerRepository}, nil
}

func (r ExactRepository) String() string { return "exactRepository(" + r.dockerRepository + ")" }

// Match implements Rule.
func (r ExactRepository) Match(_, signedIdentity string) error {
	fixed, err := reference.ParseNormalizedNamed(r.dockerRepository)
	if err != nil {
		return fmt.Errorf("%w: exactRepository %q: %w", ErrInvalidRule, r.dockerRepository, err)
	}
	signed, err := parseSigned(signedIdentity)
	if err != nil {
		return err
	}
	if signed.Name() != fixed.Name() {
		return mismatch(signed.String(), fixed.String(), "repositories differ")
	}
	return nil
}

// RemapIdentity rewrites the expected identity when its repository is Prefix
// or lies under Prefix/ (replacing Prefix with SignedPrefix), then applies
// matchRepoDigestOrExact. It serves mirrors: images pulled from
// mirror.example.com/ns carry signatures for registry.example.com/ns. Build it
// with NewRemapIdentity; the zero value behaves like matchRepoDigestOrExact.
type RemapIdentity struct{ prefix, signedPrefix string }

// NewRemapIdentity returns a remapIdentity rule. Both prefixes must be a
// host[:port], or a repository name that starts with one (a bare
// "ns/name" would be ambiguous, as docker.io is implied).
func NewRemapIdentity(prefix, signedPrefix string) (RemapIdentity, error) {
	for _, p := range []string{prefix, signedPrefix} {
		if err := validateRemapPrefix(p); err != nil {
			return RemapIdentity{}, err
		}
	}
	return RemapIdentity{prefix: prefix, signedPrefix: signedPrefix}, nil
}

// validateRemapPrefix follows containers/image validateIdentityRemappingPrefix.
// The expressions are compiled per call (rules are built rarely) so the
// package keeps no global state.
func validateRemapPrefix(s string) error {
	var res [3]*regexp.Regexp
	for i, expr := range []string{
		"^" + reference.DomainRegexp.String() + "$", // exactly host[:port]
		"^" + reference.DomainRegexp.String() + "/", // starts with host[:port]/
		"^" + reference.NameRegexp.String() + "$",   // a repository name
	} {
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("%w: compiling reference pattern: %w", ErrInvalidRule, err)
		}
		res[i] = re
	}
	if res[0].MatchString(s) || (res[2].MatchString(s) && res[1].MatchString(s)) {
		return nil
	}
	return fmt.Errorf("%w: remapIdentity prefix %q is not a host[:port] or a repository under one", ErrInvalidRule, s)
}

func (r RemapIdentity) String() string {
	return "remapIdentity(" + r.prefix + " -> " + r.signedPrefix + ")"
}

// Match implements Rule.
func (r RemapIdentity) Match(expectedIdentity, signedIdentity string) error {
	expected, signed, err := parseBoth(expectedIdentity, signedIdentity)
	if err != nil {
		return err
	}
	if r.prefix != "" && r.matchesPrefix(expected) {
		// Only the first occurrence, which is the name's prefix: the match
		// above compared Name(), and String() starts with Name().
		rewritten := strings.Replace(expected.String(), r.prefix, r.signedPrefix, 1)
		remapped, err := reference.ParseNamed(rewritten)
		if err != nil {
			return fmt.Errorf("%w: rewriting %q to %q: %w", ErrIdentityMismatch, expected.String(), rewritten, err)
		}
		expected = remapped
	}
	return repoDigestOrExact(expected, signed)
}

// matchesPrefix compares the repository name only; "/" is the only separator
// that can follow a prefix inside a name (":" there would be a port, which
// must match exactly).
func (r RemapIdentity) matchesPrefix(ref reference.Named) bool {
	name := ref.Name()
	switch {
	case len(name) < len(r.prefix):
		return false
	case len(name) == len(r.prefix):
		return name == r.prefix
	default:
		return strings.HasPrefix(name, r.prefix) && name[len(r.prefix)] == '/'
	}
}

// ParseJSON parses one signedIdentity object in containers-policy.json(5)
// syntax, e.g. {"type":"remapIdentity","prefix":"a.example","signedPrefix":"b.example"},
// strictly: no unknown or duplicate keys.
func ParseJSON(data []byte) (Rule, error) {
	v, err := strictjson.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRule, err)
	}
	return ParseValue(v)
}

// ParseValue is ParseJSON for an object already parsed by strictjson, as
// a containers-policy.json parser holds it.
func ParseValue(v strictjson.Value) (Rule, error) {
	if v.Kind != strictjson.Object {
		return nil, fmt.Errorf("%w: expected an object, got %v", ErrInvalidRule, v.Kind)
	}
	typ, err := strictjson.StringField(v, "type")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRule, err)
	}
	fields := map[string][]string{
		"matchExact":             {"type"},
		"matchRepoDigestOrExact": {"type"},
		"matchRepository":        {"type"},
		"exactReference":         {"type", "dockerReference"},
		"exactRepository":        {"type", "dockerRepository"},
		"remapIdentity":          {"type", "prefix", "signedPrefix"},
	}
	keys, ok := fields[typ]
	if !ok {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidRule, typ)
	}
	if err := strictjson.ExactObject(v, keys...); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidRule, typ, err)
	}
	str := func(k string) (string, error) {
		s, err := strictjson.StringField(v, k)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrInvalidRule, typ, err)
		}
		return s, nil
	}
	switch typ {
	case "matchExact":
		return MatchExact{}, nil
	case "matchRepoDigestOrExact":
		return MatchRepoDigestOrExact{}, nil
	case "matchRepository":
		return MatchRepository{}, nil
	case "exactReference":
		ref, err := str("dockerReference")
		if err != nil {
			return nil, err
		}
		return NewExactReference(ref)
	case "exactRepository":
		repo, err := str("dockerRepository")
		if err != nil {
			return nil, err
		}
		return NewExactRepository(repo)
	default: // remapIdentity
		prefix, err := str("prefix")
		if err != nil {
			return nil, err
		}
		signedPrefix, err := str("signedPrefix")
		if err != nil {
			return nil, err
		}
		return NewRemapIdentity(prefix, signedPrefix)
	}
}
