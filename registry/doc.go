// Package registry is Signet's HTTP front: the route table, the middleware
// chain (capability header, access log, metrics), the access check, and
// the embedded distribution v3 registry that serves /v2/.
//
// It owns the order in which a request is handled: middleware, then the
// access decision, then the handler. It must not hold signature logic
// (that is the extensions package) nor storage layout (signaturestore).
package registry
