package auth

import (
	"unicode/utf8"

	"github.com/signet-registry/signet/registry"
)

// The web console (package console) logs users in with a form rather than
// an Authorization header, and keeps who they are in a server-side
// session. These two methods give it the same users, passwords, tokens and
// grants as the API, decided by the same code.

// Login reports whether secret is user's password or one of user's valid
// API tokens, exactly as a Basic credential user:secret is checked: a
// token only logs in its owner, and a failure costs one bcrypt check
// whether or not the user exists.
func (a *Authorizer) Login(user, untrustedSecret string) bool {
	if user == "" || untrustedSecret == "" || len(user) > maxUserNameLen ||
		!utf8.ValidString(user) || !utf8.ValidString(untrustedSecret) ||
		hasControl(user) || hasControl(untrustedSecret) {
		return false
	}
	st := a.cur.Load()
	if _, isToken := parseToken(untrustedSecret); isToken {
		owner, ok := a.checkToken(st, untrustedSecret)
		return ok && owner == user
	}
	return a.checkPassword(st, user, untrustedSecret)
}

// Allows reports whether the named user may perform access on repository,
// from the grants alone (nothing is looked up). A user no longer in the
// users file is allowed nothing, not even what anonymous grants allow: a
// console session must end when its user is removed.
func (a *Authorizer) Allows(user, repository string, access registry.Access) bool {
	st := a.cur.Load()
	if _, known := st.cfg.users[user]; !known {
		return false
	}
	return st.cfg.allows(user, repository, access)
}

var _ registry.ConsoleUsers = (*Authorizer)(nil)
