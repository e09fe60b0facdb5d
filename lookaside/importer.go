package lookaside

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// ErrDuplicate is what a Destination returns for a signature it already
// holds (the extension API's 409 SIGNATURE_EXISTS); the import counts it as
// skipped.
var ErrDuplicate = errors.New("signature already stored")

// Destination stores imported signatures, unverified.
type Destination interface {
	// Put stores one signature blob for dgst in repository.
	Put(ctx context.Context, repository string, dgst digest.Digest, untrusted []byte) error
}

// Importer copies signatures from a Source into a Destination, one image
// at a time. A failing image is reported in its Result and the others go
// on.
type Importer struct {
	Source      Source
	Destination Destination
	// Resolve returns the manifest digest of a source image named by tag
	// (or by name alone). It is not called for digested references.
	Resolve func(ctx context.Context, image reference.Named) (digest.Digest, error)
	// Place names the destination repository of an image.
	Place func(ctx context.Context, image reference.Named, dgst digest.Digest) (string, error)
	// Progress, when set, is told about every signature and image.
	Progress *Progress
}

// Result is the outcome of one image.
type Result struct {
	Image      string
	Digest     digest.Digest
	Repository string
	// Found counts the signatures the source holds; Added and Skipped
	// (duplicates) those stored and those already there.
	Found, Added, Skipped int
	Err                   error
}

// Summary adds up a run.
type Summary struct {
	Results               []Result
	Added, Skipped, Found int
	Failed                int
}

// Run imports every image. The same image (name and digest) given twice is
// imported once.
func (im *Importer) Run(ctx context.Context, images []reference.Named) Summary {
	var sum Summary
	seen := map[string]bool{}
	for _, image := range images {
		if ctx.Err() != nil {
			break
		}
		res := im.one(ctx, image, seen)
		if res == nil {
			continue
		}
		sum.Results = append(sum.Results, *res)
		sum.Found += res.Found
		sum.Added += res.Added
		sum.Skipped += res.Skipped
		if res.Err != nil {
			sum.Failed++
		}
		im.Progress.image(*res)
	}
	return sum
}

// one imports one image; it returns nil for an image already done in this
// run.
func (im *Importer) one(ctx context.Context, image reference.Named, seen map[string]bool) *Result {
	image = reference.TagNameOnly(image) // a bare name means :latest, as everywhere
	res := &Result{Image: reference.FamiliarString(image)}
	if d, ok := image.(reference.Digested); ok {
		res.Digest = d.Digest()
	} else {
		dgst, err := im.Resolve(ctx, image)
		if err != nil {
			res.Err = fmt.Errorf("resolve digest: %w", err)
			return res
		}
		res.Digest = dgst
	}
	key := image.Name() + "@" + res.Digest.String()
	if seen[key] {
		return nil
	}
	seen[key] = true
	named, err := reference.WithDigest(reference.TrimNamed(image), res.Digest)
	if err != nil {
		res.Err = err
		return res
	}
	// Everything is read and checked before anything is stored, so a
	// source that fails half-way leaves the destination unchanged.
	blobs, err := im.Source.Signatures(ctx, named, res.Digest)
	if err != nil {
		res.Err = fmt.Errorf("read signatures: %w", err)
		return res
	}
	res.Found = len(blobs)
	if len(blobs) == 0 {
		return res
	}
	if res.Repository, err = im.Place(ctx, named, res.Digest); err != nil {
		res.Err = fmt.Errorf("choose destination repository: %w", err)
		return res
	}
	for i, blob := range blobs {
		err := im.Destination.Put(ctx, res.Repository, res.Digest, blob)
		switch {
		case errors.Is(err, ErrDuplicate):
			res.Skipped++
		case err != nil:
			res.Err = fmt.Errorf("store signature %d of %d: %w", i+1, len(blobs), err)
			return res
		default:
			res.Added++
		}
		im.Progress.signature()
	}
	return res
}
