package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/registry"
)

func TestCreateTokenRoundTrip(t *testing.T) {
	path := writeFixture(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token, info, err := CreateToken(path, "alice", CreateTokenOptions{TTL: 720 * time.Hour, Description: "ci", Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	id, ok := parseToken(token)
	if !ok || id != info.ID {
		t.Fatalf("token %q does not parse to id %q", token, info.ID)
	}
	if !info.Created.Equal(testNow()) || !info.Expires.Equal(testNow().Add(720*time.Hour)) {
		t.Errorf("info = %+v", info)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(after)
	if strings.Contains(text, token) || strings.Contains(text, token[len(token)-52:]) {
		t.Fatal("the plaintext token was written to the users file")
	}
	for _, keep := range []string{"# Signet users", "b0b0000000000003", "public/**", "htpasswd: htpasswd"} {
		if !strings.Contains(text, keep) {
			t.Errorf("edit lost %q:\n%s", keep, text)
		}
	}
	if len(after) <= len(before) {
		t.Error("file did not grow")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users.yaml.tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	a, err := LoadWithOptions(path, Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{bearer(token), basic("alice", token)} {
		if user, err := a.Authorize(request(h), "team-a/x", registry.AccessPull); err != nil || user != "alice" {
			t.Fatalf("new token: %q, %v", user, err)
		}
	}
	if _, ok := a.Authenticate(request(basic("bob", token))); ok {
		t.Fatal("alice's token logged in bob")
	}
	// The token expires with its TTL.
	late, err := LoadWithOptions(path, Options{Now: func() time.Time { return testNow().Add(721 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := late.Authenticate(request(bearer(token))); ok {
		t.Fatal("token valid after its TTL")
	}

	list, err := ListTokens(path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != info.ID || list[0].Description != "ci" || list[0].Status(testNow()) != "active" {
		t.Fatalf("list = %+v", list)
	}

	if err := RevokeToken(path, "alice", info.ID); err != nil {
		t.Fatal(err)
	}
	if err := RevokeToken(path, "alice", info.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Authenticate(request(bearer(token))); ok {
		t.Fatal("revoked token still works")
	}
	list, err = ListTokens(path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Revoked || list[0].Status(testNow()) != "revoked" {
		t.Fatalf("after revoke: %+v", list)
	}
}

func TestTokenManagementErrors(t *testing.T) {
	path := writeFixture(t)
	if _, _, err := CreateToken(path, "mallory", CreateTokenOptions{}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("create for unknown user: %v", err)
	}
	if _, _, err := CreateToken(path, "alice", CreateTokenOptions{TTL: -time.Hour}); err == nil {
		t.Error("negative TTL accepted")
	}
	if _, _, err := CreateToken(path, "alice", CreateTokenOptions{Description: "a\nb"}); err == nil {
		t.Error("multi-line description accepted")
	}
	if err := RevokeToken(path, "alice", "b0b0000000000001"); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("revoking bob's token as alice: %v", err)
	}
	if err := RevokeToken(path, "bob", "nope"); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("revoking a missing token: %v", err)
	}
	if _, err := ListTokens(path, "mallory"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("list for unknown user: %v", err)
	}
	list, err := ListTokens(path, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, tk := range list {
		statuses = append(statuses, tk.Status(testNow()))
	}
	if got := strings.Join(statuses, ","); got != "active,expired,revoked,active" {
		t.Errorf("bob's token statuses = %s", got)
	}

	// An invalid file is not edited.
	bad := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, bad, "version: 1\nusers: {a: {}}\ngrants: [{repositories: [x], users: [ghost], roles: [reader]}]\n")
	if _, _, err := CreateToken(bad, "a", CreateTokenOptions{}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("create in an invalid file: %v", err)
	}
}

// TestCreateTokenShapes covers the places a user can be written: only in
// htpasswd, with a null value, in flow style, with "tokens: []".
func TestCreateTokenShapes(t *testing.T) {
	for _, tt := range []struct{ name, yaml string }{
		{"htpasswd only", "version: 1\nhtpasswd: htpasswd\n"},
		{"htpasswd only, empty users", "version: 1\nhtpasswd: htpasswd\nusers: {}\n"},
		{"null user", "version: 1\nusers:\n  carol:\n"},
		{"flow user", "version: 1\nusers:\n  carol: {}\n"},
		{"empty flow tokens", "version: 1\nusers:\n  carol:\n    tokens: []\n"},
		{"null tokens", "version: 1\nusers:\n  carol:\n    tokens:\n"},
		{"compact sequences", "version: 1\nusers:\n  carol:\n    tokens:\n    - id: abc\n      sha256: \"" + strings.Repeat("ab", 32) + "\"\n"},
		{"four spaces", "version: 1\nusers:\n    carol:\n        tokens:\n            - id: abc\n              sha256: \"" + strings.Repeat("ab", 32) + "\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "htpasswd"), fixtureHtpasswd(t))
			path := filepath.Join(dir, "users.yaml")
			writeFile(t, path, tt.yaml)
			token, _, err := CreateToken(path, "carol", CreateTokenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			a, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if user, ok := a.Authenticate(request(bearer(token))); !ok || user != "carol" {
				data, _ := os.ReadFile(path)
				t.Fatalf("token refused; file:\n%s", data)
			}
			data, _ := os.ReadFile(path)
			if strings.Contains(tt.name, "four") && !strings.Contains(string(data), "\n    carol:\n        tokens:") {
				t.Errorf("indentation not kept:\n%s", data)
			}
			if strings.Contains(tt.name, "compact") && !strings.Contains(string(data), "\n    tokens:\n    - id: abc") {
				t.Errorf("compact sequences not kept:\n%s", data)
			}
		})
	}
}

func TestCreateTokenThroughSymlink(t *testing.T) {
	path := writeFixture(t)
	link := filepath.Join(t.TempDir(), "link.yaml")
	if err := os.Symlink(path, link); err != nil {
		t.Skip(err)
	}
	// The htpasswd path is relative to the file as named; keep both
	// working by linking htpasswd too.
	if err := os.Symlink(filepath.Join(filepath.Dir(path), "htpasswd"), filepath.Join(filepath.Dir(link), "htpasswd")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateToken(link, "alice", CreateTokenOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	list, err := ListTokens(path, "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("target not edited: %v, %v", list, err)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("s3cret"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkBcrypt(h); err != nil {
		t.Fatalf("hash not accepted by the loader: %v", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Fatal("hash does not verify")
	}
	for _, tt := range []struct {
		name string
		pw   string
		cost int
	}{
		{"empty", "", 4},
		{"too long", strings.Repeat("x", 73), 4},
		{"control", "a\tb", 4},
		{"token shaped", bobToken, 4},
		{"cost too low", "x", 3},
		{"cost too high", "x", 17},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := HashPassword([]byte(tt.pw), tt.cost); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestDetectIndent(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		indent  int
		compact bool
	}{
		{"empty", "", 2, false},
		{"flat", "version: 1\n", 2, false},
		{"two", "a:\n  b: 1\n", 2, false},
		{"four", "a:\n    b: 1\n", 4, false},
		{"indented seq", "a:\n  - 1\n", 2, false},
		{"compact seq", "a:\n- 1\n", 2, true},
		{"compact nested", "a:\n  b:\n  - 1\n", 2, true},
		{"comment between", "a:\n  # x\n  b:\n    - 1\n", 2, false},
		{"key with comment", "a: # note\n- 1\n", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			indent, compact := detectIndent([]byte(tt.in))
			if indent != tt.indent || compact != tt.compact {
				t.Errorf("= %d, %v; want %d, %v", indent, compact, tt.indent, tt.compact)
			}
		})
	}
}

// TestScalarsStayStrings: hex ids and hashes made only of digits, or
// looking like floats, must be written quoted or they read back as
// numbers.
func TestScalarsStayStrings(t *testing.T) {
	for _, v := range []string{"1234567890123456", "1234e5", "0x12", "yes", "null", "1_000"} {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setKey(m, "v", strNode(v))
		out, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		if s, ok := back["v"].(string); !ok || s != v {
			t.Errorf("%q encoded as %q reads back as %#v", v, out, back["v"])
		}
	}
}
