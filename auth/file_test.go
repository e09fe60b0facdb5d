package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestLoadFixture(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	got := strings.Join(a.users(), ",")
	want := "admin1,alice,auditor1,bob,carol,dave,reader1,signer1,writer1"
	if got != want {
		t.Errorf("users = %s, want %s", got, want)
	}
	st := a.cur.Load()
	if st.cfg.maxCost != 5 {
		t.Errorf("maxCost = %d, want 5 (alice)", st.cfg.maxCost)
	}
	if len(st.stamps) != 2 {
		t.Errorf("stamps = %d, want users file and htpasswd", len(st.stamps))
	}
}

func TestLoadErrors(t *testing.T) {
	hash := bcryptHash(t, "pw", 4)
	tests := []struct {
		name     string
		yaml     string
		htpasswd string // written as ./htpasswd when not empty
		want     string // substring of the error
		field    string // Field of a FileError, when one is expected
		line     int
	}{
		{name: "empty", yaml: "", want: "empty users file"},
		{name: "not yaml", yaml: "version: [1", want: "yaml"},
		{name: "missing version", yaml: "users: {}\n", want: "write \"version: 1\"", field: "version"},
		{name: "version 2", yaml: "version: 2\n", want: "unsupported version 2", field: "version", line: 1},
		{name: "unknown key", yaml: "version: 1\nuserz: {}\n", want: "userz"},
		{name: "unknown user key", yaml: "version: 1\nusers:\n  a:\n    passwd: x\n", want: "passwd"},
		{name: "duplicate key", yaml: "version: 1\nusers:\n  a: {}\n  a: {}\n", want: "already defined"},
		{name: "two documents", yaml: "version: 1\n---\nversion: 1\n", want: "more than one YAML document"},
		{name: "unknown role", yaml: "version: 1\nusers: {a: {}}\ngrants:\n  - repositories: [x]\n    users: [a]\n    roles: [reader, writr]\n",
			want: `unknown role "writr"`, field: "grants[0].roles[1]", line: 6},
		{name: "bad glob", yaml: "version: 1\nusers: {a: {}}\ngrants:\n  - repositories:\n      - ok/**\n      - Bad/x\n    users: [a]\n    roles: [reader]\n",
			want: "lowercase", field: "grants[0].repositories[1]", line: 6},
		{name: "no repositories", yaml: "version: 1\nusers: {a: {}}\ngrants:\n  - users: [a]\n    roles: [reader]\n",
			want: "at least one pattern", field: "grants[0].repositories"},
		{name: "no roles", yaml: "version: 1\nusers: {a: {}}\ngrants:\n  - repositories: [x]\n    users: [a]\n",
			want: "at least one role", field: "grants[0].roles"},
		{name: "no subject", yaml: "version: 1\ngrants:\n  - repositories: [x]\n    roles: [reader]\n",
			want: "users or anonymous", field: "grants[0].users"},
		{name: "unknown user in grant", yaml: "version: 1\nusers: {a: {}}\ngrants:\n  - repositories: [x]\n    users: [a, mallory]\n    roles: [reader]\n",
			want: `unknown user "mallory"`, field: "grants[0].users[1]", line: 5},
		{name: "anonymous signer", yaml: "version: 1\ngrants:\n  - repositories: [x]\n    anonymous: true\n    roles: [reader, signer]\n",
			want: "only give the reader role", field: "grants[0].roles[1]", line: 5},
		{name: "anonymous admin", yaml: "version: 1\ngrants:\n  - repositories: [\"**\"]\n    anonymous: true\n    roles: [admin]\n",
			want: "only give the reader role", field: "grants[0].roles[0]"},
		{name: "token without hash", yaml: "version: 1\nusers:\n  a:\n    tokens:\n      - id: abc\n",
			want: "stored only as their sha256", field: "users.a.tokens[0]", line: 5},
		{name: "token bad hash", yaml: "version: 1\nusers:\n  a:\n    tokens:\n      - id: abc\n        sha256: xyz\n",
			want: "64 lowercase hex", field: "users.a.tokens[0].sha256", line: 6},
		{name: "token uppercase hash", yaml: "version: 1\nusers:\n  a:\n    tokens:\n      - id: abc\n        sha256: " + strings.Repeat("AB", 32) + "\n",
			want: "64 lowercase hex"},
		{name: "token bad id", yaml: "version: 1\nusers:\n  a:\n    tokens:\n      - id: a_b\n        sha256: " + strings.Repeat("ab", 32) + "\n",
			want: "token id", field: "users.a.tokens[0].id"},
		{name: "duplicate token id", yaml: "version: 1\nusers:\n  a:\n    tokens: [{id: abc, sha256: " + strings.Repeat("ab", 32) + "}]\n  b:\n    tokens: [{id: abc, sha256: " + strings.Repeat("cd", 32) + "}]\n",
			want: `also used by user "a"`, field: "users.b.tokens[0].id"},
		{name: "md5 password", yaml: "version: 1\nusers:\n  a:\n    password: \"$apr1$abc$def\"\n",
			want: "only bcrypt", field: "users.a.password", line: 4},
		{name: "plain password", yaml: "version: 1\nusers:\n  a:\n    password: hunter2\n", want: "only bcrypt"},
		{name: "truncated bcrypt", yaml: "version: 1\nusers:\n  a:\n    password: \"" + hash[:40] + "\"\n", want: "malformed bcrypt"},
		{name: "bad user name", yaml: "version: 1\nusers:\n  \"a:b\": {}\n", want: "only letters", field: "users.a:b"},
		{name: "reserved user name", yaml: "version: 1\nusers:\n  anonymous: {}\n", want: "reserved"},
		{name: "htpasswd missing", yaml: "version: 1\nhtpasswd: nowhere\n", want: "no such file", field: "htpasswd", line: 2},
		{name: "htpasswd md5", yaml: "version: 1\nhtpasswd: htpasswd\n", htpasswd: "# x\nbob:$apr1$xyz$abc\n", want: "htpasswd:2: bob: only bcrypt"},
		{name: "htpasswd no colon", yaml: "version: 1\nhtpasswd: htpasswd\n", htpasswd: "bob\n", want: "htpasswd:1"},
		{name: "htpasswd duplicate", yaml: "version: 1\nhtpasswd: htpasswd\n", htpasswd: "bob:" + hash + "\nbob:" + hash + "\n", want: "already defined on line 1"},
		{name: "password in both files", yaml: "version: 1\nhtpasswd: htpasswd\nusers:\n  bob:\n    password: \"" + hash + "\"\n",
			htpasswd: "bob:" + hash + "\n", want: "keep one"},
		{name: "bad token expires", yaml: "version: 1\nusers:\n  a:\n    tokens: [{id: abc, sha256: " + strings.Repeat("ab", 32) + ", expires: tomorrow}]\n", want: "tomorrow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.htpasswd != "" {
				writeFile(t, filepath.Join(dir, "htpasswd"), tt.htpasswd)
			}
			path := filepath.Join(dir, "users.yaml")
			writeFile(t, path, tt.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			for _, secret := range []string{hash[7:], "$apr1$", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %q", err)
				}
			}
			if tt.field == "" {
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FileError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q", fe.Field, tt.field)
			}
			if tt.line != 0 && fe.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", fe.Line, tt.line, err)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, path, "version: 1\ngrants:\n  - repositories: [X]\n    users: [nobody]\n    roles: [root]\n")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{"lowercase", `unknown user "nobody"`, `unknown role "root"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	big := "version: 1\n#" + strings.Repeat("x", maxFileBytes) + "\n"
	writeFile(t, path, big)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("a directory loaded as a users file")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func TestLoadMinimal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, path, "version: 1\n")
	a, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.users()) != 0 {
		t.Errorf("users = %v", a.users())
	}
	// Without passwords the dummy hash uses bcrypt's default cost.
	if c, err := bcrypt.Cost(a.cur.Load().dummyHash); err != nil || c != bcrypt.DefaultCost {
		t.Errorf("dummy cost = %d, %v", c, err)
	}
}

func TestDummyHashCostsARealCheck(t *testing.T) {
	for _, cost := range []int{4, 5, 10, 16} {
		h := dummyHash(cost)
		if c, err := bcrypt.Cost(h); err != nil || c != cost {
			t.Fatalf("cost %d: Cost = %d, %v", cost, c, err)
		}
		if cost > 5 {
			continue // parsing is what matters; don't spend seconds
		}
		// A mismatch, not a format error: the full bcrypt ran.
		if err := bcrypt.CompareHashAndPassword(h, []byte("x")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			t.Errorf("cost %d: compare = %v, want mismatch", cost, err)
		}
	}
}
