package registry

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The hostile-input corpus (issue 4, SPEC §6): every request here is
// malformed or not allowed. Each must be answered with the exact 4xx in
// distribution's error envelope, never a 5xx, and must leave the
// signature store exactly as it was.
//
// Requests are written on a raw connection, so the request target reaches
// the server byte for byte: no client cleans "..", re-encodes "%2f" or
// follows a redirect on the server's behalf.

// hostileCase is one malformed request.
type hostileCase struct {
	name   string
	method string
	// target is the request target, sent verbatim.
	target string
	// header lines, "Key: value".
	header []string
	body   string
	// noLength: do not add a Content-Length; the header lines declare
	// the body (or lie about it).
	noLength bool
	// endless: send an endless chunked body through a client with a
	// timeout; the server must cut it off at its cap.
	endless bool
	status  int
	code    string
}

// hostileResponse is what came back.
type hostileResponse struct {
	status int
	header http.Header
	body   []byte
}

// hostileTimeout bounds every hostile request; no case may hang the test.
const hostileTimeout = 30 * time.Second

// sendRaw writes one request on a fresh connection and reads the answer.
// The body is written concurrently: the server may answer (413) before
// reading it, and the answer must still be read.
func sendRaw(t *testing.T, baseURL string, c hostileCase) hostileResponse {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, hostileTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hostileTimeout))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: signet-hostile-test\r\n", c.method, c.target, u.Host)
	for _, h := range c.header {
		req.WriteString(h + "\r\n")
	}
	if !c.noLength {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(c.body))
	}
	req.WriteString("\r\n")
	req.WriteString(c.body)
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = conn.Write(req.Bytes())
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: c.method})
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", c.method, truncateForLog(c.target), err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	conn.Close() // unblocks a writer the server stopped reading from
	<-written
	return hostileResponse{resp.StatusCode, resp.Header, body}
}

// endlessBody is a signature PUT body that never ends: a plausible
// opening followed by base64 forever.
type endlessBody struct{ prefix []byte }

func (e *endlessBody) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = 'A'
	}
	return len(p), nil
}

// sendEndless streams an endless chunked body through a client with a
// timeout. The client returns as soon as the server answers.
func sendEndless(t *testing.T, baseURL string, c hostileCase) hostileResponse {
	t.Helper()
	req, err := http.NewRequest(c.method, baseURL+c.target, &endlessBody{prefix: []byte(c.body)})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked: no declared length to refuse early
	client := &http.Client{Timeout: hostileTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("endless body: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return hostileResponse{resp.StatusCode, resp.Header, body}
}

func truncateForLog(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// hostileSnapshot is everything a rejected request must leave unchanged.
type hostileSnapshot struct {
	count   int64
	lists   map[string]string // extension GET bodies by "repo@digest"
	records string            // Signet records of the seeded image (statuses)
}

func hostileGet(t *testing.T, e *testEnv, target string) string {
	t.Helper()
	r := e.do("GET", target, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, r.status, r.body)
	}
	return string(r.body)
}

func snapshot(t *testing.T, e *testEnv, images [][2]string) hostileSnapshot {
	t.Helper()
	n, err := e.store.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := hostileSnapshot{count: n, lists: map[string]string{}}
	for _, im := range images {
		s.lists[im[0]+"@"+im[1]] = hostileGet(t, e, sigPath(im[0], im[1]))
	}
	s.records = hostileGet(t, e, recordsPath(images[0][0], images[0][1]))
	return s
}

// checkEnvelope asserts distribution's error envelope with a non-empty code
// and returns the first code.
func checkEnvelope(t *testing.T, r hostileResponse) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an error envelope: %q (%v)", truncateForLog(string(r.body)), err)
	}
	for _, e := range env.Errors {
		if e.Code == "" {
			t.Fatalf("error without a code: %s", r.body)
		}
	}
	return env.Errors[0].Code
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestHostileInputCorpus(t *testing.T) {
	e := newTestEnv(t, nil)
	const repo = "ns/app"
	dgst := e.pushImage(repo, "v1")            // the seeded image
	other := e.pushImage(repo, "v2")           // another image of the same repository
	elsewhere := e.pushImage("ns/other", "v1") // an image of another repository
	missing := sha([]byte("never pushed"))
	seedName := sigName(dgst)
	seedContent := []byte("the seeded signature")
	if r := e.do("PUT", sigPath(repo, dgst), strings.NewReader(sigBody(seedName, seedContent)), nil); r.status != http.StatusCreated {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	images := [][2]string{{repo, dgst}, {repo, other}, {"ns/other", elsewhere}}
	before := snapshot(t, e, images)
	if before.count != 1 {
		t.Fatalf("seeded store holds %d signatures", before.count)
	}

	hex := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	suffix := strings.Repeat("0123456789abcdef", 2) // 32 lowercase hex
	fresh := dgst + "@" + suffix                    // a valid, unused name
	put := sigPath(repo, dgst)
	statusPath := recordsPath(repo, dgst) + "/" + seedName + "/status"
	// body builds a signature body from raw JSON fragments.
	body := func(sv, name, typ, content string) string {
		return `{"schemaVersion":` + sv + `,"name":` + name + `,"type":` + typ + `,"content":` + content + `}`
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	valid := body("2", q(fresh), `"atomic"`, `"AQID"`)
	withName := func(n string) string { return body("2", q(n), `"atomic"`, `"AQID"`) }
	withType := func(typ string) string { return body("2", q(fresh), typ, `"AQID"`) }
	withContent := func(c string) string { return body("2", q(fresh), `"atomic"`, c) }
	withSV := func(sv string) string { return body(sv, q(fresh), `"atomic"`, `"AQID"`) }
	limit := int(e.cfg.Signatures.MaxBodyBytes)
	// A signature body of exactly n bytes (its content is not base64;
	// only the size matters).
	sized := func(n int) string {
		return withContent(q(strings.Repeat("A", n-len(withContent(`""`)))))
	}
	const sigInvalid, nameInvalid, tooLarge, notFound, unsupported = "SIGNATURE_INVALID", "NAME_INVALID", "SIZE_INVALID", "NOT_FOUND", "UNSUPPORTED"
	const manifestUnknown = "MANIFEST_UNKNOWN"

	cases := []hostileCase{
		// Not JSON, or not one JSON object.
		{name: "json/truncated object", method: "PUT", target: put, body: `{"schemaVersion":2,`, status: 400, code: sigInvalid},
		{name: "json/not JSON", method: "PUT", target: put, body: `hello`, status: 400, code: sigInvalid},
		{name: "json/empty body", method: "PUT", target: put, body: ``, status: 400, code: sigInvalid},
		{name: "json/null", method: "PUT", target: put, body: `null`, status: 400, code: sigInvalid},
		{name: "json/empty array", method: "PUT", target: put, body: `[]`, status: 400, code: sigInvalid},
		{name: "json/array wrapping a valid signature", method: "PUT", target: put, body: `[` + valid + `]`, status: 400, code: sigInvalid},
		{name: "json/top-level string", method: "PUT", target: put, body: q(valid), status: 400, code: sigInvalid},
		{name: "json/top-level number", method: "PUT", target: put, body: `2`, status: 400, code: sigInvalid},
		{name: "json/single quotes", method: "PUT", target: put, body: strings.ReplaceAll(valid, `"`, `'`), status: 400, code: sigInvalid},
		{name: "json/comment before object", method: "PUT", target: put, body: `/* hi */` + valid, status: 400, code: sigInvalid},
		{name: "json/UTF-8 BOM before object", method: "PUT", target: put, body: "\xef\xbb\xbf" + valid, status: 400, code: sigInvalid},
		{name: "json/NUL after object", method: "PUT", target: put, body: valid + "\x00", status: 400, code: sigInvalid},
		{name: "json/second object after the first", method: "PUT", target: put, body: valid + `{}`, status: 400, code: sigInvalid},
		{name: "json/garbage after the object", method: "PUT", target: put, body: valid + ` x`, status: 400, code: sigInvalid},
		{name: "json/unknown extra key", method: "PUT", target: put, body: strings.TrimSuffix(valid, "}") + `,"extra":1}`, status: 400, code: sigInvalid},
		{name: "json/100k-deep nesting under an unknown key", method: "PUT", target: put, body: `{"x":` + strings.Repeat("[", 100000), status: 400, code: sigInvalid},
		{name: "json/100k-deep nesting as the name", method: "PUT", target: put, body: `{"schemaVersion":2,"name":` + strings.Repeat(`{"a":`, 100000), status: 400, code: sigInvalid},

		// Duplicated keys: the first and the last value differ, so any
		// parser that keeps either could be fooled.
		{name: "dup/schemaVersion twice", method: "PUT", target: put, body: `{"schemaVersion":3,` + valid[1:], status: 400, code: sigInvalid},
		{name: "dup/name twice, second names another digest", method: "PUT", target: put, body: strings.TrimSuffix(valid, "}") + `,"name":` + q(other+"@"+suffix) + `}`, status: 400, code: sigInvalid},
		{name: "dup/type twice", method: "PUT", target: put, body: strings.TrimSuffix(valid, "}") + `,"type":"x509"}`, status: 400, code: sigInvalid},
		{name: "dup/content twice", method: "PUT", target: put, body: strings.TrimSuffix(valid, "}") + `,"content":"BAUG"}`, status: 400, code: sigInvalid},
		{name: "dup/name spelled with a unicode escape", method: "PUT", target: put, body: strings.TrimSuffix(valid, "}") + `,"\u006eame":` + q(other+"@"+suffix) + `}`, status: 400, code: sigInvalid},
		{name: "dup/schemaVersion and SchemaVersion", method: "PUT", target: put, body: `{"SchemaVersion":3,` + valid[1:], status: 400, code: sigInvalid},
		{name: "dup/schemaVersion and long-s ſchemaVersion (encoding/json folds them)", method: "PUT", target: put, body: `{"ſchemaVersion":3,` + valid[1:], status: 400, code: sigInvalid},
		{name: "keys/only capitalised keys (encoding/json would accept)", method: "PUT", target: put, body: `{"SchemaVersion":2,"Name":` + q(fresh) + `,"Type":"atomic","Content":"AQID"}`, status: 400, code: sigInvalid},

		// schemaVersion.
		{name: "schemaVersion/missing", method: "PUT", target: put, body: `{"name":` + q(fresh) + `,"type":"atomic","content":"AQID"}`, status: 400, code: sigInvalid},
		{name: "schemaVersion/1", method: "PUT", target: put, body: withSV("1"), status: 400, code: sigInvalid},
		{name: "schemaVersion/3", method: "PUT", target: put, body: withSV("3"), status: 400, code: sigInvalid},
		{name: "schemaVersion/0", method: "PUT", target: put, body: withSV("0"), status: 400, code: sigInvalid},
		{name: "schemaVersion/-2", method: "PUT", target: put, body: withSV("-2"), status: 400, code: sigInvalid},
		{name: "schemaVersion/-0", method: "PUT", target: put, body: withSV("-0"), status: 400, code: sigInvalid},
		{name: "schemaVersion/float 2.0", method: "PUT", target: put, body: withSV("2.0"), status: 400, code: sigInvalid},
		{name: "schemaVersion/exponent 2e0", method: "PUT", target: put, body: withSV("2e0"), status: 400, code: sigInvalid},
		{name: "schemaVersion/leading zero 02", method: "PUT", target: put, body: withSV("02"), status: 400, code: sigInvalid},
		{name: "schemaVersion/string \"2\"", method: "PUT", target: put, body: withSV(`"2"`), status: 400, code: sigInvalid},
		{name: "schemaVersion/null", method: "PUT", target: put, body: withSV(`null`), status: 400, code: sigInvalid},
		{name: "schemaVersion/true", method: "PUT", target: put, body: withSV(`true`), status: 400, code: sigInvalid},
		{name: "schemaVersion/array [2]", method: "PUT", target: put, body: withSV(`[2]`), status: 400, code: sigInvalid},
		{name: "schemaVersion/object", method: "PUT", target: put, body: withSV(`{"v":2}`), status: 400, code: sigInvalid},
		{name: "schemaVersion/NaN", method: "PUT", target: put, body: withSV(`NaN`), status: 400, code: sigInvalid},
		{name: "schemaVersion/2^32+2 (2 if truncated to 32 bits)", method: "PUT", target: put, body: withSV("4294967298"), status: 400, code: sigInvalid},
		{name: "schemaVersion/2^64+2 (2 if truncated to 64 bits)", method: "PUT", target: put, body: withSV("18446744073709551618"), status: 400, code: sigInvalid},
		{name: "schemaVersion/a million digits", method: "PUT", target: put, body: withSV(strings.Repeat("9", 1<<20)), status: 400, code: sigInvalid},
		{name: "schemaVersion/version instead of schemaVersion", method: "PUT", target: put, body: `{"version":2,` + valid[len(`{"schemaVersion":2,`):], status: 400, code: sigInvalid},
		{name: "schemaVersion/version as well as schemaVersion (unknown key)", method: "PUT", target: put, body: `{"version":2,` + valid[1:], status: 400, code: sigInvalid},

		// Names: <digest>@<32 lowercase hex>, digest equal to the URL's.
		{name: "name/31-char suffix", method: "PUT", target: put, body: withName(dgst + "@" + suffix[:31]), status: 400, code: sigInvalid},
		{name: "name/33-char suffix", method: "PUT", target: put, body: withName(dgst + "@" + suffix + "0"), status: 400, code: sigInvalid},
		{name: "name/uppercase suffix", method: "PUT", target: put, body: withName(dgst + "@" + strings.ToUpper(suffix)), status: 400, code: sigInvalid},
		{name: "name/non-hex suffix", method: "PUT", target: put, body: withName(dgst + "@" + strings.Repeat("g", 32)), status: 400, code: sigInvalid},
		{name: "name/fullwidth-digit suffix", method: "PUT", target: put, body: withName(dgst + "@" + strings.Repeat("０", 32)), status: 400, code: sigInvalid},
		{name: "name/suffix with trailing newline", method: "PUT", target: put, body: withName(fresh + "\n"), status: 400, code: sigInvalid},
		{name: "name/extra @ before the suffix", method: "PUT", target: put, body: withName(dgst + "@@" + suffix), status: 400, code: sigInvalid},
		{name: "name/extra @ after the suffix", method: "PUT", target: put, body: withName(fresh + "@"), status: 400, code: sigInvalid},
		{name: "name/two suffixes", method: "PUT", target: put, body: withName(fresh + "@" + suffix), status: 400, code: sigInvalid},
		{name: "name/digest of another image of the repository", method: "PUT", target: put, body: withName(other + "@" + suffix), status: 400, code: sigInvalid},
		{name: "name/digest of an image of another repository", method: "PUT", target: put, body: withName(elsewhere + "@" + suffix), status: 400, code: sigInvalid},
		{name: "name/sha512 digest", method: "PUT", target: put, body: withName("sha512:" + strings.Repeat("a", 128) + "@" + suffix), status: 400, code: sigInvalid},
		{name: "name/uppercase digest hex", method: "PUT", target: put, body: withName("sha256:" + strings.ToUpper(hex(dgst)) + "@" + suffix), status: 400, code: sigInvalid},
		{name: "name/empty", method: "PUT", target: put, body: withName(""), status: 400, code: sigInvalid},
		{name: "name/suffix only", method: "PUT", target: put, body: withName("@" + suffix), status: 400, code: sigInvalid},
		{name: "name/digest only", method: "PUT", target: put, body: withName(dgst), status: 400, code: sigInvalid},
		{name: "name/NUL inside", method: "PUT", target: put, body: withName(dgst + "@" + suffix[:16] + "\x00" + suffix[17:]), status: 400, code: sigInvalid},
		{name: "name/object", method: "PUT", target: put, body: body("2", `{"name":`+q(fresh)+`}`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},
		{name: "name/array", method: "PUT", target: put, body: body("2", `[`+q(fresh)+`]`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},
		{name: "name/number", method: "PUT", target: put, body: body("2", `42`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},
		{name: "name/null", method: "PUT", target: put, body: body("2", `null`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},

		// Types: only "atomic" (or empty, meaning atomic) is stored.
		{name: "type/AtomicImageV1 (OpenShift's default, invisible to clients)", method: "PUT", target: put, body: withType(`"AtomicImageV1"`), status: 400, code: sigInvalid},
		{name: "type/ATOMIC", method: "PUT", target: put, body: withType(`"ATOMIC"`), status: 400, code: sigInvalid},
		{name: "type/Atomic", method: "PUT", target: put, body: withType(`"Atomic"`), status: 400, code: sigInvalid},
		{name: "type/x509", method: "PUT", target: put, body: withType(`"x509"`), status: 400, code: sigInvalid},
		{name: "type/cosign", method: "PUT", target: put, body: withType(`"cosign"`), status: 400, code: sigInvalid},
		{name: "type/atomic with trailing space", method: "PUT", target: put, body: withType(`"atomic "`), status: 400, code: sigInvalid},
		{name: "type/atomic with NUL", method: "PUT", target: put, body: withType(`"atomic\u0000"`), status: 400, code: sigInvalid},
		{name: "type/object", method: "PUT", target: put, body: withType(`{"type":"atomic"}`), status: 400, code: sigInvalid},
		{name: "type/null", method: "PUT", target: put, body: withType(`null`), status: 400, code: sigInvalid},

		// Content: standard base64 with padding, not empty.
		{name: "content/empty", method: "PUT", target: put, body: withContent(`""`), status: 400, code: sigInvalid},
		{name: "content/bad length", method: "PUT", target: put, body: withContent(`"AQI"`), status: 400, code: sigInvalid},
		{name: "content/unpadded", method: "PUT", target: put, body: withContent(`"AQ"`), status: 400, code: sigInvalid},
		{name: "content/URL-safe alphabet", method: "PUT", target: put, body: withContent(`"-_8="`), status: 400, code: sigInvalid},
		{name: "content/non-zero padding bits", method: "PUT", target: put, body: withContent(`"AQJ="`), status: 400, code: sigInvalid},
		{name: "content/space inside", method: "PUT", target: put, body: withContent(`"AQ ID"`), status: 400, code: sigInvalid},
		{name: "content/not base64 at all", method: "PUT", target: put, body: withContent(`"!!!!"`), status: 400, code: sigInvalid},
		{name: "content/number", method: "PUT", target: put, body: withContent(`1`), status: 400, code: sigInvalid},
		{name: "content/byte array", method: "PUT", target: put, body: withContent(`[1,2,3]`), status: 400, code: sigInvalid},
		{name: "content/object", method: "PUT", target: put, body: withContent(`{"b64":"AQID"}`), status: 400, code: sigInvalid},
		{name: "content/null", method: "PUT", target: put, body: withContent(`null`), status: 400, code: sigInvalid},

		// Invalid UTF-8 and bad escapes.
		{name: "utf8/0xff in the name", method: "PUT", target: put, body: body("2", `"`+fresh[:20]+"\xff"+fresh[21:]+`"`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},
		{name: "utf8/overlong slash in the name", method: "PUT", target: put, body: body("2", `"`+fresh[:20]+"\xc0\xaf"+fresh[21:]+`"`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},
		{name: "utf8/0xfe in a key", method: "PUT", target: put, body: `{"\xfe":1,` + valid[1:], status: 400, code: sigInvalid},
		{name: "utf8/raw 0xff in the type value", method: "PUT", target: put, body: withType("\"atomic\xff\""), status: 400, code: sigInvalid},
		{name: "utf8/lone surrogate escape in the type", method: "PUT", target: put, body: withType(`"\ud800"`), status: 400, code: sigInvalid},
		{name: "utf8/bad escape in the name", method: "PUT", target: put, body: body("2", `"\x"`, `"atomic"`, `"AQID"`), status: 400, code: sigInvalid},

		// Digests in the URL: sha256 and 64 lowercase hex, nothing else.
		{name: "digest/short", method: "PUT", target: sigPath(repo, "sha256:abc"), body: valid, status: 400, code: sigInvalid},
		{name: "digest/uppercase hex", method: "PUT", target: sigPath(repo, "sha256:"+strings.ToUpper(hex(dgst))), body: valid, status: 400, code: sigInvalid},
		{name: "digest/missing algorithm", method: "PUT", target: sigPath(repo, hex(dgst)), body: valid, status: 400, code: sigInvalid},
		{name: "digest/algorithm only", method: "GET", target: sigPath(repo, "sha256:"), status: 400, code: sigInvalid},
		{name: "digest/sha512", method: "PUT", target: sigPath(repo, "sha512:"+strings.Repeat("a", 128)), body: withName("sha512:" + strings.Repeat("a", 128) + "@" + suffix), status: 400, code: sigInvalid},
		{name: "digest/sha384", method: "GET", target: sigPath(repo, "sha384:"+strings.Repeat("a", 96)), status: 400, code: sigInvalid},
		{name: "digest/65 hex", method: "GET", target: sigPath(repo, dgst+"0"), status: 400, code: sigInvalid},
		{name: "digest/unicode (percent-encoded é)", method: "GET", target: sigPath(repo, dgst[:len(dgst)-1]+"%C3%A9"), status: 400, code: sigInvalid},
		{name: "digest/unicode (raw UTF-8 é)", method: "GET", target: sigPath(repo, dgst[:len(dgst)-1]+"é"), status: 400, code: sigInvalid},
		{name: "digest/fullwidth hex", method: "GET", target: sigPath(repo, "sha256:"+url.PathEscape(strings.Repeat("ａ", 64))), status: 400, code: sigInvalid},
		{name: "digest/encoded trailing newline", method: "PUT", target: sigPath(repo, dgst+"%0a"), body: valid, status: 400, code: sigInvalid},
		{name: "digest/encoded NUL", method: "PUT", target: sigPath(repo, dgst+"%00"), body: valid, status: 400, code: sigInvalid},
		{name: "digest/encoded traversal ..%2f..%2fetc (no route once decoded)", method: "GET", target: sigPath(repo, "sha256:..%2f..%2fetc"), status: 404, code: notFound},
		{name: "digest/Signet API uppercase hex (no route)", method: "GET", target: recordsPath(repo, "sha256:"+strings.ToUpper(hex(dgst))), status: 404, code: notFound},
		{name: "digest/Signet API sha512 remove-all (no route)", method: "DELETE", target: recordsPath(repo, "sha512:"+strings.Repeat("a", 128)), status: 404, code: notFound},
		{name: "digest/digest lookup sha512", method: "GET", target: "/signet/v1/digests/sha512:" + strings.Repeat("a", 128), status: 400, code: sigInvalid},
		{name: "digest/digest lookup uppercase", method: "GET", target: "/signet/v1/digests/sha256:" + strings.ToUpper(hex(dgst)), status: 400, code: sigInvalid},

		// Path traversal: ".." never reaches a handler, whether literal
		// or encoded. A redirect to the cleaned path would be a 3xx
		// (gorilla/mux's default); a registry user expects a 404.
		{name: "traversal/.. in the repository (PUT)", method: "PUT", target: "/extensions/v2/ns/x/../app/signatures/" + dgst, body: valid, status: 404, code: notFound},
		{name: "traversal/%2e%2e in the repository (PUT)", method: "PUT", target: "/extensions/v2/ns/x/%2e%2e/app/signatures/" + dgst, body: valid, status: 404, code: notFound},
		{name: "traversal/%2f..%2f in the repository (GET)", method: "GET", target: "/extensions/v2/ns%2fapp%2f..%2f..%2fns%2fother/signatures/" + elsewhere, status: 404, code: notFound},
		{name: "traversal/a//b repository (PUT)", method: "PUT", target: "/extensions/v2/ns//app/signatures/" + dgst, body: valid, status: 404, code: notFound},
		{name: "traversal/. component (PUT)", method: "PUT", target: "/extensions/v2/ns/./app/signatures/" + dgst, body: valid, status: 404, code: notFound},
		{name: "traversal/trailing slash (PUT)", method: "PUT", target: put + "/", body: valid, status: 404, code: notFound},
		{name: "traversal/.. after the digest", method: "GET", target: put + "/../../../../v2/", status: 404, code: notFound},
		{name: "traversal/backslashes", method: "GET", target: `/extensions/v2/ns\..\app/signatures/` + dgst, status: 404, code: notFound},
		{name: "traversal/.. in a Signet status path", method: "PUT", target: recordsPath("ns/x/..", dgst) + "/" + seedName + "/status", body: `{"trusted":true}`, status: 404, code: notFound},
		{name: "traversal/.. in a manifest DELETE", method: "DELETE", target: "/v2/ns/other/../app/manifests/" + dgst, status: 404, code: notFound},
		{name: "sigstore/.. in the repository", method: "GET", target: "/sigstore/ns/x/../app@sha256=" + hex(dgst) + "/signature-1", status: 404, code: notFound},
		{name: "sigstore/%2e%2e in the repository", method: "GET", target: "/sigstore/ns/x/%2e%2e/app@sha256=" + hex(dgst) + "/signature-1", status: 404, code: notFound},
		{name: "sigstore/%2f..%2f after the digest", method: "GET", target: "/sigstore/ns/app@sha256=" + hex(dgst) + "%2f..%2f..%2fns%2fother@sha256=" + hex(elsewhere) + "/signature-1", status: 404, code: notFound},
		{name: "sigstore/uppercase hex", method: "GET", target: "/sigstore/ns/app@sha256=" + strings.ToUpper(hex(dgst)) + "/signature-1", status: 404, code: notFound},
		{name: "sigstore/negative index", method: "GET", target: "/sigstore/ns/app@sha256=" + hex(dgst) + "/signature--1", status: 404, code: notFound},
		{name: "sigstore/huge index", method: "GET", target: "/sigstore/ns/app@sha256=" + hex(dgst) + "/signature-99999999999999999999", status: 404, code: notFound},
		{name: "sigstore/index past the last", method: "GET", target: "/sigstore/ns/app@sha256=" + hex(dgst) + "/signature-2", status: 404, code: "SIGNATURE_UNKNOWN"},
		{name: "sigstore/image of another repository", method: "GET", target: "/sigstore/ns/app@sha256=" + hex(elsewhere) + "/signature-1", status: 404, code: manifestUnknown},
		{name: "sigstore/PUT is not served", method: "PUT", target: "/sigstore/ns/app@sha256=" + hex(dgst) + "/signature-2", body: "x", status: 405, code: unsupported},

		// Repository names: distribution's grammar, at most 255 bytes.
		{name: "repo/uppercase (no route)", method: "PUT", target: sigPath("ns/App", dgst), body: valid, status: 404, code: notFound},
		{name: "repo/Cyrillic а homoglyph, percent-encoded (no route)", method: "PUT", target: sigPath("ns/%D0%B0pp", dgst), body: valid, status: 404, code: notFound},
		{name: "repo/Cyrillic а homoglyph, raw UTF-8 (no route)", method: "GET", target: sigPath("ns/аpp", dgst), status: 404, code: notFound},
		{name: "repo/256 bytes", method: "PUT", target: sigPath("ns/"+strings.Repeat("a", 253), dgst), body: valid, status: 400, code: nameInvalid},
		{name: "repo/10000 bytes of components", method: "GET", target: sigPath(strings.Repeat("a/", 5000)+"b", dgst), status: 400, code: nameInvalid},
		{name: "repo/leading separator (no route)", method: "GET", target: sigPath("ns/-app", dgst), status: 404, code: notFound},
		{name: "repo/trailing separator (no route)", method: "GET", target: sigPath("ns/app-", dgst), status: 404, code: notFound},
		{name: "repo/colon (no route)", method: "GET", target: sigPath("ns/app:v1", dgst), status: 404, code: notFound},
		{name: "repo/encoded NUL (no route)", method: "GET", target: sigPath("ns/app%00", dgst), status: 404, code: notFound},
		{name: "repo/encoded space (no route)", method: "GET", target: sigPath("ns/app%20", dgst), status: 404, code: notFound},
		{name: "repo/empty (no route)", method: "PUT", target: "/extensions/v2/signatures/" + dgst, body: valid, status: 404, code: notFound},
		{name: "repo/uppercase remove-all in the Signet API (no route)", method: "DELETE", target: recordsPath("ns/App", dgst), status: 404, code: notFound},
		// distribution's grammar reads an uppercase first component as a
		// registry host, so "NS/app" is a valid, different repository.
		{name: "repo/uppercase first component is a host in distribution's grammar (routed, image unknown)", method: "PUT", target: sigPath("NS/app", dgst), body: valid, status: 404, code: manifestUnknown},

		// Methods the route does not serve.
		{name: "method/POST signatures", method: "POST", target: put, body: valid, status: 405, code: unsupported},
		{name: "method/PATCH signatures", method: "PATCH", target: put, body: valid, status: 405, code: unsupported},
		{name: "method/DELETE signatures (OpenShift has none)", method: "DELETE", target: put, status: 405, code: unsupported},
		{name: "method/HEAD signatures", method: "HEAD", target: put, status: 405},
		{name: "method/OPTIONS signatures", method: "OPTIONS", target: put, status: 405, code: unsupported},
		{name: "method/TRACE signatures", method: "TRACE", target: put, status: 405, code: unsupported},
		{name: "method/made-up method", method: "SIGN", target: put, body: valid, status: 405, code: unsupported},
		{name: "method/PUT Signet records", method: "PUT", target: recordsPath(repo, dgst), body: valid, status: 405, code: unsupported},
		{name: "method/POST Signet records", method: "POST", target: recordsPath(repo, dgst), body: valid, status: 405, code: unsupported},
		{name: "method/GET status", method: "GET", target: statusPath, status: 405, code: unsupported},
		{name: "method/POST status", method: "POST", target: statusPath, body: `{"trusted":true}`, status: 405, code: unsupported},
		{name: "method/PATCH status", method: "PATCH", target: statusPath, body: `{"trusted":true}`, status: 405, code: unsupported},
		{name: "method/PUT one signature", method: "PUT", target: recordsPath(repo, dgst) + "/" + seedName, body: valid, status: 405, code: unsupported},
		{name: "method/POST digest lookup", method: "POST", target: "/signet/v1/digests/" + dgst, status: 405, code: unsupported},
		{name: "method/PUT healthz", method: "PUT", target: "/healthz", status: 405, code: unsupported},
		{name: "method/DELETE metrics", method: "DELETE", target: "/metrics", status: 405, code: unsupported},

		// Content types and encodings: the body is JSON whatever the
		// headers say; nothing else is decoded into a signature.
		{name: "ctype/form-encoded fields", method: "PUT", target: put, header: []string{"Content-Type: application/x-www-form-urlencoded"}, body: "schemaVersion=2&name=" + url.QueryEscape(fresh) + "&type=atomic&content=AQID", status: 400, code: sigInvalid},
		{name: "ctype/multipart", method: "PUT", target: put, header: []string{"Content-Type: multipart/form-data; boundary=X"}, body: "--X\r\nContent-Disposition: form-data; name=\"sig\"\r\n\r\n" + valid + "\r\n--X--\r\n", status: 400, code: sigInvalid},
		{name: "ctype/gzip Content-Encoding is not decoded", method: "PUT", target: put, header: []string{"Content-Type: application/json", "Content-Encoding: gzip"}, body: gzipped(t, valid), status: 400, code: sigInvalid},
		{name: "ctype/YAML labelled JSON", method: "PUT", target: put, header: []string{"Content-Type: application/json"}, body: "schemaVersion: 2\nname: " + fresh + "\ntype: atomic\ncontent: AQID\n", status: 400, code: sigInvalid},
		{name: "ctype/octet-stream of raw signature bytes", method: "PUT", target: put, header: []string{"Content-Type: application/octet-stream"}, body: "\x01\x02\x03", status: 400, code: sigInvalid},

		// Size limits (CVE-2020-1702, CVE-2024-29902).
		{name: "size/Content-Length one over the cap", method: "PUT", target: put, body: sized(limit + 1), status: 413, code: tooLarge},
		{name: "size/exactly the cap is read and parsed (400, not 413)", method: "PUT", target: put, body: sized(limit), status: 400, code: sigInvalid},
		{name: "size/one over the cap, chunked", method: "PUT", target: put, header: []string{"Transfer-Encoding: chunked"}, noLength: true, body: chunked(sized(limit + 1)), status: 413, code: tooLarge},
		{name: "size/declared 1 TiB, nothing sent", method: "PUT", target: put, header: []string{"Content-Length: 1099511627776"}, noLength: true, status: 413, code: tooLarge},
		{name: "size/declared 5 MiB with Expect: 100-continue", method: "PUT", target: put, header: []string{"Content-Length: 5242880", "Expect: 100-continue"}, noLength: true, status: 413, code: tooLarge},
		{name: "size/endless chunked signature body", method: "PUT", target: put, body: `{"schemaVersion":2,"name":` + q(fresh) + `,"type":"atomic","content":"`, endless: true, status: 413, code: tooLarge},
		{name: "size/endless chunked status body", method: "PUT", target: statusPath, body: `{"trusted":false,"reason":"`, endless: true, status: 413, code: tooLarge},
		{name: "size/status body over 64 KiB", method: "PUT", target: statusPath, body: `{"trusted":false,"reason":` + q(strings.Repeat("r", 70000)) + `}`, status: 413, code: tooLarge},
		{name: "size/declared status body of 1 TiB", method: "PUT", target: statusPath, header: []string{"Content-Length: 1099511627776"}, noLength: true, status: 413, code: tooLarge},

		// Signet API status bodies: strict, bounded.
		{name: "status/unknown field", method: "PUT", target: statusPath, body: `{"trusted":true,"conditions":[]}`, status: 400, code: sigInvalid},
		{name: "status/trailing object", method: "PUT", target: statusPath, body: `{"trusted":true}{}`, status: 400, code: sigInvalid},
		{name: "status/trailing garbage", method: "PUT", target: statusPath, body: `{"trusted":true} x`, status: 400, code: sigInvalid},
		{name: "status/empty body", method: "PUT", target: statusPath, body: ``, status: 400, code: sigInvalid},
		{name: "status/null body (a failure without reason)", method: "PUT", target: statusPath, body: `null`, status: 400, code: sigInvalid},
		{name: "status/array body", method: "PUT", target: statusPath, body: `[{"trusted":true}]`, status: 400, code: sigInvalid},
		{name: "status/trusted as a string", method: "PUT", target: statusPath, body: `{"trusted":"true"}`, status: 400, code: sigInvalid},
		{name: "status/failure without reason", method: "PUT", target: statusPath, body: `{"trusted":false}`, status: 400, code: sigInvalid},
		{name: "status/oversized imageIdentity", method: "PUT", target: statusPath, body: `{"trusted":true,"imageIdentity":` + q(strings.Repeat("a", 2000)) + `}`, status: 400, code: sigInvalid},
		{name: "status/oversized reason", method: "PUT", target: statusPath, body: `{"trusted":false,"reason":` + q(strings.Repeat("a", 2000)) + `}`, status: 400, code: sigInvalid},
		{name: "status/oversized publicKeyID", method: "PUT", target: statusPath, body: `{"trusted":true,"issuedTo":{"publicKeyID":` + q(strings.Repeat("A", 2000)) + `}}`, status: 400, code: sigInvalid},
		{name: "status/oversized claim key", method: "PUT", target: statusPath, body: `{"trusted":true,"signedClaims":{` + q(strings.Repeat("k", 2000)) + `:"v"}}`, status: 400, code: sigInvalid},
		{name: "status/17 claims", method: "PUT", target: statusPath, body: `{"trusted":true,"signedClaims":{` + claims(17) + `}}`, status: 400, code: sigInvalid},
		{name: "status/claim value a number", method: "PUT", target: statusPath, body: `{"trusted":true,"signedClaims":{"timestamp":1700000000}}`, status: 400, code: sigInvalid},
		{name: "status/issuedBy a string", method: "PUT", target: statusPath, body: `{"trusted":true,"issuedBy":"me"}`, status: 400, code: sigInvalid},
		{name: "status/unknown field nested in issuedBy", method: "PUT", target: statusPath, body: `{"trusted":true,"issuedBy":{"commonName":"x","trusted":true}}`, status: 400, code: sigInvalid},
		{name: "status/duplicate trusted key, false then true", method: "PUT", target: statusPath, body: `{"trusted":false,"reason":"bad key","trusted":true}`, status: 400, code: sigInvalid},
		{name: "status/case-folded key TRUSTED", method: "PUT", target: statusPath, body: `{"TRUSTED":true}`, status: 400, code: sigInvalid},
		{name: "status/invalid UTF-8 in the reason", method: "PUT", target: statusPath, body: "{\"trusted\":false,\"reason\":\"bad \xff key\"}", status: 400, code: sigInvalid},
		{name: "status/name of another digest", method: "PUT", target: recordsPath(repo, dgst) + "/" + other + "@" + suffix + "/status", body: `{"trusted":true}`, status: 400, code: sigInvalid},
		{name: "status/31-char suffix", method: "PUT", target: recordsPath(repo, dgst) + "/" + seedName[:len(seedName)-1] + "/status", body: `{"trusted":true}`, status: 400, code: sigInvalid},
		{name: "status/unknown signature", method: "PUT", target: recordsPath(repo, dgst) + "/" + fresh + "/status", body: `{"trusted":true}`, status: 404, code: "SIGNATURE_UNKNOWN"},
		{name: "status/unknown image", method: "PUT", target: recordsPath(repo, missing) + "/" + missing + "@" + suffix + "/status", body: `{"trusted":true}`, status: 404, code: manifestUnknown},
		{name: "status/DELETE with an uppercase suffix", method: "DELETE", target: recordsPath(repo, dgst) + "/" + strings.ToUpper(seedName[len(dgst):]) + "/status", status: 400, code: sigInvalid},
		{name: "signet/DELETE signature with a 33-char suffix", method: "DELETE", target: recordsPath(repo, dgst) + "/" + seedName + "0", status: 400, code: sigInvalid},
		{name: "signet/DELETE the seeded signature through another digest", method: "DELETE", target: recordsPath(repo, other) + "/" + seedName, status: 400, code: sigInvalid},
		{name: "signet/DELETE the seeded signature through another repository", method: "DELETE", target: recordsPath("ns/other", dgst) + "/" + seedName, status: 404, code: "SIGNATURE_UNKNOWN"},

		// Query strings are never a source of fields.
		{name: "query/schemaVersion in the query, not the body", method: "PUT", target: put + "?schemaVersion=2", body: `{"name":` + q(fresh) + `,"type":"atomic","content":"AQID"}`, status: 400, code: sigInvalid},
		{name: "query/name in the query, not the body", method: "PUT", target: put + "?name=" + url.QueryEscape(fresh), body: `{"schemaVersion":2,"type":"atomic","content":"AQID"}`, status: 400, code: sigInvalid},
		{name: "query/digest in the query does not fix the path's", method: "PUT", target: sigPath(repo, "sha256:abc") + "?digest=" + dgst, body: valid, status: 400, code: sigInvalid},
		{name: "query/malformed escapes and separators", method: "PUT", target: put + "?%zz&;;&=&a=%", body: `{}`, status: 400, code: sigInvalid},
		{name: "query/64 KiB query", method: "PUT", target: put + "?" + strings.Repeat("a=b&", 16<<10), body: `[]`, status: 400, code: sigInvalid},
		{name: "query/catalog n over the configured maximum (CVE-2023-2253)", method: "GET", target: "/v2/_catalog?n=1000000000", status: 400, code: "PAGINATION_NUMBER_INVALID"},

		// Replays: valid signatures in the wrong place or twice.
		{name: "replay/the seeded signature again", method: "PUT", target: put, body: sigBody(seedName, seedContent), status: 409, code: "SIGNATURE_EXISTS"},
		{name: "replay/the seeded content under a new name", method: "PUT", target: put, body: sigBody(fresh, seedContent), status: 409, code: "SIGNATURE_EXISTS"},
		{name: "replay/the seeded signature under another digest", method: "PUT", target: sigPath(repo, other), body: sigBody(seedName, seedContent), status: 400, code: sigInvalid},
		{name: "replay/the seeded signature in a repository without the image", method: "PUT", target: sigPath("ns/other", dgst), body: sigBody(seedName, seedContent), status: 404, code: manifestUnknown},
		{name: "replay/a signature for an unknown image", method: "PUT", target: sigPath(repo, missing), body: sigBody(missing+"@"+suffix, seedContent), status: 404, code: manifestUnknown},

		// The embedded registry behind the same front.
		{name: "v2/DELETE the seeded manifest through another repository", method: "DELETE", target: "/v2/ns/other/manifests/" + dgst, status: 404, code: manifestUnknown},
		{name: "v2/DELETE a manifest by uppercase digest", method: "DELETE", target: "/v2/ns/app/manifests/sha256:" + strings.ToUpper(hex(dgst)), status: 400, code: "DIGEST_INVALID"},
		{name: "v2/PUT a garbage manifest", method: "PUT", target: "/v2/ns/app/manifests/v3", header: []string{"Content-Type: application/vnd.oci.image.manifest.v1+json"}, body: `{"schemaVersion":2,`, status: 400, code: "MANIFEST_INVALID"},
	}

	if len(cases) < 60 {
		t.Fatalf("corpus has %d cases, want at least 60", len(cases))
	}
	for _, c := range cases {
		if c.body != "" && !c.noLength && !c.endless && c.header == nil && len(c.body) > limit+1 {
			t.Fatalf("%s: body of %d bytes; keep plain bodies within the cap so they test parsing", c.name, len(c.body))
		}
		t.Run(c.name, func(t *testing.T) {
			var r hostileResponse
			if c.endless {
				r = sendEndless(t, e.url, c)
			} else {
				r = sendRaw(t, e.url, c)
			}
			if r.status >= 500 {
				t.Errorf("server error %d: %s", r.status, truncateForLog(string(r.body)))
			}
			if got := r.header.Get(SupportsSignaturesHeader); got != "1" {
				t.Errorf("%s = %q", SupportsSignaturesHeader, got)
			}
			after := snapshot(t, e, images)
			wrote := false
			if after.count != before.count {
				t.Errorf("store count %d -> %d: the request wrote", before.count, after.count)
				wrote = true
			}
			for k, v := range before.lists {
				if after.lists[k] != v {
					t.Errorf("signatures of %s changed:\n%s\n->\n%s", k, v, after.lists[k])
					wrote = true
				}
			}
			if after.records != before.records {
				t.Errorf("records of the seeded image changed:\n%s\n->\n%s", before.records, after.records)
				wrote = true
			}
			if wrote {
				// Judge the following cases against the new state, so
				// one write fails one case, not every case after it.
				before = after
				t.FailNow()
			}
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, truncateForLog(string(r.body)))
			}
			if c.method != http.MethodHead {
				if code := checkEnvelope(t, r); c.code != "" && code != c.code {
					t.Errorf("code %s, want %s", code, c.code)
				}
			}
		})
	}

	// Control: the body most cases mutate is itself acceptable, so each
	// rejection above is down to its one defect.
	if r := sendRaw(t, e.url, hostileCase{method: "PUT", target: put, body: valid}); r.status != http.StatusCreated {
		t.Fatalf("control PUT of the unmutated body: %d %s", r.status, r.body)
	}
	if n, _ := e.store.Count(context.Background()); n != before.count+1 {
		t.Fatalf("control PUT: store holds %d signatures, want %d", n, before.count+1)
	}
}

// chunked encodes body as one HTTP/1.1 chunk and the last chunk.
func chunked(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// claims renders n distinct signed claims.
func claims(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	return strings.Join(parts, ",")
}

// TestSignaturePutBodyCutShort: a PUT that declares more body than it
// sends, then closes its side, is refused as invalid, and nothing is
// stored.
func TestSignaturePutBodyCutShort(t *testing.T) {
	e := newTestEnv(t, nil)
	dgst := e.pushImage("short/body", "v1")
	body := sigBody(sigName(dgst), []byte("content"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		sigPath("short/body", dgst), len(body)+100, body)
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("cut-short body: %d, want 400", resp.StatusCode)
	}
	if n := len(e.list("short/body", dgst).Signatures); n != 0 {
		t.Fatalf("%d signatures stored from a cut-short body", n)
	}
}
