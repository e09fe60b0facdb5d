package auth

import "testing"

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
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.repo, func(t *testing.T) {
			p, err := compilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.match(tt.repo); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.repo, got, tt.want)
			}
		})
	}
}

func TestPatternInvalid(t *testing.T) {
	for _, p := range []string{
		"", "/ns", "ns/", "ns//x", "NS/x", "ns/[ab]", "ns/x y", "ns/***", "ns/x\\y",
		"ns/(a|b)", "ns/a+", "ns/é", string(make([]byte, 300)),
	} {
		t.Run(p, func(t *testing.T) {
			if _, err := compilePattern(p); err == nil {
				t.Errorf("compilePattern(%q) succeeded", p)
			}
		})
	}
}
