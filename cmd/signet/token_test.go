package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/auth"
	"github.com/signet-registry/signet/registry"
)

// runToken runs "signet token ARGS..." in-process with separate stdout
// and stderr, so tests can check that stdout holds only the result.
func runToken(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "signet", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newTokenCmd(func(k string) string { return env[k] }))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"token"}, args...))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func writeUsersFile(t *testing.T) string {
	t.Helper()
	hash, err := auth.HashPassword([]byte("alice-pw"), 4)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	content := `# who may do what
version: 1
users:
  alice:
    password: "` + hash + `"   # alice's login
  bob:
    tokens:
      - id: old0000000000001
        sha256: "` + strings.Repeat("ab", 32) + `"
        created: 1999-01-01T00:00:00Z
        expires: 2000-01-01T00:00:00Z
grants:
  - repositories: ["team-a/**"]
    users: [alice, bob]
    roles: [reader, signer]
`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func authorizeBearer(t *testing.T, path, token string) error {
	t.Helper()
	a, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPut, "http://signet.test/extensions/v2/team-a/app/signatures/x", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	_, err = a.Authorize(r, "team-a/app", registry.AccessSign)
	return err
}

func TestTokenCreateRevokeList(t *testing.T) {
	path := writeUsersFile(t)

	stdout, stderr, err := runToken(t, nil, "", "create", "alice", "--users-file", path, "--expires", "720h", "--description", "ci")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	// Stdout is exactly the token and a newline.
	if !regexp.MustCompile(`^sgt_[0-9a-f]{16}_[a-z2-7]{52}\n$`).MatchString(stdout) {
		t.Fatalf("stdout = %q, want only the token", stdout)
	}
	token := strings.TrimSpace(stdout)
	id := strings.Split(token, "_")[1]
	if !strings.Contains(stderr, id) || !strings.Contains(stderr, "expires") {
		t.Errorf("stderr = %q", stderr)
	}
	if err := authorizeBearer(t, path, token); err != nil {
		t.Fatalf("new token refused: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), token[len(token)-52:]) {
		t.Fatal("the users file holds the token secret")
	}
	for _, keep := range []string{"# who may do what", "# alice's login", "old0000000000001"} {
		if !strings.Contains(string(data), keep) {
			t.Errorf("edit lost %q", keep)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after edit: %v, %v", fi.Mode().Perm(), err)
	}

	// The list shows ids, dates and status, never a secret or hash.
	stdout, _, err = runToken(t, nil, "", "list", "alice", "--users-file", path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout, "ID") || !strings.Contains(stdout, id) || !strings.Contains(stdout, "active") || !strings.Contains(stdout, "ci") {
		t.Errorf("list:\n%s", stdout)
	}
	if strings.Contains(stdout, token[len(token)-52:]) || strings.Contains(stdout, "sha256") {
		t.Errorf("list shows a secret:\n%s", stdout)
	}
	stdout, _, err = runToken(t, nil, "", "list", "bob", "--users-file", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []tokenListEntry
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil {
		t.Fatalf("list --json: %v\n%s", err, stdout)
	}
	if len(entries) != 1 || entries[0].ID != "old0000000000001" || entries[0].Status != "expired" {
		t.Errorf("bob's tokens = %+v", entries)
	}
	if strings.Contains(stdout, strings.Repeat("ab", 32)) {
		t.Error("list --json shows the hash")
	}

	// Revoke, through the environment variable this time.
	env := map[string]string{"SIGNET_AUTH_USERSFILE": path}
	stdout, stderr, err = runToken(t, env, "", "revoke", "alice", id)
	if err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	if stdout != "" {
		t.Errorf("revoke wrote %q to stdout", stdout)
	}
	err = authorizeBearer(t, path, token)
	if err == nil {
		t.Fatal("revoked token still accepted")
	}
	stdout, _, err = runToken(t, env, "", "list", "alice")
	if err != nil || !strings.Contains(stdout, "revoked") {
		t.Errorf("list after revoke: %v\n%s", err, stdout)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	path := writeUsersFile(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no users file", []string{"create", "alice"}, "--users-file is required"},
		{"unknown user", []string{"create", "mallory", "--users-file", path}, "unknown user"},
		{"missing file", []string{"list", "alice", "--users-file", path + ".nope"}, "no such file"},
		{"revoke unknown id", []string{"revoke", "alice", "nope", "--users-file", path}, "token not found"},
		{"revoke someone else's", []string{"revoke", "alice", "old0000000000001", "--users-file", path}, "token not found"},
		{"negative expiry", []string{"create", "alice", "--users-file", path, "--expires", "-1h"}, "negative"},
		{"no user", []string{"create", "--users-file", path}, "accepts 1 arg"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runToken(t, nil, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q on error", stdout)
			}
		})
	}
}

func TestHashPasswordCmd(t *testing.T) {
	for _, stdin := range []string{"s3cret\n", "s3cret", "s3cret\r\n"} {
		stdout, _, err := runToken(t, nil, stdin, "hash-password", "--cost", "4")
		if err != nil {
			t.Fatalf("%q: %v", stdin, err)
		}
		hash := strings.TrimSuffix(stdout, "\n")
		if strings.Contains(hash, "\n") || bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")) != nil {
			t.Fatalf("%q: stdout %q is not a hash of the password", stdin, stdout)
		}
	}
	for _, tt := range []struct{ name, stdin string }{
		{"empty", ""},
		{"blank line", "\n"},
		{"two lines", "a\nb\n"},
		{"too long", strings.Repeat("x", 100) + "\n"},
		{"huge", strings.Repeat("x", 10000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := runToken(t, nil, tt.stdin, "hash-password", "--cost", "4"); err == nil {
				t.Error("accepted")
			}
		})
	}
	// The hash works as a users-file password.
	stdout, _, err := runToken(t, nil, "pw\n", "hash-password", "--cost", "4")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	yaml := "version: 1\nusers:\n  carol:\n    password: \"" + strings.TrimSpace(stdout) + "\"\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://signet.test/v2/", nil)
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("carol:pw")))
	if user, ok := a.Authenticate(r); !ok || user != "carol" {
		t.Errorf("Authenticate = %q, %v", user, ok)
	}
}
