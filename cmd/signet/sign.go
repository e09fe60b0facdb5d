package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/gnupg"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/gpg/policy"
	"github.com/signet-registry/signet/signaturestore"
)

// signFlags choose the key and the claims of a new signature.
type signFlags struct {
	signBy         string
	identity       string
	keyFile        string
	passphraseFile string
	creator        string
	getenv         func(string) string
}

func (f *signFlags) register(fl *pflag.FlagSet, getenv func(string) string) {
	f.getenv = getenv
	fl.StringVar(&f.signBy, "sign-by", "", "key to sign with: fingerprint, key id or email (required)")
	fl.StringVar(&f.identity, "identity", "", "identity to sign (default: the image reference as given)")
	fl.StringVar(&f.keyFile, "key-file", "", "exported secret key (binary or armored); without it, the key is used through gpg")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding the key's passphrase (default $SIGNET_PASSPHRASE)")
	fl.StringVar(&f.creator, "creator", "signet", "optional.creator claim")
}

// signerAndVerifier returns what signs and a verifier holding the
// signer's public key, to check each new signature before storing it.
func (f *signFlags) signerAndVerifier() (payload.Signer, payload.Verifier, func(), error) {
	if f.signBy == "" {
		return nil, nil, nil, fmt.Errorf("--sign-by is required")
	}
	if f.keyFile == "" {
		g := gnupg.Signer{}
		pub, err := g.ExportPublic(f.signBy)
		if err != nil {
			return nil, nil, nil, err
		}
		v, err := gpg.NewMechanism(pub)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("load exported public key: %w", err)
		}
		return g, v, func() { _ = v.Close() }, nil
	}
	key, err := os.ReadFile(f.keyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read key file: %w", err)
	}
	pass := []byte(f.getenv("SIGNET_PASSPHRASE"))
	if f.passphraseFile != "" {
		b, err := os.ReadFile(f.passphraseFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read passphrase file: %w", err)
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	m, err := gpg.NewMechanismWithOptions(gpg.Options{Passphrase: pass}, key)
	clear(pass)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load key file: %w", err)
	}
	return m, m, func() { _ = m.Close() }, nil
}

// signTarget signs t as identity, checks the new signature with the
// signer's public key, and stores it through the extension API.
func (f *signFlags) signTarget(ctx context.Context, t *target, identity string, out io.Writer) error {
	signer, verifier, done, err := f.signerAndVerifier()
	if err != nil {
		return err
	}
	defer done()
	sig, err := payload.SignImage(signer, t.manifest, identity, f.signBy, f.creator, time.Now())
	if err != nil {
		return err
	}
	// A signature that Signet itself cannot verify must never be stored.
	if _, err := payload.VerifyImageSignature(verifier, sig, t.manifest, identity, policy.MatchExact{}); err != nil {
		return fmt.Errorf("the new signature does not verify: %w", err)
	}
	name, err := newSignatureName(t.digest)
	if err != nil {
		return err
	}
	err = t.client.PutSignature(ctx, t.image.Repository, t.digest, extensions.Signature{
		SchemaVersion: extensions.SchemaVersion, Name: name, Type: signaturestore.TypeAtomic, Content: sig,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "signed %s as %q with %s: stored %s\n", t.image.Host+"/"+t.image.Repository+"@"+t.digest.String(), identity, f.signBy, name)
	return err
}

func newSignCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	var sf signFlags
	cmd := &cobra.Command{
		Use:   "sign IMAGE --sign-by KEY",
		Short: "Sign an image in a Signet registry (atomic push --sign-by)",
		Long: `Resolve IMAGE (HOST[:PORT]/REPOSITORY:TAG or @DIGEST) to its manifest digest,
create a simple-signing signature for the identity (default: IMAGE as given),
and store it through the signature extension API.

KEY is a fingerprint, key id or email. Without --key-file the key is used
through the gpg command, so keys made with "gpg --quick-gen-key" work as
they are. With --key-file (an exported secret key) no GnuPG is needed; a
passphrase comes from --passphrase-file or $SIGNET_PASSPHRASE.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := cf.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			identity := sf.identity
			if identity == "" {
				identity = defaultIdentity(args[0], t)
			}
			return sf.signTarget(cmd.Context(), t, identity, cmd.OutOrStdout())
		},
	}
	cf.register(cmd.Flags(), getenv)
	sf.register(cmd.Flags(), getenv)
	return cmd
}

// newSignatureName is "<digest>@<32 lowercase hex>", random, as
// containers/image names the signatures it stores.
func newSignatureName(dgst digest.Digest) (string, error) {
	var suffix [16]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("generate signature name: %w", err)
	}
	return dgst.String() + "@" + hex.EncodeToString(suffix[:]), nil
}

// defaultIdentity is the image reference as the user gave it, with
// ":latest" added to a name-only reference (which no default identity rule
// would accept), or the resolved reference for a bare digest.
func defaultIdentity(arg string, t *target) string {
	if strings.HasPrefix(arg, "sha256:") {
		return t.image.Ref()
	}
	if t.image.Tag == "" && t.image.Digest == "" {
		return arg + ":latest"
	}
	return arg
}
