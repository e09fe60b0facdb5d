package containerspolicy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.podman.io/image/v5/signature"

	"github.com/signet-registry/signet/gpg/policy"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// withDocker wraps requirement JSON as the only docker scope's list.
func withDocker(scope, reqs string) string {
	return fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{%q:%s}}}`, scope, reqs)
}

// req wraps one requirement as the default list.
func req(r string) string { return `{"default":[` + r + `]}` }

var b64 = base64.StdEncoding.EncodeToString([]byte("key material"))

// parseCase is one policy file. Exactly one of ok, err and stricter says
// what happens:
//   - ok: Signet and containers/image both accept it;
//   - err: both refuse it, and Signet's message contains err;
//   - stricter: containers/image accepts it and Signet refuses it on
//     purpose, for the reason given (its message contains stricter).
type parseCase struct {
	name     string
	json     string
	ok       bool
	err      string
	stricter string
}

var parseCases = []parseCase{
	// Accepted by both.
	{name: "fedora default", ok: true, json: `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}`},
	{name: "reject default", ok: true, json: req(`{"type":"reject"}`)},
	{name: "empty transports", ok: true, json: `{"default":[{"type":"reject"}],"transports":{}}`},
	{name: "empty docker", ok: true, json: `{"default":[{"type":"reject"}],"transports":{"docker":{}}}`},
	{name: "signedBy keyPath", ok: true, json: withDocker("example.com", `[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"}]`)},
	{name: "signedBy keyPaths", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/a.gpg","/b.gpg"]}`)},
	{name: "signedBy keyData", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"` + b64 + `"}`)},
	{name: "signedBy matchExact", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact"}}`)},
	{name: "signedBy matchRepository", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchRepository"}}`)},
	{name: "signedBy matchRepoDigestOrExact", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchRepoDigestOrExact"}}`)},
	{name: "signedBy exactReference", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"example.com/ns/app:v1"}}`)},
	{name: "signedBy exactRepository", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"example.com/ns/app"}}`)},
	{name: "signedBy remapIdentity", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"mirror.example.com","signedPrefix":"example.com/ns"}}`)},
	{name: "sigstoreSigned keyPath", ok: true, json: req(`{"type":"sigstoreSigned","keyPath":"/c.pub"}`)},
	{name: "sigstoreSigned keyData rekor", ok: true, json: req(`{"type":"sigstoreSigned","keyData":"` + b64 + `","rekorPublicKeyData":"` + b64 + `"}`)},
	{name: "sigstoreSigned keyPaths rekorPaths", ok: true, json: req(`{"type":"sigstoreSigned","keyPaths":["/a.pub","/b.pub"],"rekorPublicKeyPaths":["/r.pub"],"signedIdentity":{"type":"matchRepository"}}`)},
	{name: "sigstoreSigned keyDatas", ok: true, json: req(`{"type":"sigstoreSigned","keyDatas":["` + b64 + `"],"rekorPublicKeyDatas":["` + b64 + `"]}`)},
	{name: "sigstoreSigned fulcio caPath", ok: true, json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca.pem","oidcIssuer":"https://issuer.example","subjectEmail":"a@example.com"},"rekorPublicKeyPath":"/r.pub"}`)},
	{name: "sigstoreSigned fulcio caData", ok: true, json: req(`{"type":"sigstoreSigned","fulcio":{"caData":"` + b64 + `","oidcIssuer":"https://issuer.example","subjectEmail":"a@example.com"},"rekorPublicKeyData":"` + b64 + `"}`)},
	{name: "all requirement kinds in one list", ok: true, json: req(`{"type":"insecureAcceptAnything"},{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k"},{"type":"sigstoreSigned","keyPath":"/c.pub"}`)},
	{name: "keyData with line breaks", ok: true, json: req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"` + b64[:8] + `\n` + b64[8:] + `"}`)},
	{name: "scopes of every form", ok: true, json: `{"default":[{"type":"reject"}],"transports":{"docker":{
		"":[{"type":"reject"}],
		"example.com":[{"type":"reject"}],
		"example.com:5000":[{"type":"reject"}],
		"localhost":[{"type":"reject"}],
		"localhost:5000/ns":[{"type":"reject"}],
		"127.0.0.1:5000":[{"type":"reject"}],
		"example.com/ns":[{"type":"reject"}],
		"example.com/ns/app":[{"type":"reject"}],
		"example.com/ns/app:v1":[{"type":"reject"}],
		"example.com/ns/app@` + testDigest + `":[{"type":"reject"}],
		"docker.io/library/busybox":[{"type":"reject"}],
		"*.example.com":[{"type":"reject"}],
		"*.com":[{"type":"reject"}]}}}`},
	{name: "other transports", ok: true, json: `{"default":[{"type":"reject"}],"transports":{"atomic":{"":[{"type":"reject"}]},"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]},"containers-storage":{"":[{"type":"insecureAcceptAnything"}]}}}`},

	// Refused by both.
	{name: "empty file", json: ``, err: "parsing json"},
	{name: "not json", json: `default: reject`, err: "invalid"},
	{name: "top-level array", json: `[{"default":[]}]`, err: "must be an object"},
	{name: "trailing data", json: req(`{"type":"reject"}`) + `{}`, err: "after json value"},
	{name: "missing default", json: `{"transports":{}}`, err: `missing key "default"`},
	{name: "default empty", json: `{"default":[]}`, err: "must not be empty"},
	{name: "default null", json: `{"default":null}`, err: "list of requirements"},
	{name: "default object", json: `{"default":{"type":"reject"}}`, err: "list of requirements"},
	{name: "unknown top-level key", json: `{"default":[{"type":"reject"}],"defaults":[]}`, err: `unknown key "defaults"`},
	{name: "duplicate top-level key", json: `{"default":[{"type":"insecureAcceptAnything"}],"default":[{"type":"reject"}]}`, err: "duplicate key"},
	{name: "duplicate key in requirement", json: req(`{"type":"reject","type":"insecureAcceptAnything"}`), err: "duplicate key"},
	{name: "duplicate scope", json: `{"default":[{"type":"reject"}],"transports":{"docker":{"example.com":[{"type":"insecureAcceptAnything"}],"example.com":[{"type":"reject"}]}}}`, err: "duplicate key"},
	{name: "duplicate key in signedIdentity", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","type":"matchRepository"}}`), err: "duplicate key"},
	{name: "requirement not an object", json: req(`"reject"`), err: "must be an object"},
	{name: "unknown requirement type", json: req(`{"type":"rejectAll"}`), err: `unknown requirement type "rejectAll"`},
	{name: "type in other case", json: req(`{"type":"Reject"}`), err: `unknown requirement type "Reject"`},
	{name: "type key in other case", json: req(`{"Type":"reject"}`), err: `missing key "type"`},
	{name: "type not a string", json: req(`{"type":1}`), err: "must be a string"},
	{name: "reject with an extra key", json: req(`{"type":"reject","keyPath":"/k"}`), err: `unknown key "keyPath"`},
	{name: "accept with an extra key", json: req(`{"type":"insecureAcceptAnything","signedIdentity":{"type":"matchExact"}}`), err: `unknown key "signedIdentity"`},
	{name: "signedBy misspelled key", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPth":"/k"}`), err: `unknown key "keyPth"`},
	{name: "signedBy without keyType", json: req(`{"type":"signedBy","keyPath":"/k"}`), err: `missing key "keyType"`},
	{name: "signedBy unknown keyType", json: req(`{"type":"signedBy","keyType":"PGP","keyPath":"/k"}`), err: `unknown keyType "PGP"`},
	{name: "signedBy no key", json: req(`{"type":"signedBy","keyType":"GPGKeys"}`), err: "exactly one of keyPath, keyPaths and keyData"},
	{name: "signedBy two keys", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"` + b64 + `"}`), err: "are exclusive"},
	{name: "signedBy keyPath empty", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":""}`), err: "must not be empty"},
	{name: "signedBy keyPath null", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":null}`), err: "must be a string"},
	{name: "signedBy keyPaths null", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":null}`), err: "must be a list"},
	{name: "signedBy keyData not base64", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyData":"not base64!"}`), err: "not valid base64"},
	{name: "signedBy keyData null", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyData":null}`), err: "base64 string"},
	{name: "signedIdentity null", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":null}`), err: "expected an object"},
	{name: "signedIdentity unknown type", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchAnything"}}`), err: `unknown type "matchAnything"`},
	{name: "signedIdentity extra key", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","dockerReference":"a.example/b:c"}}`), err: `unknown key "dockerReference"`},
	{name: "exactReference without reference", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference"}}`), err: `missing key "dockerReference"`},
	{name: "exactReference name only", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"example.com/ns/app"}}`), err: "neither tag nor digest"},
	{name: "exactRepository invalid", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"UPPER/case"}}`), err: "exactRepository"},
	{name: "remapIdentity bare name prefix", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"example.com/UPPER","signedPrefix":"example.com/ns"}}`), err: "remapIdentity prefix"},
	{name: "sigstoreSigned no key", json: req(`{"type":"sigstoreSigned"}`), err: "exactly one of keyPath"},
	{name: "sigstoreSigned key and fulcio", json: req(`{"type":"sigstoreSigned","keyPath":"/c.pub","fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), err: "exactly one of keyPath"},
	{name: "sigstoreSigned keyPath and keyData", json: req(`{"type":"sigstoreSigned","keyPath":"/c.pub","keyData":"` + b64 + `"}`), err: "are exclusive"},
	{name: "sigstoreSigned keyPaths empty", json: req(`{"type":"sigstoreSigned","keyPaths":[]}`), err: "must not be empty"},
	{name: "sigstoreSigned two rekor keys", json: req(`{"type":"sigstoreSigned","keyPath":"/c.pub","rekorPublicKeyPath":"/r","rekorPublicKeyData":"` + b64 + `"}`), err: "are exclusive"},
	{name: "fulcio without rekor", json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e"}}`), err: "fulcio needs one of rekorPublicKeyPath"},
	{name: "fulcio without subjectEmail", json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","oidcIssuer":"i"},"rekorPublicKeyPath":"/r"}`), err: `missing key "subjectEmail"`},
	{name: "fulcio empty oidcIssuer", json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","oidcIssuer":"","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), err: "must not be empty"},
	{name: "fulcio caPath and caData", json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","caData":"` + b64 + `","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), err: "are exclusive"},
	{name: "fulcio without CA", json: req(`{"type":"sigstoreSigned","fulcio":{"oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), err: "exactly one of caPath and caData"},
	{name: "fulcio unknown key", json: req(`{"type":"sigstoreSigned","fulcio":{"caPath":"/ca","oidcIssuer":"i","subjectEmail":"e","subjectURI":"x"},"rekorPublicKeyPath":"/r"}`), err: `unknown key "subjectURI"`},
	{name: "sigstoreSigned unknown key", json: req(`{"type":"sigstoreSigned","keyPath":"/c.pub","rekorURL":"https://rekor"}`), err: `unknown key "rekorURL"`},
	{name: "transports an array", json: `{"default":[{"type":"reject"}],"transports":[]}`, err: "must be an object"},
	{name: "scope value null", json: `{"default":[{"type":"reject"}],"transports":{"docker":{"example.com":null}}}`, err: "list of requirements"},
	{name: "scope list empty", json: `{"default":[{"type":"reject"}],"transports":{"docker":{"example.com":[]}}}`, err: "must not be empty"},
	{name: "bad requirement in another transport", json: `{"default":[{"type":"reject"}],"transports":{"docker-daemon":{"":[{"type":"accept"}]}}}`, err: "unknown requirement type"},

	// Refused by Signet on purpose, accepted by containers/image.
	{name: "unknown transport", json: `{"default":[{"type":"reject"}],"transports":{"dokcer":{"":[{"type":"insecureAcceptAnything"}]}}}`, stricter: `unknown transport "dokcer"`},
	{name: "short-name scope", json: withDocker("busybox", `[{"type":"insecureAcceptAnything"}]`), stricter: "fully expanded"},
	{name: "docker.io scope without library", json: withDocker("docker.io/busybox", `[{"type":"insecureAcceptAnything"}]`), stricter: "fully expanded"},
	{name: "URL scope", json: withDocker("https://example.com", `[{"type":"insecureAcceptAnything"}]`), stricter: "fully expanded"},
	{name: "wildcard with port", json: withDocker("*.example.com:5000", `[{"type":"insecureAcceptAnything"}]`), stricter: "without a port"},
	{name: "wildcard inside", json: withDocker("example.*.com", `[{"type":"insecureAcceptAnything"}]`), stricter: "fully expanded"},
	{name: "scope with tag and digest", json: withDocker("example.com/ns/app:v1@"+testDigest, `[{"type":"insecureAcceptAnything"}]`), stricter: "both a tag and a digest"},
	{name: "keyType signedByGPGKeys", json: req(`{"type":"signedBy","keyType":"signedByGPGKeys","keyPath":"/k"}`), stricter: "not implemented"},
	{name: "keyType X509Certificates", json: req(`{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}`), stricter: "not implemented"},
	{name: "signedBaseLayer", json: req(`{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}`), stricter: "not implemented"},
	{name: "sigstoreSigned pki", json: req(`{"type":"sigstoreSigned","pki":{"caRootsPath":"/roots.pem","subjectEmail":"a@example.com"}}`), stricter: "not supported"},
	{name: "signedBy keyPaths empty", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[]}`), stricter: "must not be empty"},
	{name: "signedBy keyData empty", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyData":""}`), stricter: "must not be empty"},
	{name: "invalid utf-8", json: req(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k` + "\xff" + `"}`), stricter: "invalid utf-8"},
	{name: "too many requirements", json: `{"default":[` + strings.Repeat(`{"type":"insecureAcceptAnything"},`, maxListEntries) + `{"type":"reject"}]}`, stricter: "more than 64 requirements"},
}

// TestParseAgreesWithContainersImage runs every case through Signet's
// parser and containers/image's (signature.NewPolicyFromBytes): they agree
// except where Signet refuses on purpose, and Signet never accepts what
// containers/image refuses.
func TestParseAgreesWithContainersImage(t *testing.T) {
	for _, c := range parseCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.json))
			_, theirs := signature.NewPolicyFromBytes([]byte(c.json))
			switch {
			case c.ok:
				if err != nil || theirs != nil {
					t.Fatalf("want both to accept: signet %v, containers/image %v", err, theirs)
				}
			case c.stricter != "":
				if theirs != nil {
					t.Fatalf("containers/image refuses it too (%v); move the case to the refused ones", theirs)
				}
				if err == nil || !strings.Contains(err.Error(), c.stricter) {
					t.Fatalf("signet: %v, want an error containing %q", err, c.stricter)
				}
			default:
				if theirs == nil {
					t.Fatalf("containers/image accepts it; signet: %v", err)
				}
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("signet: %v, want an error containing %q (containers/image: %v)", err, c.err, theirs)
				}
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("%v does not wrap ErrInvalidPolicy", err)
			}
		})
	}
}

// TestParseStructure checks what a parsed policy holds, not only that it
// parses.
func TestParseStructure(t *testing.T) {
	p, err := Parse([]byte(`{"default":[{"type":"reject"}],"transports":{
		"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]},
		"docker":{"example.com/ns":[
			{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/a.gpg","/b.gpg"],"signedIdentity":{"type":"matchRepository"}},
			{"type":"sigstoreSigned","fulcio":{"caData":"` + b64 + `","oidcIssuer":"https://issuer.example","subjectEmail":"dev@example.com"},"rekorPublicKeyPath":"/r.pub"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Default) != 1 || p.Default[0].String() != "reject" {
		t.Fatalf("default %v", p.Default)
	}
	if len(p.Transports) != 2 || len(p.Docker) != 1 {
		t.Fatalf("transports %v, docker scopes %v", p.Transports, p.Docker)
	}
	reqs := p.Docker["example.com/ns"]
	sb, ok := reqs[0].(*SignedBy)
	if !ok || strings.Join(sb.Keys.Paths, ",") != "/a.gpg,/b.gpg" || sb.Keys.Field != "keyPaths" {
		t.Fatalf("signedBy %#v", reqs[0])
	}
	if _, ok := sb.Identity.(policy.MatchRepository); !ok {
		t.Fatalf("signedIdentity %#v", sb.Identity)
	}
	ss, ok := reqs[1].(*SigstoreSigned)
	if !ok || ss.Fulcio == nil || string(ss.Fulcio.CA.Data[0]) != "key material" || ss.Fulcio.SubjectEmail != "dev@example.com" ||
		ss.Fulcio.OIDCIssuer != "https://issuer.example" || ss.Rekor.Paths[0] != "/r.pub" || !ss.Keys.isZero() {
		t.Fatalf("sigstoreSigned %#v", reqs[1])
	}
	if _, ok := ss.Identity.(policy.MatchRepoDigestOrExact); !ok {
		t.Fatalf("default signedIdentity %#v", ss.Identity)
	}
}

// TestParseHostile: oversized, deeply nested and list-bomb files are
// refused quickly and with a clear error, never a panic.
func TestParseHostile(t *testing.T) {
	for name, in := range map[string]string{
		"oversized":    `{"default":[{"type":"reject"}],"x":"` + strings.Repeat("a", MaxPolicyBytes) + `"}`,
		"deep nesting": `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat("}", 100) + `}]}`,
		"keyPaths bomb": req(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":[` +
			strings.TrimSuffix(strings.Repeat(`"/dev/zero",`, maxListEntries+1), ",") + `]}`),
		"keyDatas bomb": req(`{"type":"sigstoreSigned","keyDatas":[` +
			strings.TrimSuffix(strings.Repeat(`"`+b64+`",`, maxListEntries+1), ",") + `]}`),
		"nul in key": `{"default":[{"type":"reject"}],"transports":{"docker":{"example.com\u0000":[{"type":"reject"}]}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(in)); err == nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("accepted or unclear: %v", err)
			}
		})
	}
}

// FuzzParse: the parser never panics, and never accepts a file that
// containers/image refuses.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		if p.Default == nil {
			t.Fatal("accepted a policy without default")
		}
		if _, theirs := signature.NewPolicyFromBytes(data); theirs != nil {
			t.Fatalf("signet accepts what containers/image refuses (%v): %q", theirs, data)
		}
	})
}
