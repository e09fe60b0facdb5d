// Package repoglob matches repository names against globs: the grants of
// the users file (auth) and the external-repository prefixes and export
// filters of the lookaside store (config, registry, cmd/signet) share it,
// so "team-a/**" means the same thing everywhere.
//
// It only compiles and matches patterns; it must not decide what a match
// permits.
package repoglob

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// maxPatternLen matches distribution's limit on a repository name: a
// longer pattern could only match names that cannot exist.
const maxPatternLen = 255

// Pattern is one compiled repository glob:
//
//	"*"   any run of characters other than '/', inside one path component
//	"?"   exactly one character other than '/'
//	"**"  any run of characters, '/' included; as a whole component
//	      followed by '/' ("a/**/b", "**/b") also zero components
//
// Everything else matches itself. Patterns are anchored at both ends, so
// "ns/math" matches neither "ns/math-voila" nor "ns/math/sub".
type Pattern struct {
	text string
	re   *regexp.Regexp
	// all is set for "**": the only pattern that also matches the empty
	// repository, which the front passes for requests not about one
	// repository (the catalog, the global digest lookup).
	all bool
}

var errEmptyPattern = errors.New("empty pattern")

// Compile validates and compiles a repository glob. Only the characters of
// distribution repository names (':' included, for a registry host with a
// port such as "registry.example.com:5000/**") and the wildcards are
// accepted, so a typo such as an uppercase letter or a '[' is reported at
// load time instead of silently matching nothing.
func Compile(text string) (Pattern, error) {
	if text == "" {
		return Pattern{}, errEmptyPattern
	}
	if len(text) > maxPatternLen {
		return Pattern{}, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	if strings.HasPrefix(text, "/") || strings.HasSuffix(text, "/") || strings.Contains(text, "//") {
		return Pattern{}, fmt.Errorf("pattern %q has an empty path component", text)
	}
	if strings.Contains(text, "***") {
		return Pattern{}, fmt.Errorf("pattern %q: use * or **, not ***", text)
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
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '/', c == ':':
			re.WriteByte(c)
		case c == '.', c == '_', c == '-':
			re.WriteString(regexp.QuoteMeta(string(c)))
		case c >= 'A' && c <= 'Z':
			return Pattern{}, fmt.Errorf("pattern %q: repository names are lowercase", text)
		default:
			return Pattern{}, fmt.Errorf("pattern %q: character %q is not allowed (repository name characters, *, ** and ? only)", text, c)
		}
	}
	re.WriteString(`$`)
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return Pattern{}, fmt.Errorf("pattern %q: %w", text, err)
	}
	return Pattern{text: text, re: compiled, all: text == "**"}, nil
}

// Match reports whether repository is covered by the pattern. The empty
// repository is covered only by "**".
func (p Pattern) Match(repository string) bool {
	if repository == "" {
		return p.all
	}
	return p.re != nil && p.re.MatchString(repository)
}

// String is the pattern as written.
func (p Pattern) String() string { return p.text }

// Set is a list of patterns; a repository matches the set when it matches
// any of them. The zero Set matches nothing.
type Set []Pattern

// CompileSet compiles every pattern, reporting the first that is invalid.
func CompileSet(texts []string) (Set, error) {
	set := make(Set, 0, len(texts))
	for i, text := range texts {
		p, err := Compile(text)
		if err != nil {
			return nil, fmt.Errorf("pattern %d: %w", i, err)
		}
		set = append(set, p)
	}
	return set, nil
}

// Match reports whether any pattern of the set covers repository.
func (s Set) Match(repository string) bool {
	for _, p := range s {
		if p.Match(repository) {
			return true
		}
	}
	return false
}
