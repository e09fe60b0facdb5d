// Package cosigntest mints cosign signatures offline for tests: an
// in-process Fulcio and Rekor built on sigstore-go's test authority
// (pkg/testing/ca), signatures in both storage formats, and an in-memory
// registry that serves them through cosign.Registry and over HTTP.
//
// It is for tests only: nothing in it is a security boundary.
package cosigntest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
)

// Authority is an in-process Fulcio (root, intermediate) and Rekor.
type Authority struct {
	vs           *ca.VirtualSigstore
	fulcio       *root.FulcioCertificateAuthority
	intermediate *x509.Certificate
	interKey     *ecdsa.PrivateKey
	// Trusted is the trusted root naming this Fulcio and Rekor.
	Trusted *root.TrustedRoot
	serial  int64
}

// NewAuthority mints a fresh Fulcio and Rekor. Certificates chain for a
// couple of hours from now; the Rekor key is valid from an hour ago to an
// hour from now.
func NewAuthority() (*Authority, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, fmt.Errorf("virtual sigstore: %w", err)
	}
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		return nil, fmt.Errorf("fulcio root: %w", err)
	}
	inter, interKey, err := ca.GenerateFulcioIntermediate(rootCert, rootKey)
	if err != nil {
		return nil, fmt.Errorf("fulcio intermediate: %w", err)
	}
	fulcio := &root.FulcioCertificateAuthority{
		Root:                rootCert,
		Intermediates:       []*x509.Certificate{inter},
		ValidityPeriodStart: time.Now().Add(-5 * time.Hour),
		ValidityPeriodEnd:   time.Now().Add(5 * time.Hour),
		URI:                 "https://fulcio.test",
	}
	// The virtual log's ID is its hex key hash as ASCII; a trusted root
	// holds the raw hash, which is what survives trusted_root.json.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			return nil, fmt.Errorf("rekor log id %q: %w", id, err)
		}
		c := *l
		c.ID = raw
		logs[id] = &c
	}
	trusted, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{fulcio}, map[string]*root.TransparencyLog{}, nil, logs)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	return &Authority{vs: vs, fulcio: fulcio, intermediate: inter, interKey: interKey, Trusted: trusted}, nil
}

// TrustedRootJSON is the trusted root as a trusted_root.json file holds it.
func (a *Authority) TrustedRootJSON() ([]byte, error) {
	return a.Trusted.MarshalJSON()
}

// Leaf describes a Fulcio certificate to mint.
type Leaf struct {
	URIs   []string
	Emails []string
	// IssuerV1 and IssuerV2 fill the Fulcio issuer extensions
	// (1.3.6.1.4.1.57264.1.1 raw, .1.8 DER UTF8String); empty omits one.
	IssuerV1, IssuerV2 string
	// NotBefore and NotAfter default to a minute ago and ten minutes on.
	NotBefore, NotAfter time.Time
}

// Certificate mints a leaf certificate and its ECDSA P-256 key.
func (a *Authority) Certificate(l Leaf) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Minute)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = l.NotBefore.Add(10 * time.Minute)
	}
	a.serial++
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(a.serial),
		EmailAddresses: l.Emails,
		NotBefore:      l.NotBefore,
		NotAfter:       l.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	for _, u := range l.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			return nil, nil, err
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	if l.IssuerV1 != "" {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}, Value: []byte(l.IssuerV1)})
	}
	if l.IssuerV2 != "" {
		der, err := asn1.MarshalWithParams(l.IssuerV2, "utf8")
		if err != nil {
			return nil, nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: der})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.intermediate, &key.PublicKey, a.interKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// SimpleSigningPayload is the payload `cosign sign` writes in the legacy
// format. A nil optional is written as null, as cosign does.
func SimpleSigningPayload(dockerReference string, image digest.Digest, optional map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": dockerReference},
			"image":    map[string]string{"docker-manifest-digest": image.String()},
			"type":     "cosign container image signature",
		},
		"optional": optional,
	})
	return b
}

// Statement is the in-toto statement `cosign sign` signs in a bundle.
func Statement(image digest.Digest, predicateType string, annotations map[string]string) []byte {
	if annotations == nil {
		annotations = map[string]string{}
	}
	b, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"digest": map[string]string{image.Algorithm().String(): image.Encoded()}, "annotations": annotations}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	return b
}

// Layer is one legacy signature: the payload and its layer annotations.
type Layer struct {
	Payload     []byte
	Annotations map[string]string
}

func certPEM(certs ...*x509.Certificate) string {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(out)
}

// LegacyKeyless signs payload with key as cosign does in the legacy
// format, with cert, the chain and a Rekor SET for integratedTime.
func (a *Authority) LegacyKeyless(cert *x509.Certificate, key *ecdsa.PrivateKey, payload []byte, integratedTime time.Time) (Layer, error) {
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return Layer{}, err
	}
	set, err := a.RekorBundle(payload, sig, certPEM(cert), integratedTime)
	if err != nil {
		return Layer{}, err
	}
	return Layer{Payload: payload, Annotations: map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig),
		"dev.sigstore.cosign/certificate":    certPEM(cert),
		"dev.sigstore.cosign/chain":          certPEM(a.intermediate, a.fulcio.Root),
		"dev.sigstore.cosign/bundle":         set,
	}}, nil
}

// RekorBundle logs a hashedrekord of payload, sig and signerPEM (a
// certificate or public key) and returns the dev.sigstore.cosign/bundle
// annotation: the SET and what it signs.
func (a *Authority) RekorBundle(payload, sig []byte, signerPEM string, integratedTime time.Time) (string, error) {
	h := sha256.Sum256(payload)
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(h[:])}},
			"signature": map[string]any{
				"content":   base64.StdEncoding.EncodeToString(sig),
				"publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString([]byte(signerPEM))},
			},
		},
	})
	if err != nil {
		return "", err
	}
	logID, err := a.vs.RekorLogID()
	if err != nil {
		return "", err
	}
	p := tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: integratedTime.Unix(),
		LogIndex:       1000,
		LogID:          logID,
	}
	set, err := a.vs.RekorSignPayload(p)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]any{
		"SignedEntryTimestamp": base64.StdEncoding.EncodeToString(set),
		"Payload": map[string]any{
			"body":           p.Body,
			"integratedTime": p.IntegratedTime,
			"logIndex":       p.LogIndex,
			"logID":          p.LogID,
		},
	})
	return string(b), err
}

// BundleKeyless signs statement in a DSSE envelope with key, logs it in
// Rekor at integratedTime (with an inclusion proof and a SET) and returns
// the sigstore bundle v0.3 JSON, as `cosign sign` pushes it.
func (a *Authority) BundleKeyless(cert *x509.Certificate, key *ecdsa.PrivateKey, statement []byte, integratedTime time.Time) ([]byte, error) {
	const payloadType = "application/vnd.in-toto+json"
	h := sha256.Sum256(dsse.PAE(payloadType, statement))
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	env := &dsse.Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(statement),
		Signatures:  []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	entry, err := a.vs.GenerateTlogEntry(cert, env, sig, integratedTime.Unix(), true)
	if err != nil {
		return nil, fmt.Errorf("rekor entry: %w", err)
	}
	tle := entry.TransparencyLogEntry()
	set, err := a.vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		return nil, err
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{
				Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw},
			},
			TlogEntries: []*protorekor.TransparencyLogEntry{tle},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     statement,
			PayloadType: payloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return protojson.Marshal(pb)
}

// SignWithKey signs message as cosign does with a key: ECDSA over the
// SHA-256 of the message (ASN.1), Ed25519 over the message itself.
func SignWithKey(signer crypto.Signer, message []byte) ([]byte, error) {
	if _, ok := signer.Public().(ed25519.PublicKey); ok {
		return signer.Sign(rand.Reader, message, crypto.Hash(0))
	}
	h := sha256.Sum256(message)
	return signer.Sign(rand.Reader, h[:], crypto.SHA256)
}

// PublicKeyPEM is the PKIX PEM of signer's public key, as cosign.pub holds it.
func PublicKeyPEM(signer crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// LegacyKeyed signs payload with a key in the legacy format; with a
// non-zero integratedTime the layer also carries a Rekor SET.
func (a *Authority) LegacyKeyed(signer crypto.Signer, payload []byte, integratedTime time.Time) (Layer, error) {
	sig, err := SignWithKey(signer, payload)
	if err != nil {
		return Layer{}, err
	}
	l := Layer{Payload: payload, Annotations: map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig),
	}}
	if !integratedTime.IsZero() {
		pub, err := PublicKeyPEM(signer)
		if err != nil {
			return Layer{}, err
		}
		if l.Annotations["dev.sigstore.cosign/bundle"], err = a.RekorBundle(payload, sig, pub, integratedTime); err != nil {
			return Layer{}, err
		}
	}
	return l, nil
}

// BundleKeyed is a sigstore bundle v0.3 signed with a key and no log
// entry, as `cosign sign --key --tlog-upload=false` writes it.
func BundleKeyed(signer crypto.Signer, statement []byte) ([]byte, error) {
	const payloadType = "application/vnd.in-toto+json"
	sig, err := SignWithKey(signer, dsse.PAE(payloadType, statement))
	if err != nil {
		return nil, err
	}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{
				PublicKey: &protocommon.PublicKeyIdentifier{Hint: "test-key"},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     statement,
			PayloadType: payloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return protojson.Marshal(pb)
}

// FulcioCAPEM is the Fulcio root and intermediate in PEM, as a
// containers-policy.json fulcio.caPath file holds them.
func (a *Authority) FulcioCAPEM() string {
	return certPEM(a.fulcio.Root, a.intermediate)
}

// RekorPublicKeyPEM is the Rekor log's public key in PEM, as a
// containers-policy.json rekorPublicKeyPath file holds it.
func (a *Authority) RekorPublicKeyPEM() (string, error) {
	for _, l := range a.vs.RekorLogs() {
		der, err := x509.MarshalPKIXPublicKey(l.PublicKey)
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
	}
	return "", fmt.Errorf("virtual sigstore has no Rekor log")
}

// StatementV01 is the in-toto v0.1 statement `cosign attest` signs: the
// image's name and digest as the subject, and predicate.
func StatementV01(name string, image digest.Digest, predicateType string, predicate map[string]any) []byte {
	if predicate == nil {
		predicate = map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"subject":       []any{map[string]any{"name": name, "digest": map[string]string{image.Algorithm().String(): image.Encoded()}}},
		"predicateType": predicateType,
		"predicate":     predicate,
	})
	return b
}

// LegacyAttestation signs statement in a DSSE envelope with signer, as
// `cosign attest --new-bundle-format=false` stores it in a .att layer:
// the envelope as the layer, an empty signature annotation and, unless
// predicateType is empty, the predicateType annotation. With a
// certificate (keyless) the layer also carries it, the chain and a Rekor
// SET for integratedTime.
func (a *Authority) LegacyAttestation(signer crypto.Signer, cert *x509.Certificate, statement []byte, predicateType string, integratedTime time.Time) (Layer, error) {
	const payloadType = "application/vnd.in-toto+json"
	sig, err := SignWithKey(signer, dsse.PAE(payloadType, statement))
	if err != nil {
		return Layer{}, err
	}
	env, err := json.Marshal(dsse.Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(statement),
		Signatures:  []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
	if err != nil {
		return Layer{}, err
	}
	l := Layer{Payload: env, Annotations: map[string]string{"dev.cosignproject.cosign/signature": ""}}
	if predicateType != "" {
		l.Annotations["predicateType"] = predicateType
	}
	if cert != nil {
		l.Annotations["dev.sigstore.cosign/certificate"] = certPEM(cert)
		l.Annotations["dev.sigstore.cosign/chain"] = certPEM(a.intermediate, a.fulcio.Root)
		if l.Annotations["dev.sigstore.cosign/bundle"], err = a.RekorBundle(env, sig, certPEM(cert), integratedTime); err != nil {
			return Layer{}, err
		}
	}
	return l, nil
}
