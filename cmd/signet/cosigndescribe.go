package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/signet-registry/signet/cosign"
)

// cosignDescribed is one cosign signature or attestation as `signet
// describe` lists it. Identity and issuer are read from the certificate
// without verification: `signet verify` decides, describe only shows.
type cosignDescribed struct {
	Format        string `json:"format"` // "legacy .sig tag", "legacy .att tag" or "bundle v0.3 referrer"
	Kind          string `json:"kind"`   // "signature" or "attestation"
	Location      string `json:"location"`
	Content       string `json:"content,omitempty"` // "simple-signing payload", "DSSE envelope (in-toto statement)", …
	PredicateType string `json:"predicateType,omitempty"`
	Created       string `json:"created,omitempty"`
	// Identity and Issuer are the certificate's claims, unverified.
	Identity  string `json:"identity,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	KeySigned bool   `json:"keySigned"`
	KeyHint   string `json:"keyHint,omitempty"`
	Logged    bool   `json:"transparencyLogEntry"`
	Problem   string `json:"problem,omitempty"`
}

// describeCosign lists t's cosign signatures and attestations in the
// signature repository (sigRepo, else t's own). A registry failure is
// reported in the second result, so describe still shows the GPG side.
func describeCosign(ctx context.Context, cf *clientFlags, t *target, sigRepo string) ([]cosignDescribed, string) {
	out := []cosignDescribed{}
	c, repo, err := signatureRepository(cf, t, sigRepo)
	if err != nil {
		return out, err.Error()
	}
	found, err := cosign.Discover(ctx, cosignRegistry{c}, repo, t.digest, cosign.DiscoverOptions{Attestations: true})
	if err != nil {
		return out, err.Error()
	}
	for i := range found.Candidates {
		cl := cosign.UntrustedClaims(&found.Candidates[i])
		out = append(out, cosignDescribed{
			Format: cl.Storage(), Kind: cl.Kind.String(), Location: cl.Location, Content: cl.Content,
			PredicateType: cl.PredicateType, Created: cl.Created,
			Identity: cl.UntrustedIdentity, Issuer: cl.UntrustedIssuer,
			KeySigned: cl.KeySigned, KeyHint: cl.KeyHint, Logged: cl.Logged, Problem: cl.Problem,
		})
	}
	for _, p := range found.Problems {
		out = append(out, cosignDescribed{Location: p.Location, Problem: p.Err.Error()})
	}
	msg := ""
	if found.Skipped > 0 {
		msg = fmt.Sprintf("%d more entries not read (limit %d)", found.Skipped, cosign.MaxSignatures)
	}
	return out, msg
}

func writeCosignDescription(w io.Writer, d describeOutput) error {
	fmt.Fprintf(w, "\nCosign:      %d\n", len(d.Cosign))
	if d.CosignError != "" {
		fmt.Fprintf(w, "  (%s)\n", d.CosignError)
	}
	for _, s := range d.Cosign {
		fmt.Fprintf(w, "\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Location:\t%s\n", s.Location)
		if s.Format != "" {
			fmt.Fprintf(tw, "  Format:\t%s\n", s.Format)
			fmt.Fprintf(tw, "  Kind:\t%s\n", s.Kind)
		}
		if s.Content != "" {
			fmt.Fprintf(tw, "  Content:\t%s\n", s.Content)
		}
		if s.PredicateType != "" {
			fmt.Fprintf(tw, "  Predicate:\t%s\n", s.PredicateType)
		}
		switch {
		case s.KeySigned && s.KeyHint != "":
			fmt.Fprintf(tw, "  Signer:\tpublic key (hint %s)\n", s.KeyHint)
		case s.KeySigned:
			fmt.Fprintf(tw, "  Signer:\tpublic key\n")
		case s.Identity != "":
			fmt.Fprintf(tw, "  Identity:\t%s (claimed, unverified)\n", s.Identity)
			fmt.Fprintf(tw, "  Issuer:\t%s (claimed, unverified)\n", s.Issuer)
		}
		if s.Format != "" {
			fmt.Fprintf(tw, "  Rekor entry:\t%v\n", s.Logged)
		}
		if s.Created != "" {
			fmt.Fprintf(tw, "  Created:\t%s\n", s.Created)
		}
		if s.Problem != "" {
			fmt.Fprintf(tw, "  Problem:\t%s\n", s.Problem)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
