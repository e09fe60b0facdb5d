package payload_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/gpg/payload"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureEnv(t testing.TB) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(testdata(t, "fixtures.env")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// moduleDir returns the go.podman.io/image/v5 module directory or skips.
func moduleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.podman.io/image/v5").Output()
	if err != nil {
		t.Skipf("locating go.podman.io/image/v5: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "signature", "fixtures", "image.signature")); err != nil {
		t.Skipf("containers/image fixtures not found: %v", err)
	}
	return dir
}

func TestNewMarshalMatchesGnuPGFixture(t *testing.T) {
	env := fixtureEnv(t)
	p, err := payload.New(digest.Digest(env["MANIFEST_DIGEST"]), env["IDENTITY"], "signet generate.sh", time.Unix(1704067200, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// payload.json is written by generate.sh in containers/image's exact layout.
	if want := testdata(t, "payload.json"); !bytes.Equal(got, want) {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, want)
	}
	back, err := payload.ParseUntrusted(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.ManifestDigest != p.ManifestDigest || back.DockerReference != p.DockerReference ||
		*back.Creator != *p.Creator || !back.Timestamp.Equal(*p.Timestamp) {
		t.Errorf("round trip = %+v, want %+v", back, p)
	}
}

func TestNewValidates(t *testing.T) {
	good := digest.FromString("m")
	tests := []struct {
		name string
		d    digest.Digest
		ref  string
		ok   bool
	}{
		{"tagged", good, "registry.example.com/ns/name:v1", true},
		{"digested", good, "registry.example.com/ns/name@" + good.String(), true},
		{"no optional claims", good, "busybox:latest", true},
		{"name-only reference", good, "registry.example.com/ns/name", false},
		{"invalid reference", good, "NOT VALID", false},
		{"empty digest", "", "busybox:latest", false},
		{"malformed digest", "sha256:xyz", "busybox:latest", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := payload.New(tc.d, tc.ref, "", time.Time{})
			if tc.ok != (err == nil) {
				t.Fatalf("New = %v, ok %v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, payload.ErrInvalidPayload) {
					t.Errorf("error %v does not wrap ErrInvalidPayload", err)
				}
				return
			}
			if p.Creator != nil || p.Timestamp != nil {
				t.Errorf("empty optional claims not omitted: %+v", p)
			}
			b, _ := p.Marshal()
			if !bytes.Contains(b, []byte(`"optional":{}`)) {
				t.Errorf("Marshal = %s", b)
			}
		})
	}
	if _, err := (payload.Payload{}).Marshal(); !errors.Is(err, payload.ErrInvalidPayload) {
		t.Errorf("Marshal of zero Payload = %v", err)
	}
}

func TestParseUntrusted(t *testing.T) {
	const (
		d    = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		crit = `"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"registry.example.com/ns/name:v1"}}`
	)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"minimal", `{` + crit + `,"optional":{}}`, true},
		{"creator and timestamp", `{` + crit + `,"optional":{"creator":"x","timestamp":1458239713}}`, true},
		{"negative and zero timestamp", `{` + crit + `,"optional":{"timestamp":-0}}`, true},
		{"unknown optional keys ignored", `{` + crit + `,"optional":{"foo":[1,{"a":null}],"bar":{"b":true}}}`, true},
		{"whitespace", "\n { " + crit + " , \"optional\" : { } } \n", true},
		{"key order free", `{"optional":{},` + crit + `}`, true},
		{"missing optional", `{` + crit + `}`, false},
		{"missing critical", `{"optional":{}}`, false},
		{"extra top-level key", `{` + crit + `,"optional":{},"extra":1}`, false},
		{"duplicate top-level key", `{` + crit + `,"optional":{},"optional":{}}`, false},
		{"duplicate critical", `{` + crit + `,` + crit + `,"optional":{}}`, false},
		{"duplicate type", `{"critical":{"type":"atomic container signature","type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a:b"}},"optional":{}}`, false},
		{"duplicate via escape", `{"critical":{"type":"atomic container signature","typ\u0065":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a:b"}},"optional":{}}`, false},
		{"duplicate in ignored optional value", `{` + crit + `,"optional":{"foo":{"a":1,"a":2}}}`, false},
		{"extra critical key", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a:b"},"x":1},"optional":{}}`, false},
		{"case-folded key", `{"critical":{"Type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a:b"}},"optional":{}}`, false},
		{"missing image", `{"critical":{"type":"atomic container signature","identity":{"docker-reference":"a:b"}},"optional":{}}`, false},
		{"extra image key", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `","x":1},"identity":{"docker-reference":"a:b"}},"optional":{}}`, false},
		{"extra identity key", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a:b","x":1}},"optional":{}}`, false},
		{"wrong type", strings.Replace(`{`+crit+`,"optional":{}}`, "atomic container signature", "cosign container image signature", 1), false},
		{"type not a string", strings.Replace(`{`+crit+`,"optional":{}}`, `"atomic container signature"`, `1`, 1), false},
		{"invalid digest", strings.Replace(`{`+crit+`,"optional":{}}`, d, "sha256:abc", 1), false},
		{"digest not a string", strings.Replace(`{`+crit+`,"optional":{}}`, `"`+d+`"`, `null`, 1), false},
		{"reference null", strings.Replace(`{`+crit+`,"optional":{}}`, `"registry.example.com/ns/name:v1"`, `null`, 1), false},
		{"reference empty", strings.Replace(`{`+crit+`,"optional":{}}`, `registry.example.com/ns/name:v1`, ``, 1), false},
		{"creator not a string", `{` + crit + `,"optional":{"creator":1}}`, false},
		{"creator null", `{` + crit + `,"optional":{"creator":null}}`, false},
		{"timestamp fraction", `{` + crit + `,"optional":{"timestamp":1.5}}`, false},
		{"timestamp integral float", `{` + crit + `,"optional":{"timestamp":1.0}}`, false},
		{"timestamp exponent", `{` + crit + `,"optional":{"timestamp":1e9}}`, false},
		{"timestamp string", `{` + crit + `,"optional":{"timestamp":"1"}}`, false},
		{"timestamp null", `{` + crit + `,"optional":{"timestamp":null}}`, false},
		{"timestamp overflow", `{` + crit + `,"optional":{"timestamp":99999999999999999999}}`, false},
		{"optional not an object", `{` + crit + `,"optional":[]}`, false},
		{"trailing object", `{` + crit + `,"optional":{}}{}`, false},
		{"trailing garbage", `{` + crit + `,"optional":{}}x`, false},
		{"truncated", `{` + crit + `,"optional":{}`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"empty", ``, false},
		{"invalid utf-8", `{` + crit + `,"optional":{"creator":"` + "\xff" + `"}}`, false},
		{"deep nesting", `{` + crit + `,"optional":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, false},
		{"not json", "This is not JSON\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := payload.ParseUntrusted([]byte(tc.in))
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseUntrusted: %v", err)
				}
				if p.ManifestDigest != d || p.DockerReference != "registry.example.com/ns/name:v1" {
					t.Errorf("parsed %+v", p)
				}
				return
			}
			if !errors.Is(err, payload.ErrInvalidPayload) {
				t.Fatalf("ParseUntrusted = %+v, %v; want ErrInvalidPayload", p, err)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		big := `{` + crit + `,"optional":{"x":"` + strings.Repeat("a", payload.MaxSize) + `"}}`
		if _, err := payload.ParseUntrusted([]byte(big)); !errors.Is(err, payload.ErrInvalidPayload) {
			t.Fatalf("error = %v", err)
		}
	})
}

// FuzzParseUntrusted: the strict parser must never panic, and whatever it
// accepts must survive Marshal and a second parse unchanged.
//
//	go test -tags containers_image_openpgp -run '^$' -fuzz FuzzParseUntrusted ./gpg/payload/
func FuzzParseUntrusted(f *testing.F) {
	for _, name := range []string{"payload.json", "payload-name-only.json", "payload-duplicate-key.json"} {
		f.Add(testdata(f, name))
	}
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"testing/manifest"},"image":{"docker-manifest-digest":"sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"},"type":"atomic container signature"},"optional":{"creator":"atomic ","timestamp":1458239713}}`))
	f.Add([]byte(`{"critical":{},"optional":{"a":[{"b":1e5}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := payload.ParseUntrusted(data)
		if err != nil {
			if !errors.Is(err, payload.ErrInvalidPayload) {
				t.Fatalf("error %v does not wrap ErrInvalidPayload", err)
			}
			return
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted payload does not marshal: %v", err)
		}
		q, err := payload.ParseUntrusted(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if q.ManifestDigest != p.ManifestDigest || q.DockerReference != p.DockerReference ||
			(q.Creator == nil) != (p.Creator == nil) || (q.Timestamp == nil) != (p.Timestamp == nil) ||
			(q.Creator != nil && *q.Creator != *p.Creator) || (q.Timestamp != nil && !q.Timestamp.Equal(*p.Timestamp)) {
			t.Fatalf("round trip changed %+v to %+v", p, q)
		}
	})
}
