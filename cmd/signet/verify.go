package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/gpg/policy"
	"github.com/signet-registry/signet/signaturestore"
)

type verifyFlags struct {
	expectedIdentity string
	publicKey        string
	save             bool
	removeAll        bool
}

func newVerifyCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	var vf verifyFlags
	cmd := &cobra.Command{
		Use:   "verify-image-signature IMAGE --expected-identity PULLSPEC",
		Short: "Verify an image's stored signatures (oc adm verify-image-signature)",
		Long: `Verify every signature stored for IMAGE: the OpenPGP signature against the
trusted keyring, the payload (strictly), the manifest digest as served now,
and the identity under matchRepoDigestOrExact. An expected identity without
a tag gets ":latest".

IMAGE is HOST[:PORT]/REPOSITORY@sha256:..., a tag, or a bare sha256 digest
with --registry-url (resolved when exactly one repository holds it).

--public-key defaults to $GNUPGHOME/pubring.gpg (binary or armored).
--save records the outcome on the server: Trusted=True with who and when on
success, Trusted=False with the reason on failure. The signature itself is
never changed. --remove-all deletes every signature of the image instead of
verifying.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := cf.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if vf.removeAll {
				n, err := t.client.DeleteAll(ctx, t.image.Repository, t.digest)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "removed %d signature(s) of %s\n", n, targetRef(t))
				return err
			}
			if vf.expectedIdentity == "" {
				return errors.New("--expected-identity is required (unless --remove-all)")
			}
			expected, err := policy.ExpectedIdentity(vf.expectedIdentity)
			if err != nil {
				return err
			}
			keyring := vf.publicKey
			if keyring == "" {
				keyring = defaultKeyring(getenv)
			}
			mech, err := gpgVerifier(keyring)
			if err != nil {
				return err
			}
			defer mech.Close()
			return verifyTarget(ctx, t, mech, expected, vf.save, out)
		},
	}
	cf.register(cmd.Flags(), getenv)
	fl := cmd.Flags()
	fl.StringVar(&vf.expectedIdentity, "expected-identity", "", "the pull spec the signatures must claim (required)")
	fl.StringVar(&vf.publicKey, "public-key", "", "keyring of trusted public keys (default $GNUPGHOME/pubring.gpg)")
	fl.BoolVar(&vf.save, "save", false, "record the verification status on the server")
	fl.BoolVar(&vf.removeAll, "remove-all", false, "delete every signature of the image")
	return cmd
}

// gpgVerifier loads a keyring of trusted public keys (binary or armored)
// for verifyTarget; verify-image-signature and verify share it.
func gpgVerifier(keyring string) (*gpg.Mechanism, error) {
	mech, err := gpg.NewMechanismFromFiles(gpg.Options{}, keyring)
	if err != nil {
		return nil, fmt.Errorf("load public keys from %s: %w", keyring, err)
	}
	return mech, nil
}

// defaultKeyring is $GNUPGHOME/pubring.gpg, or ~/.gnupg/pubring.gpg.
func defaultKeyring(getenv func(string) string) string {
	home := getenv("GNUPGHOME")
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = filepath.Join(h, ".gnupg")
		}
	}
	return filepath.Join(home, "pubring.gpg")
}

func targetRef(t *target) string {
	return t.image.Host + "/" + t.image.Repository + "@" + t.digest.String()
}

// verifyTarget verifies every stored signature of t and, with save,
// records each outcome. It fails when no signature verifies.
func verifyTarget(ctx context.Context, t *target, v payload.Verifier, expected string, save bool, out io.Writer) error {
	records, err := t.client.Records(ctx, t.image.Repository, t.digest)
	if err != nil {
		return err
	}
	if len(records.Signatures) == 0 {
		return fmt.Errorf("image %s has no signatures", targetRef(t))
	}
	ref := targetRef(t)
	verified := 0
	for _, rec := range records.Signatures {
		update := outcome(v, rec, t.manifest, expected)
		if update.Trusted {
			verified++
			fmt.Fprintf(out, "image %q identity is now confirmed (signed by GPG key %q)\n", ref, update.IssuedBy.CommonName)
		} else {
			fmt.Fprintf(out, "signature %s of image %q rejected: %s\n", rec.Name, ref, update.Reason)
		}
		if save {
			if err := t.client.SaveStatus(ctx, t.image.Repository, t.digest, rec.Name, update); err != nil {
				return err
			}
		}
	}
	if verified == 0 {
		return errNoneVerified
	}
	return nil
}

// outcome runs the full verification of one stored signature.
func outcome(v payload.Verifier, rec extensions.Record, manifest []byte, expected string) extensions.StatusUpdate {
	if rec.Type != "atomic" {
		return extensions.StatusUpdate{Reason: fmt.Sprintf("unsupported signature type %q", rec.Type)}
	}
	vs, err := payload.VerifyImageSignature(v, rec.Content, manifest, expected, policy.Default())
	if err != nil {
		return extensions.StatusUpdate{Reason: err.Error()}
	}
	claims := map[string]string{}
	if vs.Payload.Creator != nil {
		claims["creator"] = *vs.Payload.Creator
	}
	if vs.Payload.Timestamp != nil {
		claims["timestamp"] = strconv.FormatInt(vs.Payload.Timestamp.Unix(), 10)
	}
	return extensions.StatusUpdate{
		Trusted:       true,
		ImageIdentity: vs.Payload.DockerReference,
		SignedClaims:  claims,
		IssuedBy:      &signaturestore.Issuer{CommonName: vs.Signer.KeyID},
		IssuedTo:      &signaturestore.Subject{PublicKeyID: vs.Signer.Fingerprint, CommonName: vs.Signer.UserID},
	}
}
