// Package reqctx carries who a request was authorised as, from the access
// check in the registry front to the handlers that record it (audit log,
// "verified by user"). It holds no other state.
package reqctx

import "context"

// Anonymous is the user of a request made without credentials, or of any
// request when no access control is configured.
const Anonymous = "anonymous"

type userKey struct{}

// WithUser returns ctx carrying user.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// User returns the user ctx carries, or Anonymous.
func User(ctx context.Context) string {
	if u, ok := ctx.Value(userKey{}).(string); ok && u != "" {
		return u
	}
	return Anonymous
}
