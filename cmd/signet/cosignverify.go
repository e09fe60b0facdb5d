package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/containerspolicy"
	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/gpg/policy"
)

// maxTrustedRootBytes bounds trusted_root.json; sigstore's is about 10 KiB.
const maxTrustedRootBytes = 4 << 20

type cosignVerifyFlags struct {
	key                 string
	identity            string
	identityRegexp      string
	issuer              string
	issuerRegexp        string
	annotations         []string
	trustedRoot         string
	ignoreTlog          bool
	signatureRepository string
	gpgKeyring          string
	expectedIdentity    string
	policyFile          string
}

func newCosignVerifyCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	var vf cosignVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify IMAGE (--key cosign.pub | --certificate-identity[-regexp] ... --certificate-oidc-issuer[-regexp] ... | --gpg-keyring FILE --expected-identity REF | --policy policy.json)",
		Short: "Verify an image's cosign and GPG signatures, or evaluate a containers-policy.json",
		Long: `Verify the cosign signatures of IMAGE, with the flags of cosign verify.

Signatures are found in both formats cosign writes: sigstore bundle v0.3
referrers (OCI 1.1 referrers API, or the sha256-<hex> fallback tag) and the
legacy sha256-<hex>.sig tag, in IMAGE's repository or in the repository named
by --signature-repository or $COSIGN_REPOSITORY (HOST/REPO; without a host,
a repository on IMAGE's registry). At most 100 signatures are examined.

Keyed: --key FILE, a PKIX PEM public key (ECDSA P-256/P-384 or Ed25519).
Keyless: --certificate-identity or --certificate-identity-regexp, and
--certificate-oidc-issuer or --certificate-oidc-issuer-regexp, against a
Fulcio certificate chained to --trusted-root (trusted_root.json). Both
issuer extensions (1.3.6.1.4.1.57264.1.1 and .1.8) are read and must agree.

REGULAR EXPRESSIONS ARE ANCHORED: they must match the whole identity or
issuer, as if written ^(?:...)$. cosign's are not anchored, so there
'https://github.com/org/' also accepts 'https://evil.example/?https://github.com/org/'.

The Rekor SET (or inclusion proof) is verified offline against the Rekor
keys of --trusted-root; --insecure-ignore-tlog skips it and must be given
explicitly. -a key=value (repeatable) requires that annotation in the
signed payload. The checks are listed on stderr and the verified payloads
printed on stdout as JSON, as cosign does.

--gpg-keyring FILE --expected-identity REF also verifies IMAGE's GPG
simple-signing signatures, as verify-image-signature does.

--policy FILE evaluates a containers-policy.json(5) file, the policy of
skopeo, podman and CRI-O, for IMAGE: the most specific transports.docker
scope (image, repository, each parent namespace, host, *.domain), else the
transport's "" scope, else default. Every requirement of that list must
allow the image: insecureAcceptAnything, reject, signedBy (keyType GPGKeys;
keyPath, keyPaths or keyData; the GPG signatures Signet stores) and
sigstoreSigned (keyPath, keyPaths, keyData, keyDatas, or fulcio with
caPath/caData, oidcIssuer and subjectEmail; rekorPublicKeyPath(s) or
rekorPublicKeyData(s); the cosign signatures, from --signature-repository
or $COSIGN_REPOSITORY if set). signedBy and sigstoreSigned need at least one
signature whose signed docker-reference satisfies signedIdentity (default
matchRepoDigestOrExact) for IMAGE as written (":latest" added to a name
without tag). cosign writes the repository without a tag, so use
{"type":"matchRepository"} for cosign signatures; bundle-format cosign
signatures sign no docker-reference at all and never satisfy
sigstoreSigned (sign with --new-bundle-format=false). The file is parsed
strictly: unknown or duplicate keys, unknown transports, docker scopes no
image can match, and features Signet does not implement (signedBaseLayer,
keyTypes other than GPGKeys, pki) are errors. Key files are read only for
the scope that applies. With --registry-url IMAGE keeps its name, so a copy
is judged under the original's scope and identity. The policy is
self-contained: -a, --trusted-root and --insecure-ignore-tlog do not apply
to it.

--policy, --key (or the certificate flags) and --gpg-keyring combine: each
kind of verification asked for must pass (at least one verified signature
for --key and --gpg-keyring, an accepting policy for --policy), or the
command exits non-zero. Reports go to stderr, cosign's JSON to stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCosignVerify(cmd.Context(), &cf, &vf, getenv, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cf.register(cmd.Flags(), getenv)
	fl := cmd.Flags()
	fl.StringVar(&vf.key, "key", "", "PKIX PEM public key (ECDSA P-256/P-384 or Ed25519), as cosign.pub")
	fl.StringVar(&vf.identity, "certificate-identity", "", "the exact identity (SAN) the Fulcio certificate must name")
	fl.StringVar(&vf.identityRegexp, "certificate-identity-regexp", "", "an ANCHORED regexp the whole identity must match (unlike cosign's)")
	fl.StringVar(&vf.issuer, "certificate-oidc-issuer", "", "the exact OIDC issuer the certificate must name")
	fl.StringVar(&vf.issuerRegexp, "certificate-oidc-issuer-regexp", "", "an ANCHORED regexp the whole issuer must match (unlike cosign's)")
	fl.StringArrayVarP(&vf.annotations, "annotations", "a", nil, "key=value the signature must carry (repeatable)")
	fl.StringVar(&vf.trustedRoot, "trusted-root", "", "sigstore trusted_root.json: Fulcio CAs and Rekor keys")
	fl.BoolVar(&vf.ignoreTlog, "insecure-ignore-tlog", false, "do not require a transparency log entry (insecure)")
	fl.StringVar(&vf.signatureRepository, "signature-repository", "", "repository holding the signatures (default $COSIGN_REPOSITORY, else the image's)")
	fl.StringVar(&vf.gpgKeyring, "gpg-keyring", "", "also verify GPG signatures against this keyring (with --expected-identity)")
	fl.StringVar(&vf.expectedIdentity, "expected-identity", "", "the pull spec the GPG signatures must claim")
	fl.StringVar(&vf.policyFile, "policy", "", "evaluate this containers-policy.json for IMAGE (signedBy, sigstoreSigned, reject, insecureAcceptAnything)")
	return cmd
}

func runCosignVerify(ctx context.Context, cf *clientFlags, vf *cosignVerifyFlags, getenv func(string) string, arg string, out, errOut io.Writer) error {
	wantCosign := vf.key != "" || vf.identity != "" || vf.identityRegexp != "" || vf.issuer != "" || vf.issuerRegexp != ""
	wantGPG := vf.gpgKeyring != "" || vf.expectedIdentity != ""
	wantPolicy := vf.policyFile != ""
	if !wantCosign && !wantGPG && !wantPolicy {
		return errors.New("nothing to verify with: give --key, or --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp], or --gpg-keyring and --expected-identity, or --policy")
	}
	if !wantCosign && (len(vf.annotations) > 0 || vf.trustedRoot != "" || vf.ignoreTlog) {
		return errors.New("-a, --trusted-root and --insecure-ignore-tlog need --key or certificate identity flags")
	}
	if wantGPG && (vf.gpgKeyring == "" || vf.expectedIdentity == "") {
		return errors.New("--gpg-keyring and --expected-identity go together")
	}
	// Everything local is checked before the registry is contacted.
	var verifier *cosign.Verifier
	if wantCosign {
		p, err := vf.policy()
		if err != nil {
			return err
		}
		if verifier, err = cosign.NewVerifier(p); err != nil {
			if !vf.ignoreTlog && vf.trustedRoot == "" {
				return fmt.Errorf("%w\nhint: pass --trusted-root trusted_root.json (Signet does not fetch sigstore's TUF root), or --insecure-ignore-tlog to skip the log", err)
			}
			return err
		}
	}
	var expected string
	if wantGPG {
		var err error
		if expected, err = policy.ExpectedIdentity(vf.expectedIdentity); err != nil {
			return err
		}
	}
	var pol *containerspolicy.Policy
	if wantPolicy {
		b, err := readBounded(vf.policyFile, containerspolicy.MaxPolicyBytes)
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		if pol, err = containerspolicy.Parse(b); err != nil {
			return fmt.Errorf("--policy %s: %w", vf.policyFile, err)
		}
	}
	t, err := cf.resolve(ctx, arg)
	if err != nil {
		return err
	}
	sigRepo := vf.signatureRepository
	if sigRepo == "" {
		sigRepo = getenv("COSIGN_REPOSITORY")
	}
	var errs []error
	if wantCosign {
		errs = append(errs, verifyCosign(ctx, cf, t, sigRepo, verifier, vf.ignoreTlog, out, errOut))
	}
	if wantGPG {
		mech, err := gpgVerifier(vf.gpgKeyring)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		defer mech.Close()
		if err := verifyTarget(ctx, t, mech, expected, false, errOut); err != nil {
			errs = append(errs, fmt.Errorf("gpg: %w", err))
		}
	}
	if wantPolicy {
		if err := evaluatePolicy(ctx, cf, t, arg, vf.policyFile, pol, sigRepo, errOut); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		}
	}
	return errors.Join(errs...)
}

// policy builds the cosign policy from the flags.
func (vf *cosignVerifyFlags) policy() (cosign.Policy, error) {
	p := cosign.Policy{IgnoreTlog: vf.ignoreTlog, Annotations: map[string]string{}}
	for _, a := range vf.annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return p, fmt.Errorf("-a %q: want key=value", a)
		}
		if _, dup := p.Annotations[k]; dup {
			return p, fmt.Errorf("-a %q: annotation %q given twice", a, k)
		}
		p.Annotations[k] = v
	}
	if vf.key != "" {
		b, err := readBounded(vf.key, 64<<10)
		if err != nil {
			return p, fmt.Errorf("--key: %w", err)
		}
		if p.Key, err = cosign.ParsePublicKey(b); err != nil {
			return p, fmt.Errorf("--key %s: %w", vf.key, err)
		}
	}
	var err error
	if p.Identity, err = matcher("--certificate-identity", vf.identity, vf.identityRegexp); err != nil {
		return p, err
	}
	if p.Issuer, err = matcher("--certificate-oidc-issuer", vf.issuer, vf.issuerRegexp); err != nil {
		return p, err
	}
	if vf.trustedRoot != "" {
		b, err := readBounded(vf.trustedRoot, maxTrustedRootBytes)
		if err != nil {
			return p, fmt.Errorf("--trusted-root: %w", err)
		}
		tr, err := root.NewTrustedRootFromJSON(b)
		if err != nil {
			return p, fmt.Errorf("--trusted-root %s: %w", vf.trustedRoot, err)
		}
		p.TrustedMaterial = tr
	}
	return p, nil
}

func matcher(flag, exact, expr string) (cosign.Matcher, error) {
	switch {
	case exact != "" && expr != "":
		return cosign.Matcher{}, fmt.Errorf("%s and %s-regexp are exclusive", flag, flag)
	case expr != "":
		return cosign.Regexp(expr)
	case exact != "":
		return cosign.Exact(exact), nil
	}
	return cosign.Matcher{}, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// verifyCosign finds and verifies t's cosign signatures, reports each
// rejection on errOut, the checks on errOut and the verified payloads on
// out, and fails when none verifies.
func verifyCosign(ctx context.Context, cf *clientFlags, t *target, sigRepoSpec string, v *cosign.Verifier, ignoreTlog bool, out, errOut io.Writer) error {
	c, repo, err := signatureRepository(cf, t, sigRepoSpec)
	if err != nil {
		return err
	}
	ref := targetRef(t)
	found, err := cosign.Discover(ctx, cosignRegistry{c}, repo, t.digest, cosign.DiscoverOptions{})
	if err != nil {
		return err
	}
	for _, p := range found.Problems {
		fmt.Fprintf(errOut, "cosign signature %s unreadable: %v\n", p.Location, p.Err)
	}
	if found.Skipped > 0 {
		fmt.Fprintf(errOut, "warning: %d more cosign signatures of %s not examined (limit %d)\n", found.Skipped, ref, cosign.MaxSignatures)
	}
	var payloads []cosign.Payload
	for i := range found.Candidates {
		cand := &found.Candidates[i]
		got, err := v.Verify(cand, t.digest, ref)
		if err != nil {
			fmt.Fprintf(errOut, "cosign signature %s (%s) %v\n", cand.Location, cand.Format, err)
			continue
		}
		payloads = append(payloads, got.Payload)
	}
	if len(payloads) == 0 {
		if len(found.Candidates)+len(found.Problems) == 0 {
			return fmt.Errorf("no cosign signatures found for %s in %s", ref, c.Host()+"/"+repo)
		}
		return fmt.Errorf("no cosign signature of %s verified", ref)
	}
	if ignoreTlog {
		fmt.Fprintln(errOut, "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
	}
	fmt.Fprintf(errOut, "\nVerification for %s --\nThe following checks were performed on each of these signatures:\n", ref)
	for _, check := range v.Checks() {
		fmt.Fprintf(errOut, "  - %s\n", check)
	}
	b, err := json.Marshal(payloads)
	if err != nil {
		return fmt.Errorf("encode verified payloads: %w", err)
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// signatureRepository resolves where t's cosign signatures live: spec
// (HOST/REPO, or REPO on t's registry), else t's own repository. With
// --registry-url every repository is on that registry.
func signatureRepository(cf *clientFlags, t *target, spec string) (*client.Client, string, error) {
	if spec == "" {
		return t.client, t.image.Repository, nil
	}
	host, repo := t.image.Host, spec
	if first, rest, ok := strings.Cut(spec, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host, repo = first, rest
	}
	named, err := reference.ParseNamed(host + "/" + repo)
	if err != nil || !reference.IsNameOnly(named) {
		return nil, "", fmt.Errorf("signature repository %q: want HOST/REPOSITORY without tag or digest", spec)
	}
	if cf.registryURL != "" || host == t.image.Host {
		return t.client, repo, nil
	}
	opts, err := cf.options(host)
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(host, opts)
	if err != nil {
		return nil, "", err
	}
	return c, repo, nil
}

// cosignRegistry adapts the client to what cosign discovery reads.
type cosignRegistry struct{ c *client.Client }

var _ cosign.Registry = cosignRegistry{}

func notFound(err error) error {
	if client.IsStatus(err, 404) {
		return fmt.Errorf("%w: %w", cosign.ErrNotFound, err)
	}
	return err
}

func (r cosignRegistry) Manifest(ctx context.Context, repo, ref string) (digest.Digest, []byte, error) {
	d, b, err := r.c.Manifest(ctx, repo, ref)
	return d, b, notFound(err)
}

func (r cosignRegistry) Blob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	b, err := r.c.Blob(ctx, repo, d, limit)
	return b, notFound(err)
}

func (r cosignRegistry) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]byte, error) {
	b, err := r.c.Referrers(ctx, repo, subject, artifactType)
	return b, notFound(err)
}
