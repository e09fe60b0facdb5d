package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/signaturestore"
)

// described is one signature as `signet describe` reports it.
type described struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Created time.Time `json:"created"`
	// KeyID is the verified signer's key id when a Trusted status exists,
	// otherwise the key id the signature packet claims (unverified).
	KeyID         string                 `json:"keyID,omitempty"`
	KeyIDVerified bool                   `json:"keyIDVerified"`
	State         string                 `json:"state"` // Verified, Failed or Unverified
	Status        *signaturestore.Status `json:"status,omitempty"`
}

type describeOutput struct {
	Image      string      `json:"image"`
	Repository string      `json:"repository"`
	Digest     string      `json:"digest"`
	Signatures []described `json:"signatures"`
	// Cosign lists cosign signatures and attestations, unverified.
	Cosign      []cosignDescribed `json:"cosign"`
	CosignError string            `json:"cosignError,omitempty"`
}

func newDescribeCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	var output, sigRepo string
	cmd := &cobra.Command{
		Use:   "describe IMAGE",
		Short: "Show an image's GPG signatures, cosign signatures and cosign attestations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o must be text or json, not %q", output)
			}
			t, err := cf.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			records, err := t.client.Records(cmd.Context(), t.image.Repository, t.digest)
			if err != nil {
				return err
			}
			d := describeOutput{Image: targetRef(t), Repository: t.image.Repository, Digest: t.digest.String(), Signatures: []described{}}
			for _, rec := range records.Signatures {
				d.Signatures = append(d.Signatures, describe(rec))
			}
			if sigRepo == "" {
				sigRepo = getenv("COSIGN_REPOSITORY")
			}
			d.Cosign, d.CosignError = describeCosign(cmd.Context(), &cf, t, sigRepo)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			return writeDescription(cmd.OutOrStdout(), d)
		},
	}
	cf.register(cmd.Flags(), getenv)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&sigRepo, "signature-repository", "", "repository holding cosign signatures (default $COSIGN_REPOSITORY, else the image's)")
	return cmd
}

func describe(rec extensions.Record) described {
	d := described{Name: rec.Name, Type: rec.Type, Created: rec.Created, Status: rec.Status, State: "Unverified"}
	switch {
	case rec.Status.Trusted():
		d.State = "Verified"
		if rec.Status.IssuedBy != nil {
			d.KeyID, d.KeyIDVerified = rec.Status.IssuedBy.CommonName, true
		}
	case rec.Status != nil:
		d.State = "Failed"
	}
	if d.KeyID == "" && rec.Type == signaturestore.TypeAtomic {
		// Read from the packet without checking it: a claim, shown
		// as such.
		if m, err := gpg.NewMechanism(); err == nil {
			if _, keyID, err := m.UntrustedSignatureContents(rec.Content); err == nil {
				d.KeyID = keyID
			}
			_ = m.Close()
		}
	}
	return d
}

func writeDescription(w io.Writer, d describeOutput) error {
	fmt.Fprintf(w, "Image:       %s\n", d.Image)
	fmt.Fprintf(w, "Signatures:  %d\n", len(d.Signatures))
	for _, s := range d.Signatures {
		fmt.Fprintf(w, "\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Name:\t%s\n", s.Name)
		fmt.Fprintf(tw, "  Type:\t%s\n", s.Type)
		fmt.Fprintf(tw, "  Created:\t%s\n", s.Created.Format(time.RFC3339))
		key := s.KeyID
		if key != "" && !s.KeyIDVerified {
			key += " (claimed, unverified)"
		}
		fmt.Fprintf(tw, "  Signer key:\t%s\n", key)
		fmt.Fprintf(tw, "  Status:\t%s\n", s.State)
		if s.Status != nil {
			if s.Status.ImageIdentity != "" {
				fmt.Fprintf(tw, "  Identity:\t%s\n", s.Status.ImageIdentity)
			}
			if s.Status.IssuedTo != nil && s.Status.IssuedTo.PublicKeyID != "" {
				fmt.Fprintf(tw, "  Fingerprint:\t%s\n", s.Status.IssuedTo.PublicKeyID)
			}
			for _, c := range s.Status.Conditions {
				parts := []string{c.Type + "=" + c.Status}
				if c.Reason != "" {
					parts = append(parts, "reason: "+c.Reason)
				}
				if c.Message != "" {
					parts = append(parts, c.Message)
				}
				parts = append(parts, "at "+c.LastProbeTime.Format(time.RFC3339))
				fmt.Fprintf(tw, "  Condition:\t%s\n", strings.Join(parts, "; "))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return writeCosignDescription(w, d)
}
