package cosign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/signet-registry/signet/internal/strictjson"
)

// maxRekorBodyBytes bounds a decoded Rekor entry body; a hashedrekord with
// a certificate is about 2 KiB.
const maxRekorBodyBytes = 64 << 10

// rekorBundle is the dev.sigstore.cosign/bundle annotation of a legacy
// signature: Rekor's signed entry timestamp (SET) and what it signs.
type rekorBundle struct {
	signedEntryTimestamp []byte
	body                 string // base64 of the canonical entry
	integratedTime       int64
	logIndex             int64
	logID                string // hex SHA-256 of the log's public key
	raw                  json.RawMessage
}

// parseRekorBundle parses the annotation strictly: exactly
// {"SignedEntryTimestamp": base64, "Payload": {"body", "integratedTime",
// "logIndex", "logID"}}, no duplicate keys, integer numbers.
func parseRekorBundle(untrusted string) (*rekorBundle, error) {
	v, err := strictjson.Parse([]byte(untrusted))
	if err != nil {
		return nil, err
	}
	if err := strictjson.ExactObject(v, "SignedEntryTimestamp", "Payload"); err != nil {
		return nil, err
	}
	setB64, err := strictjson.StringField(v, "SignedEntryTimestamp")
	if err != nil {
		return nil, err
	}
	set, err := base64.StdEncoding.DecodeString(setB64)
	if err != nil || len(set) == 0 {
		return nil, errors.New("bundle SignedEntryTimestamp is not base64")
	}
	p, _ := v.Get("Payload")
	if err := strictjson.ExactObject(p, "body", "integratedTime", "logIndex", "logID"); err != nil {
		return nil, fmt.Errorf("bundle Payload: %w", err)
	}
	b := &rekorBundle{signedEntryTimestamp: set, raw: json.RawMessage(untrusted)}
	if b.body, err = strictjson.StringField(p, "body"); err != nil {
		return nil, fmt.Errorf("bundle Payload: %w", err)
	}
	if b.logID, err = strictjson.StringField(p, "logID"); err != nil {
		return nil, fmt.Errorf("bundle Payload: %w", err)
	}
	if id, err := hex.DecodeString(b.logID); err != nil || len(id) != sha256.Size || strings.ToLower(b.logID) != b.logID {
		return nil, fmt.Errorf("bundle Payload.logID %q is not 64 lowercase hex characters", b.logID)
	}
	if b.integratedTime, err = intField(p, "integratedTime"); err != nil {
		return nil, err
	}
	if b.logIndex, err = intField(p, "logIndex"); err != nil {
		return nil, err
	}
	return b, nil
}

func intField(v strictjson.Value, key string) (int64, error) {
	f, _ := v.Get(key)
	if f.Kind != strictjson.Number {
		return 0, fmt.Errorf("bundle Payload.%s must be a number, got %v", key, f.Kind)
	}
	n, err := strconv.ParseInt(string(f.Number), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bundle Payload.%s %q is not a non-negative integer", key, f.Number)
	}
	return n, nil
}

// verifySET checks the SET offline (SPEC section 5, keyless check 4):
// an ECDSA signature by a trusted Rekor key over the SHA-256 of the
// canonical JSON {body, integratedTime, logID, logIndex}, from a log whose
// key was valid at integratedTime. It returns the integrated time, which
// is trusted only once this returns nil.
func verifySET(b *rekorBundle, logs map[string]*root.TransparencyLog) (time.Time, error) {
	log, ok := logs[b.logID]
	if !ok || log == nil {
		return time.Time{}, fmt.Errorf("log %s is not in the trusted root", b.logID)
	}
	t := time.Unix(b.integratedTime, 0)
	if !log.ValidityPeriodStart.IsZero() && t.Before(log.ValidityPeriodStart) ||
		!log.ValidityPeriodEnd.IsZero() && t.After(log.ValidityPeriodEnd) {
		return time.Time{}, fmt.Errorf("log key not valid at integrated time %s", t.UTC().Format(time.RFC3339))
	}
	key, ok := log.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return time.Time{}, fmt.Errorf("unsupported Rekor key type %T", log.PublicKey)
	}
	msg, err := canonicalSETPayload(b)
	if err != nil {
		return time.Time{}, err
	}
	h := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(key, h[:], b.signedEntryTimestamp) {
		return time.Time{}, errors.New("signed entry timestamp does not verify")
	}
	return t, nil
}

// canonicalSETPayload is the RFC 8785 form of the four fields: keys in
// order, no spaces, integers as such. The only strings are base64 and hex,
// which canonicalization leaves as they are.
func canonicalSETPayload(b *rekorBundle) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogID          string `json:"logID"`
		LogIndex       int64  `json:"logIndex"`
	}{b.body, b.integratedTime, b.logID, b.logIndex})
	if err != nil {
		return nil, fmt.Errorf("encode SET payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkEntryBinding checks that the logged entry is about this very
// signature (CVE-2022-36056: a valid SET for some other entry proves
// nothing): a hashedrekord v0.0.1 whose hash is the SHA-256 of payload,
// whose signature is untrustedSig and whose key or certificate is the
// signer's.
func checkEntryBinding(bodyB64 string, payload, untrustedSig []byte, cert *x509.Certificate, key crypto.PublicKey) error {
	if base64.StdEncoding.DecodedLen(len(bodyB64)) > maxRekorBodyBytes {
		return fmt.Errorf("entry body larger than %d bytes", maxRekorBodyBytes)
	}
	body, err := base64.StdEncoding.DecodeString(bodyB64)
	if err != nil {
		return errors.New("entry body is not base64")
	}
	v, err := strictjson.Parse(body)
	if err != nil {
		return fmt.Errorf("entry body: %w", err)
	}
	str := func(path ...string) (string, error) {
		cur := v
		for _, k := range path {
			next, ok := cur.Get(k)
			if !ok {
				return "", fmt.Errorf("entry body lacks %s", strings.Join(path, "."))
			}
			cur = next
		}
		if cur.Kind != strictjson.String {
			return "", fmt.Errorf("entry body %s is not a string", strings.Join(path, "."))
		}
		return cur.String, nil
	}
	if kind, err := str("kind"); err != nil || kind != "hashedrekord" {
		return fmt.Errorf("entry kind %q is not hashedrekord", kind)
	}
	if version, err := str("apiVersion"); err != nil || version != "0.0.1" {
		return fmt.Errorf("hashedrekord version %q is not 0.0.1", version)
	}
	alg, err := str("spec", "data", "hash", "algorithm")
	if err != nil {
		return err
	}
	value, err := str("spec", "data", "hash", "value")
	if err != nil {
		return err
	}
	sum := sha256.Sum256(payload)
	if alg != "sha256" || value != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("logged hash %s:%s is not the payload's", alg, value)
	}
	sigB64, err := str("spec", "signature", "content")
	if err != nil {
		return err
	}
	if logged, err := base64.StdEncoding.DecodeString(sigB64); err != nil || !bytes.Equal(logged, untrustedSig) {
		return errors.New("logged signature is not this signature")
	}
	keyB64, err := str("spec", "signature", "publicKey", "content")
	if err != nil {
		return err
	}
	pemBytes, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		return errors.New("logged public key is not base64")
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return errors.New("logged public key is not PEM")
	}
	switch {
	case cert != nil && block.Type == "CERTIFICATE":
		if !bytes.Equal(block.Bytes, cert.Raw) {
			return errors.New("logged certificate is not the signing certificate")
		}
	case cert == nil && key != nil && block.Type == "PUBLIC KEY":
		logged, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil || !samePublicKey(logged, key) {
			return errors.New("logged public key is not the signing key")
		}
	default:
		return fmt.Errorf("logged %s does not match the signer", strings.ToLower(block.Type))
	}
	return nil
}
