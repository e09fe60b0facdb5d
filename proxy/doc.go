// Package proxy puts Signet in front of an existing registry (proxy mode):
// it forwards /v2/ requests to the upstream, streaming, with the headers
// registries and clients depend on preserved and the upstream's own URLs
// turned into Signet's, and it answers Signet's questions about the
// upstream: does a manifest exist, may these client credentials pull or
// push, is the upstream up. For the web console it reads what the
// upstream holds (catalog, tags, manifests, blobs, referrers), bounded and
// digest-checked, with the service credentials (reads.go).
//
// It owns the upstream connection (transport, TLS, timeouts), the service
// credentials with distribution's token flow, and four bounded caches:
// manifest existence, passthrough pull grants, manifest bodies by digest
// and the repository list. It must not decide Signet's own access (the
// registry front and the console do, before a request reaches the proxy)
// and it never touches signatures.
package proxy
