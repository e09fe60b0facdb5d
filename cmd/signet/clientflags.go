package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"
	dockerconfig "go.podman.io/image/v5/pkg/docker/config"
	"go.podman.io/image/v5/types"

	"github.com/signet-registry/signet/client"
)

// clientFlags are shared by every subcommand that talks to a registry.
// Secrets never come from flag values: the password or token is read from
// SIGNET_PASSWORD / SIGNET_TOKEN or from a file.
type clientFlags struct {
	insecure     bool
	caFile       string
	authFile     string
	registryURL  string
	username     string
	passwordFile string
	getenv       func(string) string
}

func (f *clientFlags) register(fl *pflag.FlagSet, getenv func(string) string) {
	f.getenv = getenv
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and skip TLS verification")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM file of CAs to trust besides the system store (SSL_CERT_FILE is honoured too)")
	fl.StringVar(&f.authFile, "authfile", "", "containers auth.json to read credentials from (default: podman/skopeo login's, then ~/.docker/config.json)")
	fl.StringVar(&f.registryURL, "registry-url", "", "registry to talk to, overriding the image's host")
	fl.StringVar(&f.username, "username", "", "user name for HTTP Basic auth (default $SIGNET_USERNAME)")
	fl.StringVar(&f.passwordFile, "password-file", "", "file holding the password or API token (default $SIGNET_PASSWORD)")
}

// options gathers TLS settings and credentials for host. Credentials come
// from, in order: --username with --password-file, SIGNET_USERNAME /
// SIGNET_PASSWORD / SIGNET_TOKEN, then the containers auth file that
// "podman login" and "skopeo login" write.
func (f *clientFlags) options(host string) (client.Options, error) {
	opts := client.Options{Insecure: f.insecure, CAFile: f.caFile, Username: f.username, Token: f.getenv("SIGNET_TOKEN")}
	if opts.Username == "" {
		opts.Username = f.getenv("SIGNET_USERNAME")
	}
	opts.Password = f.getenv("SIGNET_PASSWORD")
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return opts, fmt.Errorf("read password file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	if opts.Username == "" && opts.Password == "" && opts.Token == "" {
		return opts, f.authFileCredentials(host, &opts)
	}
	return opts, nil
}

// authFilePath is --authfile, else $REGISTRY_AUTH_FILE; empty means the
// containers defaults.
func (f *clientFlags) authFilePath() string {
	if f.authFile != "" {
		return f.authFile
	}
	return f.getenv("REGISTRY_AUTH_FILE")
}

// authFileCredentials fills opts with host's credentials from the auth
// file "podman login" and "skopeo login" write, if it holds any.
func (f *clientFlags) authFileCredentials(host string, opts *client.Options) error {
	cred, err := dockerconfig.GetCredentials(&types.SystemContext{AuthFilePath: f.authFilePath()}, host)
	if err != nil {
		return fmt.Errorf("read credentials for %s: %w", host, err)
	}
	if cred.IdentityToken != "" {
		opts.Token = cred.IdentityToken
	} else {
		opts.Username, opts.Password = cred.Username, cred.Password
	}
	return nil
}

// target is an image argument resolved against its registry: repository
// known, manifest fetched, digest computed from the bytes received.
type target struct {
	image    client.Image
	client   *client.Client
	digest   digest.Digest
	manifest []byte
}

// resolve parses arg, connects, resolves a bare digest to its single
// repository, and fetches the manifest.
func (f *clientFlags) resolve(ctx context.Context, arg string) (*target, error) {
	img, err := client.ParseImage(arg, f.registryURL)
	if err != nil {
		return nil, err
	}
	opts, err := f.options(img.Host)
	if err != nil {
		return nil, err
	}
	c, err := client.New(img.Host, opts)
	if err != nil {
		return nil, err
	}
	if img.Repository == "" {
		repos, err := c.RepositoriesWithDigest(ctx, img.Digest)
		if err != nil {
			return nil, err
		}
		switch len(repos) {
		case 0:
			return nil, fmt.Errorf("no repository on %s holds %s", img.Host, img.Digest)
		case 1:
			img.Repository = repos[0]
		default:
			return nil, fmt.Errorf("%s is in %d repositories (%s); name one as HOST/REPOSITORY@DIGEST", img.Digest, len(repos), strings.Join(repos, ", "))
		}
	}
	dgst, manifest, err := c.Manifest(ctx, img.Repository, img.Reference())
	if err != nil {
		return nil, err
	}
	return &target{image: img, client: c, digest: dgst, manifest: manifest}, nil
}

// errNoneVerified makes verify exit non-zero after printing its report.
var errNoneVerified = errors.New("no signature verified")
