// Package extensions serves the signature extension API of the OpenShift
// integrated registry, /extensions/v2/<repository>/signatures/<digest>, and
// owns its wire types.
//
// It decodes and validates untrusted request bodies strictly, asks a
// ManifestChecker whether the image exists, and stores signatures through
// signaturestore.Store. It must not decide who may call it (access is
// checked by the registry front before any handler runs), and it never
// treats stored signature bytes as trusted: storing is not verifying.
package extensions
