package gpg_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"go.podman.io/image/v5/signature"

	"github.com/signet-registry/signet/gpg"
)

// allSentinels lists every verification sentinel, so tests can assert that an
// error matches the expected one and no other.
var allSentinels = []error{
	gpg.ErrTooLarge, gpg.ErrNotOpenPGP, gpg.ErrArmored, gpg.ErrCleartextSigned,
	gpg.ErrEncrypted, gpg.ErrUnsigned, gpg.ErrMultipleSignatures, gpg.ErrMalformedMessage,
	gpg.ErrUnknownSigner, gpg.ErrKeyRevoked, gpg.ErrSubkeyRevoked, gpg.ErrKeyExpired,
	gpg.ErrSignatureExpired, gpg.ErrInvalidSignature, gpg.ErrWeakAlgorithm,
}

// assertKind fails unless err wraps want and none of the other sentinels.
func assertKind(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	for _, s := range allSentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %v also matches %v", err, s)
		}
	}
	if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
		t.Errorf("error string %q should start lowercase", msg)
	}
}

func TestVerifyGnuPGFixtures(t *testing.T) {
	env := fixtureEnv(t)
	payload := fixture(t, "payload.json")
	tests := []struct {
		name     string
		keyrings []string
		sig      string
		wantFpr  string // env key of the primary fingerprint
		wantSub  string // env key of the signing key fingerprint; "" = primary
		contents []byte // nil: payload.json
	}{
		{name: "rsa binary keyring", keyrings: []string{"rsa.pub.gpg"}, sig: "rsa.sig", wantFpr: "RSA_FPR"},
		{name: "rsa armored keyring", keyrings: []string{"rsa.pub.asc"}, sig: "rsa.sig", wantFpr: "RSA_FPR"},
		{name: "rsa secret binary keyring", keyrings: []string{"rsa.sec.gpg"}, sig: "rsa.sig", wantFpr: "RSA_FPR"},
		{name: "rsa uncompressed", keyrings: []string{"rsa.pub.gpg"}, sig: "rsa-uncompressed.sig", wantFpr: "RSA_FPR"},
		{name: "rsa zlib", keyrings: []string{"rsa.pub.gpg"}, sig: "rsa-zlib.sig", wantFpr: "RSA_FPR"},
		{name: "rsa bzip2", keyrings: []string{"rsa.pub.gpg"}, sig: "rsa-bzip2.sig", wantFpr: "RSA_FPR"},
		{name: "rsa text mode", keyrings: []string{"rsa.pub.gpg"}, sig: "rsa-textmode.sig", wantFpr: "RSA_FPR"},
		{name: "ed25519", keyrings: []string{"ed25519.pub.gpg"}, sig: "ed25519.sig", wantFpr: "ED25519_FPR"},
		{name: "ed25519 armored secret keyring", keyrings: []string{"ed25519.sec.asc"}, sig: "ed25519.sig", wantFpr: "ED25519_FPR"},
		{name: "ed25519 among several keyrings", keyrings: []string{"rsa.pub.asc", "subkey.pub.gpg", "ed25519.pub.gpg"}, sig: "ed25519.sig", wantFpr: "ED25519_FPR"},
		{name: "public and secret copy merged", keyrings: []string{"ed25519.pub.gpg", "ed25519.sec.gpg"}, sig: "ed25519.sig", wantFpr: "ED25519_FPR"},
		{name: "signing subkey counts as primary", keyrings: []string{"subkey.pub.gpg"}, sig: "subkey.sig", wantFpr: "SUBKEY_FPR", wantSub: "SUBKEY_SUB_FPR"},
		{name: "passphrase key", keyrings: []string{"passphrase.pub.asc"}, sig: "passphrase.sig", wantFpr: "PASSPHRASE_FPR"},
		{name: "name-only payload verifies cryptographically", keyrings: []string{"ed25519.pub.gpg"}, sig: "name-only.sig", wantFpr: "ED25519_FPR", contents: fixture(t, "payload-name-only.json")},
		{name: "duplicate-key payload verifies cryptographically", keyrings: []string{"ed25519.pub.gpg"}, sig: "duplicate-key.sig", wantFpr: "ED25519_FPR", contents: fixture(t, "payload-duplicate-key.json")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMech(t, gpg.Options{}, tc.keyrings...)
			res, err := m.VerifyDetailed(fixture(t, tc.sig))
			if err != nil {
				t.Fatalf("VerifyDetailed: %v", err)
			}
			want := tc.contents
			if want == nil {
				want = payload
			}
			if !bytes.Equal(res.Contents, want) {
				t.Errorf("contents = %q, want %q", res.Contents, want)
			}
			if res.Fingerprint != env[tc.wantFpr] {
				t.Errorf("fingerprint = %s, want %s", res.Fingerprint, env[tc.wantFpr])
			}
			if res.KeyID != env[tc.wantFpr][24:] {
				t.Errorf("key id = %s, want %s", res.KeyID, env[tc.wantFpr][24:])
			}
			wantSigner := env[tc.wantFpr]
			if tc.wantSub != "" {
				wantSigner = env[tc.wantSub]
			}
			if res.SigningKeyFingerprint != wantSigner || res.SigningKeyID != wantSigner[24:] {
				t.Errorf("signing key = %s/%s, want %s", res.SigningKeyFingerprint, res.SigningKeyID, wantSigner)
			}
			if !strings.Contains(res.UserID, "@signet.test>") {
				t.Errorf("user id = %q", res.UserID)
			}
			if !res.SignatureTime.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("signature time = %v", res.SignatureTime)
			}
			contents, identity, err := m.Verify(fixture(t, tc.sig))
			if err != nil || identity != env[tc.wantFpr] || !bytes.Equal(contents, want) {
				t.Errorf("Verify = %q, %q, %v", contents, identity, err)
			}
		})
	}
}

func TestVerifyRejectsGnuPGFixtures(t *testing.T) {
	tests := []struct {
		name     string
		keyrings []string
		sig      string
		want     error
	}{
		{"expired key", []string{"expired-key.pub.gpg"}, "expired-key.sig", gpg.ErrKeyExpired},
		{"expired signature", []string{"ed25519.pub.gpg"}, "expired-signature.sig", gpg.ErrSignatureExpired},
		{"revoked subkey, signed before revocation", []string{"revoked-subkey.pub.gpg"}, "revoked-subkey.sig", gpg.ErrSubkeyRevoked},
		{"sha1 message hash", []string{"ed25519.pub.gpg"}, "sha1.sig", gpg.ErrWeakAlgorithm},
		{"two signatures", []string{"rsa.pub.gpg", "ed25519.pub.gpg"}, "two-signatures.sig", gpg.ErrMultipleSignatures},
		{"armored", []string{"ed25519.pub.gpg"}, "armored.sig", gpg.ErrArmored},
		{"cleartext signed", []string{"ed25519.pub.gpg"}, "cleartext.sig", gpg.ErrCleartextSigned},
		{"detached signature", []string{"ed25519.pub.gpg"}, "detached.sig", gpg.ErrMalformedMessage},
		{"bare literal packet", []string{"ed25519.pub.gpg"}, "literal.sig", gpg.ErrUnsigned},
		{"compressed literal packet", []string{"ed25519.pub.gpg"}, "literal-compressed.sig", gpg.ErrUnsigned},
		{"public-key encrypted", []string{"rsa.sec.gpg"}, "encrypted.sig", gpg.ErrEncrypted},
		{"signed and encrypted", []string{"rsa.sec.gpg", "ed25519.pub.gpg"}, "signed-encrypted.sig", gpg.ErrEncrypted},
		{"symmetrically encrypted", []string{"ed25519.pub.gpg"}, "symmetric.sig", gpg.ErrEncrypted},
		{"unknown signer", []string{"rsa.pub.gpg"}, "ed25519.sig", gpg.ErrUnknownSigner},
		{"subkey signature, other key in keyring", []string{"ed25519.pub.gpg"}, "subkey.sig", gpg.ErrUnknownSigner},
		{"payload is not openpgp", []string{"ed25519.pub.gpg"}, "payload.json", gpg.ErrNotOpenPGP},
		{"key file is not a message", []string{"ed25519.pub.gpg"}, "ed25519.pub.gpg", gpg.ErrMalformedMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMech(t, gpg.Options{}, tc.keyrings...)
			_, err := m.VerifyDetailed(fixture(t, tc.sig))
			assertKind(t, err, tc.want)
			// The cache must never turn a failure into a success.
			_, _, err = m.Verify(fixture(t, tc.sig))
			assertKind(t, err, tc.want)
		})
	}
}

// TestVerifyContainersImageFixtures runs the signatures published with
// containers/image (signature/fixtures in the module cache).
func TestVerifyContainersImageFixtures(t *testing.T) {
	dir := containersFixtures(t)
	const (
		testKeyFingerprint      = "08CD26E446E2E95249B7A405E932F44B23E8DD43"
		primaryWithSubkey       = "B9F4CDB9FD8C475BFA340AC38D54A947EE396F36"
		subkeyWithSubkey        = "57D1D95BBC53BA0EAFF0718CD75B3109B3BAAEAF"
		primaryWithRevokedSubky = "6D88C5A1993648A17B2BB0DC6B8499AF63388D63"
	)
	good := []struct {
		sig, key, wantFpr, wantSigner string
	}{
		{"image.signature", "public-key.gpg", testKeyFingerprint, testKeyFingerprint},
		{"invalid-blob.signature", "public-key.gpg", testKeyFingerprint, testKeyFingerprint},
		{"no-optional-fields.signature", "public-key.gpg", testKeyFingerprint, testKeyFingerprint},
		{"subkey.signature", "public-key-with-subkey.gpg", primaryWithSubkey, subkeyWithSubkey},
	}
	for _, tc := range good {
		t.Run("accept "+tc.sig, func(t *testing.T) {
			m, err := gpg.NewMechanism(readFile(t, filepath.Join(dir, tc.key)))
			if err != nil {
				t.Fatal(err)
			}
			res, err := m.VerifyDetailed(readFile(t, filepath.Join(dir, tc.sig)))
			if err != nil {
				t.Fatalf("VerifyDetailed: %v", err)
			}
			if res.Fingerprint != tc.wantFpr || res.KeyID != tc.wantFpr[24:] || res.SigningKeyFingerprint != tc.wantSigner {
				t.Errorf("got %s/%s/%s, want %s/%s", res.Fingerprint, res.KeyID, res.SigningKeyFingerprint, tc.wantFpr, tc.wantSigner)
			}
		})
	}
	bad := []struct {
		sig, key string
		want     error
	}{
		{"corrupt.signature", "public-key.gpg", gpg.ErrInvalidSignature},
		{"expired.signature", "public-key.gpg", gpg.ErrSignatureExpired},
		{"unknown-key.signature", "public-key.gpg", gpg.ErrUnknownSigner},
		{"unsigned-literal.signature", "public-key.gpg", gpg.ErrUnsigned},
		{"unsigned-encrypted.signature", "public-key.gpg", gpg.ErrEncrypted},
		{"subkey-revoked.signature", "public-key-with-revoked-subkey.gpg", gpg.ErrSubkeyRevoked},
		{"invalid-cleartext.signature", "public-key.gpg", gpg.ErrCleartextSigned},
		// go-crypto (and so containers/image's openpgp backend) does not parse v3 signatures.
		{"subkey.signature-v3", "public-key-with-subkey.gpg", gpg.ErrInvalidSignature},
		{"subkey-revoked.signature-v3", "public-key-with-revoked-subkey.gpg", gpg.ErrInvalidSignature},
		{"unknown-cosign-key.signature", "public-key.gpg", gpg.ErrNotOpenPGP},
	}
	for _, tc := range bad {
		t.Run("reject "+tc.sig, func(t *testing.T) {
			path := filepath.Join(dir, tc.sig)
			m, err := gpg.NewMechanism(readFile(t, filepath.Join(dir, tc.key)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.VerifyDetailed(readFile(t, path))
			assertKind(t, err, tc.want)
		})
	}
}

func TestVerifyCraftedStructures(t *testing.T) {
	rsaPackets := splitPackets(t, fixture(t, "rsa-uncompressed.sig"))
	if len(rsaPackets) != 3 {
		t.Fatalf("rsa-uncompressed.sig has %d packets, want 3", len(rsaPackets))
	}
	ops, lit, sig := rsaPackets[0], rsaPackets[1], rsaPackets[2]
	userID := splitPackets(t, fixture(t, "rsa.pub.gpg"))[1]
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	flipLast := func(p []byte) []byte {
		c := bytes.Clone(p)
		c[len(c)-1] ^= 0x01
		return c
	}
	tamperLiteral := func(p []byte) []byte {
		c := bytes.Clone(p)
		i := bytes.Index(c, []byte("signet/test"))
		c[i] = 'S'
		return c
	}
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"reference message", join(ops, lit, sig), nil},
		{"empty", nil, gpg.ErrNotOpenPGP},
		{"whitespace", []byte(" \n"), gpg.ErrNotOpenPGP},
		{"garbage", []byte("hello, world"), gpg.ErrNotOpenPGP},
		{"too large", make([]byte, gpg.MaxMessageSize+1), gpg.ErrTooLarge},
		{"corrupt signature value", join(ops, lit, flipLast(sig)), gpg.ErrInvalidSignature},
		{"tampered contents", join(ops, tamperLiteral(lit), sig), gpg.ErrInvalidSignature},
		{"old-style signature before literal", join(sig, lit), gpg.ErrMalformedMessage},
		{"missing signature packet", join(ops, lit), gpg.ErrMalformedMessage},
		{"missing one-pass signature", join(lit, sig), gpg.ErrMalformedMessage},
		{"two one-pass signatures", join(ops, ops, lit, sig), gpg.ErrMultipleSignatures},
		{"two signature packets", join(ops, lit, sig, sig), gpg.ErrMultipleSignatures},
		{"two literal packets", join(ops, lit, lit, sig), gpg.ErrMalformedMessage},
		{"trailing user id packet", join(ops, lit, sig, userID), gpg.ErrMalformedMessage},
		{"leading user id packet", join(userID, ops, lit, sig), gpg.ErrMalformedMessage},
		{"trailing garbage", join(ops, lit, sig, []byte("garbage")), gpg.ErrMalformedMessage},
		{"truncated", join(ops, lit, sig[:len(sig)-10]), gpg.ErrInvalidSignature},
		{"signature only", sig, gpg.ErrMalformedMessage},
		{"one-pass signature only", ops, gpg.ErrMalformedMessage},
	}
	m := newMech(t, gpg.Options{}, "rsa.pub.gpg")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.VerifyDetailed(tc.msg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyDetailed: %v", err)
				}
				return
			}
			assertKind(t, err, tc.want)
		})
	}
}

// splitPackets splits a binary OpenPGP message with definite-length packets
// into its packets (header included). It is a test helper, not a parser we
// trust: it exists to build structurally odd messages from real ones.
func splitPackets(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		ctb := b[0]
		if ctb&0x80 == 0 {
			t.Fatalf("bad packet tag %#x", ctb)
		}
		var hdr, n int
		if ctb&0x40 == 0 { // old format
			switch ctb & 3 {
			case 0:
				hdr, n = 2, int(b[1])
			case 1:
				hdr, n = 3, int(b[1])<<8|int(b[2])
			case 2:
				hdr, n = 5, int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4])
			default:
				t.Fatal("indeterminate length packet")
			}
		} else {
			switch o := int(b[1]); {
			case o < 192:
				hdr, n = 2, o
			case o < 224:
				hdr, n = 3, (o-192)<<8+int(b[2])+192
			case o == 255:
				hdr, n = 6, int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5])
			default:
				t.Fatal("partial length packet")
			}
		}
		out = append(out, b[:hdr+n])
		b = b[hdr+n:]
	}
	return out
}

func TestKeyringLoading(t *testing.T) {
	env := fixtureEnv(t)
	tests := []struct {
		name     string
		keyrings [][]byte
		want     []string // env keys of fingerprints
		wantErr  error
	}{
		{"binary public", [][]byte{fixture(t, "rsa.pub.gpg")}, []string{"RSA_FPR"}, nil},
		{"armored public", [][]byte{fixture(t, "rsa.pub.asc")}, []string{"RSA_FPR"}, nil},
		{"binary secret", [][]byte{fixture(t, "ed25519.sec.gpg")}, []string{"ED25519_FPR"}, nil},
		{"armored secret", [][]byte{fixture(t, "ed25519.sec.asc")}, []string{"ED25519_FPR"}, nil},
		{"concatenated binary", [][]byte{append(fixture(t, "rsa.pub.gpg"), fixture(t, "ed25519.pub.gpg")...)}, []string{"RSA_FPR", "ED25519_FPR"}, nil},
		{"concatenated armored", [][]byte{append(fixture(t, "rsa.pub.asc"), fixture(t, "subkey.sec.asc")...)}, []string{"RSA_FPR", "SUBKEY_FPR"}, nil},
		{"same key twice is merged", [][]byte{fixture(t, "ed25519.pub.asc"), fixture(t, "ed25519.sec.gpg")}, []string{"ED25519_FPR"}, nil},
		{"no keyrings", nil, nil, nil},
		{"empty keyring", [][]byte{{}}, nil, gpg.ErrNoKeys},
		{"garbage", [][]byte{[]byte("not a key")}, nil, gpg.ErrNoKeys},
		{"armored message instead of key", [][]byte{fixture(t, "armored.sig")}, nil, gpg.ErrNoKeys},
		{"keybox", [][]byte{append(make([]byte, 8), []byte("KBXf\x00\x00\x00\x00")...)}, nil, gpg.ErrNoKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := gpg.NewMechanism(tc.keyrings...)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := m.KeyIdentities()
			if len(got) != len(tc.want) {
				t.Fatalf("identities = %v, want %v", got, tc.want)
			}
			for i, k := range tc.want {
				if got[i] != env[k] {
					t.Errorf("identity %d = %s, want %s", i, got[i], env[k])
				}
			}
		})
	}
	t.Run("from files", func(t *testing.T) {
		m, err := gpg.NewMechanismFromFiles(gpg.Options{}, filepath.Join("testdata", "rsa.pub.gpg"), filepath.Join("testdata", "ed25519.pub.asc"))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.KeyIdentities(); len(got) != 2 || got[0] != env["RSA_FPR"] || got[1] != env["ED25519_FPR"] {
			t.Errorf("identities = %v", got)
		}
		if _, err := gpg.NewMechanismFromFiles(gpg.Options{}, filepath.Join("testdata", "missing.gpg")); err == nil {
			t.Error("missing file accepted")
		}
	})
}

func TestSignRoundTrip(t *testing.T) {
	env := fixtureEnv(t)
	input := fixture(t, "payload.json")
	tests := []struct {
		name       string
		keyrings   []string
		opts       gpg.Options
		identity   string
		wantFpr    string
		wantSigner string
	}{
		{"rsa by fingerprint", []string{"rsa.sec.gpg"}, gpg.Options{}, env["RSA_FPR"], "RSA_FPR", "RSA_FPR"},
		{"rsa by lowercase 0x fingerprint", []string{"rsa.sec.asc"}, gpg.Options{}, "0x" + strings.ToLower(env["RSA_FPR"]), "RSA_FPR", "RSA_FPR"},
		{"rsa by key id", []string{"rsa.sec.gpg"}, gpg.Options{}, env["RSA_KEYID"], "RSA_FPR", "RSA_FPR"},
		{"rsa by email", []string{"rsa.sec.gpg", "ed25519.sec.gpg"}, gpg.Options{}, "rsa@signet.test", "RSA_FPR", "RSA_FPR"},
		{"ed25519 by bracketed email", []string{"rsa.sec.gpg", "ed25519.sec.gpg"}, gpg.Options{}, "<ED25519@signet.test>", "ED25519_FPR", "ED25519_FPR"},
		{"ed25519 by user id", []string{"ed25519.sec.asc"}, gpg.Options{}, "Signet Ed25519 Test <ed25519@signet.test>", "ED25519_FPR", "ED25519_FPR"},
		{"primary selects signing subkey", []string{"subkey.sec.gpg"}, gpg.Options{}, env["SUBKEY_FPR"], "SUBKEY_FPR", "SUBKEY_SUB_FPR"},
		{"subkey by fingerprint", []string{"subkey.sec.gpg"}, gpg.Options{}, env["SUBKEY_SUB_FPR"], "SUBKEY_FPR", "SUBKEY_SUB_FPR"},
		{"subkey by key id with bang", []string{"subkey.sec.asc"}, gpg.Options{}, env["SUBKEY_SUB_KEYID"] + "!", "SUBKEY_FPR", "SUBKEY_SUB_FPR"},
		{"passphrase key", []string{"passphrase.sec.gpg"}, gpg.Options{Passphrase: fixture(t, "passphrase.txt")}, env["PASSPHRASE_FPR"], "PASSPHRASE_FPR", "PASSPHRASE_FPR"},
		{"passphrase key armored", []string{"passphrase.sec.asc"}, gpg.Options{Passphrase: fixture(t, "passphrase.txt")}, "passphrase@signet.test", "PASSPHRASE_FPR", "PASSPHRASE_FPR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer := newMech(t, tc.opts, tc.keyrings...)
			if err := signer.SupportsSigning(); err != nil {
				t.Fatalf("SupportsSigning: %v", err)
			}
			sig, err := signer.Sign(input, tc.identity)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			// Verify with a public-only keyring, as a consumer would.
			pub := strings.NewReplacer(".sec.", ".pub.").Replace(tc.keyrings[len(tc.keyrings)-1])
			if tc.wantFpr == "RSA_FPR" {
				pub = "rsa.pub.gpg"
			}
			verifier := newMech(t, gpg.Options{}, pub)
			res, err := verifier.VerifyDetailed(sig)
			if err != nil {
				t.Fatalf("VerifyDetailed: %v", err)
			}
			if !bytes.Equal(res.Contents, input) || res.Fingerprint != env[tc.wantFpr] || res.SigningKeyFingerprint != env[tc.wantSigner] {
				t.Errorf("got %q by %s/%s", res.Contents, res.Fingerprint, res.SigningKeyFingerprint)
			}
			if !res.SignatureTime.Equal(testNow()) {
				t.Errorf("signature time = %v, want %v", res.SignatureTime, testNow())
			}
			untrusted, shortID, err := verifier.UntrustedSignatureContents(sig)
			if err != nil || !bytes.Equal(untrusted, input) || shortID != env[tc.wantSigner][24:] {
				t.Errorf("UntrustedSignatureContents = %q, %s, %v", untrusted, shortID, err)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	env := fixtureEnv(t)
	input := []byte("{}")
	tests := []struct {
		name     string
		keyrings []string
		opts     gpg.Options
		identity string
		pass     string // for SignWithPassphrase
		want     error
	}{
		{"unknown fingerprint", []string{"rsa.sec.gpg"}, gpg.Options{}, env["ED25519_FPR"], "", gpg.ErrKeyNotFound},
		{"unknown email", []string{"rsa.sec.gpg"}, gpg.Options{}, "nobody@signet.test", "", gpg.ErrKeyNotFound},
		{"short key id refused", []string{"rsa.sec.gpg"}, gpg.Options{}, env["RSA_KEYID"][8:], "", gpg.ErrKeyNotFound},
		{"public key only", []string{"rsa.pub.gpg"}, gpg.Options{}, env["RSA_FPR"], "", gpg.ErrNoSecretKey},
		{"empty identity", []string{"rsa.sec.gpg", "ed25519.sec.gpg"}, gpg.Options{}, "", "", gpg.ErrKeyNotFound},
		{"passphrase missing", []string{"passphrase.sec.gpg"}, gpg.Options{}, env["PASSPHRASE_FPR"], "", gpg.ErrPassphraseRequired},
		{"passphrase wrong", []string{"passphrase.sec.gpg"}, gpg.Options{Passphrase: []byte("wrong")}, env["PASSPHRASE_FPR"], "", gpg.ErrWrongPassphrase},
		{"passphrase wrong via SignWithPassphrase", []string{"passphrase.sec.gpg"}, gpg.Options{}, env["PASSPHRASE_FPR"], "wrong", gpg.ErrWrongPassphrase},
		{"certify-only primary forced with bang", []string{"subkey.sec.gpg"}, gpg.Options{}, env["SUBKEY_FPR"] + "!", "", gpg.ErrKeyUnusable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMech(t, tc.opts, tc.keyrings...)
			var err error
			if tc.pass != "" {
				_, err = m.SignWithPassphrase(input, tc.identity, tc.pass)
			} else {
				_, err = m.Sign(input, tc.identity)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("SupportsSigning without secret keys", func(t *testing.T) {
		m := newMech(t, gpg.Options{}, "rsa.pub.gpg", "subkey.pub.asc")
		var notSupported signature.SigningNotSupportedError
		if err := m.SupportsSigning(); !errors.As(err, &notSupported) {
			t.Errorf("SupportsSigning = %v, want SigningNotSupportedError", err)
		}
	})
	t.Run("expired key cannot sign", func(t *testing.T) {
		created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		e, err := openpgp.NewEntity("Old", "", "old@signet.test", &packet.Config{
			Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: 86400, Time: func() time.Time { return created },
		})
		if err != nil {
			t.Fatal(err)
		}
		var keyring bytes.Buffer
		if err := e.SerializePrivate(&keyring, &packet.Config{Time: func() time.Time { return created }}); err != nil {
			t.Fatal(err)
		}
		m, err := gpg.NewMechanismWithOptions(gpg.Options{Now: testNow}, keyring.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sign(input, "old@signet.test"); !errors.Is(err, gpg.ErrKeyUnusable) {
			t.Fatalf("error = %v, want ErrKeyUnusable", err)
		}
	})
	t.Run("ambiguous email", func(t *testing.T) {
		var keyring bytes.Buffer
		for range 2 {
			e, err := openpgp.NewEntity("Dup", "", "dup@signet.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.SerializePrivate(&keyring, nil); err != nil {
				t.Fatal(err)
			}
		}
		m, err := gpg.NewMechanismWithOptions(gpg.Options{Now: testNow}, keyring.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sign(input, "dup@signet.test"); !errors.Is(err, gpg.ErrAmbiguousKey) {
			t.Fatalf("error = %v, want ErrAmbiguousKey", err)
		}
		// A fingerprint is never ambiguous.
		if _, err := m.Sign(input, m.KeyIdentities()[1]); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SignWithPassphrase succeeds with explicit passphrase", func(t *testing.T) {
		m := newMech(t, gpg.Options{}, "passphrase.sec.gpg")
		if _, err := m.SignWithPassphrase(input, env["PASSPHRASE_FPR"], string(fixture(t, "passphrase.txt"))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		m := newMech(t, gpg.Options{}, "ed25519.sec.gpg")
		if _, err := m.Sign(make([]byte, gpg.MaxContentsSize+1), env["ED25519_FPR"]); !errors.Is(err, gpg.ErrTooLarge) {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestConcurrentSignVerify(t *testing.T) {
	env := fixtureEnv(t)
	m := newMech(t, gpg.Options{Passphrase: fixture(t, "passphrase.txt"), CacheSize: 4}, "passphrase.sec.gpg", "rsa.pub.gpg", "subkey.sec.gpg")
	sigs := [][]byte{fixture(t, "rsa.sig"), fixture(t, "passphrase.sig"), fixture(t, "subkey.sig")}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				if _, _, err := m.Verify(sigs[(i+j)%len(sigs)]); err != nil {
					errs <- err
				}
				id := env["PASSPHRASE_FPR"]
				if j%2 == 1 {
					id = env["SUBKEY_FPR"]
				}
				s, err := m.Sign([]byte("payload"), id)
				if err != nil {
					errs <- err
					continue
				}
				if _, _, err := m.Verify(s); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestZeroMechanism(t *testing.T) {
	var m gpg.Mechanism
	_, err := m.VerifyDetailed(fixture(t, "rsa.sig"))
	assertKind(t, err, gpg.ErrUnknownSigner)
	if _, err := m.Sign([]byte("x"), "rsa@signet.test"); !errors.Is(err, gpg.ErrKeyNotFound) {
		t.Errorf("Sign = %v", err)
	}
	if m.SupportsSigning() == nil {
		t.Error("zero Mechanism supports signing")
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
