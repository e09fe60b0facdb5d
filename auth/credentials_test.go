package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    credentials
		wantErr bool
	}{
		{name: "none", headers: nil, want: credentials{}},
		{name: "basic", headers: []string{"Basic " + b64("alice:pw")}, want: credentials{kind: credBasic, user: "alice", secret: "pw"}},
		{name: "basic lowercase scheme", headers: []string{"basic " + b64("alice:pw")}, want: credentials{kind: credBasic, user: "alice", secret: "pw"}},
		{name: "basic colon in password", headers: []string{"Basic " + b64("alice:p:w")}, want: credentials{kind: credBasic, user: "alice", secret: "p:w"}},
		{name: "basic extra spaces", headers: []string{"Basic   " + b64("alice:pw") + " "}, want: credentials{kind: credBasic, user: "alice", secret: "pw"}},
		{name: "basic token", headers: []string{"Basic " + b64("bob:"+bobToken)}, want: credentials{kind: credBasic, user: "bob", secret: bobToken}},
		{name: "bearer", headers: []string{"Bearer " + bobToken}, want: credentials{kind: credBearer, secret: bobToken}},
		{name: "bearer garbage is still bearer", headers: []string{"Bearer abc"}, want: credentials{kind: credBearer, secret: "abc"}},
		{name: "two headers", headers: []string{"Basic " + b64("a:b"), "Basic " + b64("a:b")}, wantErr: true},
		{name: "empty", headers: []string{""}, wantErr: true},
		{name: "scheme only", headers: []string{"Basic"}, wantErr: true},
		{name: "scheme and space", headers: []string{"Basic "}, wantErr: true},
		{name: "unknown scheme", headers: []string{"Digest username=x"}, wantErr: true},
		{name: "bad base64", headers: []string{"Basic !!!"}, wantErr: true},
		{name: "unpadded base64", headers: []string{"Basic " + strings.TrimRight(b64("alice:pw"), "=")}, wantErr: true},
		{name: "no colon", headers: []string{"Basic " + b64("alice")}, wantErr: true},
		{name: "empty user", headers: []string{"Basic " + b64(":pw")}, wantErr: true},
		{name: "empty password", headers: []string{"Basic " + b64("alice:")}, wantErr: true},
		{name: "control in user", headers: []string{"Basic " + b64("ali\nce:pw")}, wantErr: true},
		{name: "nul in password", headers: []string{"Basic " + b64("alice:p\x00w")}, wantErr: true},
		{name: "invalid utf8", headers: []string{"Basic " + b64("alice:\xff\xfe")}, wantErr: true},
		{name: "two credentials", headers: []string{"Basic " + b64("a:b") + " " + b64("c:d")}, wantErr: true},
		{name: "bearer with space", headers: []string{"Bearer a b"}, wantErr: true},
		{name: "oversized", headers: []string{"Bearer " + strings.Repeat("a", maxAuthorizationLen)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAuthorization(tt.headers)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	tok, id, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := parseToken(tok); !ok || got != id {
		t.Errorf("parseToken(newToken()) = %q, %v; want %q", got, ok, id)
	}
	if len(tok) < len(tokenPrefix)+2*tokenIDBytes+1+52 {
		t.Errorf("token %d bytes: secret shorter than 32 random bytes in base32", len(tok))
	}
	for _, bad := range []string{
		"", "sgt_", "sgt__" + strings.Repeat("a", 52), "sgt_abc", "sgt_abc_short",
		"sgt_ABC_" + strings.Repeat("a", 52), "sgt_abc_" + strings.Repeat("A", 52),
		"xgt_abc_" + strings.Repeat("a", 52), "sgt_abc_" + strings.Repeat("a", 300),
		"sgt_abc_" + strings.Repeat("a", 51) + "_", "sgt_a-b_" + strings.Repeat("a", 52),
	} {
		if _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) accepted", bad)
		}
	}
}

// FuzzParseAuthorization: the parser never panics, and whatever it
// accepts is a well-formed credential.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"Basic " + b64("alice:pw"), "Bearer " + bobToken, "Basic " + b64("bob:"+bobToken),
		"Basic", "Bearer", "basic  =", "Basic " + b64(":"), "Digest x", "Bearer a b", "\x00",
		"Basic " + b64("a:b") + "\t", "BASIC " + b64("u:\xff"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseAuthorization([]string{h})
		if err != nil {
			if c != (credentials{}) {
				t.Fatalf("error with credentials %+v", c)
			}
			return
		}
		switch c.kind {
		case credBasic:
			if c.user == "" || c.secret == "" || strings.Contains(c.user, ":") || hasControl(c.user+c.secret) {
				t.Fatalf("accepted malformed basic credentials %+v from %q", c, h)
			}
		case credBearer:
			if c.secret == "" || strings.ContainsAny(c.secret, " \t") || hasControl(c.secret) {
				t.Fatalf("accepted malformed bearer %+v from %q", c, h)
			}
		default:
			t.Fatalf("no error and no credentials from %q", h)
		}
	})
}

// FuzzAuthenticate: random Authorization headers never authenticate,
// unless they carry exactly a real credential of the user they name.
func FuzzAuthenticate(f *testing.F) {
	a, _ := loadFixture(f, Options{})
	valid := map[string]map[string]bool{
		"alice": {alicePassword: true},
		"bob":   {bobPassword: true, bobToken: true, bobFuture: true},
		"carol": {carolPassword: true},
		"dave":  {daveToken: true},
	}
	for _, u := range []string{"reader1", "writer1", "signer1", "auditor1", "admin1"} {
		valid[u] = map[string]bool{rolePassword: true}
	}
	for _, s := range []string{
		basic("alice", alicePassword), basic("alice", "wrong"), basic("bob", bobToken), basic("alice", bobToken),
		bearer(bobToken), bearer(bobExpired), bearer(bobRevoked), bearer(unknownToken), bearer(daveToken + "x"),
		basic("nobody", "x"), "Bearer", "Basic x", basic("bob", bobExpired),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		user, ok := a.Authenticate(request(h))
		if !ok {
			if user != "" {
				t.Fatalf("failed authentication names user %q", user)
			}
			return
		}
		c, err := parseAuthorization([]string{h})
		if err != nil {
			t.Fatalf("authenticated %q from an unparseable header %q", user, h)
		}
		if c.kind == credBasic && c.user != user {
			t.Fatalf("basic credentials of %q authenticated %q", c.user, user)
		}
		if !valid[user][c.secret] {
			t.Fatalf("authenticated %q with a secret that is not theirs: %q", user, h)
		}
	})
}
