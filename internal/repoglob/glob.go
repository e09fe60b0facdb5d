package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// maxPatternLen matches distribution's limit on a repository name: a
// longer pattern could only match names that cannot exist.
const maxPatternLen = 255

// pattern is one compiled repository glob:
//
//	"*"   any run of characters other than '/', inside one path component
//	"?"   exactly one character other than '/'
//	"**"  any run of characters, '/' included; as a whole component
//	      followed by '/' ("a/**/b", "**/b") also zero components
//
// Everything else matches itself. Patterns are anchored at both ends, so
// "ns/math" matches neither "ns/math-voila" nor "ns/math/sub".
type pattern struct {
	text string
	re   *regexp.Regexp
	// all is set for "**": the only pattern that also matches the empty
	// repository, which the front passes for requests not about one
	// repository (the catalog, the global digest lookup).
	all bool
}

var errEmptyPattern = errors.New("empty pattern")

// compilePattern validates and compiles a repository glob. Only the
// characters of distribution repository names and the wildcards are
// accepted, so a typo such as an uppercase letter or a '[' is reported at
// load time instead of silently matching nothing.
func compilePattern(text string) (pattern, error) {
	if text == "" {
		return pattern{}, errEmptyPattern
	}
	if len(text) > maxPatternLen {
		return pattern{}, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	if strings.HasPrefix(text, "/") || strings.HasSuffix(text, "/") || strings.Contains(text, "//") {
		return pattern{}, fmt.Errorf("pattern %q has an empty path component", text)
	}
	if strings.Contains(text, "***") {
		return pattern{}, fmt.Errorf("pattern %q: use * or **, not ***", text)
	}
	var re strings.Builder
	re.WriteString(`^`)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '*' && i+1 < len(text) && text[i+1] == '*':
			atStart := i == 0 || text[i-1] == '/'
			if atStart && i+2 < len(text) && text[i+2] == '/' {
				// "**/" as whole components: zero or more of them.
				re.WriteString(`(?:.*/)?`)
				i += 2
			} else {
				re.WriteString(`.*`)
				i++
			}
		case c == '*':
			re.WriteString(`[^/]*`)
		case c == '?':
			re.WriteString(`[^/]`)
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '/':
			re.WriteByte(c)
		case c == '.', c == '_', c == '-':
			re.WriteString(regexp.QuoteMeta(string(c)))
		case c >= 'A' && c <= 'Z':
			return pattern{}, fmt.Errorf("pattern %q: repository names are lowercase", text)
		default:
			return pattern{}, fmt.Errorf("pattern %q: character %q is not allowed (repository name characters, *, ** and ? only)", text, c)
		}
	}
	re.WriteString(`$`)
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", text, err)
	}
	return pattern{text: text, re: compiled, all: text == "**"}, nil
}

// match reports whether repository is covered by the pattern. The empty
// repository is covered only by "**".
func (p pattern) match(repository string) bool {
	if repository == "" {
		return p.all
	}
	return p.re.MatchString(repository)
}
