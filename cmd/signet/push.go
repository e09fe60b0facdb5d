package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/lookaside"
)

// parseSource accepts the transports `signet push` copies from.
func parseSource(src string) (types.ImageReference, error) {
	transport, rest, ok := strings.Cut(src, ":")
	if !ok {
		return nil, fmt.Errorf("source %q: want oci:DIR[:TAG], docker-archive:FILE, dir:DIR or docker://REF", src)
	}
	var (
		ref types.ImageReference
		err error
	)
	switch transport {
	case "oci":
		ref, err = layout.Transport.ParseReference(rest)
	case "docker-archive":
		ref, err = archive.Transport.ParseReference(rest)
	case "dir":
		ref, err = directory.Transport.ParseReference(rest)
	case "docker":
		ref, err = docker.Transport.ParseReference(rest)
	default:
		return nil, fmt.Errorf("source %q: unsupported transport %q (oci, docker-archive, dir, docker)", src, transport)
	}
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", src, err)
	}
	return ref, nil
}

func newPushCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	var sf signFlags
	var imf importFlags
	var importSigs bool
	cmd := &cobra.Command{
		Use:   "push SRC IMAGE [--sign-by KEY] [--import-signatures]",
		Short: "Copy an image into a Signet registry, then sign it or import its signatures",
		Long: `Copy SRC (oci:DIR[:TAG], docker-archive:FILE, dir:DIR or docker://REF) to
IMAGE (HOST[:PORT]/REPOSITORY:TAG) and sign what was pushed, as
"signet sign" does.

With --import-signatures (docker:// sources only) the copy keeps the
manifest byte for byte, and the signatures the source carries are then
imported into IMAGE's repository, unverified, as "signet
import-signatures" does: from the lookaside store of --registries.d, or
with --from-registry from the source registry's extension API. Without it
the source's signatures are not copied.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sf.signBy == "" && !importSigs {
				return fmt.Errorf("--sign-by or --import-signatures is required")
			}
			srcRef, err := parseSource(args[0])
			if err != nil {
				return err
			}
			if importSigs && srcRef.Transport().Name() != docker.Transport.Name() {
				return fmt.Errorf("--import-signatures needs a docker:// source")
			}
			img, err := client.ParseImage(args[1], cf.registryURL)
			if err != nil {
				return err
			}
			if img.Tag == "" || img.Digest != "" {
				return fmt.Errorf("IMAGE must be HOST[:PORT]/REPOSITORY:TAG")
			}
			destRef, err := docker.ParseReference("//" + img.Host + "/" + img.Repository + ":" + img.Tag)
			if err != nil {
				return fmt.Errorf("destination: %w", err)
			}
			opts, err := cf.options(img.Host)
			if err != nil {
				return err
			}
			// An empty registries.d: signatures go only through the
			// extension API, never to a lookaside directory.
			regD, err := os.MkdirTemp("", "signet-registries.d-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(regD)
			sys := &types.SystemContext{RegistriesDirPath: regD, AuthFilePath: cf.authFile}
			if cf.insecure {
				sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
			}
			if cf.caFile != "" {
				// containers/image reads CAs from a directory of *.crt.
				certDir, err := os.MkdirTemp("", "signet-certs-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(certDir)
				pem, err := os.ReadFile(cf.caFile)
				if err != nil {
					return fmt.Errorf("read CA file: %w", err)
				}
				if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), pem, 0o600); err != nil {
					return err
				}
				sys.DockerCertPath = certDir
			}
			destSys := *sys
			if opts.Username != "" || opts.Password != "" {
				destSys.DockerAuthConfig = &types.DockerAuthConfig{Username: opts.Username, Password: opts.Password}
			}
			policy, err := signature.NewPolicyContext(&signature.Policy{
				Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()},
			})
			if err != nil {
				return fmt.Errorf("policy: %w", err)
			}
			defer func() { _ = policy.Destroy() }()
			copied, err := copy.Image(cmd.Context(), policy, destRef, srcRef, &copy.Options{
				RemoveSignatures: true,
				// Imported signatures name the source's digest.
				PreserveDigests: importSigs,
				ReportWriter:    cmd.ErrOrStderr(),
				SourceCtx:       sys,
				DestinationCtx:  &destSys,
			})
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w", args[0], args[1], err)
			}
			t, err := cf.resolve(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			var importErr error
			if importSigs {
				// A failed import does not stop the signing.
				importErr = importPushed(cmd, &cf, &imf, srcRef, t, copied)
			}
			if sf.signBy == "" {
				return importErr
			}
			identity := sf.identity
			if identity == "" {
				identity = defaultIdentity(args[1], t)
			}
			return errors.Join(sf.signTarget(cmd.Context(), t, identity, cmd.OutOrStdout()), importErr)
		},
	}
	cf.register(cmd.Flags(), getenv)
	sf.register(cmd.Flags(), getenv)
	imf.register(cmd.Flags())
	cmd.Flags().BoolVar(&importSigs, "import-signatures", false, "also import the source image's signatures (docker:// sources)")
	return cmd
}

// importPushed imports the signatures of the docker:// source of a push
// into the pushed image's repository. The copy preserved the manifest, so
// the source's signatures name the digest that was pushed.
func importPushed(cmd *cobra.Command, cf *clientFlags, imf *importFlags, srcRef types.ImageReference, t *target, copied []byte) error {
	dgst, err := manifest.Digest(copied)
	if err != nil {
		return fmt.Errorf("digest of the copied manifest: %w", err)
	}
	if dgst != t.digest {
		return fmt.Errorf("the registry serves %s but the copy wrote %s; signatures not imported", t.digest, dgst)
	}
	src, err := reference.ParseNormalizedNamed(srcRef.DockerReference().String())
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	src, err = reference.WithDigest(reference.TrimNamed(src), dgst)
	if err != nil {
		return err
	}
	progress := newProgress(cmd.ErrOrStderr(), 1)
	im := &lookaside.Importer{
		Source:      imf.source(cf, cf.insecure),
		Destination: signetDestination{t.client},
		Place: func(context.Context, reference.Named, digest.Digest) (string, error) {
			return t.image.Repository, nil
		},
		Progress: progress,
	}
	sum := im.Run(cmd.Context(), []reference.Named{src})
	progress.Finish()
	return importReport(cmd.OutOrStdout(), sum)
}
