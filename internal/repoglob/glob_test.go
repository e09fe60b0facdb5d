package repoglob

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		repo    string
		want    bool
	}{
		{"ns/math", "ns/math", true},
		{"ns/math", "ns/math-voila", false},
		{"ns/math", "ns/mat", false},
		{"ns/math", "ns/math/sub", false},
		{"ns/math", "xns/math", false},
		{"ns/math*", "ns/math-voila", true},
		{"ns/*", "ns/math", true},
		{"ns/*", "ns/math/sub", false},
		{"ns/*", "ns", false},
		{"ns/*", "other/math", false},
		{"*", "library", true},
		{"*", "ns/math", false},
		{"*/*", "ns/math", true},
		{"*/*", "ns/math/sub", false},
		{"ns/**", "ns/math", true},
		{"ns/**", "ns/math/sub/deep", true},
		{"ns/**", "ns", false},
		{"ns/**", "nsx/math", false},
		{"ns/**", "ns-x/math", false},
		{"**", "anything/at/all", true},
		{"**", "x", true},
		{"**/math", "math", true},
		{"**/math", "a/b/math", true},
		{"**/math", "a/b/math-voila", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/xb", false},
		{"a/**b", "a/x/yb", true},
		{"ns/m?th", "ns/math", true},
		{"ns/m?th", "ns/m/th", false},
		{"ns/m?th", "ns/mth", false},
		{"team.a/x_y-z", "team.a/x_y-z", true},
		{"team.a/x", "teamxa/x", false}, // '.' is literal, not a regexp wildcard
		// The empty repository (catalog, global digest lookup) is
		// covered only by "**".
		{"**", "", true},
		{"*", "", false},
		{"**/**", "", false},
		{"ns/**", "", false},
		{"?", "", false},
		// A registry host with a port, for external repositories.
		{"127.0.0.1:5000/**", "127.0.0.1:5000/ns/app", true},
		{"127.0.0.1:5000/**", "127.0.0.1:5001/ns/app", false},
		{"docker.io/library/**", "docker.io/library/nginx", true},
		{"docker.io/library/**", "docker.io/libraryx/nginx", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.repo, func(t *testing.T) {
			p, err := Compile(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tt.repo); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.repo, got, tt.want)
			}
		})
	}
}

func TestPatternInvalid(t *testing.T) {
	for _, p := range []string{
		"", "/ns", "ns/", "ns//x", "NS/x", "ns/[ab]", "ns/x y", "ns/***", "ns/x\\y",
		"ns/(a|b)", "ns/a+", "ns/é", string(make([]byte, 300)), "host:5000/[::1]",
	} {
		t.Run(p, func(t *testing.T) {
			if _, err := Compile(p); err == nil {
				t.Errorf("Compile(%q) succeeded", p)
			}
		})
	}
}

func TestSet(t *testing.T) {
	set, err := CompileSet([]string{"docker.io/library/**", "registry.example.com/**"})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{
		"docker.io/library/nginx":        true,
		"registry.example.com/ns/app":    true,
		"registry.example.com":           false,
		"registry.example.com.evil/ns/a": false,
		"ns/app":                         false,
		"":                               false,
	}
	for repo, want := range tests {
		if got := set.Match(repo); got != want {
			t.Errorf("Match(%q) = %v, want %v", repo, got, want)
		}
	}
	if (Set{}).Match("x") || (Set(nil)).Match("") {
		t.Error("the empty set matched")
	}
	if _, err := CompileSet([]string{"ok/**", "Bad"}); err == nil || !strings.Contains(err.Error(), "pattern 1") {
		t.Errorf("invalid pattern: %v", err)
	}
}
