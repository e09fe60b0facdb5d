package extensions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

const testDigest = digest.Digest("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

var testName = testDigest.String() + "@0123456789abcdef0123456789abcdef"

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{testDigest.String(), true},
		{"sha256:" + strings.Repeat("A", 64), false},
		{"sha256:" + strings.Repeat("a", 63), false},
		{"sha256:" + strings.Repeat("a", 65), false},
		{"sha512:" + strings.Repeat("a", 128), false},
		{"sha256:../../etc/passwd", false},
		{"", false},
		{"sha256:" + strings.Repeat("a", 64) + "\n", false},
	}
	for _, tt := range tests {
		_, err := ParseDigest(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseDigest(%q) err=%v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDigest(%q) error not ErrInvalid", tt.in)
		}
	}
}

func TestValidateName(t *testing.T) {
	other := "sha256:" + strings.Repeat("f", 64)
	tests := []struct {
		name string
		ok   bool
	}{
		{testName, true},
		{testDigest.String() + "@" + strings.Repeat("0", 32), true},
		{testDigest.String() + "@" + strings.Repeat("0", 31), false},
		{testDigest.String() + "@" + strings.Repeat("0", 33), false},
		{testDigest.String() + "@" + strings.Repeat("G", 32), false},
		{testDigest.String() + "@" + strings.Repeat("A", 32), false},
		{other + "@" + strings.Repeat("0", 32), false},
		{testDigest.String(), false},
		{"@" + strings.Repeat("0", 32), false},
		{testDigest.String() + "@" + strings.Repeat("0", 16) + "@" + strings.Repeat("0", 15), false},
	}
	for _, tt := range tests {
		err := ValidateName(testDigest, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) err=%v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestDecodeSignature(t *testing.T) {
	content := base64.StdEncoding.EncodeToString([]byte("signature-bytes"))
	body := func(fields string) string { return "{" + fields + "}" }
	valid := fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":%q`, testName, content)
	tests := []struct {
		name     string
		body     string
		wantType string
		wantErr  string
	}{
		{"valid", body(valid), "atomic", ""},
		{"valid with whitespace", " \n" + body(valid) + "\n ", "atomic", ""},
		{"empty type becomes atomic", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"","content":%q`, testName, content)), "atomic", ""},
		{"missing type becomes atomic", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"content":%q`, testName, content)), "atomic", ""},
		{"unknown type", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"x509","content":%q`, testName, content)), "", "type"},
		{"schemaVersion 1", body(fmt.Sprintf(`"schemaVersion":1,"name":%q,"type":"atomic","content":%q`, testName, content)), "", "schemaVersion 1"},
		{"schemaVersion missing", body(fmt.Sprintf(`"name":%q,"type":"atomic","content":%q`, testName, content)), "", "schemaVersion is missing"},
		{"version instead of schemaVersion", body(fmt.Sprintf(`"version":2,"name":%q,"type":"atomic","content":%q`, testName, content)), "", "unknown key"},
		{"schemaVersion float", body(fmt.Sprintf(`"schemaVersion":2.5,"name":%q,"type":"atomic","content":%q`, testName, content)), "", "not an integer"},
		{"schemaVersion string", body(fmt.Sprintf(`"schemaVersion":"2","name":%q,"type":"atomic","content":%q`, testName, content)), "", "not a number"},
		{"schemaVersion huge", body(fmt.Sprintf(`"schemaVersion":99999999999999999999,"name":%q,"type":"atomic","content":%q`, testName, content)), "", "not an integer"},
		{"duplicate name", body(valid + fmt.Sprintf(`,"name":%q`, testName)), "", "duplicate key"},
		{"unknown key", body(valid + `,"extra":1`), "", "unknown key"},
		{"name is object", body(`"schemaVersion":2,"name":{},"type":"atomic","content":"AA=="`), "", "not a string"},
		{"content not base64", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":"!!"`, testName)), "", "base64"},
		{"content unpadded", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":"AQI"`, testName)), "", "base64"},
		{"content url-safe alphabet", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":"-_-_"`, testName)), "", "base64"},
		{"empty content", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":""`, testName)), "", "content is empty"},
		{"trailing object", body(valid) + "{}", "", "trailing"},
		{"trailing garbage", body(valid) + "x", "", "trailing"},
		{"array", "[" + body(valid) + "]", "", "not a JSON object"},
		{"truncated", body(valid)[:20], "", "bad JSON"},
		{"empty", "", "", "not JSON"},
		{"null", "null", "", "not a JSON object"},
		{"invalid utf8", "{\"schemaVersion\":2,\"name\":\"\xff\"}", "", "UTF-8"},
		{"wrong digest in name", body(fmt.Sprintf(`"schemaVersion":2,"name":%q,"type":"atomic","content":%q`, "sha256:"+strings.Repeat("e", 64)+"@0123456789abcdef0123456789abcdef", content)), "", "does not start with the image digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := DecodeSignature(testDigest, []byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want ErrInvalid mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sig.Name != testName || sig.Type != tt.wantType || string(sig.Content) != "signature-bytes" {
				t.Fatalf("decoded %+v", sig)
			}
		})
	}
}

// encodeList drives a listEncoder over sigs, as listImage does over a
// store's VisitList.
func encodeList(sigs []signaturestore.Signature) ([]byte, [][2]int, error) {
	var e listEncoder
	var content int64
	names := 0
	for _, s := range sigs {
		content += int64(len(s.Content))
		names += len(s.Name) + len(s.Type)
	}
	e.start(len(sigs), content, names)
	for _, s := range sigs {
		if err := e.add(signaturestore.SignatureView{Name: []byte(s.Name), Type: s.Type, Content: s.Content}); err != nil {
			return nil, nil, err
		}
	}
	b, offsets := e.finish()
	return b, offsets, nil
}

func TestEncodeList(t *testing.T) {
	empty, _, err := encodeList(nil)
	if err != nil || string(empty) != `{"signatures":[]}` {
		t.Fatalf("empty list %q %v", empty, err)
	}
	got, _, err := encodeList([]signaturestore.Signature{{Name: testName, Type: "atomic", Content: []byte{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"signatures":[{"schemaVersion":2,"name":%q,"type":"atomic","content":"AQID"}]}`, testName)
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := signaturestore.Signature{Name: testName, Type: "atomic", Content: []byte("\x00\xffbinary")}
	list, _, err := encodeList([]signaturestore.Signature{in})
	if err != nil {
		t.Fatal(err)
	}
	// The list element is exactly a valid PUT body.
	elem := strings.TrimSuffix(strings.TrimPrefix(string(list), `{"signatures":[`), `]}`)
	out, err := DecodeSignature(testDigest, []byte(elem))
	if err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || out.Type != in.Type || string(out.Content) != string(in.Content) {
		t.Fatalf("round trip %+v", out)
	}
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":"AQID"}`, testName)))
	f.Add([]byte(`{"schemaVersion":2,"schemaVersion":3}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"content":"` + strings.Repeat("A", 100) + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sig, err := DecodeSignature(testDigest, body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// Anything accepted must satisfy every rule.
		if ValidateName(testDigest, sig.Name) != nil || sig.Type != "atomic" || len(sig.Content) == 0 {
			t.Fatalf("accepted invalid signature %+v", sig)
		}
	})
}

func TestIsSHA256DigestMatchesPattern(t *testing.T) {
	good := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{good, good[:70], good + "0", "SHA256" + good[6:], "sha512:" + good[7:],
		strings.Replace(good, "a", "A", 1), strings.Replace(good, "0", "g", 1), "sha256:", "", good[:70] + "\n",
		strings.Replace(good, "f", "/", 1)} {
		if got, want := isSHA256Digest(s), digestPattern.MatchString(s); got != want {
			t.Errorf("isSHA256Digest(%q) = %v, pattern says %v", s, got, want)
		}
	}
}

func FuzzIsSHA256Digest(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isSHA256Digest(s), digestPattern.MatchString(s); got != want {
			t.Fatalf("isSHA256Digest(%q) = %v, pattern says %v", s, got, want)
		}
	})
}

// encodeList writes exactly json.Marshal's bytes, whatever the names and
// types hold, and its offsets give back every content.
func TestEncodeListMatchesMarshal(t *testing.T) {
	lists := [][]signaturestore.Signature{
		nil,
		{{Name: testName, Type: "atomic", Content: []byte{1, 2, 3}}},
		{
			{Name: `x"content":"AAAA`, Type: "atomic", Content: []byte("first")},
			{Name: `\"content\":\"`, Type: `"content":"`, Content: []byte{0, 1, 2, '"', '\\'}},
			{Name: "<script>&\u2028\xff\x00", Type: "é", Content: []byte(strings.Repeat("z", 1000))},
			{Name: "empty", Type: "", Content: []byte{}},
			{Name: "nil", Type: "atomic", Content: nil},
		},
	}
	for _, sigs := range lists {
		list := SignatureList{Signatures: make([]Signature, len(sigs))}
		for i, s := range sigs {
			list.Signatures[i] = Signature{SchemaVersion: SchemaVersion, Name: s.Name, Type: s.Type, Content: s.Content}
		}
		want, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		got, offsets, err := encodeList(sigs)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("encodeList:\n got %s\nwant %s (%v)", got, want, err)
		}
		l := &List{Encoded: got, contents: offsets}
		if l.Len() != len(sigs) {
			t.Fatalf("Len %d, want %d", l.Len(), len(sigs))
		}
		for i, s := range sigs {
			c, err := l.Content(i)
			if err != nil || !bytes.Equal(c, s.Content) {
				t.Fatalf("content %d: %q, %v; want %q", i, c, err, s.Content)
			}
		}
	}
}

// decodeSlow is decodeStrict without the fast path.
func decodeSlowForTest(t testing.TB, body []byte) (Signature, error) {
	t.Helper()
	return decodeStrictWith(body, false)
}

// The fast path accepts only what the strict decoder accepts, with the
// same result.
func checkFastAgrees(t testing.TB, body []byte) bool {
	t.Helper()
	if !utf8.Valid(body) {
		return false
	}
	fast, ok := decodeFast(body)
	if !ok {
		return false
	}
	slow, err := decodeSlowForTest(t, body)
	if err != nil {
		t.Fatalf("fast path accepted %q, the strict decoder refuses it: %v", body, err)
	}
	if fast.SchemaVersion != slow.SchemaVersion || fast.Name != slow.Name || fast.Type != slow.Type || !bytes.Equal(fast.Content, slow.Content) {
		t.Fatalf("for %q: fast %+v, strict %+v", body, fast, slow)
	}
	return true
}

var fastCases = []string{
	`{"schemaVersion":2,"name":"` + testName + `","type":"atomic","content":"AAAA"}`,
	` { "content" : "AAAA" , "type":"atomic","name":"n","schemaVersion":-0 } ` + "\n",
	`{"schemaVersion":2,"name":"a\"b","type":"atomic","content":"AAAA"}`,
	`{"schemaVersion":2,"name":"a","name":"b","content":"AAAA"}`,
	`{"schemaVersion":2.0,"content":"AAAA"}`, `{"schemaVersion":1e1}`, `{"schemaVersion":02}`,
	`{"schemaVersion":99999999999}`, `{"schemaVersion":2147483648}`, `{"schemaVersion":-2147483648}`,
	`{"schemaVersion":"2"}`, `{"schemaVersion":2,"content":"AAA"}`, `{"schemaVersion":2,"content":"AA=="}`,
	`{"schemaVersion":2,"content":"AB=="}`, `{"schemaVersion":2,"content":"\u0041AAA"}`, `{"schemaVersion":2,"extra":1}`,
	`{"schemaVersion":2,}`, `{}`, `{"schemaVersion":2}x`, `[{"schemaVersion":2}]`, `{"schemaVersion":2,"name":"tab	in"}`,
	`{"schemaVersion":2,"name":null}`, `{"schemaVersion":2,"content":""}`, `{"schemaVersion":2,"type":"é"}`,
}

func TestDecodeFastAgreesWithStrict(t *testing.T) {
	taken := 0
	for _, c := range fastCases {
		if checkFastAgrees(t, []byte(c)) {
			taken++
		}
	}
	if taken < 4 {
		t.Fatalf("the fast path took only %d of the cases", taken)
	}
	// The common body must take the fast path.
	if _, ok := decodeFast([]byte(fastCases[0])); !ok {
		t.Fatal("a plain client body missed the fast path")
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastAgrees(t, body)
	})
}

// FuzzPlainJSON: where plainJSON says a string needs no escaping,
// json.Marshal writes it as itself in quotes.
func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{testName, "atomic", `x"y`, `a\b`, "<>&", "\x00", "\x7f", "é", "\u2028", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainJSON(s) {
			return
		}
		want, err := json.Marshal(s)
		if err != nil || string(want) != `"`+s+`"` {
			t.Fatalf("%q: plainJSON, but json.Marshal writes %s (%v)", s, want, err)
		}
	})
}
