package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/registry/errcode"
)

// code returns the errcode of an Authorize error, failing on any other
// kind of error.
func code(t *testing.T, err error) errcode.Code {
	t.Helper()
	var e errcode.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an errcode.Error", err, err)
	}
	return e.Code
}

func allAccesses() []registry.Access {
	return []registry.Access{
		registry.AccessNone, registry.AccessPull, registry.AccessPush,
		registry.AccessSign, registry.AccessSave, registry.AccessAdmin,
	}
}

// TestRoleMatrix checks every role against every access, inside and
// outside the granted namespace, through Authorize with real requests.
func TestRoleMatrix(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	type set = map[registry.Access]bool
	const (
		none  = registry.AccessNone
		pull  = registry.AccessPull
		push  = registry.AccessPush
		sign  = registry.AccessSign
		save  = registry.AccessSave
		admin = registry.AccessAdmin
	)
	roles := map[string]set{
		"reader1":  {pull: true},
		"writer1":  {pull: true, push: true},
		"signer1":  {pull: true, sign: true},
		"auditor1": {pull: true, save: true},
		"admin1":   {pull: true, push: true, sign: true, save: true, admin: true},
	}
	for user, allowed := range roles {
		for _, access := range allAccesses() {
			for _, repo := range []string{"roles/x", "roles/x/y", "rolesx/y", "other/x", ""} {
				inside := strings.HasPrefix(repo, "roles/")
				t.Run(user+"/"+access.String()+"/"+repo, func(t *testing.T) {
					got, err := a.Authorize(request(basic(user, rolePassword)), repo, access)
					switch {
					case access == none:
						if err != nil || got != reqctx.Anonymous {
							t.Fatalf("AccessNone: %q, %v", got, err)
						}
					case inside && allowed[access]:
						if err != nil || got != user {
							t.Fatalf("want allowed as %s, got %q, %v", user, got, err)
						}
					default:
						if err == nil {
							t.Fatalf("allowed as %q, want DENIED", got)
						}
						if c := code(t, err); c != errcode.Denied {
							t.Fatalf("code %v, want DENIED", c)
						}
					}
				})
			}
		}
	}
}

// TestRoleGrants is the role table itself.
func TestRoleGrants(t *testing.T) {
	want := map[Role][]registry.Access{
		RoleReader:  {registry.AccessPull},
		RoleWriter:  {registry.AccessPull, registry.AccessPush},
		RoleSigner:  {registry.AccessPull, registry.AccessSign},
		RoleAuditor: {registry.AccessPull, registry.AccessSave},
		RoleAdmin:   {registry.AccessPull, registry.AccessPush, registry.AccessSign, registry.AccessSave, registry.AccessAdmin},
		"root":      {},
	}
	for role, accesses := range want {
		for _, access := range append(allAccesses(), registry.Access(-1), registry.Access(99)) {
			t.Run(string(role)+"/"+access.String(), func(t *testing.T) {
				expect := access == registry.AccessNone
				for _, a := range accesses {
					expect = expect || a == access
				}
				if got := role.Grants(access); got != expect {
					t.Errorf("Grants = %v, want %v", got, expect)
				}
			})
		}
	}
}

// TestAuthorizeCredentials is the credential matrix: every way of
// presenting (or failing to present) credentials, asserting the exact
// outcome: the user, or 401 vs 403.
func TestAuthorizeCredentials(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	const (
		pull  = registry.AccessPull
		push  = registry.AccessPush
		sign  = registry.AccessSign
		save  = registry.AccessSave
		admin = registry.AccessAdmin
	)
	tests := []struct {
		name     string
		headers  []string
		repo     string
		access   registry.Access
		wantUser string
		wantCode errcode.Code // 0 when allowed
	}{
		{"basic password", []string{basic("alice", alicePassword)}, "team-a/app", pull, "alice", 0},
		{"basic password nested", []string{basic("alice", alicePassword)}, "team-a/app/sub", pull, "alice", 0},
		{"basic password lacks role", []string{basic("alice", alicePassword)}, "team-a/app", sign, "", errcode.Denied},
		{"basic password outside grant", []string{basic("alice", alicePassword)}, "team-b/app", pull, "", errcode.Denied},
		{"prefix is not a namespace", []string{basic("alice", alicePassword)}, "team-ab/app", pull, "", errcode.Denied},
		{"catalog needs **", []string{basic("alice", alicePassword)}, "", pull, "", errcode.Denied},
		{"wrong password", []string{basic("alice", "nope")}, "team-a/app", pull, "", errcode.Unauthorized},
		{"another user's password", []string{basic("alice", bobPassword)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"unknown user", []string{basic("mallory", alicePassword)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"user without password", []string{basic("dave", "anything")}, "team-a/app", pull, "", errcode.Unauthorized},
		{"htpasswd password", []string{basic("carol", carolPassword)}, "team-a/app", save, "carol", 0},
		{"htpasswd user lacks role", []string{basic("carol", carolPassword)}, "team-a/app", sign, "", errcode.Denied},
		{"basic token", []string{basic("bob", bobToken)}, "team-a/app", sign, "bob", 0},
		{"basic token push", []string{basic("bob", bobToken)}, "team-a/app", push, "bob", 0},
		{"basic token lacks admin", []string{basic("bob", bobToken)}, "team-a/app", admin, "", errcode.Denied},
		{"basic token of another user", []string{basic("alice", bobToken)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"basic token unknown user", []string{basic("mallory", bobToken)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"basic unknown token", []string{basic("bob", unknownToken)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer token", []string{bearer(bobToken)}, "team-a/app", sign, "bob", 0},
		{"bearer token not yet expired", []string{bearer(bobFuture)}, "team-a/app", sign, "bob", 0},
		{"bearer token outside grant", []string{bearer(bobToken)}, "team-b/app", pull, "", errcode.Denied},
		{"bearer admin everywhere", []string{bearer(daveToken)}, "any/where", admin, "dave", 0},
		{"bearer admin catalog", []string{bearer(daveToken)}, "", pull, "dave", 0},
		{"bearer expired", []string{bearer(bobExpired)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"basic expired", []string{basic("bob", bobExpired)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer revoked", []string{bearer(bobRevoked)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"basic revoked", []string{basic("bob", bobRevoked)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer unknown", []string{bearer(unknownToken)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer garbage", []string{"Bearer not-a-token"}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer password", []string{bearer(alicePassword)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer tampered secret", []string{bearer(bobToken[:len(bobToken)-1] + "a")}, "team-a/app", pull, "", errcode.Unauthorized},
		{"bearer id of one, secret of another", []string{bearer(bobToken[:21] + daveToken[21:])}, "team-a/app", pull, "", errcode.Unauthorized},
		{"malformed header", []string{"Basic !!!"}, "team-a/app", pull, "", errcode.Unauthorized},
		{"unknown scheme", []string{"Digest username=alice"}, "public/x", pull, "", errcode.Unauthorized},
		{"two headers", []string{basic("alice", alicePassword), basic("alice", alicePassword)}, "team-a/app", pull, "", errcode.Unauthorized},
		{"long password", []string{basic("alice", alicePassword+strings.Repeat("x", 80))}, "team-a/app", pull, "", errcode.Unauthorized},
		{"anonymous read allowed", nil, "public/x", pull, reqctx.Anonymous, 0},
		{"anonymous read nested", nil, "public/x/y", pull, reqctx.Anonymous, 0},
		{"anonymous push refused", nil, "public/x", push, "", errcode.Unauthorized},
		{"anonymous sign refused", nil, "public/x", sign, "", errcode.Unauthorized},
		{"anonymous outside pattern", nil, "team-a/app", pull, "", errcode.Unauthorized},
		{"anonymous catalog", nil, "", pull, "", errcode.Unauthorized},
		{"anonymous namespace itself", nil, "public", pull, "", errcode.Unauthorized},
		{"bad credentials are not anonymous", []string{basic("alice", "nope")}, "public/x", pull, "", errcode.Unauthorized},
		{"users keep anonymous grants", []string{basic("alice", alicePassword)}, "public/x", pull, "alice", 0},
		{"users do not get more from anonymous grants", []string{basic("alice", alicePassword)}, "public/x", push, "", errcode.Denied},
		{"unknown access", []string{bearer(daveToken)}, "any/x", registry.Access(99), "", errcode.Denied},
		{"unknown access anonymous", nil, "public/x", registry.Access(99), "", errcode.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := a.Authorize(request(tt.headers...), tt.repo, tt.access)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if user != tt.wantUser {
					t.Fatalf("user = %q, want %q", user, tt.wantUser)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed as %q, want %v", user, tt.wantCode)
			}
			if c := code(t, err); c != tt.wantCode {
				t.Fatalf("code = %v (%d), want %v (%d)", c, c.Status(), tt.wantCode, tt.wantCode.Status())
			}
			if user != "" {
				t.Errorf("refusal names user %q", user)
			}
			for _, secret := range []string{alicePassword, bobPassword, bobToken[21:], bobExpired[21:]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestAuthorizeAccessNoneIgnoresCredentials(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	var c counters
	c.install(a)
	for _, h := range [][]string{nil, {basic("alice", "wrong")}, {"garbage"}} {
		if user, err := a.Authorize(request(h...), "", registry.AccessNone); err != nil || user != reqctx.Anonymous {
			t.Errorf("%v: %q, %v", h, user, err)
		}
	}
	if b, tok := c.get(); b != 0 || tok != 0 {
		t.Errorf("AccessNone checked credentials: bcrypt %d, token %d", b, tok)
	}
}

func TestAuthenticate(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	tests := []struct {
		name   string
		header []string
		user   string
		ok     bool
	}{
		// The ping refuses anonymous callers even though public/** is
		// granted to them: clients only send credentials after a 401.
		{"anonymous", nil, "", false},
		{"password", []string{basic("alice", alicePassword)}, "alice", true},
		{"token", []string{bearer(daveToken)}, "dave", true},
		{"user without any grant is still authenticated", []string{basic("carol", carolPassword)}, "carol", true},
		{"wrong password", []string{basic("alice", "x")}, "", false},
		{"expired", []string{bearer(bobExpired)}, "", false},
		{"malformed", []string{"Basic"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, ok := a.Authenticate(request(tt.header...))
			if user != tt.user || ok != tt.ok {
				t.Errorf("Authenticate = %q, %v; want %q, %v", user, ok, tt.user, tt.ok)
			}
		})
	}
}

// TestFailedLoginCostsTheSame counts the expensive checks instead of
// timing them: a wrong password for a real user, an unknown user and a
// user without a password each run exactly one bcrypt, of the highest
// cost in use; a wrong or unknown token each run one hash comparison.
func TestFailedLoginCostsTheSame(t *testing.T) {
	a, _ := loadFixture(t, Options{CacheTTL: -1})
	var c counters
	c.install(a)
	for _, tt := range []struct {
		name       string
		header     string
		bcryptCost int // cost of the hash bcrypt ran against; 0: no bcrypt
		token      int
	}{
		{"known user wrong password", basic("alice", "wrong"), 5, 0},
		{"unknown user", basic("mallory", "wrong"), 5, 0},
		{"user without password", basic("dave", "wrong"), 5, 0},
		{"known token id wrong secret", bearer(bobToken[:len(bobToken)-1] + "a"), 0, 1},
		{"unknown token id", bearer(unknownToken), 0, 1},
		{"not a token", bearer("garbage"), 0, 1},
		{"revoked token", bearer(bobRevoked), 0, 1},
		{"token via basic, unknown user", basic("mallory", unknownToken), 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b0, t0 := c.get()
			if _, ok := a.Authenticate(request(tt.header)); ok {
				t.Fatal("authenticated")
			}
			b1, t1 := c.get()
			wantB := 0
			if tt.bcryptCost > 0 {
				wantB = 1
			}
			if b1-b0 != wantB || t1-t0 != tt.token {
				t.Fatalf("bcrypt %d, token compares %d; want %d, %d", b1-b0, t1-t0, wantB, tt.token)
			}
			if wantB == 1 {
				c.mu.Lock()
				cost, err := bcrypt.Cost(c.lastHash)
				c.mu.Unlock()
				if err != nil || cost != tt.bcryptCost {
					t.Errorf("bcrypt ran at cost %d (%v), want %d", cost, err, tt.bcryptCost)
				}
			}
		})
	}
}

func TestPasswordCache(t *testing.T) {
	var mu sync.Mutex
	now := testNow()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a, path := loadFixture(t, Options{Now: clock, CacheTTL: time.Minute})
	var c counters
	c.install(a)
	login := func(user, pw string) bool {
		t.Helper()
		_, ok := a.Authenticate(request(basic(user, pw)))
		return ok
	}
	bcrypts := func() int { b, _ := c.get(); return b }

	if !login("alice", alicePassword) || bcrypts() != 1 {
		t.Fatalf("first login: bcrypt %d", bcrypts())
	}
	if !login("alice", alicePassword) || bcrypts() != 1 {
		t.Fatalf("second login was not served from the cache: bcrypt %d", bcrypts())
	}
	// Failures are never cached.
	login("alice", "wrong")
	login("alice", "wrong")
	if bcrypts() != 3 {
		t.Fatalf("failures: bcrypt %d, want 3", bcrypts())
	}
	// The cache key includes the password: a different one is checked.
	if login("alice", alicePassword+"x") {
		t.Fatal("wrong password accepted")
	}
	// Expiry.
	advance(time.Minute)
	if !login("alice", alicePassword) || bcrypts() != 5 {
		t.Fatalf("after TTL: bcrypt %d, want 5", bcrypts())
	}

	// A reload forgets everything: a changed password stops working at
	// once, even though the old one was cached a moment ago.
	if !login("alice", alicePassword) || bcrypts() != 5 {
		t.Fatal("not cached")
	}
	newHash := bcryptHash(t, "new-password", 4)
	writeFile(t, path, strings.Replace(fixtureYAML(t), "alice:\n    password: \"", "alice:\n    password: \""+newHash+"\"\n    #", 1))
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if login("alice", alicePassword) {
		t.Fatal("old password still accepted after reload")
	}
	if !login("alice", "new-password") {
		t.Fatal("new password refused")
	}
	if got := a.cur.Load().cache.len(); got != 1 {
		t.Errorf("cache holds %d entries, want 1", got)
	}
}

func TestPasswordCacheBounded(t *testing.T) {
	a, _ := loadFixture(t, Options{CacheSize: 2})
	for _, u := range []string{"reader1", "writer1", "signer1", "auditor1"} {
		if _, ok := a.Authenticate(request(basic(u, rolePassword))); !ok {
			t.Fatalf("%s refused", u)
		}
	}
	if n := a.cur.Load().cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
}

func TestReload(t *testing.T) {
	a, path := loadFixture(t, Options{})
	fixture := fixtureYAML(t)
	// Add frank, remove alice (and her grant).
	frank := "  frank:\n    password: \"" + bcryptHash(t, "frank-pw", 4) + "\"\n"
	edited := strings.Replace(fixture, "users:\n", "users:\n"+frank, 1)
	edited = strings.Replace(edited, "users: [alice, bob]", "users: [frank, bob]", 1)
	start := strings.Index(edited, "  alice:\n")
	end := strings.Index(edited, "  bob:\n")
	edited = edited[:start] + edited[end:]

	if _, err := a.Authorize(request(basic("alice", alicePassword)), "team-a/x", registry.AccessPull); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, edited)
	// Nothing changes before the reload.
	if _, ok := a.Authenticate(request(basic("frank", "frank-pw"))); ok {
		t.Fatal("frank known before reload")
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if user, err := a.Authorize(request(basic("frank", "frank-pw")), "team-a/x", registry.AccessPull); err != nil || user != "frank" {
		t.Fatalf("frank after reload: %q, %v", user, err)
	}
	_, err := a.Authorize(request(basic("alice", alicePassword)), "team-a/x", registry.AccessPull)
	if code(t, err) != errcode.Unauthorized {
		t.Fatalf("removed alice: %v, want UNAUTHORIZED", err)
	}

	// An invalid file keeps the current state.
	writeFile(t, path, edited+"  - {repositories: [x], users: [ghost], roles: [reader]}\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("invalid reload: err = %v", err)
	}
	if _, ok := a.Authenticate(request(basic("frank", "frank-pw"))); !ok {
		t.Fatal("invalid reload dropped the previous state")
	}
	writeFile(t, path, "not: [valid")
	if err := a.Reload(); err == nil {
		t.Fatal("broken YAML reloaded")
	}
	if _, ok := a.Authenticate(request(basic("frank", "frank-pw"))); !ok {
		t.Fatal("broken reload dropped the previous state")
	}
}

// syncBuffer is a log destination safe for the watcher goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond every few milliseconds for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	a, path := loadFixture(t, Options{})
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Watch(ctx, 10*time.Millisecond, logger)
	}()
	defer func() { cancel(); <-done }()

	fixture := fixtureYAML(t)
	frank := "  frank:\n    password: \"" + bcryptHash(t, "frank-pw", 4) + "\"\n"
	writeFile(t, path, strings.Replace(fixture, "users:\n", "users:\n"+frank, 1))
	eventually(t, "frank to appear", func() bool {
		_, ok := a.Authenticate(request(basic("frank", "frank-pw")))
		return ok
	})

	// A broken file is logged once and the old state kept.
	writeFile(t, path, "version: 1\nusers: [")
	eventually(t, "the failed reload to be logged", func() bool {
		return strings.Contains(logs.String(), "reload failed")
	})
	if _, ok := a.Authenticate(request(basic("frank", "frank-pw"))); !ok {
		t.Fatal("broken file dropped the state")
	}
	time.Sleep(50 * time.Millisecond) // several polls
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("failure logged %d times, want once", n)
	}
	if strings.Contains(logs.String(), "$2") {
		t.Error("log holds a hash")
	}

	// A change of the htpasswd file alone is picked up too.
	writeFile(t, path, fixture)
	eventually(t, "frank to disappear", func() bool {
		_, ok := a.Authenticate(request(basic("frank", "frank-pw")))
		return !ok
	})
	writeFile(t, filepath.Join(filepath.Dir(path), "htpasswd"), "carol:"+bcryptHash(t, "carol-new", 4)+"\n")
	eventually(t, "carol's new password", func() bool {
		_, ok := a.Authenticate(request(basic("carol", "carol-new")))
		return ok
	})
}

func TestWatchStopsWithContext(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		a.Watch(ctx, time.Hour, nil)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestConcurrentAuthorizeAndReload(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := a.Authorize(request(bearer(bobToken)), "team-a/x", registry.AccessSign); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if err := a.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
