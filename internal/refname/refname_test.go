package refname

import (
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

var anchored = regexp.MustCompile(`^(?:` + reference.NameRegexp.String() + `)$`)

var cases = []string{
	"", "a", "A", "ab", "a/b", "library/ubuntu", "ns/math", "ns/math-voila", "a.b", "a_b", "a__b", "a___b",
	"a-b", "a--b", "a-_b", "a._b", "a.", ".a", "a-", "_a", "a/", "/a", "a//b", "a/B", "Example.com/a",
	"example.com:5000/a", "example.com:/a", "example.com:x/a", "localhost:5000/ns/app", "[::1]/a",
	"[::1]:5000/a", "[]/a", "[::1]x/a", "[g]/a", "[::1", "a-.b", "ex-ample.com/a", "-ex.com/a", "ex-.com/a",
	"ex..com/a", "ex.com./a", "a:1", "a:1/b", "A:1/b", "1/2", "x/y/z/w", "a.b.c/d", "a/b.c_d-e__f--g",
	"UPPER/case", "ok/UPPER", "a b", "a\x00b", "é/a", "[::1]:/a", "[0:0:0:0:0:0:0:1]:65535/x",
	strings.Repeat("a", 300), strings.Repeat("a/", 50) + "a",
}

func TestGrammarMatchesRegexp(t *testing.T) {
	for _, c := range cases {
		if got, want := Grammar(c), anchored.MatchString(c); got != want {
			t.Errorf("Grammar(%q) = %v, reference.NameRegexp says %v", c, got, want)
		}
	}
}

func TestValidMatchesWithName(t *testing.T) {
	for _, c := range cases {
		_, err := reference.WithName(c)
		if got, want := Valid(c), err == nil; got != want {
			t.Errorf("Valid(%q) = %v, reference.WithName says %v (%v)", c, got, want, err)
		}
	}
}

func FuzzGrammar(f *testing.F) {
	for _, c := range cases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Grammar(s), anchored.MatchString(s); got != want {
			t.Fatalf("Grammar(%q) = %v, reference.NameRegexp says %v", s, got, want)
		}
	})
}
