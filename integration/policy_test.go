package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policyFixture is a Signet holding images signed by real gpg (through
// skopeo --sign-by) and real cosign, with the key files a policy names.
type policyFixture struct {
	s                                *server
	tmp                              string
	regD                             string // an empty registries.d for skopeo
	env                              []string
	cosign                           string
	app                              string // HOST/policy/app:v1: GPG, cosign legacy and bundle signatures
	appDgst                          string
	bundle                           string // HOST/policy/bundle:v1: GPG and a cosign bundle only
	notary                           string // HOST/policy/notary:v1: GPG, cosign legacy in HOST/notary
	goodGPG, badGPG, goodPub, badPub string
}

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	requireTools(t, "skopeo", "gpg")
	f := &policyFixture{cosign: cosignBin(t), tmp: t.TempDir()}
	f.s = startServer(t, filepath.Join(f.tmp, "data"))
	f.regD = filepath.Join(f.tmp, "registries.d")
	if err := os.Mkdir(f.regD, 0o755); err != nil {
		t.Fatal(err)
	}
	f.env = []string{"COSIGN_PASSWORD=pw", "HOME=" + f.tmp, "TUF_ROOT=" + filepath.Join(f.tmp, "tuf"), "COSIGN_REPOSITORY="}
	g := newGnuPG(t, "Policy Signer <policy@example.com>")
	other := newGnuPG(t, "Someone Else <else@example.com>")
	f.goodGPG, f.badGPG = filepath.Join(f.tmp, "good.gpg"), filepath.Join(f.tmp, "bad.gpg")
	g.exportPublic(t, f.goodGPG)
	other.exportPublic(t, f.badGPG)
	run(t, f.env, f.cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(f.tmp, "signer"))
	run(t, f.env, f.cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(f.tmp, "other"))
	f.goodPub, f.badPub = filepath.Join(f.tmp, "signer.pub"), filepath.Join(f.tmp, "other.pub")

	anything := filepath.Join(f.tmp, "anything.json")
	writeJSON(t, anything, acceptAnything())
	push := func(repo, content string) (string, string) {
		src := filepath.Join(f.tmp, strings.ReplaceAll(repo, "/", "-"))
		ociImage(t, src, "v1", content)
		ref := f.s.addr + "/" + repo + ":v1"
		out := run(t, g.env, "skopeo", append(skopeoArgs(f.regD, anything), "copy", "--dest-tls-verify=false",
			"--sign-by", g.fpr, "oci:"+src+":v1", "docker://"+ref)...)
		if !strings.Contains(out, "Storing signatures") {
			t.Fatalf("skopeo stored no signature:\n%s", out)
		}
		return ref, manifestDigest(t, f.s, repo, "v1")
	}
	sign := func(env []string, ref string, legacy bool) {
		args := []string{"sign", "--key", filepath.Join(f.tmp, "signer.key"), "--allow-http-registry",
			"--use-signing-config=false", "--tlog-upload=false", "-y"}
		if legacy {
			args = append(args, "--new-bundle-format=false")
		}
		run(t, env, f.cosign, append(args, ref)...)
	}
	var dgst string
	f.app, f.appDgst = push("policy/app", "app\n")
	sign(f.env, f.s.addr+"/policy/app@"+f.appDgst, true)
	sign(f.env, f.s.addr+"/policy/app@"+f.appDgst, false)
	f.bundle, dgst = push("policy/bundle", "bundle\n")
	sign(f.env, f.s.addr+"/policy/bundle@"+dgst, false)
	f.notary, dgst = push("policy/notary", "notary\n")
	sign(append(append([]string{}, f.env...), "COSIGN_REPOSITORY="+f.s.addr+"/notary"), f.s.addr+"/policy/notary@"+dgst, true)
	return f
}

// scoped is a policy whose default rejects and whose docker scope holds reqs.
func scoped(scope string, reqs ...map[string]any) map[string]any {
	list := make([]any, len(reqs))
	for i, r := range reqs {
		list[i] = r
	}
	return map[string]any{
		"default":    []any{map[string]any{"type": "reject"}},
		"transports": map[string]any{"docker": map[string]any{scope: list}},
	}
}

func gpgReq(keyPath string) map[string]any {
	return map[string]any{"type": "signedBy", "keyType": "GPGKeys", "keyPath": keyPath}
}

// cosignReq is sigstoreSigned with matchRepository: cosign signs the
// repository name without a tag, which the default rule refuses.
func cosignReq(keyPath string) map[string]any {
	return map[string]any{"type": "sigstoreSigned", "keyPath": keyPath, "signedIdentity": map[string]any{"type": "matchRepository"}}
}

func (f *policyFixture) policy(t *testing.T, name string, p map[string]any) string {
	t.Helper()
	path := filepath.Join(f.tmp, name+".json")
	writeJSON(t, path, p)
	return path
}

// TestVerifyPolicy drives `signet verify --policy` over images signed by
// real gpg (skopeo --sign-by) and real cosign (both formats, and a
// separate signature repository): a policy that passes, a wrong GPG key, a
// wrong cosign key, a scope that rejects, cosign's untagged identity under
// the default rule, and a bundle-only image.
func TestVerifyPolicy(t *testing.T) {
	f := newPolicyFixture(t)
	ns := f.s.addr + "/policy"
	good := scoped(ns, gpgReq(f.goodGPG), cosignReq(f.goodPub))
	for _, c := range []struct {
		name   string
		policy map[string]any
		image  string
		env    []string
		ok     bool
		want   []string // in the output
	}{
		{name: "passes", policy: good, image: f.app, ok: true,
			want: []string{`transports.docker["` + ns + `"]`, "1. signedBy", "2. sigstoreSigned", `signed identity "` + f.app + `"`,
				`signed identity "` + f.s.addr + `/policy/app"`, ".sig layer 0 signed by the key", "Policy accepts " + f.app}},
		{name: "passes by digest", policy: good, image: f.s.addr + "/policy/app@" + f.appDgst, ok: true,
			want: []string{"Policy accepts " + f.s.addr + "/policy/app@" + f.appDgst}},
		{name: "signedBy with the wrong key", policy: scoped(ns, gpgReq(f.badGPG), cosignReq(f.goodPub)), image: f.app,
			want: []string{"1. signedBy", "REJECTED", "rejected at signature step", "Policy rejects"}},
		{name: "sigstoreSigned with the wrong key", policy: scoped(ns, gpgReq(f.goodGPG), cosignReq(f.badPub)), image: f.app,
			want: []string{"2. sigstoreSigned", "REJECTED", "rejected at signature check", "Policy rejects"}},
		{name: "reject for the scope", image: f.app,
			policy: map[string]any{
				"default": []any{map[string]any{"type": "insecureAcceptAnything"}},
				"transports": map[string]any{"docker": map[string]any{
					ns:                       []any{map[string]any{"type": "insecureAcceptAnything"}},
					f.s.addr + "/policy/app": []any{map[string]any{"type": "reject"}},
				}},
			},
			want: []string{`transports.docker["` + f.s.addr + `/policy/app"]`, "1. reject: REJECTED", "Policy rejects"}},
		{name: "cosign's identity under the default rule", image: f.app,
			policy: scoped(ns, map[string]any{"type": "sigstoreSigned", "keyPath": f.goodPub}),
			want:   []string{"signed identity has neither tag nor digest", "Policy rejects"}},
		{name: "bundle only", policy: good, image: f.bundle,
			want: []string{"1. signedBy", "accepted", "signs no docker-reference", "Policy rejects"}},
		{name: "signatures in another repository, from COSIGN_REPOSITORY", policy: good, image: f.notary, ok: true,
			env:  []string{"COSIGN_REPOSITORY=" + f.s.addr + "/notary"},
			want: []string{"notary:sha256-", "Policy accepts"}},
		{name: "signatures in another repository, not found without it", policy: good, image: f.notary,
			want: []string{"a cosign signature was required, but the image has none", "Policy rejects"}},
		{name: "combined with --key", policy: good, image: f.app, ok: true,
			want: []string{"The signatures were verified against the specified public key", `"critical"`, "Policy accepts"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := f.policy(t, strings.ReplaceAll(c.name, " ", "-"), c.policy)
			args := []string{"verify", "--insecure", "--policy", pol}
			if strings.HasPrefix(c.name, "combined") {
				args = append(args, "--key", f.goodPub, "--insecure-ignore-tlog")
			}
			env := append(append([]string{}, f.env...), c.env...)
			out, err := signet(t, env, append(args, c.image)...)
			if (err == nil) != c.ok {
				t.Fatalf("exit error %v, want success %v:\n%s", err, c.ok, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// A malformed policy is refused before the registry is contacted, with
	// the place of the error.
	bad := filepath.Join(f.tmp, "typo.json")
	if err := os.WriteFile(bad, []byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"`+ns+`":[{"type":"signedBy","keyType":"GPGKeys","keyPth":"/k"}]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := signet(t, f.env, "verify", "--insecure", "--policy", bad, "127.0.0.1:1/nowhere/app:v1")
	if err == nil || !strings.Contains(out, `transports.docker["`+ns+`"][0]: unknown key "keyPth"`) || strings.Contains(out, "connection refused") {
		t.Fatalf("typo policy: %v\n%s", err, out)
	}
	// Options of the cosign flags do not silently apply to the policy.
	if out, err := signet(t, f.env, "verify", "--insecure", "--policy", f.policy(t, "good", good), "-a", "team=x", f.app); err == nil ||
		!strings.Contains(out, "need --key or certificate identity flags") {
		t.Fatalf("-a with --policy only: %v\n%s", err, out)
	}
}

// TestVerifyPolicyAgreesWithSkopeo: for the signedBy part of the policy,
// `skopeo copy --policy` (skopeo 1.9.3, which reads the GPG signatures
// through Signet's extension API) and `signet verify --policy` reach the
// same verdict on the same files. sigstoreSigned cannot be compared with
// Debian's skopeo: its containers/image is built with sigstore disabled
// ("Debian-local change: sigstore disabled").
func TestVerifyPolicyAgreesWithSkopeo(t *testing.T) {
	f := newPolicyFixture(t)
	ns := f.s.addr + "/policy"
	byDigest := f.s.addr + "/policy/app@" + f.appDgst
	matchExact := gpgReq(f.goodGPG)
	matchExact["signedIdentity"] = map[string]any{"type": "matchExact"}
	otherTag := gpgReq(f.goodGPG)
	otherTag["signedIdentity"] = map[string]any{"type": "exactReference", "dockerReference": ns + "/app:v2"}
	repoRule := gpgReq(f.goodGPG)
	repoRule["signedIdentity"] = map[string]any{"type": "exactRepository", "dockerRepository": ns + "/app"}
	for _, c := range []struct {
		name   string
		policy map[string]any
		image  string
		ok     bool
	}{
		{"good key", scoped(ns, gpgReq(f.goodGPG)), f.app, true},
		{"good key, by digest", scoped(ns, gpgReq(f.goodGPG)), byDigest, true},
		{"wrong key", scoped(ns, gpgReq(f.badGPG)), f.app, false},
		{"both keys required", scoped(ns, gpgReq(f.goodGPG), gpgReq(f.badGPG)), f.app, false},
		{"keyPaths with the good key second", scoped(ns, map[string]any{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": []string{f.badGPG, f.goodGPG}}), f.app, true},
		{"matchExact by digest", scoped(ns, matchExact), byDigest, false},
		{"exactReference of another tag", scoped(ns, otherTag), f.app, false},
		{"exactRepository", scoped(ns, repoRule), byDigest, true},
		{"reject for the image", scoped(f.app, map[string]any{"type": "reject"}), f.app, false},
		{"more specific scope accepts anything", func() map[string]any {
			p := scoped(ns, gpgReq(f.badGPG))
			p["transports"].(map[string]any)["docker"].(map[string]any)[ns+"/app"] = []any{map[string]any{"type": "insecureAcceptAnything"}}
			return p
		}(), f.app, true},
		{"no scope, default rejects", scoped("example.com", map[string]any{"type": "insecureAcceptAnything"}), f.app, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := f.policy(t, "skopeo-"+strings.ReplaceAll(c.name, " ", "-"), c.policy)
			sOut, sErr := signet(t, f.env, "verify", "--insecure", "--policy", pol, c.image)
			kOut, kErr := runErr(nil, "skopeo", append(skopeoArgs(f.regD, pol), "copy", "--src-tls-verify=false", "--remove-signatures",
				"docker://"+c.image, "oci:"+filepath.Join(t.TempDir(), "out")+":v1")...)
			if (sErr == nil) != c.ok || (kErr == nil) != c.ok {
				t.Fatalf("want allowed=%v; signet: %v\n%s\nskopeo: %v\n%s", c.ok, sErr, sOut, kErr, kOut)
			}
			if !c.ok && !strings.Contains(kOut, "rejected") {
				t.Fatalf("skopeo failed for another reason:\n%s", kOut)
			}
		})
	}
}
