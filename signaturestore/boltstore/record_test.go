package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// recDigest is the image digest of the record tests.
var recDigest = digest.FromString("record test image")

func encodeForTest(t testing.TB, id uint64, sig signaturestore.Signature) []byte {
	t.Helper()
	st, err := encodeStatus(sig.Status)
	if err != nil {
		t.Fatal(err)
	}
	out := appendRecord(nil, id, recDigest, sig.Name, sig.Type, sig.Content, sig.Created, st)
	if c := recordCap(sig.Name, sig.Type, sig.Content, st); len(out) > c {
		t.Fatalf("recordCap = %d, appendRecord wrote %d", c, len(out))
	}
	return out
}

// appendRecordV1 is schema 1's encoder, kept to test the decoder the
// upgrade and the readers of old files use.
func appendRecordV1(dst []byte, name, typ string, content []byte, created time.Time, status []byte) []byte {
	dst = append(dst, recordVersionV1)
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(len(typ)))
	dst = append(dst, typ...)
	dst = binary.AppendUvarint(dst, uint64(len(content)))
	dst = append(dst, content...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(created.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(created.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(status)))
	return append(dst, status...)
}

func shortSigName(n int) string { return fmt.Sprintf("%s@%032x", recDigest, n) }

var recordCases = func() []struct {
	name string
	sig  signaturestore.Signature
} {
	at := time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)
	return []struct {
		name string
		sig  signaturestore.Signature
	}{
		{"minimal", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte{0}, Created: at}},
		{"client name", signaturestore.Signature{Name: shortSigName(0xabcdef), Type: "atomic", Content: []byte("c"), Created: at}},
		{"other type", signaturestore.Signature{Name: shortSigName(1), Type: "other", Content: []byte("c"), Created: at}},
		{"upper case suffix", signaturestore.Signature{Name: fmt.Sprintf("%s@%032X", recDigest, 0xabcdef), Type: "atomic", Content: []byte("c"), Created: at}},
		{"short suffix", signaturestore.Signature{Name: fmt.Sprintf("%s@%031x", recDigest, 1), Type: "atomic", Content: []byte("c"), Created: at}},
		{"another digest", signaturestore.Signature{Name: fmt.Sprintf("%s@%032x", digest.FromString("x"), 1), Type: "atomic", Content: []byte("c"), Created: at}},
		{"16-byte name", signaturestore.Signature{Name: "sixteen-byte-nam", Type: "atomic", Content: []byte("c"), Created: at}},
		{"before 1970", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"long fields", signaturestore.Signature{Name: strings.Repeat("n", 300), Type: strings.Repeat("t", 200), Content: bytes.Repeat([]byte{0xff}, 70000), Created: at}},
		{"with status", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: at, Status: &signaturestore.Status{
			Conditions:   []signaturestore.Condition{{Type: "Trusted", Status: "True", LastProbeTime: at, LastTransitionTime: at, Reason: "r", Message: "m"}},
			SignedClaims: map[string]string{"creator": "x"},
			IssuedBy:     &signaturestore.Issuer{CommonName: "k"},
			IssuedTo:     &signaturestore.Subject{PublicKeyID: "f"},
		}}},
		{"empty status", signaturestore.Signature{Name: "n", Type: "atomic", Content: []byte("c"), Created: at, Status: &signaturestore.Status{}}},
	}
}()

func sameDecoded(t *testing.T, got, want signaturestore.Signature) {
	t.Helper()
	if got.Name != want.Name || got.Type != want.Type || !bytes.Equal(got.Content, want.Content) ||
		!got.Created.Equal(want.Created) || got.Created.Location() != time.UTC {
		t.Fatalf("round trip changed the signature: %+v", got)
	}
	gs, _ := json.Marshal(got.Status)
	ws, _ := json.Marshal(want.Status)
	if !bytes.Equal(gs, ws) || (got.Status == nil) != (want.Status == nil) {
		t.Fatalf("status %s, want %s", gs, ws)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range recordCases {
		t.Run(tc.name, func(t *testing.T) {
			rec := encodeForTest(t, 1<<40, tc.sig)
			id, got, err := decodeRecord(rec, recDigest)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if id != 1<<40 {
				t.Fatalf("image id %d", id)
			}
			sameDecoded(t, got, tc.sig)
			// The decoded signature must not alias the record.
			clear(rec)
			if !bytes.Equal(got.Content, tc.sig.Content) {
				t.Fatalf("decoded content aliases the record")
			}
		})
	}
}

// TestRecordCompact: a client's signature (its usual name and type)
// costs its content and a fixed 38-byte overhead with a small image id.
func TestRecordCompact(t *testing.T) {
	content := bytes.Repeat([]byte{7}, 600)
	rec := appendRecord(nil, 100_000, recDigest, shortSigName(5), signaturestore.TypeAtomic, content, time.Unix(1700000000, 5), nil)
	// version, flags, suffix, content length, content, time, status length, id
	if want := 1 + 1 + 16 + 2 + 600 + 12 + 1 + 3; len(rec) != want {
		t.Fatalf("record of a 600-byte signature is %d bytes, want %d", len(rec), want)
	}
	if rec[1] != flagShortName|flagAtomic {
		t.Fatalf("flags %#x", rec[1])
	}
	// Another name, another type: stored in full.
	rec = appendRecord(nil, 1, recDigest, "n", "t", content, time.Unix(1700000000, 5), nil)
	if rec[1] != 0 || len(rec) != 1+1+2+2+2+600+12+1+1 {
		t.Fatalf("full record: flags %#x, %d bytes", rec[1], len(rec))
	}
}

func TestRecordStrictDecode(t *testing.T) {
	at := time.Unix(5, 0)
	good := appendRecord(nil, 1, recDigest, "n", "atomic", []byte("c"), at, nil)
	withStatus := func(st string) []byte {
		return appendRecord(nil, 1, recDigest, "n", "atomic", []byte("c"), at, []byte(st))
	}
	// raw builds a record by hand: version, flags, then fields.
	raw := func(flags byte, fields ...[]byte) []byte {
		b := []byte{recordVersion, flags}
		for _, f := range fields {
			b = append(b, f...)
		}
		return b
	}
	lp := func(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }
	tail := append(append(append(lp("c"), make([]byte, 12)...), 0), 1) // content, time, no status, id 1
	tests := []struct {
		name string
		rec  []byte
		text string
	}{
		{"empty", nil, "empty"},
		{"unknown version", append([]byte{1}, good[1:]...), "unknown version 1"},
		{"unknown flag", raw(4, lp("n"), tail), "unknown flags"},
		{"trailing byte", append(bytes.Clone(good), 0), "trailing"},
		{"truncated", good[:len(good)-4], "truncated created nanoseconds"},
		{"no image id", good[:len(good)-1], "bad image id"},
		{"image id zero", append(bytes.Clone(good[:len(good)-1]), 0), "image id 0"},
		{"length past end", raw(flagAtomic, []byte{0x7f, 'n'}), "exceeds record"},
		{"non-minimal varint", raw(flagAtomic, []byte{0x81, 0x00}, tail), "non-minimal"},
		{"short name truncated", raw(flagShortName|flagAtomic, []byte{1, 2, 3}), "truncated name suffix"},
		{"short-form name in full", raw(flagAtomic, lp(shortSigName(3)), tail), "stored in full"},
		{"atomic in full", raw(0, lp("n"), lp("atomic"), tail), "stored in full"},
		{"empty name", appendRecord(nil, 1, recDigest, "", "atomic", []byte("c"), at, nil), "empty name"},
		{"empty type", raw(0, lp("n"), lp(""), tail), "empty name, type or content"},
		{"empty content", appendRecord(nil, 1, recDigest, "n", "atomic", nil, at, nil), "empty name, type or content"},
		{"nanoseconds out of range", func() []byte {
			b := bytes.Clone(good)
			copy(b[len(b)-6:], []byte{0x3b, 0x9a, 0xca, 0x00}) // 1e9
			return b
		}(), "nanoseconds"},
		{"status not an object", withStatus(`null`), "not a json object"},
		{"status unknown field", withStatus(`{"trusted":true}`), "unknown field"},
		{"status trailing data", withStatus(`{}{}`), "trailing data"},
		{"status bad json", withStatus(`{"conditions":`), "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeRecord(tc.rec, recDigest)
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("decode = %v; want an error mentioning %q", err, tc.text)
			}
			// parseRecord (VisitList's reader) refuses the same records,
			// except for the status JSON, which it only frames.
			if strings.HasPrefix(tc.name, "status ") {
				return
			}
			if _, err := parseRecord(tc.rec, recDigest); err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("parseRecord = %v; want an error mentioning %q", err, tc.text)
			}
		})
	}
}

func TestRecordV1(t *testing.T) {
	for _, tc := range recordCases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := encodeStatus(tc.sig.Status)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeRecordV1(appendRecordV1(nil, tc.sig.Name, tc.sig.Type, tc.sig.Content, tc.sig.Created, st))
			if err != nil {
				t.Fatal(err)
			}
			sameDecoded(t, got, tc.sig)
		})
	}
	good := appendRecordV1(nil, "n", "atomic", []byte("c"), time.Unix(5, 0), nil)
	for _, tc := range []struct {
		name string
		rec  []byte
		text string
	}{
		{"empty", nil, "empty"},
		{"schema-2 record", appendRecord(nil, 1, recDigest, "n", "atomic", []byte("c"), time.Unix(5, 0), nil), "unknown version 2"},
		{"trailing byte", append(bytes.Clone(good), 0), "trailing"},
		{"truncated", good[:len(good)-2], "truncated"},
		{"length past end", []byte{1, 0x7f, 'n'}, "exceeds record"},
		{"non-minimal varint", append([]byte{1, 0x81, 0x00}, good[2:]...), "non-minimal"},
		{"empty content", appendRecordV1(nil, "n", "atomic", nil, time.Unix(5, 0), nil), "empty name, type or content"},
		{"status not an object", appendRecordV1(nil, "n", "atomic", []byte("c"), time.Unix(5, 0), []byte("null")), "not a json object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRecordV1(tc.rec); err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("decode = %v; want an error mentioning %q", err, tc.text)
			}
		})
	}
}

// FuzzDecodeRecord: decoding arbitrary bytes as a record of either schema,
// or as an image's index, never panics, and whatever decodes re-encodes to
// exactly the same bytes (one encoding per value), status JSON aside.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendEntry(appendEntry([]byte{0x05}, make([]byte, contentKeyLen), 1, appendNameKey(nil, recDigest, shortSigName(1))),
		bytes.Repeat([]byte{1}, contentKeyLen), 300, appendNameKey(nil, recDigest, "custom")))
	f.Add(appendRecord(nil, 1, recDigest, "n", "atomic", []byte("c"), time.Unix(5, 6), nil))
	f.Add(appendRecord(nil, 300, recDigest, shortSigName(7), "other", []byte{0, 1, 2}, time.Unix(-5, 6), []byte(`{"imageIdentity":"x"}`)))
	f.Add(appendRecordV1(nil, "n", "atomic", []byte("c"), time.Unix(5, 6), nil))
	f.Add(appendRecordV1(nil, "name", "atomic", []byte{0, 1, 2}, time.Unix(-5, 6), []byte(`{"imageIdentity":"x"}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		// decodeRecord (List) is parseRecord (VisitList) and the status:
		// nothing else may make it refuse what parseRecord accepts.
		_, perr := parseRecord(b, recDigest)
		id, sig, err := decodeRecord(b, recDigest)
		if perr == nil && err != nil && !strings.Contains(err.Error(), "status") {
			t.Fatalf("parseRecord accepts what decodeRecord refuses: %v", err)
		}
		if err == nil {
			st, err := encodeStatus(sig.Status)
			if err != nil {
				t.Fatal(err)
			}
			again := appendRecord(nil, id, recDigest, sig.Name, sig.Type, sig.Content, sig.Created, st)
			id2, sig2, err := decodeRecord(again, recDigest)
			if err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			if id2 != id || sig2.Name != sig.Name || sig2.Type != sig.Type || !bytes.Equal(sig2.Content, sig.Content) || !sig2.Created.Equal(sig.Created) {
				t.Fatalf("re-encode changed the signature")
			}
			if sig.Status == nil && !bytes.Equal(again, b) {
				t.Fatalf("two encodings for one signature: %x and %x", b, again)
			}
		}
		if size, entries, raw, err := parseIndex(b); err == nil {
			again := binary.AppendUvarint(nil, size)
			for _, e := range entries {
				if len(e.content) != contentKeyLen || e.seq == 0 || len(e.name) < 2 {
					t.Fatalf("parsed a malformed entry %+v", e)
				}
				again = appendEntry(again, e.content, e.seq, e.name)
			}
			if !bytes.Equal(again, b) || !bytes.Equal(raw, b[uvarintLen(size):]) {
				t.Fatalf("index %x re-encodes as %x", b, again)
			}
		}
		if sig, err := decodeRecordV1(b); err == nil {
			st, err := encodeStatus(sig.Status)
			if err != nil {
				t.Fatal(err)
			}
			again := appendRecordV1(nil, sig.Name, sig.Type, sig.Content, sig.Created, st)
			sig2, err := decodeRecordV1(again)
			if err != nil {
				t.Fatalf("re-encoded v1 record does not decode: %v", err)
			}
			if sig2.Name != sig.Name || sig2.Type != sig.Type || !bytes.Equal(sig2.Content, sig.Content) || !sig2.Created.Equal(sig.Created) {
				t.Fatalf("v1 re-encode changed the signature")
			}
			if sig.Status == nil && !bytes.Equal(again, b) {
				t.Fatalf("two v1 encodings for one signature: %x and %x", b, again)
			}
		}
	})
}

// FuzzValidateDigest: validateDigest accepts exactly what go-digest's
// Validate accepts.
func FuzzValidateDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("ab", 32), "sha512:" + strings.Repeat("0f", 64),
		"sha384:" + strings.Repeat("9e", 48), "sha256:" + strings.Repeat("AB", 32), "sha256:ab", "sha256:", ":ab",
		"md5:" + strings.Repeat("ab", 16), "sha256+b64:abc", "", "sha256:" + strings.Repeat("ab", 32) + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := validateDigest(digest.Digest(s)), digest.Digest(s).Validate()
		if (got == nil) != (want == nil) {
			t.Fatalf("%q: validateDigest %v, Validate %v", s, got, want)
		}
	})
}
