package containerspolicy

import (
	"errors"
	"fmt"
	"strings"

	"go.podman.io/image/v5/docker/reference"
)

// ErrImageReference: the image cannot be evaluated under a policy.
var ErrImageReference = errors.New("invalid image reference for a policy")

// ImageReference parses an image as a docker:// transport reference is
// parsed: normalized, ":latest" added to a name without tag or digest, and
// one with both a tag and a digest refused (containers/image refuses it
// too). Its String() is the expected identity of the signatures.
func ImageReference(s string) (reference.Named, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrImageReference, s, err)
	}
	ref = reference.TagNameOnly(ref)
	_, tagged := ref.(reference.Tagged)
	_, digested := ref.(reference.Digested)
	if tagged && digested {
		return nil, fmt.Errorf("%w: %q has both a tag and a digest; give one", ErrImageReference, s)
	}
	return ref, nil
}

// Scope names the policy section that applies to an image: "default", or
// transports.docker["<scope>"].
type Scope string

// scopeCandidates lists the docker scopes that can apply to ref, most
// specific first, as containers/image looks them up: the image itself
// (NAME:TAG or NAME@DIGEST), the repository, each parent namespace up to
// the host[:port], then *.domain for each parent domain of the host
// (without its port), then the transport's "".
func scopeCandidates(ref reference.Named) []string {
	name := ref.Name()
	identity := name
	if t, ok := ref.(reference.Tagged); ok {
		identity += ":" + t.Tag()
	} else if d, ok := ref.(reference.Digested); ok {
		identity += "@" + d.Digest().String()
	}
	out := []string{identity}
	for n := name; ; {
		out = append(out, n)
		i := strings.LastIndex(n, "/")
		if i < 0 {
			break
		}
		n = n[:i]
	}
	host := reference.Domain(ref)
	if i := strings.Index(host, ":"); i >= 0 && !strings.HasPrefix(host, "[") {
		host = host[:i]
	}
	for {
		i := strings.Index(host, ".")
		if i < 0 {
			break
		}
		host = host[i+1:]
		out = append(out, "*."+host)
	}
	return append(out, "")
}

// RequirementsFor returns the requirements that apply to ref (from
// ImageReference) and the section they come from.
func (p *Policy) RequirementsFor(ref reference.Named) (Scope, Requirements) {
	for _, s := range scopeCandidates(ref) {
		if reqs, ok := p.Docker[s]; ok {
			return Scope(fmt.Sprintf("transports.docker[%q]", s)), reqs
		}
	}
	return "default", p.Default
}
