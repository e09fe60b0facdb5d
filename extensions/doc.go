// Package extensions serves the signature extension API of the OpenShift
// integrated registry, /extensions/v2/<repository>/signatures/<digest>, and
// owns its wire types. It also serves the same signatures read-only in the
// registries.d lookaside layout, /sigstore/<repository>@sha256=<hex>/signature-<N>.
//
// It decodes and validates untrusted request bodies strictly, asks a
// ManifestChecker whether the image exists (except in the configured
// external repositories, whose images live elsewhere), and stores signatures through
// signaturestore.Store. It must not decide who may call it (access is
// checked by the registry front before any handler runs), and it never
// treats stored signature bytes as trusted: storing is not verifying.
package extensions
