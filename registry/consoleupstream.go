package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/console"
	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/proxy"
)

// In proxy mode the images live upstream, so the console reads
// repositories, tags, manifests, blobs and referrers from the upstream
// (package proxy, with the service credentials) and signatures from
// Signet's store, as in embedded mode. Who may see what is still decided
// by the console through ConsoleUsers, before anything is read upstream.

// upstreamConsole implements console.Registry over the upstream registry.
type upstreamConsole struct {
	proxy *proxy.Proxy
}

var _ console.Registry = upstreamConsole{}

// upstreamNotFound turns the proxy's 404 into the console's.
func upstreamNotFound(err error) error {
	if errors.Is(err, proxy.ErrNotFound) {
		return fmt.Errorf("%w: %w", err, cosign.ErrNotFound)
	}
	return err
}

// Repositories pages through the upstream's catalog, a list at most
// 30 s old (proxy.Catalog).
func (u upstreamConsole) Repositories(ctx context.Context, keep func(string) bool, offset, limit int) ([]string, int, error) {
	names, err := u.proxy.Catalog(ctx)
	if err != nil {
		return nil, 0, err
	}
	page, total := pageOf(names, keep, offset, limit)
	return page, total, nil
}

// Tags lists the upstream's tags. A repository in the catalog with no
// tags (only untagged manifests, which distribution answers with 404
// NAME_UNKNOWN) has an empty list, as in embedded mode.
func (u upstreamConsole) Tags(ctx context.Context, name string) ([]string, error) {
	tags, err := u.proxy.Tags(ctx, name)
	if errors.Is(err, proxy.ErrNotFound) {
		if names, cerr := u.proxy.Catalog(ctx); cerr == nil {
			if _, listed := slices.BinarySearch(names, name); listed {
				return []string{}, nil
			}
		}
	}
	return tags, upstreamNotFound(err)
}

// TagDigest fetches the tag's manifest and hashes it: the digest shown
// is that of the bytes a pull by tag gets.
func (u upstreamConsole) TagDigest(ctx context.Context, name, tag string) (digest.Digest, error) {
	d, _, err := u.proxy.Manifest(ctx, name, tag)
	return d, upstreamNotFound(err)
}

func (u upstreamConsole) Manifest(ctx context.Context, name, ref string) (digest.Digest, []byte, error) {
	d, body, err := u.proxy.Manifest(ctx, name, ref)
	return d, body, upstreamNotFound(err)
}

func (u upstreamConsole) Blob(ctx context.Context, name string, d digest.Digest, limit int64) ([]byte, error) {
	b, err := u.proxy.Blob(ctx, name, d, limit)
	return b, upstreamNotFound(err)
}

// Referrers asks the upstream's referrers API. An upstream without it
// (distribution up to v3.1.2 answers 404) is read the way OCI 1.1 clients
// fall back: the index under the sha256-<hex> tag, and with no such tag
// an empty index, so that badges and cosign discovery work alike on both.
func (u upstreamConsole) Referrers(ctx context.Context, name string, subject digest.Digest, artifactType string) ([]byte, error) {
	b, err := u.proxy.Referrers(ctx, name, subject, artifactType)
	if !errors.Is(err, proxy.ErrNotFound) {
		return b, err
	}
	_, b, err = u.proxy.Manifest(ctx, name, subject.Algorithm().String()+"-"+subject.Encoded())
	if errors.Is(err, proxy.ErrNotFound) {
		return json.Marshal(newReferrersIndex())
	}
	return b, err
}
