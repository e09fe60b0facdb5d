package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"

	"github.com/signet-registry/signet/containerspolicy"
	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/signaturestore"
)

// errPolicyRejected makes verify exit non-zero after the policy report.
var errPolicyRejected = errors.New("the policy rejects the image")

// evaluatePolicy evaluates pol (read from path) for t and reports every
// requirement's verdict on errOut.
func evaluatePolicy(ctx context.Context, cf *clientFlags, t *target, arg, path string, pol *containerspolicy.Policy, sigRepo string, errOut io.Writer) error {
	name, err := policyImageName(arg, t)
	if err != nil {
		return err
	}
	ref, err := containerspolicy.ImageReference(name)
	if err != nil {
		return err
	}
	prep, err := containerspolicy.Prepare(pol, ref, containerspolicy.Options{})
	if err != nil {
		return err
	}
	defer prep.Close()
	res, err := prep.Evaluate(ctx, containerspolicy.Image{Ref: ref, Digest: t.digest, Manifest: t.manifest},
		policySignatures{cf: cf, t: t, sigRepo: sigRepo})
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "\nPolicy %s for %s (%s, served by %s): %s\n", path, res.Image, t.digest, t.client.Host(), res.Scope)
	for i, o := range res.Outcomes {
		verdict := "accepted"
		if !o.Allowed {
			verdict = "REJECTED"
		}
		fmt.Fprintf(errOut, "  %d. %s: %s: %s\n", i+1, o.Requirement, verdict, o.Reason)
		if !o.Allowed {
			for _, r := range o.Rejections {
				fmt.Fprintf(errOut, "       - %s\n", r)
			}
		}
	}
	if !res.Allowed {
		fmt.Fprintf(errOut, "Policy rejects %s\n", res.Image)
		return errPolicyRejected
	}
	fmt.Fprintf(errOut, "Policy accepts %s\n", res.Image)
	return nil
}

// policyImageName is the image as the policy sees it: the argument as
// written, which names the scope and the identity signatures must claim
// (so with --registry-url a copy is judged under the original's name);
// for a bare digest, or an argument without a host, the registry and the
// repository it was resolved to.
func policyImageName(arg string, t *target) (string, error) {
	if strings.HasPrefix(arg, "sha256:") {
		return t.image.Host + "/" + t.image.Repository + "@" + t.digest.String(), nil
	}
	named, err := reference.ParseNormalizedNamed(arg)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", arg, err)
	}
	first, _, hasSlash := strings.Cut(arg, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return arg, nil
	}
	rest := strings.TrimPrefix(named.String(), reference.Domain(named)+"/")
	return t.image.Host + "/" + rest, nil
}

// policySignatures reads t's signatures for the policy: the GPG ones the
// registry stores, and the cosign ones in the signature repository.
type policySignatures struct {
	cf      *clientFlags
	t       *target
	sigRepo string
}

var _ containerspolicy.Signatures = policySignatures{}

func (s policySignatures) GPG(ctx context.Context) ([]containerspolicy.GPGSignature, error) {
	records, err := s.t.client.Records(ctx, s.t.image.Repository, s.t.digest)
	if err != nil {
		return nil, err
	}
	var out []containerspolicy.GPGSignature
	for _, r := range records.Signatures {
		if r.Type == signaturestore.TypeAtomic {
			out = append(out, containerspolicy.GPGSignature{Name: r.Name, Content: r.Content})
		}
	}
	return out, nil
}

func (s policySignatures) Cosign(ctx context.Context) (*cosign.Found, error) {
	c, repo, err := signatureRepository(s.cf, s.t, s.sigRepo)
	if err != nil {
		return nil, err
	}
	return cosign.Discover(ctx, cosignRegistry{c}, repo, s.t.digest, cosign.DiscoverOptions{})
}
