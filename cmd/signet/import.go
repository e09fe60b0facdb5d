package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/internal/repoglob"
	"github.com/signet-registry/signet/lookaside"
)

func newImportCmd(getenv func(string) string) *cobra.Command {
	var (
		cf          clientFlags
		imf         importFlags
		to          string
		all         bool
		pattern     string
		srcInsecure bool
	)
	cmd := &cobra.Command{
		Use:   "import-signatures IMAGE... --to HOST [--registries.d DIR | --from-registry]",
		Short: "Copy an image's signatures from a lookaside store or another registry into Signet, unverified",
		Long: `Read the signatures of each source IMAGE (HOST[:PORT]/REPOSITORY:TAG or
@DIGEST; a tag is resolved on the source registry) and store them in the
Signet registry --to, unverified: "signet describe" shows them as
Unverified until "signet verify-image-signature --save" has checked them.

Signatures come from the lookaside store that the registries.d directory
assigns to the image, with containers/image's rules (default-docker, then
the most specific docker: scope; lookaside or sigstore), or with
--from-registry from the source registry's extension API. At most 128
signatures of at most 4 MiB each are read; a source that answers anything
but a signature or a 404, or serves something that is not an OpenPGP
message, fails that image and nothing of it is stored.

Each image goes into its own repository path when the destination hosts
that manifest, otherwise into HOST/REPOSITORY (for example
docker.io/library/nginx), which the destination must list under
signatures.externalRepositories. Signatures already stored are skipped, so
running the import again adds nothing. A failing image is reported and the
others go on; the exit status is non-zero if any failed.

With --all, each argument is a source registry HOST[:PORT] instead: every
tag of every repository of its catalog matching --repository is imported.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to HOST (the Signet registry to import into) is required")
			}
			if cf.registryURL != "" {
				return fmt.Errorf("--registry-url does not apply here; the destination is --to")
			}
			if cmd.Flags().Changed("repository") && !all {
				return fmt.Errorf("--repository goes with --all")
			}
			ctx := cmd.Context()
			opts, err := cf.options(to)
			if err != nil {
				return err
			}
			dst, err := client.New(to, opts)
			if err != nil {
				return err
			}
			var images []reference.Named
			var listErr error
			if all {
				images, listErr = listSourceImages(ctx, &cf, args, pattern, srcInsecure, cmd.ErrOrStderr())
			} else {
				for _, arg := range args {
					named, err := reference.ParseNormalizedNamed(arg)
					if err != nil {
						return fmt.Errorf("image %q: %w", arg, err)
					}
					images = append(images, named)
				}
			}
			sys := imf.sourceSystemContext(&cf, srcInsecure)
			progress := newProgress(cmd.ErrOrStderr(), len(images))
			im := &lookaside.Importer{
				Source:      imf.source(&cf, srcInsecure),
				Destination: signetDestination{dst},
				Resolve: func(ctx context.Context, image reference.Named) (digest.Digest, error) {
					return resolveDigest(ctx, sys, image)
				},
				Place:    placeInSignet(dst),
				Progress: progress,
			}
			sum := im.Run(ctx, images)
			progress.Finish()
			if err := importReport(cmd.OutOrStdout(), sum); err != nil {
				return err
			}
			return listErr
		},
	}
	cf.register(cmd.Flags(), getenv)
	imf.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&to, "to", "", "Signet registry HOST[:PORT] to store the signatures in (credentials as for every subcommand)")
	fl.BoolVar(&all, "all", false, "arguments are source registries: import every tag of every repository in their catalog")
	fl.StringVar(&pattern, "repository", "**", "with --all: repositories to import, a glob (* one component, ** anything)")
	fl.BoolVar(&srcInsecure, "src-insecure", false, "allow plain HTTP and skip TLS verification towards the source registry and lookaside store")
	_ = fl.MarkHidden("registry-url")
	return cmd
}

// listSourceImages expands --all: HOST arguments into HOST/REPOSITORY:TAG
// references of the repositories matching pattern. A registry or
// repository that cannot be listed is reported and skipped; the returned
// error says so after the rest has been imported.
func listSourceImages(ctx context.Context, cf *clientFlags, hosts []string, pattern string, srcInsecure bool, log io.Writer) ([]reference.Named, error) {
	match, err := repoglob.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("--repository: %w", err)
	}
	var images []reference.Named
	failed := 0
	for _, host := range hosts {
		opts := client.Options{Insecure: srcInsecure}
		if err := cf.authFileCredentials(host, &opts); err != nil {
			return nil, err
		}
		c, err := client.New(host, opts)
		if err != nil {
			return nil, err
		}
		repos, err := c.Catalog(ctx)
		if err != nil {
			fmt.Fprintf(log, "%s: cannot list repositories: %v\n", host, err)
			failed++
			continue
		}
		for _, repo := range repos {
			if !match.Match(repo) {
				continue
			}
			tags, err := c.Tags(ctx, repo)
			if err != nil {
				fmt.Fprintf(log, "%s/%s: cannot list tags: %v\n", host, repo, err)
				failed++
				continue
			}
			for _, tag := range tags {
				named, err := reference.ParseNormalizedNamed(host + "/" + repo + ":" + tag)
				if err != nil {
					fmt.Fprintf(log, "%s/%s:%s: %v\n", host, repo, tag, err)
					failed++
					continue
				}
				images = append(images, named)
			}
		}
	}
	if failed > 0 {
		return images, fmt.Errorf("%d listings failed: %s", failed, strings.Join(hosts, ", "))
	}
	return images, nil
}
