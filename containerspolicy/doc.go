// Package containerspolicy reads a containers-policy.json(5) file, the
// signature policy of skopeo, podman, buildah and CRI-O, and evaluates it
// for one image with Signet's own verifiers.
//
// It owns three things:
//
//   - parsing (Parse): strictly, because the file is untrusted input: no
//     duplicate or unknown keys at any depth, no null where a value is
//     expected, no trailing data, invalid UTF-8 or empty requirement lists,
//     and every docker scope must be a name containers/image could ever
//     look up. Where the format allows something Signet cannot honour
//     (keyType other than GPGKeys, signedBaseLayer, sigstoreSigned pki),
//     parsing fails with a message saying so rather than skipping it;
//   - scope selection (Policy.RequirementsFor): transports.docker's most
//     specific scope for the image (the image itself, its repository, each
//     parent namespace, the host, the *.domain wildcards), then the
//     transport's "" scope, then default, in containers/image's order;
//   - evaluation (Prepare, Prepared.Evaluate): every requirement of the
//     chosen list must allow the image; signedBy and sigstoreSigned need at
//     least one signature that satisfies them. signedBy runs the gpg
//     mechanism with the gpg/policy identity rules (through gpg/payload);
//     sigstoreSigned runs the cosign verifier and then checks the signed
//     docker-reference of the payload with the same identity rules.
//
// It must not talk to a registry (signatures come through the small
// Signatures interface), print, or trust key material that did not come
// from the policy. Paths in the policy are read as given (relative paths
// from the working directory, as containers/image does), through size
// limits, and only for the requirements that apply to the image.
package containerspolicy
