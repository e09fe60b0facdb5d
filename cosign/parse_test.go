package cosign

import (
	"encoding/base64"
	"testing"
)

const goodPayload = `{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:0a645c87dcfa5b3dfc55c71f15c716da8a1d7e85d22ef5fc689f79efac6e0ce5"},"type":"cosign container image signature"},"optional":{"team":"core"}}`

func TestParseSimpleSigningStrict(t *testing.T) {
	d := `"docker-manifest-digest":"sha256:0a645c87dcfa5b3dfc55c71f15c716da8a1d7e85d22ef5fc689f79efac6e0ce5"`
	cases := []struct {
		name, payload string
		ok            bool
	}{
		{"cosign's payload", goodPayload, true},
		{"optional null", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"},"optional":null}`, true},
		{"optional absent", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"}}`, true},
		{"optional not an object", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"},"optional":[]}`, false},
		{"atomic type", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"atomic container signature"},"optional":null}`, false},
		{"duplicate digest", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `,` + d + `},"type":"cosign container image signature"},"optional":null}`, false},
		{"duplicate critical", `{"critical":{},"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"},"optional":null}`, false},
		{"unknown critical key", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature","x":1},"optional":null}`, false},
		{"unknown top key", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"},"optional":null,"x":1}`, false},
		{"bad digest", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:abc"},"type":"cosign container image signature"},"optional":null}`, false},
		{"trailing data", goodPayload + "{}", false},
		{"duplicate inside optional", `{"critical":{"identity":{"docker-reference":"r"},"image":{` + d + `},"type":"cosign container image signature"},"optional":{"a":"1","a":"2"}}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseSimpleSigning([]byte(c.payload))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestParseStatementStrict(t *testing.T) {
	sub := `{"digest":{"sha256":"0a645c87dcfa5b3dfc55c71f15c716da8a1d7e85d22ef5fc689f79efac6e0ce5"},"annotations":{}}`
	cases := []struct {
		name, statement string
		ok              bool
	}{
		{"cosign's statement", `{"_type":"https://in-toto.io/Statement/v1", "subject":[` + sub + `], "predicateType":"https://sigstore.dev/cosign/sign/v1", "predicate":{}}`, true},
		{"two subjects", `{"_type":"https://in-toto.io/Statement/v1","subject":[` + sub + `,` + sub + `],"predicateType":"p","predicate":{}}`, false},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p","predicate":{}}`, false},
		{"old statement type", `{"_type":"https://in-toto.io/Statement/v0.1","subject":[` + sub + `],"predicateType":"p","predicate":{}}`, false},
		{"no sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha512":"00"}}],"predicateType":"p"}`, false},
		{"duplicate subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[` + sub + `],"subject":[` + sub + `],"predicateType":"p"}`, false},
		{"unknown key", `{"_type":"https://in-toto.io/Statement/v1","subject":[` + sub + `],"predicateType":"p","x":1}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseStatement([]byte(c.statement))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestParseRekorBundleStrict(t *testing.T) {
	id := "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
	payload := func(extra string) string {
		return `{"SignedEntryTimestamp":"MEUCIQ==","Payload":{"body":"e30=","integratedTime":1700000000,"logIndex":5,"logID":"` + id + `"` + extra + `}}`
	}
	cases := []struct {
		name, bundle string
		ok           bool
	}{
		{"cosign's bundle", payload(""), true},
		{"unknown key", payload(`,"x":1`), false},
		{"duplicate key", payload(`,"logIndex":6`), false},
		{"fractional time", `{"SignedEntryTimestamp":"MEUCIQ==","Payload":{"body":"e30=","integratedTime":1.5,"logIndex":5,"logID":"` + id + `"}}`, false},
		{"uppercase log id", `{"SignedEntryTimestamp":"MEUCIQ==","Payload":{"body":"e30=","integratedTime":1,"logIndex":5,"logID":"C0D23D6AD406973F9559F3BA2D1CA01F84147D8FFC5B8445C224F98B9591801D"}}`, false},
		{"lowercase keys", `{"signedEntryTimestamp":"MEUCIQ==","payload":{}}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseRekorBundle(c.bundle)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// FuzzParseUntrusted: no parser of registry-supplied data may panic.
func FuzzParseUntrusted(f *testing.F) {
	f.Add([]byte(goodPayload))
	f.Add([]byte(`{"SignedEntryTimestamp":"MEUCIQ==","Payload":{"body":"e30=","integratedTime":1,"logIndex":5,"logID":"00"}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"}}],"predicateType":"p"}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"sha256:00","size":-1}],"subject":{"digest":"x"}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{}}`))
	f.Add([]byte(`{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{"signature":{"publicKey":{"content":"AA=="}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseSimpleSigning(b)
		_, _ = parseStatement(b)
		_, _ = parseRekorBundle(string(b))
		_, _ = parseManifest(b)
		_, _ = parseBundle(b)
		_, _ = parseCertificatePEM(string(b))
		_, _ = ParsePublicKey(b)
		_ = checkEntryBinding(base64.StdEncoding.EncodeToString(b), b, b, nil, nil)
	})
}
