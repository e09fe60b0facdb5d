package lookaside

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Limits of a lookaside read, those of containers/image (SPEC section 2).
const (
	// MaxSignatures is how many signatures one image may have in a
	// lookaside store; a source holding more is treated as broken.
	MaxSignatures = 128
	// MaxSignatureBytes caps one signature.
	MaxSignatureBytes = 4 << 20
	// MaxImageBytes caps all signatures of one image read from a source.
	// A Signet image holds at most 4 MiB, so this is generous.
	MaxImageBytes = 16 << 20
)

// Errors of untrusted source data; callers test them with errors.Is.
var (
	// ErrNotOpenPGP: a blob is not an OpenPGP binary message (for
	// example an HTML error page served with status 200).
	ErrNotOpenPGP = errors.New("not an OpenPGP binary message")
	// ErrTooMany: the source lists more than MaxSignatures.
	ErrTooMany = fmt.Errorf("more than %d signatures", MaxSignatures)
	// ErrTooLarge: a signature, or all of an image's, is over the limit.
	ErrTooLarge = errors.New("signature data over the size limit")
)

// ImageDir is the directory of one image's signatures relative to a
// lookaside base: "<repository>@sha256=<hex>".
func ImageDir(repository string, dgst digest.Digest) string {
	return repository + "@" + dgst.Algorithm().String() + "=" + dgst.Encoded()
}

// SignatureFile names the n-th signature (from 1) of an image directory.
func SignatureFile(n int) string { return "signature-" + strconv.Itoa(n) }

// SignatureURL is the URL of the n-th signature (from 1) of dgst under
// base, where base already ends in the repository, as BaseURL returns it.
func SignatureURL(base *url.URL, dgst digest.Digest, n int) *url.URL {
	u := *base
	u.Path = base.Path + "@" + dgst.Algorithm().String() + "=" + dgst.Encoded() + "/" + SignatureFile(n)
	u.RawPath = ""
	return &u
}

// ParseImageDir is ImageDir's inverse for a slash-separated relative
// path. It accepts only a valid repository name and a sha256 digest, so a
// name it returns is safe to join onto a directory.
func ParseImageDir(rel string) (repository string, dgst digest.Digest, ok bool) {
	repository, hex, found := strings.Cut(rel, "@sha256=")
	if !found || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", "", false
	}
	if _, err := reference.WithName(repository); err != nil {
		return "", "", false
	}
	return repository, digest.Digest("sha256:" + hex), true
}

// OpenPGP packet tags that may open a signed message (RFC 4880 section
// 4.3): compressed data (gpg's default), one-pass signature, or a
// signature packet (the old "signature, literal" order).
const (
	tagSignature        = 2
	tagOnePassSignature = 4
	tagCompressed       = 8
)

// CheckBlob rejects what cannot be a signature before it is stored: an
// empty or oversized blob, or one whose first byte is not the header of a
// packet that opens an OpenPGP binary signed message. It is a sniff, not a
// parse, and says nothing about validity: an HTML page ('<' has bit 7
// clear) or ASCII armor ('-') fails, a corrupt message may pass.
func CheckBlob(untrusted []byte) error {
	if len(untrusted) == 0 {
		return fmt.Errorf("%w: empty", ErrNotOpenPGP)
	}
	if len(untrusted) > MaxSignatureBytes {
		return fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(untrusted), MaxSignatureBytes)
	}
	b := untrusted[0]
	if b&0x80 == 0 {
		return fmt.Errorf("%w: first byte %#02x is not a packet header", ErrNotOpenPGP, b)
	}
	tag := int(b>>2) & 0x0f // old format
	if b&0x40 != 0 {
		tag = int(b & 0x3f) // new format
	}
	switch tag {
	case tagSignature, tagOnePassSignature, tagCompressed:
		return nil
	}
	return fmt.Errorf("%w: first packet has tag %d", ErrNotOpenPGP, tag)
}
