package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
	"golang.org/x/term"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/lookaside"
	"github.com/signet-registry/signet/signaturestore"
)

// importFlags choose where imported signatures are read from.
type importFlags struct {
	registriesD  string
	fromRegistry bool
}

func (f *importFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.registriesD, "registries.d", "", "registries.d directory naming the lookaside stores to read (default: /etc/containers/registries.d and ~/.config/containers/registries.d)")
	fl.BoolVar(&f.fromRegistry, "from-registry", false, "read signatures from the source registry's extension API instead of a lookaside store")
}

// source builds the signature source. srcInsecure allows plain HTTP and
// unverified TLS towards the source registry and its lookaside server, as
// containers/image uses one client for both.
func (f *importFlags) source(cf *clientFlags, srcInsecure bool) lookaside.Source {
	if f.fromRegistry {
		return &lookaside.Extension{Registry: func(host string) (lookaside.ExtensionLister, error) {
			opts := client.Options{Insecure: srcInsecure}
			if err := cf.authFileCredentials(host, &opts); err != nil {
				return nil, err
			}
			return client.New(host, opts)
		}}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: srcInsecure} //nolint:gosec // --src-insecure asks for exactly this
	return &lookaside.Lookaside{RegistriesDir: f.registriesD, Client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// sourceSystemContext is how containers/image reaches the source registry
// to resolve tags: the containers auth file, and the same registries.d.
func (f *importFlags) sourceSystemContext(cf *clientFlags, srcInsecure bool) *types.SystemContext {
	sys := &types.SystemContext{AuthFilePath: cf.authFilePath(), RegistriesDirPath: f.registriesD}
	if srcInsecure {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	return sys
}

// resolveDigest fetches a source image's manifest with containers/image
// (which speaks every registry's token auth) and digests the bytes
// received.
func resolveDigest(ctx context.Context, sys *types.SystemContext, image reference.Named) (digest.Digest, error) {
	ref, err := docker.ParseReference("//" + image.String())
	if err != nil {
		return "", err
	}
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return "", err
	}
	defer src.Close()
	b, _, err := src.GetManifest(ctx, nil)
	if err != nil {
		return "", err
	}
	return manifest.Digest(b)
}

// signetDestination stores imported signatures in a Signet registry
// through the extension API, unverified, each under a fresh name.
type signetDestination struct{ c *client.Client }

func (d signetDestination) Put(ctx context.Context, repo string, dgst digest.Digest, untrusted []byte) error {
	name, err := newSignatureName(dgst)
	if err != nil {
		return err
	}
	err = d.c.PutSignature(ctx, repo, dgst, extensions.Signature{
		SchemaVersion: extensions.SchemaVersion, Name: name, Type: signaturestore.TypeAtomic, Content: untrusted,
	})
	var e *client.Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusConflict && e.Code == "SIGNATURE_EXISTS":
		return lookaside.ErrDuplicate
	case errors.As(err, &e) && e.Status == http.StatusNotFound:
		return fmt.Errorf("%w (the destination neither hosts %s@%s nor lists %s under signatures.externalRepositories)", err, repo, dgst, repo)
	}
	return err
}

// placeInSignet picks the destination repository of an image: its own
// path when the destination hosts that manifest (a copy pushed there),
// otherwise its full name, host included ("docker.io/library/nginx"),
// which the destination must list under signatures.externalRepositories.
func placeInSignet(dst *client.Client) func(context.Context, reference.Named, digest.Digest) (string, error) {
	return func(ctx context.Context, image reference.Named, dgst digest.Digest) (string, error) {
		path := reference.Path(image)
		_, _, err := dst.Manifest(ctx, path, dgst.String())
		switch {
		case err == nil:
			return path, nil
		case client.IsStatus(err, http.StatusNotFound), client.IsStatus(err, http.StatusUnauthorized), client.IsStatus(err, http.StatusForbidden):
			// Not hosted, or not visible to this user: the external name.
			return image.Name(), nil
		}
		return "", err
	}
}

// newProgress reports to w, with a bar when w is a terminal.
func newProgress(w io.Writer, total int) *lookaside.Progress {
	f, ok := w.(*os.File)
	return lookaside.NewProgress(w, ok && term.IsTerminal(int(f.Fd())), total)
}

// importReport prints the summary and turns failures into the exit status.
func importReport(out io.Writer, sum lookaside.Summary) error {
	fmt.Fprintf(out, "imported %d signatures, unverified, for %d images (%d already stored, %d images failed)\n",
		sum.Added, len(sum.Results)-sum.Failed, sum.Skipped, sum.Failed)
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d images failed", sum.Failed, len(sum.Results))
	}
	return nil
}
