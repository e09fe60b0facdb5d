package cosign_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/cosign/cosigntest"
)

func newSigner(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var s crypto.Signer
	var err error
	switch kind {
	case "P-256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P-384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "Ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil || s == nil {
		t.Fatalf("generate %s: %v", kind, err)
	}
	return s
}

func parseKey(t *testing.T, s crypto.Signer) crypto.PublicKey {
	t.Helper()
	p, err := cosigntest.PublicKeyPEM(s)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cosign.ParsePublicKey([]byte(p))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestKeyed covers keyed signatures in both formats, for every supported
// key type, with and without the transparency log.
func TestKeyed(t *testing.T) {
	for _, kind := range []string{"P-256", "P-384", "Ed25519"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t)
			signer, other := newSigner(t, kind), newSigner(t, kind)
			payload := cosigntest.SimpleSigningPayload("127.0.0.1/org/app", f.image, map[string]string{"team": "core"})

			logged, err := f.auth.LegacyKeyed(signer, payload, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			unlogged, err := f.auth.LegacyKeyed(signer, payload, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			f.reg.PushLegacy("org/app", f.image, logged)
			f.reg.PushLegacy("org/unlogged", f.image, unlogged)
			b, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(f.image, cosign.SignPredicateType, nil))
			if err != nil {
				t.Fatal(err)
			}
			f.reg.PushBundle("org/unlogged", f.image, b, cosign.SignPredicateType)

			key := parseKey(t, signer)
			withLog := cosign.Policy{Key: key, TrustedMaterial: f.auth.Trusted, Annotations: map[string]string{"team": "core"}}
			ok, errs := f.verifyAll("org/app", withLog)
			if len(ok) != 1 || len(errs) != 0 {
				t.Fatalf("logged legacy signature: %d verified, errors %v", len(ok), errs)
			}
			if _, has := ok[0].Payload.Optional["Bundle"]; !has || ok[0].IntegratedTime.IsZero() {
				t.Errorf("log entry not reported: %+v", ok[0])
			}

			ignoring := cosign.Policy{Key: key, IgnoreTlog: true}
			ok, errs = f.verifyAll("org/unlogged", ignoring)
			if len(ok) != 2 || len(errs) != 0 {
				t.Fatalf("unlogged legacy and bundle: %d verified, errors %v", len(ok), errs)
			}

			// Without the log explicitly ignored, an unlogged signature fails.
			_, errs = f.verifyAll("org/unlogged", cosign.Policy{Key: key, TrustedMaterial: f.auth.Trusted})
			if len(errs) != 2 {
				t.Fatalf("unlogged signatures accepted with the log required: %v", errs)
			}
			for _, err := range errs {
				if !errors.Is(err, cosign.ErrNoTlogEntry) {
					t.Errorf("got %v, want ErrNoTlogEntry", err)
				}
			}

			// Another key verifies nothing.
			_, errs = f.verifyAll("org/unlogged", cosign.Policy{Key: parseKey(t, other), IgnoreTlog: true})
			if len(errs) != 2 {
				t.Fatalf("another key accepted: %v", errs)
			}
			for _, err := range errs {
				var ve *cosign.VerificationError
				if !errors.As(err, &ve) || ve.Step != cosign.StepSignature || !errors.Is(err, cosign.ErrSignature) {
					t.Errorf("got %v, want ErrSignature at the signature check", err)
				}
			}
		})
	}
}

// TestKeyedSETBoundToSigner: a valid SET for the same payload signed by
// another key must not vouch for this signature (CVE-2022-36056).
func TestKeyedSETBoundToSigner(t *testing.T) {
	f := newFixture(t)
	signer, other := newSigner(t, "P-256"), newSigner(t, "P-256")
	payload := cosigntest.SimpleSigningPayload("127.0.0.1/org/app", f.image, nil)
	good, err := f.auth.LegacyKeyed(signer, payload, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := f.auth.LegacyKeyed(other, payload, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good.Annotations["dev.sigstore.cosign/bundle"] = foreign.Annotations["dev.sigstore.cosign/bundle"]
	f.reg.PushLegacy("org/app", f.image, good)
	_, errs := f.verifyAll("org/app", cosign.Policy{Key: parseKey(t, signer), TrustedMaterial: f.auth.Trusted})
	if len(errs) != 1 || !errors.Is(errs[0], cosign.ErrTlogEntry) || !strings.Contains(errs[0].Error(), "not this signature") {
		t.Fatalf("got %v, want a log entry that is not bound to the signature", errs)
	}
}

// TestKeyedPolicyRejectsCertificateBundle: --key never accepts a bundle
// signed by a Fulcio certificate, and keyless never accepts a key.
func TestKeyedPolicyRejectsCertificateBundle(t *testing.T) {
	f := newFixture(t)
	f.push(cosign.FormatBundle, "org/app", sigSpec{})
	signer := newSigner(t, "P-256")
	_, errs := f.verifyAll("org/app", cosign.Policy{Key: parseKey(t, signer), TrustedMaterial: f.auth.Trusted})
	if len(errs) != 1 || !errors.Is(errs[0], cosign.ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", errs)
	}
	b, err := cosigntest.BundleKeyed(signer, cosigntest.Statement(f.image, cosign.SignPredicateType, nil))
	if err != nil {
		t.Fatal(err)
	}
	f.reg.PushBundle("org/keyed", f.image, b, cosign.SignPredicateType)
	p := f.keylessPolicy()
	p.IgnoreTlog = true
	_, errs = f.verifyAll("org/keyed", p)
	if len(errs) != 1 || !errors.Is(errs[0], cosign.ErrSignature) {
		t.Fatalf("got %v, want ErrSignature", errs)
	}
}

func TestParsePublicKey(t *testing.T) {
	pemOf := func(pub crypto.PublicKey) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	p256 := newSigner(t, "P-256")
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name string
		pem  string
		ok   bool
	}{
		{"P-256", pemOf(p256.Public()), true},
		{"P-384", pemOf(newSigner(t, "P-384").Public()), true},
		{"Ed25519", pemOf(newSigner(t, "Ed25519").Public()), true},
		{"P-521 unsupported", pemOf(p521.Public()), false},
		{"RSA unsupported", pemOf(rsaKey.Public()), false},
		{"not PEM", "hello", false},
		{"private key block", strings.Replace(pemOf(p256.Public()), "PUBLIC KEY", "EC PRIVATE KEY", 2), false},
		{"trailing data", pemOf(p256.Public()) + "junk", false},
		{"two keys", pemOf(p256.Public()) + pemOf(p256.Public()), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := cosign.ParsePublicKey([]byte(c.pem))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, cosign.ErrPolicy) {
				t.Fatalf("error %v is not ErrPolicy", err)
			}
		})
	}
}

func TestNewVerifierPolicy(t *testing.T) {
	f := newFixture(t)
	key := parseKey(t, newSigner(t, "P-256"))
	cases := []struct {
		name string
		p    cosign.Policy
		ok   bool
	}{
		{"nothing", cosign.Policy{}, false},
		{"key and identity", cosign.Policy{Key: key, Identity: cosign.Exact("a"), Issuer: cosign.Exact("b"), IgnoreTlog: true}, false},
		{"identity without issuer", cosign.Policy{Identity: cosign.Exact("a"), TrustedMaterial: f.auth.Trusted}, false},
		{"keyless without trusted root", cosign.Policy{Identity: cosign.Exact("a"), Issuer: cosign.Exact("b"), IgnoreTlog: true}, false},
		{"key, log required, no Rekor keys", cosign.Policy{Key: key}, false},
		{"key, log ignored", cosign.Policy{Key: key, IgnoreTlog: true}, true},
		{"key, log required", cosign.Policy{Key: key, TrustedMaterial: f.auth.Trusted}, true},
		{"keyless", f.keylessPolicy(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := cosign.NewVerifier(c.p)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, cosign.ErrPolicy) {
				t.Fatalf("error %v is not ErrPolicy", err)
			}
		})
	}
}

func TestRegexpAnchored(t *testing.T) {
	m, err := cosign.Regexp(`a|b`)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"a": true, "b": true, "ab": false, "xa": false, "bx": false, "": false} {
		if got := m.Match(s); got != want {
			t.Errorf("Match(%q) = %v, want %v (alternation must be anchored as a whole)", s, got, want)
		}
	}
	if _, err := cosign.Regexp(`(`); !errors.Is(err, cosign.ErrPolicy) {
		t.Errorf("bad regexp: %v", err)
	}
	if cosign.Exact("").Match("") {
		t.Error("an empty exact matcher matched")
	}
}
