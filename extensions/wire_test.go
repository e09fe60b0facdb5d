package extensions

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

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

func TestEncodeList(t *testing.T) {
	empty, err := EncodeList(nil)
	if err != nil || string(empty) != `{"signatures":[]}` {
		t.Fatalf("empty list %q %v", empty, err)
	}
	got, err := EncodeList([]signaturestore.Signature{{Name: testName, Type: "atomic", Content: []byte{1, 2, 3}}})
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
	list, err := EncodeList([]signaturestore.Signature{in})
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
