package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-registry/signet/registry"
)

// TestConsoleLoginMatchesBasic: the console's form login accepts exactly
// what a Basic credential user:secret is accepted for, at the same cost.
func TestConsoleLoginMatchesBasic(t *testing.T) {
	a, _ := loadFixture(t, Options{CacheTTL: -1})
	var c counters
	c.install(a)
	for _, tc := range []struct {
		user, secret string
		want         bool
	}{
		{"alice", alicePassword, true},
		{"alice", "wrong", false},
		{"carol", carolPassword, true}, // from the htpasswd file
		{"bob", bobToken, true},        // an API token as the password
		{"alice", bobToken, false},     // a token only logs in its owner
		{"bob", bobExpired, false},
		{"bob", bobRevoked, false},
		{"dave", daveToken, true},
		{"nobody", "x", false},
		{"", "x", false},
		{"alice", "", false},
		{"alice", alicePassword + "\n", false},
		{"ali\x00ce", alicePassword, false},
		{strings.Repeat("a", 200), "x", false},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", basic(tc.user, tc.secret))
		_, viaBasic := a.Authenticate(req)
		if got := a.Login(tc.user, tc.secret); got != tc.want || (tc.user != "" && tc.secret != "" && got != viaBasic) {
			t.Errorf("Login(%q, %q) = %v, want %v (Basic says %v)", tc.user, tc.secret, got, tc.want, viaBasic)
		}
	}
	// An unknown user costs a bcrypt check like a known one.
	before, _ := c.get()
	a.Login("nobody", "guess")
	if after, _ := c.get(); after != before+1 {
		t.Fatalf("unknown user: %d bcrypt checks", after-before)
	}
}

func TestConsoleAllows(t *testing.T) {
	a, _ := loadFixture(t, Options{})
	for _, tc := range []struct {
		user, repo string
		access     registry.Access
		want       bool
	}{
		{"alice", "team-a/app", registry.AccessPull, true},
		{"alice", "team-a/app", registry.AccessPush, false},
		{"alice", "team-b/app", registry.AccessPull, false},
		{"alice", "public/x", registry.AccessPull, true}, // anonymous grants apply to everybody
		{"carol", "team-a/deep/app", registry.AccessSave, true},
		{"dave", "anything/at/all", registry.AccessAdmin, true},
		// Unknown users get nothing, not even anonymous grants.
		{"mallory", "public/x", registry.AccessPull, false},
		{"anonymous", "public/x", registry.AccessPull, false},
	} {
		if got := a.Allows(tc.user, tc.repo, tc.access); got != tc.want {
			t.Errorf("Allows(%q, %q, %v) = %v, want %v", tc.user, tc.repo, tc.access, got, tc.want)
		}
	}
}
