package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testNow is the fixed clock of the fixtures.
func testNow() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }

// Fixture tokens: well-formed, made by hand so the expectations are
// readable.
const (
	bobToken      = "sgt_b0b0000000000001_" + "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	bobExpired    = "sgt_b0b0000000000002_" + "bbcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	bobRevoked    = "sgt_b0b0000000000003_" + "cbcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	bobFuture     = "sgt_b0b0000000000004_" + "dbcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	daveToken     = "sgt_da7e000000000001_" + "ebcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	unknownToken  = "sgt_ffff000000000001_" + "fbcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	alicePassword = "alice-secret"
	bobPassword   = "bob-secret"
	carolPassword = "carol-secret"
	rolePassword  = "role-secret"
)

func bcryptHash(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func tokenSum(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// fixtureYAML is a users file exercising every feature. The bcrypt cost
// of alice is 5 so that "the highest cost in use" is observable.
func fixtureYAML(t testing.TB) string {
	t.Helper()
	r := strings.NewReplacer(
		"ALICE", bcryptHash(t, alicePassword, 5),
		"BOB", bcryptHash(t, bobPassword, 4),
		"ROLE", bcryptHash(t, rolePassword, 4),
		"T_BOB1", tokenSum(bobToken),
		"T_BOB2", tokenSum(bobExpired),
		"T_BOB3", tokenSum(bobRevoked),
		"T_BOB4", tokenSum(bobFuture),
		"T_DAVE", tokenSum(daveToken),
	)
	return r.Replace(`# Signet users
version: 1
htpasswd: htpasswd
users:
  alice:
    password: "ALICE"
  bob:
    password: "BOB"
    tokens:
      - id: b0b0000000000001
        sha256: "T_BOB1"
        created: 2026-01-01T00:00:00Z
      - id: b0b0000000000002
        sha256: "T_BOB2"
        expires: 2026-06-01T00:00:00Z
      - id: b0b0000000000003
        sha256: "T_BOB3"
        revoked: true
      - id: b0b0000000000004
        sha256: "T_BOB4"
        expires: 2027-06-01T00:00:00Z
  carol: {}
  dave:
    tokens:
      - id: da7e000000000001
        sha256: "T_DAVE"
  reader1: {password: "ROLE"}
  writer1: {password: "ROLE"}
  signer1: {password: "ROLE"}
  auditor1: {password: "ROLE"}
  admin1: {password: "ROLE"}
grants:
  - repositories: ["team-a/*", "team-a/**"]
    users: [alice, bob]
    roles: [reader]
  - repositories: ["team-a/**"]
    users: [bob]
    roles: [writer, signer]
  - repositories: ["team-a/**"]
    users: [carol]
    roles: [auditor]
  - repositories: ["**"]
    users: [dave]
    roles: [admin]
  - repositories: ["public/**"]
    anonymous: true
    roles: [reader]
  - {repositories: ["roles/**"], users: [reader1], roles: [reader]}
  - {repositories: ["roles/**"], users: [writer1], roles: [writer]}
  - {repositories: ["roles/**"], users: [signer1], roles: [signer]}
  - {repositories: ["roles/**"], users: [auditor1], roles: [auditor]}
  - {repositories: ["roles/**"], users: [admin1], roles: [admin]}
`)
}

func fixtureHtpasswd(t testing.TB) string {
	return "# carol\ncarol:" + bcryptHash(t, carolPassword, 4) + "\n"
}

// writeFixture writes the users file and its htpasswd into a fresh
// directory and returns the users file path.
func writeFixture(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "htpasswd"), fixtureHtpasswd(t))
	path := filepath.Join(dir, "users.yaml")
	writeFile(t, path, fixtureYAML(t))
	return path
}

// writeFile replaces path atomically, so a watcher never reads half a
// file and always sees a new inode.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// counters wraps the credential checks of an Authorizer.
type counters struct {
	mu        sync.Mutex
	bcrypt    int
	token     int
	lastHash  []byte
	lastToken []byte
}

func (c *counters) install(a *Authorizer) {
	realHash, realToken := a.compareHash, a.compareToken
	a.compareHash = func(hash, pw []byte) error {
		c.mu.Lock()
		c.bcrypt++
		c.lastHash = append([]byte(nil), hash...)
		c.mu.Unlock()
		return realHash(hash, pw)
	}
	a.compareToken = func(stored, presented []byte) bool {
		c.mu.Lock()
		c.token++
		c.lastToken = append([]byte(nil), stored...)
		c.mu.Unlock()
		return realToken(stored, presented)
	}
}

func (c *counters) get() (bcryptCalls, tokenCalls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bcrypt, c.token
}

func loadFixture(t testing.TB, opts Options) (*Authorizer, string) {
	t.Helper()
	path := writeFixture(t)
	if opts.Now == nil {
		opts.Now = testNow
	}
	a, err := LoadWithOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, path
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func bearer(token string) string { return "Bearer " + token }

// request builds a real request with the given Authorization headers.
func request(authorization ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://signet.test/v2/", nil)
	for _, h := range authorization {
		r.Header.Add("Authorization", h)
	}
	return r
}

// users lists the user names of the current state.
func (a *Authorizer) users() []string {
	st := a.cur.Load()
	names := make([]string, 0, len(st.cfg.users))
	for n := range st.cfg.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
