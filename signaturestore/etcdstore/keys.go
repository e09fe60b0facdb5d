package etcdstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// Top-level trees under the prefix. Each ends in "/", and none is a prefix
// of another.
const (
	treeSig      = "sig/"
	treeName     = "name/"
	treeHash     = "hash/"
	treeStat     = "stat/"
	treeJournal  = "journal/"
	treeRefBySub = "ref/s/"
	treeRefOf    = "ref/r/"
	treeRefPend  = "ref/p/"
	keySchema    = "schema"
)

// Repository escaping (see the package comment). The terminator sorts
// below every byte an escaped name can contain, and the escape byte below
// every literal byte, so the encoding keeps byte order and no encoded name
// is a prefix of another.
const (
	repoEnd   = ' ' // 0x20: ends an escaped repository
	repoEsc   = '!' // 0x21: starts a two-byte escape
	escOffset = 0x21
	escOfEsc  = escOffset + repoEnd + 1 // second byte for a literal '!'
)

// seqDigits is the width of a sequence number in a key: lowercase hex, so
// keys sort in insertion order.
const seqDigits = 16

func escapeRepository(b *strings.Builder, repo string) {
	for i := 0; i < len(repo); i++ {
		c := repo[i]
		switch {
		case c < repoEsc:
			b.WriteByte(repoEsc)
			b.WriteByte(c + escOffset)
		case c == repoEsc:
			b.WriteByte(repoEsc)
			b.WriteByte(escOfEsc)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(repoEnd)
}

// imagePart is the part of a key that names one image:
// esc(repository) + " " + digest + "/".
func imagePart(repo string, dgst digest.Digest) string {
	var b strings.Builder
	b.Grow(len(repo) + len(dgst) + 4)
	escapeRepository(&b, repo)
	b.WriteString(string(dgst))
	b.WriteByte('/')
	return b.String()
}

var errBadKey = errors.New("malformed key")

// parseImagePart reads an image part from the front of s and returns the
// image and what follows it.
func parseImagePart(s string) (repo string, dgst digest.Digest, rest string, err error) {
	var b strings.Builder
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == repoEnd {
			break
		}
		if c < repoEsc {
			return "", "", "", fmt.Errorf("%w: unescaped byte %#x in repository", errBadKey, c)
		}
		if c != repoEsc {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", "", "", fmt.Errorf("%w: truncated escape", errBadKey)
		}
		i++
		switch e := s[i]; {
		case e == escOfEsc:
			b.WriteByte(repoEsc)
		case e >= escOffset && e < escOfEsc:
			b.WriteByte(e - escOffset)
		default:
			return "", "", "", fmt.Errorf("%w: bad escape %#x", errBadKey, e)
		}
	}
	if i >= len(s) {
		return "", "", "", fmt.Errorf("%w: unterminated repository", errBadKey)
	}
	slash := strings.IndexByte(s[i+1:], '/')
	if slash < 0 {
		return "", "", "", fmt.Errorf("%w: no end of digest", errBadKey)
	}
	dgst = digest.Digest(s[i+1 : i+1+slash])
	repo = b.String()
	if err := validateKey(signaturestore.ImageKey{Repository: repo, Digest: dgst}); err != nil {
		return "", "", "", fmt.Errorf("%w: %w", errBadKey, err)
	}
	return repo, dgst, s[i+2+slash:], nil
}

// keys builds every key of one store.
type keys struct {
	prefix string
}

func (k keys) schema() string { return k.prefix + keySchema }

// tree is the range of one top-level tree.
func (k keys) tree(name string) string { return k.prefix + name }

func (k keys) sigs(img string) string { return k.prefix + treeSig + img }
func (k keys) sig(img string, seq uint64) string {
	return k.sigs(img) + fmt.Sprintf("%0*x", seqDigits, seq)
}
func (k keys) names(img string) string             { return k.prefix + treeName + img }
func (k keys) name(img, name string) string        { return k.names(img) + name }
func (k keys) hashes(img string) string            { return k.prefix + treeHash + img }
func (k keys) hash(img string, hash string) string { return k.hashes(img) + hash }
func (k keys) stat(img string) string              { return k.prefix + treeStat + img }
func (k keys) journal(img string) string           { return k.prefix + treeJournal + img }

// bySubject is the range of one subject's referrers in one repository.
func (k keys) bySubject(repo string, subject digest.Digest) string {
	return k.prefix + treeRefBySub + imagePart(repo, subject)
}
func (k keys) refOf(repo string, ref digest.Digest) string {
	return k.prefix + treeRefOf + imagePart(repo, ref)
}
func (k keys) refPending(repo string, ref digest.Digest) string {
	return k.prefix + treeRefPend + imagePart(repo, ref)
}

// parseSeq reads a sequence number key suffix.
func parseSeq(s string) (uint64, error) {
	if len(s) != seqDigits {
		return 0, fmt.Errorf("%w: sequence %q", errBadKey, s)
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return 0, fmt.Errorf("%w: sequence %q", errBadKey, s)
		}
		n = n<<4 | uint64(v)
	}
	return n, nil
}

// validatePrefix checks a configured key prefix: it must end in "/" so
// that "/a/" and "/ab/" stay apart, and contain only printable ASCII so
// that operators can read it in etcdctl.
func validatePrefix(p string) error {
	if p == "" || !strings.HasSuffix(p, "/") {
		return fmt.Errorf("etcd key prefix %q must be non-empty and end in \"/\"", p)
	}
	if len(p) > 256 {
		return fmt.Errorf("etcd key prefix longer than 256 bytes")
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] > '~' {
			return fmt.Errorf("etcd key prefix %q: byte %#x is not printable ASCII", p, p[i])
		}
	}
	return nil
}
