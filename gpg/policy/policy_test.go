package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/signet-registry/signet/gpg"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/gpg/policy"
)

const (
	dgst      = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dgstOther = "@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func TestRulesSpecTable(t *testing.T) {
	mustExactRef := func(s string) policy.Rule {
		r, err := policy.NewExactReference(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mustExactRepo := func(s string) policy.Rule {
		r, err := policy.NewExactRepository(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mustRemap := func(p, sp string) policy.Rule {
		r, err := policy.NewRemapIdentity(p, sp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const img = "registry.example.com/ns/name"
	tests := []struct {
		name             string
		rule             policy.Rule
		expected, signed string
		ok               bool
	}{
		// matchRepoDigestOrExact (default)
		{"default: tagged, equal", policy.Default(), img + ":v1", img + ":v1", true},
		{"default: tagged, other tag", policy.Default(), img + ":v1", img + ":v2", false},
		{"default: tagged, other repository", policy.Default(), img + ":v1", "registry.example.com/ns/other:v1", false},
		{"default: tagged, other host", policy.Default(), img + ":v1", "mirror.example.com/ns/name:v1", false},
		{"default: tagged, other port", policy.Default(), img + ":v1", "registry.example.com:5000/ns/name:v1", false},
		{"default: prefix-sharing repository", policy.Default(), "registry.example.com/ns/math:v1", "registry.example.com/ns/math-voila:v1", false},
		{"default: digested, same repository any tag", policy.Default(), img + dgst, img + ":v7", true},
		{"default: digested, other repository", policy.Default(), img + dgst, "registry.example.com/ns/other:v1", false},
		{"default: name-only signature", policy.Default(), img + ":latest", img, false},
		{"default: name-only expectation", policy.Default(), img, img + ":latest", false},
		{"default: normalization", policy.MatchRepoDigestOrExact{}, "busybox:latest", "docker.io/library/busybox:latest", true},
		{"default: containers fixture identity", policy.Default(), "testing/manifest:latest", "testing/manifest", false},
		{"default: invalid signed identity", policy.Default(), img + ":v1", "NOT/VALID:v1", false},
		// matchExact
		{"exact: equal", policy.MatchExact{}, img + ":v1", img + ":v1", true},
		{"exact: digested expectation needs equal digest", policy.MatchExact{}, img + dgst, img + ":v1", false},
		{"exact: equal digests", policy.MatchExact{}, img + dgst, img + dgst, true},
		{"exact: name-only both", policy.MatchExact{}, img, img, false},
		{"exact: containers fixture identity", policy.MatchExact{}, "testing/manifest:latest", "testing/manifest", false},
		// matchRepository
		{"repository: other tag", policy.MatchRepository{}, img + ":v1", img + ":v2", true},
		{"repository: name-only signature", policy.MatchRepository{}, img + ":v1", img, true},
		{"repository: containers fixture identity", policy.MatchRepository{}, "testing/manifest:latest", "testing/manifest", true},
		{"repository: other repository", policy.MatchRepository{}, img + ":v1", "registry.example.com/ns/other:v1", false},
		// exactReference / exactRepository ignore the expectation
		{"exactReference: equal", mustExactRef(img + ":v1"), "anything.example.com/x:y", img + ":v1", true},
		{"exactReference: other tag", mustExactRef(img + ":v1"), img + ":v1", img + ":v2", false},
		{"exactReference: zero value matches nothing", policy.ExactReference{}, img + ":v1", img + ":v1", false},
		{"exactRepository: any tag", mustExactRepo(img), "anything.example.com/x:y", img + ":v9", true},
		{"exactRepository: other repository", mustExactRepo(img), img + ":v1", "registry.example.com/ns/other:v1", false},
		// remapIdentity
		{"remap: mirror host", mustRemap("mirror.example.com", "registry.example.com"), "mirror.example.com/ns/name:v1", img + ":v1", true},
		{"remap: mirror namespace", mustRemap("mirror.example.com/ns", "registry.example.com/ns"), "mirror.example.com/ns/name:v1", img + ":v1", true},
		{"remap: prefix must end at a path boundary", mustRemap("mirror.example.com/n", "registry.example.com/n"), "mirror.example.com/ns/name:v1", img + ":v1", false},
		{"remap: not under prefix falls back to default", mustRemap("mirror.example.com", "registry.example.com"), img + ":v1", img + ":v1", true},
		{"remap: remapped tag must match", mustRemap("mirror.example.com", "registry.example.com"), "mirror.example.com/ns/name:v1", img + ":v2", false},
		{"remap: name-only signature", mustRemap("mirror.example.com", "registry.example.com"), "mirror.example.com/ns/name:v1", img, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Match(tc.expected, tc.signed)
			if tc.ok && err != nil {
				t.Fatalf("Match(%q, %q) = %v, want nil", tc.expected, tc.signed, err)
			}
			if !tc.ok && !errors.Is(err, policy.ErrIdentityMismatch) && !errors.Is(err, policy.ErrInvalidRule) {
				t.Fatalf("Match(%q, %q) = %v, want ErrIdentityMismatch", tc.expected, tc.signed, err)
			}
		})
	}
}

func TestInvalidExpectedIdentity(t *testing.T) {
	for _, r := range []policy.Rule{policy.MatchRepoDigestOrExact{}, policy.MatchExact{}, policy.MatchRepository{}} {
		if err := r.Match("NOT VALID", "busybox:latest"); !errors.Is(err, policy.ErrInvalidReference) {
			t.Errorf("%v: error = %v, want ErrInvalidReference", r, err)
		}
	}
}

func TestConstructorsAndParseJSON(t *testing.T) {
	tests := []struct {
		json string
		want string // String() of the rule; "" = error
	}{
		{`{"type":"matchRepoDigestOrExact"}`, "matchRepoDigestOrExact"},
		{`{"type":"matchExact"}`, "matchExact"},
		{`{"type":"matchRepository"}`, "matchRepository"},
		{`{"type":"exactReference","dockerReference":"busybox:latest"}`, "exactReference(busybox:latest)"},
		{`{"type":"exactReference","dockerReference":"busybox"}`, ""},
		{`{"type":"exactReference","dockerReference":"UPPER"}`, ""},
		{`{"type":"exactRepository","dockerRepository":"busybox"}`, "exactRepository(busybox)"},
		{`{"type":"exactRepository","dockerRepository":""}`, ""},
		{`{"type":"remapIdentity","prefix":"mirror.example.com","signedPrefix":"registry.example.com/ns"}`, "remapIdentity(mirror.example.com -> registry.example.com/ns)"},
		// Accepted, as by containers/image: "ns" is syntactically a host name.
		{`{"type":"remapIdentity","prefix":"ns/name","signedPrefix":"registry.example.com"}`, "remapIdentity(ns/name -> registry.example.com)"},
		{`{"type":"remapIdentity","prefix":"Mirror.example.com/NS","signedPrefix":"registry.example.com"}`, ""},
		{`{"type":"remapIdentity","prefix":"","signedPrefix":"registry.example.com"}`, ""},
		{`{"type":"remapIdentity","prefix":"mirror.example.com:5000","signedPrefix":"registry.example.com:5000/ns"}`, "remapIdentity(mirror.example.com:5000 -> registry.example.com:5000/ns)"},
		{`{"type":"remapIdentity","prefix":"mirror.example.com"}`, ""},
		{`{"type":"matchExact","extra":1}`, ""},
		{`{"type":"matchExact","type":"matchExact"}`, ""},
		{`{"type":"matchExact"} {}`, ""},
		{`{"type":"unknown"}`, ""},
		{`{"type":1}`, ""},
		{`[]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.json, func(t *testing.T) {
			r, err := policy.ParseJSON([]byte(tc.json))
			if tc.want == "" {
				if !errors.Is(err, policy.ErrInvalidRule) {
					t.Fatalf("ParseJSON = %v, %v; want ErrInvalidRule", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(r); got != tc.want {
				t.Errorf("rule = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestExpectedIdentity(t *testing.T) {
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"registry.example.com/ns/name", "registry.example.com/ns/name:latest"},
		{"registry.example.com/ns/name:v1", "registry.example.com/ns/name:v1"},
		{"registry.example.com/ns/name" + dgst, "registry.example.com/ns/name" + dgst},
		{"NOT VALID", ""},
	}
	for _, tc := range tests {
		got, err := policy.ExpectedIdentity(tc.in)
		if tc.want == "" {
			if !errors.Is(err, policy.ErrInvalidReference) {
				t.Errorf("ExpectedIdentity(%q) = %q, %v; want ErrInvalidReference", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ExpectedIdentity(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestDifferentialAgainstContainersImage evaluates every rule on every pair
// of references both with our Rule.Match and with containers/image's own
// policy engine (a signedBy requirement with the same signedIdentity, on a
// real signature), and requires identical verdicts.
func TestDifferentialAgainstContainersImage(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test signs and verifies a few hundred signatures")
	}
	refs := []string{
		"busybox", "busybox:latest", "busybox:notlatest", "library/busybox:latest",
		"docker.io/library/busybox:latest", "busybox" + dgst, "busybox" + dgstOther,
		"busybox:latest" + dgst, "notbusybox:latest", "hostname/library/busybox:latest",
		"registry.access.redhat.com/rhel7/rhel:7.2.3", "registry.access.redhat.com/rhel7/rhel",
		"testing/manifest", "testing/manifest:latest",
		"registry.example.com/ns/name:v1", "registry.example.com/ns/name:v2", "registry.example.com/ns/name",
		"registry.example.com/ns/name" + dgst, "registry.example.com:5000/ns/name:v1",
		"registry.example.com/ns/name-voila:v1", "mirror.example.com/ns/name:v1",
		"mirror.example.com/ns/name" + dgst, "mirror.example.com/ns/sub/name:v1", "UPPERCASE_INVALID",
	}
	type rulePair struct {
		ours   policy.Rule
		theirs signature.PolicyReferenceMatch
	}
	var rules []rulePair
	add := func(ours policy.Rule, oursErr error, theirs signature.PolicyReferenceMatch, theirsErr error) {
		if (oursErr == nil) != (theirsErr == nil) {
			t.Fatalf("constructor disagreement for %v: ours %v, theirs %v", ours, oursErr, theirsErr)
		}
		if oursErr == nil {
			rules = append(rules, rulePair{ours, theirs})
		}
	}
	add(policy.MatchRepoDigestOrExact{}, nil, signature.NewPRMMatchRepoDigestOrExact(), nil)
	add(policy.MatchExact{}, nil, signature.NewPRMMatchExact(), nil)
	add(policy.MatchRepository{}, nil, signature.NewPRMMatchRepository(), nil)
	for _, r := range []string{"busybox:latest", "registry.example.com/ns/name:v1", "busybox" + dgst, "busybox", "registry.example.com/ns/name"} {
		ours, oe := policy.NewExactReference(r)
		theirs, te := signature.NewPRMExactReference(r)
		add(ours, oe, theirs, te)
		oursRepo, oe := policy.NewExactRepository(r)
		theirsRepo, te := signature.NewPRMExactRepository(r)
		add(oursRepo, oe, theirsRepo, te)
	}
	for _, p := range [][2]string{
		{"mirror.example.com", "registry.example.com"},
		{"mirror.example.com/ns", "registry.example.com/ns"},
		{"mirror.example.com/ns/name", "docker.io/library/busybox"},
		{"mirror.example.com/n", "registry.example.com/n"},
		{"docker.io", "registry.example.com"},
		{"ns/name", "registry.example.com"},
	} {
		ours, oe := policy.NewRemapIdentity(p[0], p[1])
		theirs, te := signature.NewPRMRemapIdentity(p[0], p[1])
		add(ours, oe, theirs, te)
	}

	manifest, err := os.ReadFile(filepath.Join("..", "testdata", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	pubKey, err := os.ReadFile(filepath.Join("..", "testdata", "ed25519.pub.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	secKey, err := os.ReadFile(filepath.Join("..", "testdata", "ed25519.sec.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	mech, err := gpg.NewMechanism(secKey)
	if err != nil {
		t.Fatal(err)
	}
	keyID := mech.KeyIdentities()[0]
	sigs := map[string][]byte{}
	for _, signed := range refs {
		b, err := payload.Payload{ManifestDigest: digest.FromBytes(manifest), DockerReference: signed}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if sigs[signed], err = mech.Sign(b, keyID); err != nil {
			t.Fatal(err)
		}
	}

	checked := 0
	for _, rp := range rules {
		req, err := signature.NewPRSignedByKeyData(signature.SBKeyTypeGPGKeys, pubKey, rp.theirs)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{req}})
		if err != nil {
			t.Fatal(err)
		}
		for _, expected := range refs {
			intended, err := reference.ParseNormalizedNamed(expected)
			if err != nil {
				// exactReference/exactRepository ignore the expectation, as in containers/image.
				_, fixed1 := rp.ours.(policy.ExactReference)
				_, fixed2 := rp.ours.(policy.ExactRepository)
				if err := rp.ours.Match(expected, "busybox:latest"); err == nil && !fixed1 && !fixed2 {
					t.Errorf("%v accepted invalid expectation %q", rp.ours, expected)
				}
				continue
			}
			for _, signed := range refs {
				img := &fakeImage{ref: fakeRef{named: intended}, manifest: manifest, sigs: [][]byte{sigs[signed]}}
				theirs, _ := pc.IsRunningImageAllowed(context.Background(), img)
				ours := rp.ours.Match(expected, signed) == nil
				if ours != theirs {
					t.Errorf("%v: expected %q, signed %q: ours %v, containers/image %v", rp.ours, expected, signed, ours, theirs)
				}
				checked++
			}
		}
		_ = pc.Destroy()
	}
	t.Logf("%d rule/expected/signed combinations agree", checked)
}

// fakeImage is the minimum of types.UnparsedImage the policy engine reads.
type fakeImage struct {
	ref      fakeRef
	manifest []byte
	sigs     [][]byte
}

func (f *fakeImage) Reference() types.ImageReference { return f.ref }
func (f *fakeImage) Manifest(context.Context) ([]byte, string, error) {
	return f.manifest, "application/vnd.docker.distribution.manifest.v2+json", nil
}
func (f *fakeImage) Signatures(context.Context) ([][]byte, error) { return f.sigs, nil }

// fakeRef embeds the interface so that unexpected calls fail loudly.
type fakeRef struct {
	types.ImageReference
	named reference.Named
}

func (r fakeRef) Transport() types.ImageTransport         { return fakeTransport{} }
func (r fakeRef) StringWithinTransport() string           { return r.named.String() }
func (r fakeRef) DockerReference() reference.Named        { return r.named }
func (r fakeRef) PolicyConfigurationIdentity() string     { return r.named.String() }
func (r fakeRef) PolicyConfigurationNamespaces() []string { return nil }
func (r fakeRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return nil, errors.New("not implemented")
}

type fakeTransport struct{ types.ImageTransport }

func (fakeTransport) Name() string { return "signet-test" }
