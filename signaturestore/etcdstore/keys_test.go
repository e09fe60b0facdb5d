package etcdstore

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestImagePartOrderAndPrefixFree: the key of an image sorts exactly as
// (repository, digest) does, no image's key is a prefix of another's, and
// every key parses back. Hand-picked names (SPEC section 6's ns/math vs
// ns/math-voila, the escape and terminator bytes themselves) and random
// byte strings.
func TestImagePartOrderAndPrefixFree(t *testing.T) {
	repos := []string{
		"ns/math", "ns/math-voila", "ns/math/sub", "ns/mat", "ns/math0", "ns/math.", "ns",
		"a b", "a!b", "a!", "a ", "a\x00", "a\x01b", "a\x20\x21", "!", " ", "a\x7f", "a\xff", "é/ü",
		"registry.example.com:5000/team/app",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, rng.IntN(6)+1)
		for i := range b {
			// Bias towards the bytes around the escape and terminator.
			if rng.IntN(2) == 0 {
				b[i] = byte(0x1e + rng.IntN(6))
			} else {
				b[i] = byte(rng.IntN(256))
			}
		}
		repos = append(repos, string(b))
	}
	digests := []digest.Digest{digest.FromString("a"), digest.FromString("b"), digest.FromString("c")}
	type entry struct {
		repo string
		dgst digest.Digest
		key  string
	}
	var entries []entry
	seen := map[string]bool{}
	for _, r := range repos {
		if seen[r] {
			continue
		}
		seen[r] = true
		for _, d := range digests {
			k := imagePart(r, d)
			entries = append(entries, entry{r, d, k})
			gotRepo, gotDigest, rest, err := parseImagePart(k + "tail")
			if err != nil || gotRepo != r || gotDigest != d || rest != "tail" {
				t.Fatalf("parseImagePart(imagePart(%q, %s)) = %q, %s, %q, %v", r, d, gotRepo, gotDigest, rest, err)
			}
		}
	}
	byName := slices.Clone(entries)
	slices.SortFunc(byName, func(a, b entry) int {
		if c := strings.Compare(a.repo, b.repo); c != 0 {
			return c
		}
		return strings.Compare(string(a.dgst), string(b.dgst))
	})
	byKey := slices.Clone(entries)
	slices.SortFunc(byKey, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for i := range byName {
		if byName[i] != byKey[i] {
			t.Fatalf("order differs at %d: by name %q, by key %q", i, byName[i].repo, byKey[i].repo)
		}
	}
	for i := 1; i < len(byKey); i++ {
		if strings.HasPrefix(byKey[i].key, byKey[i-1].key) {
			t.Fatalf("key of %q is a prefix of the key of %q", byKey[i-1].repo, byKey[i].repo)
		}
	}
	// Names Signet accepts stay readable.
	if got := imagePart("ns/math-voila", digests[0]); got != "ns/math-voila "+string(digests[0])+"/" {
		t.Fatalf("plain name escaped: %q", got)
	}
}

func TestParseImagePartRefuses(t *testing.T) {
	d := string(digest.FromString("a"))
	for _, k := range []string{
		"", "ns", "ns " + d, "ns sha256:abc/", "ns\x01 " + d + "/", "ns!", "ns!\x10 " + d + "/", " " + d + "/",
		"ns ../../etc/", "ns " + d + "x/",
	} {
		if _, _, _, err := parseImagePart(k); err == nil {
			t.Errorf("parseImagePart(%q) accepted", k)
		}
	}
}

func TestParseSeq(t *testing.T) {
	for _, n := range []uint64{0, 1, 255, 1 << 40, ^uint64(0)} {
		got, err := parseSeq(seqString(n))
		if err != nil || got != n {
			t.Fatalf("parseSeq(seqString(%d)) = %d, %v", n, got, err)
		}
	}
	for _, s := range []string{"", "0", "000000000000000G", "000000000000000A", "00000000000000000"} {
		if _, err := parseSeq(s); err == nil {
			t.Errorf("parseSeq(%q) accepted", s)
		}
	}
}
