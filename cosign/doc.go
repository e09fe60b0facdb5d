// Package cosign finds and verifies cosign (sigstore) signatures of
// container images (SPEC section 5), without using cosign's own packages.
//
// It owns two things:
//
//   - discovery (Discover): reading, through a small Registry interface,
//     the legacy "sha256-<hex>.sig" tag (one simple-signing layer per
//     signature, with the signature, certificate, chain and Rekor bundle in
//     layer annotations) and the sigstore bundle v0.3 referrers of an image,
//     in the image's repository or a separate signature repository
//     (COSIGN_REPOSITORY), every read bounded and at most MaxSignatures
//     signatures examined per image;
//   - verification (Verifier): keyed (a PKIX ECDSA or Ed25519 key) or
//     keyless (a Fulcio certificate chained to a trusted_root.json, with the
//     OIDC issuer and subject matched by exact strings or ANCHORED regular
//     expressions), the Rekor SET verified offline and bound to the
//     signature, then the payload parsed strictly and checked against the
//     image digest and the requested annotations.
//
// Sigstore bundles are checked cryptographically by sigstore-go
// (transparency log, chain, DSSE signature); everything policy-like (issuer
// extensions, identity, in-toto subject, annotations) is checked here, by
// the same code for both formats.
//
// It must not talk HTTP itself (the CLI adapts its client to Registry), must
// not print, and must not trust anything it read before the check that
// covers it has passed: such data is named untrusted….
package cosign
