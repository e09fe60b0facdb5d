package containerspolicy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
	"github.com/signet-registry/signet/gpg"
)

const (
	repo     = "registry.example.com/signet/test"
	identity = repo + ":v1"
)

// fakeSignatures serves fixed signatures and counts reads.
type fakeSignatures struct {
	gpg      []GPGSignature
	cosign   func(ctx context.Context) (*cosign.Found, error)
	gpgErr   error
	gpgCalls int
	cosCalls int
}

func (f *fakeSignatures) GPG(context.Context) ([]GPGSignature, error) {
	f.gpgCalls++
	return f.gpg, f.gpgErr
}

func (f *fakeSignatures) Cosign(ctx context.Context) (*cosign.Found, error) {
	f.cosCalls++
	if f.cosign == nil {
		return &cosign.Found{}, nil
	}
	return f.cosign(ctx)
}

// gpgFixture holds a manifest, the signing keys and their keyrings on disk.
type gpgFixture struct {
	t        *testing.T
	dir      string
	manifest []byte
	digest   digest.Digest
	other    digest.Digest // another manifest's digest
	signer   *gpg.Mechanism
	signerFP string
	otherM   *gpg.Mechanism
	otherFP  string
	// goodKeyring and otherKeyring are public keyring files.
	goodKeyring, otherKeyring string
}

func newGPGFixture(t *testing.T) *gpgFixture {
	t.Helper()
	f := &gpgFixture{t: t, dir: t.TempDir()}
	var err error
	if f.manifest, err = os.ReadFile("../gpg/testdata/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if f.digest, err = manifest.Digest(f.manifest); err != nil {
		t.Fatal(err)
	}
	otherManifest, err := os.ReadFile("../gpg/testdata/manifest-other.json")
	if err != nil {
		t.Fatal(err)
	}
	f.other = digest.FromBytes(otherManifest)
	sec, err := os.ReadFile("../gpg/testdata/rsa.sec.gpg")
	if err != nil {
		t.Fatal(err)
	}
	if f.signer, err = gpg.NewMechanism(sec); err != nil {
		t.Fatal(err)
	}
	f.signerFP = f.signer.KeyIdentities()[0]
	f.goodKeyring = filepath.Join(f.dir, "good.gpg")
	f.copyFile("../gpg/testdata/rsa.pub.gpg", f.goodKeyring)

	// Another RSA key (containers/image's OpenPGP backend reads RSA keys
	// only, so both sides of the differential check can load it).
	e, err := openpgp.NewEntity("Other", "", "other@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	var secBuf, pubBuf bytes.Buffer
	if err := e.SerializePrivate(&secBuf, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(&pubBuf); err != nil {
		t.Fatal(err)
	}
	if f.otherM, err = gpg.NewMechanism(secBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.otherFP = f.otherM.KeyIdentities()[0]
	f.otherKeyring = filepath.Join(f.dir, "other.gpg")
	if err := os.WriteFile(f.otherKeyring, pubBuf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *gpgFixture) copyFile(from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// sign makes a simple-signing signature of d as ref with m.
func (f *gpgFixture) sign(m *gpg.Mechanism, fp, ref string, d digest.Digest) GPGSignature {
	f.t.Helper()
	p := fmt.Sprintf(`{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"atomic container signature"},"optional":{"creator":"test"}}`, ref, d)
	sig, err := m.Sign([]byte(p), fp)
	if err != nil {
		f.t.Fatal(err)
	}
	return GPGSignature{Name: fmt.Sprintf("%s@%s", ref, fp[:8]), Content: sig}
}

// evaluate parses policyJSON, prepares it for imageRef and evaluates it.
func evaluate(t *testing.T, policyJSON, imageRef string, m []byte, sigs Signatures) *Result {
	t.Helper()
	p, err := Parse([]byte(policyJSON))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, policyJSON)
	}
	ref, err := ImageReference(imageRef)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := Prepare(p, ref, Options{})
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	defer prep.Close()
	d, err := manifest.Digest(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := prep.Evaluate(context.Background(), Image{Ref: ref, Digest: d, Manifest: m}, sigs)
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	return res
}

// ciImage is a types.UnparsedImage for containers/image's evaluator.
type ciImage struct {
	ref      types.ImageReference
	manifest []byte
	sigs     [][]byte
}

func (i ciImage) Reference() types.ImageReference { return i.ref }
func (i ciImage) Manifest(context.Context) ([]byte, string, error) {
	return i.manifest, manifest.GuessMIMEType(i.manifest), nil
}
func (i ciImage) Signatures(context.Context) ([][]byte, error) { return i.sigs, nil }

// containersImageAllows is containers/image's verdict (IsRunningImageAllowed)
// for the same policy, image and GPG signatures.
func containersImageAllows(t *testing.T, policyJSON, imageRef string, m []byte, sigs []GPGSignature) bool {
	t.Helper()
	pol, err := signature.NewPolicyFromBytes([]byte(policyJSON))
	if err != nil {
		t.Fatalf("containers/image parse: %v", err)
	}
	pc, err := signature.NewPolicyContext(pol)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Destroy() }()
	ref, err := docker.ParseReference("//" + imageRef)
	if err != nil {
		t.Fatal(err)
	}
	img := ciImage{ref: ref, manifest: m}
	for _, s := range sigs {
		img.sigs = append(img.sigs, s.Content)
	}
	ok, _ := pc.IsRunningImageAllowed(context.Background(), img)
	return ok
}

func signedBy(keyring, identityRule string) string {
	r := fmt.Sprintf(`{"type":"signedBy","keyType":"GPGKeys","keyPath":%q`, keyring)
	if identityRule != "" {
		r += `,"signedIdentity":` + identityRule
	}
	return r + "}"
}

// TestSignedBy evaluates signedBy over GPG signatures for every identity
// rule and failure mode, and checks each verdict against containers/image's
// evaluation of the same policy, image and signatures.
func TestSignedBy(t *testing.T) {
	f := newGPGFixture(t)
	good := f.sign(f.signer, f.signerFP, identity, f.digest)
	byDigest := repo + "@" + f.digest.String()
	for _, c := range []struct {
		name   string
		policy string
		image  string
		sigs   []GPGSignature
		allow  bool
		reason string // in the reason or a rejection when denied
	}{
		{name: "signer, same tag", policy: req(signedBy(f.goodKeyring, "")), image: identity, sigs: []GPGSignature{good}, allow: true},
		{name: "image by digest, default rule", policy: req(signedBy(f.goodKeyring, "")), image: byDigest, sigs: []GPGSignature{good}, allow: true},
		{name: "wrong key", policy: req(signedBy(f.otherKeyring, "")), image: identity, sigs: []GPGSignature{good}, reason: "signature step"},
		{name: "no signatures", policy: req(signedBy(f.goodKeyring, "")), image: identity, reason: "has none"},
		{name: "signature for another manifest", policy: req(signedBy(f.goodKeyring, "")), image: identity,
			sigs: []GPGSignature{f.sign(f.signer, f.signerFP, identity, f.other)}, reason: "manifest digest step"},
		{name: "other tag, default rule", policy: req(signedBy(f.goodKeyring, "")), image: repo + ":v2", sigs: []GPGSignature{good}, reason: "identity step"},
		{name: "other tag, matchRepository", policy: req(signedBy(f.goodKeyring, `{"type":"matchRepository"}`)), image: repo + ":v2", sigs: []GPGSignature{good}, allow: true},
		{name: "other repository, matchRepository", policy: req(signedBy(f.goodKeyring, `{"type":"matchRepository"}`)), image: repo + "-evil:v1", sigs: []GPGSignature{good}, reason: "identity step"},
		{name: "name-only identity, default rule", policy: req(signedBy(f.goodKeyring, "")), image: identity,
			sigs: []GPGSignature{f.sign(f.signer, f.signerFP, repo, f.digest)}, reason: "neither tag nor digest"},
		{name: "name-only identity, matchRepository", policy: req(signedBy(f.goodKeyring, `{"type":"matchRepository"}`)), image: identity,
			sigs: []GPGSignature{f.sign(f.signer, f.signerFP, repo, f.digest)}, allow: true},
		{name: "matchExact, digest image", policy: req(signedBy(f.goodKeyring, `{"type":"matchExact"}`)), image: byDigest, sigs: []GPGSignature{good}, reason: "identity step"},
		{name: "exactReference", policy: req(signedBy(f.goodKeyring, `{"type":"exactReference","dockerReference":"`+identity+`"}`)), image: "mirror.example.com/x/y:z", sigs: []GPGSignature{good}, allow: true},
		{name: "exactReference other", policy: req(signedBy(f.goodKeyring, `{"type":"exactReference","dockerReference":"`+repo+`:v2"}`)), image: identity, sigs: []GPGSignature{good}, reason: "identity step"},
		{name: "exactRepository", policy: req(signedBy(f.goodKeyring, `{"type":"exactRepository","dockerRepository":"`+repo+`"}`)), image: "mirror.example.com/x/y:z", sigs: []GPGSignature{good}, allow: true},
		{name: "remapIdentity", policy: req(signedBy(f.goodKeyring, `{"type":"remapIdentity","prefix":"mirror.example.com/m","signedPrefix":"registry.example.com/signet"}`)),
			image: "mirror.example.com/m/test:v1", sigs: []GPGSignature{good}, allow: true},
		{name: "remapIdentity other tag", policy: req(signedBy(f.goodKeyring, `{"type":"remapIdentity","prefix":"mirror.example.com/m","signedPrefix":"registry.example.com/signet"}`)),
			image: "mirror.example.com/m/test:v2", sigs: []GPGSignature{good}, reason: "identity step"},
		{name: "one good among bad", policy: req(signedBy(f.goodKeyring, "")), image: identity,
			sigs: []GPGSignature{f.sign(f.otherM, f.otherFP, identity, f.digest), {Name: "garbage", Content: []byte("not a signature")}, good}, allow: true},
		{name: "keyPaths, second key signed", policy: req(fmt.Sprintf(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[%q,%q]}`, f.otherKeyring, f.goodKeyring)),
			image: identity, sigs: []GPGSignature{good}, allow: true},
		{name: "signedBy and reject", policy: req(signedBy(f.goodKeyring, "") + `,{"type":"reject"}`), image: identity, sigs: []GPGSignature{good}, reason: "rejects every image"},
		{name: "signedBy and accept anything", policy: req(`{"type":"insecureAcceptAnything"},` + signedBy(f.goodKeyring, "")), image: identity, sigs: []GPGSignature{good}, allow: true},
		{name: "accept anything and failing signedBy", policy: req(`{"type":"insecureAcceptAnything"},` + signedBy(f.otherKeyring, "")), image: identity, sigs: []GPGSignature{good}, reason: "signature step"},
		{name: "two signedBy, one key each, only one signed", policy: req(signedBy(f.goodKeyring, "") + "," + signedBy(f.otherKeyring, "")), image: identity, sigs: []GPGSignature{good}, reason: "signature step"},
		{name: "two signedBy, both signed", policy: req(signedBy(f.goodKeyring, "") + "," + signedBy(f.otherKeyring, "")), image: identity,
			sigs: []GPGSignature{good, f.sign(f.otherM, f.otherFP, identity, f.digest)}, allow: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sigs := &fakeSignatures{gpg: c.sigs}
			res := evaluate(t, c.policy, c.image, f.manifest, sigs)
			if res.Allowed != c.allow {
				t.Fatalf("allowed %v, want %v: %+v", res.Allowed, c.allow, res.Outcomes)
			}
			if !c.allow && !strings.Contains(fmt.Sprintf("%+v", res.Outcomes), c.reason) {
				t.Fatalf("outcomes %+v do not say %q", res.Outcomes, c.reason)
			}
			if sigs.gpgCalls > 1 || sigs.cosCalls != 0 {
				t.Fatalf("signatures read %d (GPG) and %d (cosign) times", sigs.gpgCalls, sigs.cosCalls)
			}
			if theirs := containersImageAllows(t, c.policy, c.image, f.manifest, c.sigs); theirs != c.allow {
				t.Fatalf("containers/image says %v", theirs)
			}
		})
	}
}

// TestSignedByKeyData: the keyring may be inline, base64, binary or
// armored.
func TestSignedByKeyData(t *testing.T) {
	f := newGPGFixture(t)
	good := f.sign(f.signer, f.signerFP, identity, f.digest)
	for _, file := range []string{"rsa.pub.gpg", "rsa.pub.asc"} {
		b, err := os.ReadFile("../gpg/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		pol := req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"` + base64.StdEncoding.EncodeToString(b) + `"}`)
		if res := evaluate(t, pol, identity, f.manifest, &fakeSignatures{gpg: []GPGSignature{good}}); !res.Allowed {
			t.Fatalf("%s: %+v", file, res.Outcomes)
		}
	}
}

// TestSimpleRequirements: insecureAcceptAnything and reject read no
// signatures; a list passes only if every requirement does.
func TestSimpleRequirements(t *testing.T) {
	m := []byte(`{"schemaVersion":2}`)
	for _, c := range []struct {
		policy string
		allow  bool
	}{
		{req(`{"type":"insecureAcceptAnything"}`), true},
		{req(`{"type":"reject"}`), false},
		{req(`{"type":"insecureAcceptAnything"},{"type":"reject"}`), false},
		{req(`{"type":"reject"},{"type":"insecureAcceptAnything"}`), false},
		{req(`{"type":"insecureAcceptAnything"},{"type":"insecureAcceptAnything"}`), true},
	} {
		sigs := &fakeSignatures{gpgErr: errors.New("must not be read")}
		res := evaluate(t, c.policy, identity, m, sigs)
		if res.Allowed != c.allow || sigs.gpgCalls+sigs.cosCalls != 0 || len(res.Outcomes) != strings.Count(c.policy, "type") {
			t.Errorf("%s: allowed %v (want %v), %d reads, outcomes %+v", c.policy, res.Allowed, c.allow, sigs.gpgCalls+sigs.cosCalls, res.Outcomes)
		}
		if theirs := containersImageAllows(t, c.policy, identity, m, nil); theirs != c.allow {
			t.Errorf("%s: containers/image says %v", c.policy, theirs)
		}
	}
}

// TestSignatureReadError: a failure to read signatures is an error, not a
// verdict.
func TestSignatureReadError(t *testing.T) {
	f := newGPGFixture(t)
	p, err := Parse([]byte(req(signedBy(f.goodKeyring, ""))))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := ImageReference(identity)
	prep, err := Prepare(p, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Close()
	_, err = prep.Evaluate(context.Background(), Image{Ref: ref, Digest: f.digest, Manifest: f.manifest}, &fakeSignatures{gpgErr: errors.New("registry down")})
	if err == nil || !strings.Contains(err.Error(), "registry down") {
		t.Fatalf("err %v", err)
	}
	other, _ := ImageReference(repo + ":v2")
	if _, err := prep.Evaluate(context.Background(), Image{Ref: other, Digest: f.digest, Manifest: f.manifest}, &fakeSignatures{}); !errors.Is(err, ErrImageReference) {
		t.Fatalf("evaluated another image with prepared requirements: %v", err)
	}
}

// TestPrepareKeyMaterial: unusable key material in the applicable scope
// fails Prepare with the path; in another scope it is never read.
func TestPrepareKeyMaterial(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.gpg")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writePEM := func(name string, s crypto.Signer) string {
		p, err := cosigntest.PublicKeyPEM(s)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rsaKey, edKey, ecKey := writePEM("rsa.pem", rsaPriv), writePEM("ed.pem", edPriv), writePEM("ec.pem", ecPriv)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ref, _ := ImageReference(identity)
	for name, c := range map[string]struct{ policy, err string }{
		"missing keyring":   {req(signedBy(filepath.Join(dir, "nope.gpg"), "")), "no such file"},
		"empty keyring":     {req(signedBy(empty, "")), "no openpgp keys"},
		"directory":         {req(signedBy(dir, "")), "not a regular file"},
		"fifo":              {req(signedBy(fifo, "")), "not a regular file"},
		"device":            {req(signedBy("/dev/zero", "")), "not a regular file"},
		"garbage PEM key":   {req(`{"type":"sigstoreSigned","keyPath":"` + garbage + `"}`), "parse public key"},
		"RSA cosign key":    {req(`{"type":"sigstoreSigned","keyPath":"` + rsaKey + `"}`), "unsupported public key type"},
		"keyData not a key": {req(`{"type":"sigstoreSigned","keyData":"` + b64 + `"}`), "no PEM block"},
		"non-ECDSA rekor":   {req(`{"type":"sigstoreSigned","keyPath":"` + ecKey + `","rekorPublicKeyPath":"` + edKey + `"}`), "must be ECDSA"},
		"fulcio CA not a certificate": {req(`{"type":"sigstoreSigned","fulcio":{"caData":"` + b64 + `","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"` + ecKey + `"}`),
			"no PEM certificate"},
		"fulcio CA holds a key": {req(`{"type":"sigstoreSigned","fulcio":{"caPath":"` + ecKey + `","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"` + ecKey + `"}`),
			`PEM block "PUBLIC KEY"`},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(c.policy))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Prepare(p, ref, Options{})
			if !errors.Is(err, ErrKeyMaterial) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err %v, want ErrKeyMaterial mentioning %q", err, c.err)
			}
			// The same requirement in a scope that does not apply is
			// never loaded.
			elsewhere := strings.Replace(c.policy, `{"default":[`, `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"other.example.com":[`, 1) + "}}"
			p, err = Parse([]byte(elsewhere))
			if err != nil {
				t.Fatalf("%v\n%s", err, elsewhere)
			}
			if _, err := Prepare(p, ref, Options{}); err != nil {
				t.Fatalf("loaded key material of another scope: %v", err)
			}
		})
	}
}

// TestScopePrecedence: the most specific docker scope wins, in
// containers/image's order, and the verdict agrees with containers/image
// for every image.
func TestScopePrecedence(t *testing.T) {
	scopes := []string{
		"registry.example.com/ns/app:v1",
		"registry.example.com/ns/app@" + testDigest,
		"registry.example.com/ns/app",
		"registry.example.com/ns",
		"registry.example.com",
		"registry.example.com:5000",
		"*.example.com",
		"*.com",
		"",
	}
	for _, c := range []struct{ image, want string }{
		{"registry.example.com/ns/app:v1", "registry.example.com/ns/app:v1"},
		{"registry.example.com/ns/app:v2", "registry.example.com/ns/app"},
		{"registry.example.com/ns/app@" + testDigest, "registry.example.com/ns/app@" + testDigest},
		{"registry.example.com/ns/other:v1", "registry.example.com/ns"},
		{"registry.example.com/ns/deeper/app:v1", "registry.example.com/ns"},
		{"registry.example.com/nsx/app:v1", "registry.example.com"},
		{"registry.example.com/app", "registry.example.com"},
		{"registry.example.com:5000/ns/app:v1", "registry.example.com:5000"},
		{"registry.example.com:6000/ns/app:v1", "*.example.com"},
		{"mirror.example.com/ns/app:v1", "*.example.com"},
		{"a.b.example.com/ns/app:v1", "*.example.com"},
		{"quay.io/ns/app:v1", "*.io"},
		{"example.org/app:v1", ""},
		{"localhost:5000/app:v1", ""},
		{"busybox", ""},
	} {
		t.Run(c.image, func(t *testing.T) {
			want := c.want
			if c.image == "quay.io/ns/app:v1" {
				want = "" // *.io is not among the scopes
			}
			// Each scope accepts only if it is the expected one; default
			// rejects.
			var sb strings.Builder
			sb.WriteString(`{"default":[{"type":"reject"}],"transports":{"docker":{`)
			for i, s := range scopes {
				if i > 0 {
					sb.WriteString(",")
				}
				typ := "reject"
				if s == want {
					typ = "insecureAcceptAnything"
				}
				fmt.Fprintf(&sb, `%q:[{"type":%q}]`, s, typ)
			}
			sb.WriteString("}}}")
			pol := sb.String()
			p, err := Parse([]byte(pol))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := ImageReference(c.image)
			if err != nil {
				t.Fatal(err)
			}
			scope, _ := p.RequirementsFor(ref)
			if string(scope) != fmt.Sprintf("transports.docker[%q]", want) {
				t.Fatalf("scope %s, want %q", scope, want)
			}
			m := []byte(`{"schemaVersion":2}`)
			if res := evaluate(t, pol, c.image, m, &fakeSignatures{}); !res.Allowed {
				t.Fatalf("not allowed: %+v", res.Outcomes)
			}
			if !containersImageAllows(t, pol, c.image, m, nil) {
				t.Fatal("containers/image chose another scope")
			}
		})
	}
	// Without a docker "" scope, default applies.
	p, err := Parse([]byte(withDocker("registry.example.com", `[{"type":"reject"}]`)))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := ImageReference("example.org/app:v1")
	if scope, reqs := p.RequirementsFor(ref); scope != "default" || len(reqs) != 1 {
		t.Fatalf("scope %s", scope)
	}
}

func TestImageReference(t *testing.T) {
	for in, want := range map[string]string{
		"registry.example.com/ns/app":                  "registry.example.com/ns/app:latest",
		"registry.example.com/ns/app:v1":               "registry.example.com/ns/app:v1",
		"registry.example.com/ns/app@" + testDigest:    "registry.example.com/ns/app@" + testDigest,
		"registry.example.com/ns/app:v1@" + testDigest: "",
		"UPPER/case": "",
	} {
		ref, err := ImageReference(in)
		if want == "" {
			if err == nil || !errors.Is(err, ErrImageReference) {
				t.Errorf("%s: accepted as %v", in, ref)
			}
			continue
		}
		if err != nil || ref.String() != want {
			t.Errorf("%s: %v %v, want %s", in, ref, err, want)
		}
	}
}

// sigstoreFixture is an image in an in-memory registry with cosign
// signatures minted by the test authority.
type sigstoreFixture struct {
	t        *testing.T
	dir      string
	auth     *cosigntest.Authority
	reg      *cosigntest.Registry
	repo     string // repository in the registry
	name     string // the image's full name
	image    digest.Digest
	manifest []byte
	signer   crypto.Signer
	other    crypto.Signer
	keyPath  string // signer's public key
	otherKey string
	rekorKey string
	caPath   string
}

func newSigstoreFixture(t *testing.T) *sigstoreFixture {
	t.Helper()
	auth, err := cosigntest.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	f := &sigstoreFixture{t: t, dir: t.TempDir(), auth: auth, reg: cosigntest.NewRegistry(), repo: "org/app"}
	f.name = "registry.example.com/" + f.repo
	f.image = f.reg.PushImage(f.repo, "v1", "content")
	if _, f.manifest, err = f.reg.Manifest(context.Background(), f.repo, f.image.String()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*crypto.Signer{&f.signer, &f.other} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		*s = k
	}
	f.keyPath = f.writePEM("cosign.pub", f.signer)
	f.otherKey = f.writePEM("other.pub", f.other)
	rekor, err := auth.RekorPublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	f.rekorKey = f.write("rekor.pub", rekor)
	f.caPath = f.write("fulcio.pem", auth.FulcioCAPEM())
	return f
}

func (f *sigstoreFixture) write(name, content string) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *sigstoreFixture) writePEM(name string, s crypto.Signer) string {
	p, err := cosigntest.PublicKeyPEM(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.write(name, p)
}

// signatures serves what the registry holds, as the CLI does.
func (f *sigstoreFixture) signatures() *fakeSignatures {
	return &fakeSignatures{cosign: func(ctx context.Context) (*cosign.Found, error) {
		return cosign.Discover(ctx, f.reg, f.repo, f.image, cosign.DiscoverOptions{})
	}}
}

// legacyKeyed pushes a legacy signature by s naming dockerRef and d; a
// non-zero logged time adds a Rekor SET.
func (f *sigstoreFixture) legacyKeyed(s crypto.Signer, dockerRef string, d digest.Digest, logged time.Time) {
	f.t.Helper()
	l, err := f.auth.LegacyKeyed(s, cosigntest.SimpleSigningPayload(dockerRef, d, nil), logged)
	if err != nil {
		f.t.Fatal(err)
	}
	f.reg.PushLegacy(f.repo, f.image, l)
}

func (f *sigstoreFixture) legacyKeyless(leaf cosigntest.Leaf, dockerRef string) {
	f.t.Helper()
	cert, key, err := f.auth.Certificate(leaf)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := f.auth.LegacyKeyless(cert, key, cosigntest.SimpleSigningPayload(dockerRef, f.image, nil), time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	f.reg.PushLegacy(f.repo, f.image, l)
}

func sigstoreReq(fields string) string { return `{"type":"sigstoreSigned",` + fields + `}` }

const matchRepository = `"signedIdentity":{"type":"matchRepository"}`

// TestSigstoreSigned evaluates sigstoreSigned for keyed and Fulcio
// signatures, with and without Rekor, against the cosign verifier and the
// signed docker-reference.
func TestSigstoreSigned(t *testing.T) {
	const issuer, email = "https://accounts.example.com", "dev@example.com"
	fulcio := func(f *sigstoreFixture, issuer, email string) string {
		return sigstoreReq(fmt.Sprintf(`"fulcio":{"caPath":%q,"oidcIssuer":%q,"subjectEmail":%q},"rekorPublicKeyPath":%q,%s`,
			f.caPath, issuer, email, f.rekorKey, matchRepository))
	}
	keyed := func(f *sigstoreFixture, key string, extra string) string {
		return sigstoreReq(fmt.Sprintf(`"keyPath":%q%s`, key, extra))
	}
	for _, c := range []struct {
		name   string
		setup  func(f *sigstoreFixture)
		policy func(f *sigstoreFixture) string
		image  string // default: NAME:v1
		allow  bool
		reason string
	}{
		{name: "keyed, cosign's name-only identity, matchRepository",
			setup:  func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, ","+matchRepository) }, allow: true},
		{name: "keyed, cosign's name-only identity, default rule",
			setup:  func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, "") }, reason: "neither tag nor digest"},
		{name: "keyed, tagged identity, default rule",
			setup:  func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name+":v1", f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, "") }, allow: true},
		{name: "keyed, identity of another repository",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyed(f.signer, "registry.example.com/org/debug", f.image, time.Time{})
			},
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, ","+matchRepository) }, reason: "repositories differ"},
		{name: "wrong key",
			setup:  func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string { return keyed(f, f.otherKey, ","+matchRepository) }, reason: "rejected at signature check"},
		{name: "keyPaths, the second key signed",
			setup: func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string {
				return sigstoreReq(fmt.Sprintf(`"keyPaths":[%q,%q],%s`, f.otherKey, f.keyPath, matchRepository))
			}, allow: true},
		{name: "payload for another image",
			setup:  func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, digest.FromString("other"), time.Time{}) },
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, ","+matchRepository) }, reason: "rejected at digest check"},
		{name: "keyed with Rekor, logged",
			setup: func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Now()) },
			policy: func(f *sigstoreFixture) string {
				return keyed(f, f.keyPath, fmt.Sprintf(`,"rekorPublicKeyPath":%q,%s`, f.rekorKey, matchRepository))
			}, allow: true},
		{name: "keyed with Rekor, not logged",
			setup: func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string {
				return keyed(f, f.keyPath, fmt.Sprintf(`,"rekorPublicKeyPath":%q,%s`, f.rekorKey, matchRepository))
			}, reason: "no transparency log entry"},
		{name: "keyed with another Rekor key",
			setup: func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Now()) },
			policy: func(f *sigstoreFixture) string {
				return keyed(f, f.keyPath, fmt.Sprintf(`,"rekorPublicKeyPath":%q,%s`, f.otherKey, matchRepository))
			}, reason: "not in the trusted root"},
		{name: "bundle only",
			setup: func(f *sigstoreFixture) {
				b, err := cosigntest.BundleKeyed(f.signer, cosigntest.Statement(f.image, cosign.SignPredicateType, nil))
				if err != nil {
					t.Fatal(err)
				}
				f.reg.PushBundle(f.repo, f.image, b, cosign.SignPredicateType)
			},
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, ","+matchRepository) }, reason: "signs no docker-reference"},
		{name: "no signatures",
			setup:  func(*sigstoreFixture) {},
			policy: func(f *sigstoreFixture) string { return keyed(f, f.keyPath, ","+matchRepository) }, reason: "has none"},
		{name: "fulcio",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{Emails: []string{email}, IssuerV1: issuer, IssuerV2: issuer}, f.name)
			},
			policy: func(f *sigstoreFixture) string { return fulcio(f, issuer, email) }, allow: true},
		{name: "fulcio, other email",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{Emails: []string{"eve@example.com"}, IssuerV1: issuer, IssuerV2: issuer}, f.name)
			},
			policy: func(f *sigstoreFixture) string { return fulcio(f, issuer, email) }, reason: "rejected at identity check"},
		{name: "fulcio, email only as a URI",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{URIs: []string{email}, IssuerV1: issuer, IssuerV2: issuer}, f.name)
			},
			policy: func(f *sigstoreFixture) string { return fulcio(f, issuer, email) }, reason: "rejected at identity check"},
		{name: "fulcio, other issuer",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{Emails: []string{email}, IssuerV1: "https://evil.example", IssuerV2: "https://evil.example"}, f.name)
			},
			policy: func(f *sigstoreFixture) string { return fulcio(f, issuer, email) }, reason: "rejected at issuer check"},
		{name: "fulcio, issuer extensions disagree",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{Emails: []string{email}, IssuerV1: issuer, IssuerV2: "https://evil.example"}, f.name)
			},
			policy: func(f *sigstoreFixture) string { return fulcio(f, issuer, email) }, reason: "issuer extensions disagree"},
		{name: "fulcio, CA file without the intermediate",
			setup: func(f *sigstoreFixture) {
				f.legacyKeyless(cosigntest.Leaf{Emails: []string{email}, IssuerV1: issuer}, f.name)
			},
			policy: func(f *sigstoreFixture) string {
				block := f.auth.FulcioCAPEM()
				f.caPath = f.write("root-only.pem", block[:strings.Index(block, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")])
				return fulcio(f, issuer, email)
			}, reason: "rejected at certificate chain check"},
		{name: "sigstoreSigned and signedBy both required, no GPG signature",
			setup: func(f *sigstoreFixture) { f.legacyKeyed(f.signer, f.name, f.image, time.Time{}) },
			policy: func(f *sigstoreFixture) string {
				return keyed(f, f.keyPath, ","+matchRepository) + "," + signedBy("../gpg/testdata/rsa.pub.gpg", "")
			}, reason: "a GPG signature was required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newSigstoreFixture(t)
			c.setup(f)
			image := c.image
			if image == "" {
				image = f.name + ":v1"
			}
			sigs := f.signatures()
			res := evaluate(t, req(c.policy(f)), image, f.manifest, sigs)
			if res.Allowed != c.allow {
				t.Fatalf("allowed %v, want %v: %+v", res.Allowed, c.allow, res.Outcomes)
			}
			if !c.allow && !strings.Contains(fmt.Sprintf("%+v", res.Outcomes), c.reason) {
				t.Fatalf("outcomes %+v do not say %q", res.Outcomes, c.reason)
			}
			if sigs.cosCalls != 1 {
				t.Fatalf("cosign signatures read %d times", sigs.cosCalls)
			}
		})
	}
}

// TestLoadLimits: each kind of key file is read through its own limit,
// and all of one scope's key material through a total budget.
func TestLoadLimits(t *testing.T) {
	ref, _ := ImageReference(identity)
	rekorKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rekorPEM, err := cosigntest.PublicKeyPEM(rekorKey)
	if err != nil {
		t.Fatal(err)
	}
	rekorData := base64.StdEncoding.EncodeToString([]byte(rekorPEM))
	limits := map[string]int64{}
	record := func(path string, limit int64) ([]byte, error) {
		limits[path] = limit
		return nil, errors.New("stop")
	}
	for _, c := range []struct {
		policy, path string
		limit        int64
	}{
		{req(signedBy("/keyring.gpg", "")), "/keyring.gpg", maxKeyringBytes},
		{req(sigstoreReq(`"keyPath":"/cosign.pub"`)), "/cosign.pub", maxPEMKeyBytes},
		{req(sigstoreReq(`"keyPath":"/cosign.pub","rekorPublicKeyPath":"/rekor.pub"`)), "/rekor.pub", maxPEMKeyBytes},
		{req(sigstoreReq(`"fulcio":{"caPath":"/ca.pem","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyData":"` + rekorData + `"`)), "/ca.pem", maxCABytes},
	} {
		p, err := Parse([]byte(c.policy))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Prepare(p, ref, Options{ReadFile: record}); !errors.Is(err, ErrKeyMaterial) {
			t.Fatalf("%s: %v", c.path, err)
		}
		if limits[c.path] != c.limit {
			t.Errorf("%s read with limit %d, want %d", c.path, limits[c.path], c.limit)
		}
	}

	// 64 keyrings of 1.5 MiB each are over the 64 MiB budget.
	big := make([]byte, 3<<19)
	paths := make([]string, maxListEntries)
	for i := range paths {
		paths[i] = fmt.Sprintf("%q", fmt.Sprintf("/k%d.gpg", i))
	}
	p, err := Parse([]byte(req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[` + strings.Join(paths, ",") + `]}`)))
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	_, err = Prepare(p, ref, Options{ReadFile: func(string, int64) ([]byte, error) { reads++; return big, nil }})
	if !errors.Is(err, ErrKeyMaterial) || !strings.Contains(err.Error(), "in all") || reads > maxLoadTotalBytes/len(big)+1 {
		t.Fatalf("err %v after %d reads", err, reads)
	}

	// The file system reader stops at the limit.
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, make([]byte, 101), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRegularFile(file, 100); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Fatalf("read past the limit: %v", err)
	}
	if b, err := readRegularFile(file, 101); err != nil || len(b) != 101 {
		t.Fatalf("read at the limit: %d %v", len(b), err)
	}
}
