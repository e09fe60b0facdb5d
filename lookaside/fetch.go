package lookaside

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/signaturestore"
)

// Source reads the signatures of one image from another store. The blobs
// come back in the source's order and have passed CheckBlob and the
// count and size limits; an error means nothing should be stored.
type Source interface {
	Signatures(ctx context.Context, image reference.Named, dgst digest.Digest) ([][]byte, error)
}

// collector applies the limits every source shares while blobs arrive,
// so a misbehaving source is stopped as soon as it goes wrong.
type collector struct {
	blobs [][]byte
	total int64
}

func (c *collector) add(untrusted []byte) error {
	if len(c.blobs) >= MaxSignatures {
		return ErrTooMany
	}
	if err := CheckBlob(untrusted); err != nil {
		return err
	}
	c.total += int64(len(untrusted))
	if c.total > MaxImageBytes {
		return fmt.Errorf("%w: the image's signatures exceed %d bytes", ErrTooLarge, MaxImageBytes)
	}
	c.blobs = append(c.blobs, untrusted)
	return nil
}

// Lookaside reads from the lookaside store that a registries.d directory
// names for the image, over http, https or file URLs, as containers/image
// does: signature-1, signature-2, ... until the first 404 (or missing
// file). Any other answer fails the whole image.
type Lookaside struct {
	// RegistriesDir is the registries.d directory; empty means the
	// system defaults.
	RegistriesDir string
	// Client fetches http(s) URLs; nil means a client with a one-minute
	// timeout.
	Client *http.Client
}

// Signatures implements Source.
func (l *Lookaside) Signatures(ctx context.Context, image reference.Named, dgst digest.Digest) ([][]byte, error) {
	base, err := BaseURL(l.RegistriesDir, image)
	if err != nil {
		return nil, err
	}
	hc := l.Client
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	var c collector
	// One request past MaxSignatures tells "exactly the limit" from "more".
	for n := 1; n <= MaxSignatures+1; n++ {
		u := SignatureURL(base, dgst, n)
		untrusted, found, err := fetchOne(ctx, hc, u)
		if err == nil && found {
			err = c.add(untrusted)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
		}
		if !found {
			break
		}
	}
	return c.blobs, nil
}

// errStatus is an answer other than 200 or 404.
type errStatus struct{ status string }

func (e errStatus) Error() string { return "source answered " + e.status }

// fetchOne reads one signature; found is false for a 404 or a missing
// file, the end of the list.
func fetchOne(ctx context.Context, hc *http.Client, u *url.URL) (untrusted []byte, found bool, err error) {
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, err
		}
		defer f.Close()
		b, err := readBounded(f)
		return b, err == nil, err
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, false, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			b, err := readBounded(resp.Body)
			return b, err == nil, err
		case http.StatusNotFound:
			return nil, false, nil
		}
		return nil, false, errStatus{resp.Status}
	}
	return nil, false, fmt.Errorf("unsupported lookaside URL scheme %q", u.Scheme)
}

// readBounded reads at most MaxSignatureBytes; more is an error rather
// than a silent truncation.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSignatureBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read signature: %w", err)
	}
	if len(b) > MaxSignatureBytes {
		return nil, fmt.Errorf("%w: a signature over %d bytes", ErrTooLarge, MaxSignatureBytes)
	}
	return b, nil
}

// ExtensionLister lists an image's signatures through a registry's
// signature extension API; client.Client implements it.
type ExtensionLister interface {
	Signatures(ctx context.Context, repository string, dgst digest.Digest) ([]extensions.Signature, error)
}

// Extension reads from the image's own registry through the extension API
// (/extensions/v2/...). Entries of a type other than atomic are skipped,
// as containers/image skips them.
type Extension struct {
	// Registry returns a lister for a registry host (HOST[:PORT]).
	Registry func(host string) (ExtensionLister, error)
}

// Signatures implements Source.
func (e *Extension) Signatures(ctx context.Context, image reference.Named, dgst digest.Digest) ([][]byte, error) {
	l, err := e.Registry(reference.Domain(image))
	if err != nil {
		return nil, err
	}
	// The lister bounds the whole response (4 MiB, as clients do).
	list, err := l.Signatures(ctx, reference.Path(image), dgst)
	if err != nil {
		return nil, err
	}
	var c collector
	for _, s := range list {
		if s.Type != signaturestore.TypeAtomic {
			continue
		}
		if err := c.add(s.Content); err != nil {
			return nil, fmt.Errorf("signature %.80q: %w", s.Name, err)
		}
	}
	return c.blobs, nil
}
