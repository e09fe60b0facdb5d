// Package lookaside owns the registries.d "lookaside" signature layout that
// containers/image reads when a registry has no signature extension API:
//
//	<base>/<repository>@sha256=<hex>/signature-<N>     N = 1, 2, ... ; a reader stops at the first gap
//
// It computes that layout (layout.go), resolves the base URL a
// registries.d directory assigns to an image with containers/image's own
// scope rules (registriesd.go), writes the tree to disk for static hosting
// (export.go), and reads signatures from lookaside stores or another
// registry's extension API to import them (fetch.go, importer.go).
//
// Everything it fetches is untrusted: it bounds what it reads (at most
// MaxSignatures of at most MaxSignatureBytes each, as containers/image
// does) and rejects what is not an OpenPGP binary message, but it never
// verifies a signature. Imported signatures arrive unverified and stay so
// until an auditor verifies them. It must not decide who may read or write
// (the registry front and the destination registry do), and it reaches the
// signature store only through signaturestore.Walker and the Destination
// interface.
package lookaside
