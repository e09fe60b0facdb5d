package boltstore

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/signet-registry/signet/signaturestore"
)

func encodeForTest(t testing.TB, sig signaturestore.Signature) []byte {
	t.Helper()
	st, err := encodeStatus(sig.Status)
	if err != nil {
		t.Fatal(err)
	}
	out := appendRecord(nil, sig.Name, sig.Type, sig.Content, sig.Created, st)
	if len(out) != recordSize(sig.Name, sig.Type, sig.Content, st) {
		t.Fatalf("recordSize = %d, appendRecord wrote %d", recordSize(sig.Name, sig.Type, sig.Content, st), len(out))
	}
	return out
}

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)
	tests := []struct {
		name string
		sig  signaturestore.Signature
	}{
		{"minimal", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte{0}, Created: at}},
		{"before 1970", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"long fields", signaturestore.Signature{Name: strings.Repeat("n", 300), Type: "atomic", Content: bytes.Repeat([]byte{0xff}, 70000), Created: at}},
		{"with status", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: at, Status: &signaturestore.Status{
			Conditions:   []signaturestore.Condition{{Type: "Trusted", Status: "True", LastProbeTime: at, LastTransitionTime: at, Reason: "r", Message: "m"}},
			SignedClaims: map[string]string{"creator": "x"},
			IssuedBy:     &signaturestore.Issuer{CommonName: "k"},
			IssuedTo:     &signaturestore.Subject{PublicKeyID: "f"},
		}}},
		{"empty status", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: at, Status: &signaturestore.Status{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := encodeForTest(t, tc.sig)
			got, err := decodeRecord(rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Name != tc.sig.Name || got.Type != tc.sig.Type || !bytes.Equal(got.Content, tc.sig.Content) ||
				!got.Created.Equal(tc.sig.Created) || got.Created.Location() != time.UTC {
				t.Fatalf("round trip changed the signature: %+v", got)
			}
			gs, _ := json.Marshal(got.Status)
			ws, _ := json.Marshal(tc.sig.Status)
			if !bytes.Equal(gs, ws) || (got.Status == nil) != (tc.sig.Status == nil) {
				t.Fatalf("status %s, want %s", gs, ws)
			}
			// The decoded signature must not alias the record.
			clear(rec)
			if !bytes.Equal(got.Content, tc.sig.Content) {
				t.Fatalf("decoded content aliases the record")
			}
		})
	}
}

func TestRecordStrictDecode(t *testing.T) {
	good := encodeForTest(t, signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: time.Unix(5, 0)})
	withStatus := func(st string) []byte {
		return appendRecord(nil, "n", "atomic", []byte("c"), time.Unix(5, 0), []byte(st))
	}
	tests := []struct {
		name string
		rec  []byte
		text string
	}{
		{"empty", nil, "empty"},
		{"unknown version", append([]byte{2}, good[1:]...), "unknown version 2"},
		{"trailing byte", append(bytes.Clone(good), 0), "trailing"},
		{"truncated", good[:len(good)-2], "truncated"},
		{"length past end", []byte{1, 0x7f, 'n'}, "exceeds record"},
		{"non-minimal varint", append([]byte{1, 0x81, 0x00}, good[2:]...), "non-minimal"},
		{"empty name", appendRecord(nil, "", "atomic", []byte("c"), time.Unix(5, 0), nil), "empty name"},
		{"empty content", appendRecord(nil, "n", "atomic", nil, time.Unix(5, 0), nil), "empty name, type or content"},
		{"nanoseconds out of range", func() []byte {
			b := bytes.Clone(good)
			copy(b[len(b)-5:], []byte{0x3b, 0x9a, 0xca, 0x00}) // 1e9
			return b
		}(), "nanoseconds"},
		{"status not an object", withStatus(`null`), "not a json object"},
		{"status unknown field", withStatus(`{"trusted":true}`), "unknown field"},
		{"status trailing data", withStatus(`{}{}`), "trailing data"},
		{"status bad json", withStatus(`{"conditions":`), "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRecord(tc.rec)
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("decode = %v; want an error mentioning %q", err, tc.text)
			}
		})
	}
}

// FuzzDecodeRecord: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to exactly the same bytes (one encoding per value).
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, "n", "atomic", []byte("c"), time.Unix(5, 6), nil))
	f.Add(appendRecord(nil, "name", "atomic", []byte{0, 1, 2}, time.Unix(-5, 6), []byte(`{"imageIdentity":"x"}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := decodeRecord(b)
		if err != nil {
			return
		}
		st, err := encodeStatus(sig.Status)
		if err != nil {
			t.Fatal(err)
		}
		again := appendRecord(nil, sig.Name, sig.Type, sig.Content, sig.Created, st)
		// Status JSON may be re-encoded differently (key order,
		// spacing), so compare the prefix before it strictly and the
		// status by value.
		sig2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if sig2.Name != sig.Name || sig2.Type != sig.Type || !bytes.Equal(sig2.Content, sig.Content) || !sig2.Created.Equal(sig.Created) {
			t.Fatalf("re-encode changed the signature")
		}
		if sig.Status == nil && !bytes.Equal(again, b) {
			t.Fatalf("two encodings for one signature: %x and %x", b, again)
		}
	})
}
