package extensions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// SchemaVersion is the only wire schema version; the JSON key is
// "schemaVersion" (not "version", whatever some documents say; SPEC §1).
const SchemaVersion = 2

// Signature is the wire object of one signature.
type Signature struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	// Content is standard base64 with padding on the wire.
	Content []byte `json:"content"`
}

// SignatureList is the GET response body.
type SignatureList struct {
	Signatures []Signature `json:"signatures"`
}

// ErrInvalid marks every validation failure of a request.
var ErrInvalid = errors.New("invalid signature request")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// digestPattern is the only digest form accepted in URLs and names. Only
// sha256 is used by clients, and a strict pattern keeps hostile values out
// of storage keys and paths (CVE-2024-3727).
var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// isSHA256Digest is digestPattern.MatchString without the regexp, which
// showed in profiles of the GET path (wire_test.go compares the two).
func isSHA256Digest(s string) bool {
	if len(s) != len("sha256:")+64 || s[:7] != "sha256:" {
		return false
	}
	for i := 7; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseDigest validates a digest taken from a URL or a name.
func ParseDigest(s string) (digest.Digest, error) {
	if !isSHA256Digest(s) {
		return "", invalidf("digest %q is not sha256: followed by 64 lowercase hex characters", truncate(s))
	}
	return digest.Digest(s), nil
}

// ValidateName checks that name is "<dgst>@<32 lowercase hex>", the form
// containers/image generates with %032x. OpenShift checked neither the
// length nor the digest; accepting another digest here would let a
// signature for one image be listed under another.
func ValidateName(dgst digest.Digest, name string) error {
	prefix, suffix, ok := strings.Cut(name, "@")
	if !ok {
		return invalidf("name %q is not <digest>@<suffix>", truncate(name))
	}
	if prefix != dgst.String() {
		return invalidf("name %q does not start with the image digest %s", truncate(name), dgst)
	}
	if len(suffix) != 32 || strings.Trim(suffix, "0123456789abcdef") != "" {
		return invalidf("name suffix %q is not 32 lowercase hex characters", truncate(suffix))
	}
	return nil
}

// DecodeSignature parses an untrusted PUT body strictly: one JSON object
// with only the four known keys, none repeated, no trailing data, valid
// UTF-8. It then validates the fields against the URL digest and returns
// the signature to store.
func DecodeSignature(dgst digest.Digest, body []byte) (signaturestore.Signature, error) {
	untrusted, err := decodeStrict(body)
	if err != nil {
		return signaturestore.Signature{}, err
	}
	if untrusted.SchemaVersion != SchemaVersion {
		return signaturestore.Signature{}, invalidf("schemaVersion %d is not %d", untrusted.SchemaVersion, SchemaVersion)
	}
	if err := ValidateName(dgst, untrusted.Name); err != nil {
		return signaturestore.Signature{}, err
	}
	switch untrusted.Type {
	case "":
		// An empty type means atomic. OpenShift stored it as
		// AtomicImageV1, which clients then silently skip (SPEC §1).
		untrusted.Type = signaturestore.TypeAtomic
	case signaturestore.TypeAtomic:
	default:
		return signaturestore.Signature{}, invalidf("type %q is not %q", truncate(untrusted.Type), signaturestore.TypeAtomic)
	}
	if len(untrusted.Content) == 0 {
		return signaturestore.Signature{}, invalidf("content is empty")
	}
	return signaturestore.Signature{Name: untrusted.Name, Type: untrusted.Type, Content: untrusted.Content}, nil
}

func decodeStrict(body []byte) (Signature, error) { return decodeStrictWith(body, true) }

func decodeStrictWith(body []byte, fastPath bool) (Signature, error) {
	var sig Signature
	if !utf8.Valid(body) {
		return sig, invalidf("body is not valid UTF-8")
	}
	if fastPath {
		if fast, ok := decodeFast(body); ok {
			return fast, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return sig, invalidf("body is not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return sig, invalidf("body is not a JSON object")
	}
	seen := make(map[string]bool, 4)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return sig, invalidf("bad JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return sig, invalidf("bad JSON object key")
		}
		if seen[key] {
			return sig, invalidf("duplicate key %q", truncate(key))
		}
		seen[key] = true
		val, err := dec.Token()
		if err != nil {
			return sig, invalidf("bad JSON value for %q: %v", truncate(key), err)
		}
		switch key {
		case "schemaVersion":
			n, ok := val.(json.Number)
			if !ok {
				return sig, invalidf("schemaVersion is not a number")
			}
			v, err := n.Int64()
			if err != nil || v < -1<<31 || v > 1<<31-1 {
				return sig, invalidf("schemaVersion %q is not an integer", truncate(n.String()))
			}
			sig.SchemaVersion = int(v)
		case "name", "type", "content":
			s, ok := val.(string)
			if !ok {
				return sig, invalidf("%s is not a string", key)
			}
			switch key {
			case "name":
				sig.Name = s
			case "type":
				sig.Type = s
			case "content":
				// Go's decoder skips CR and LF even in strict mode;
				// standard base64 has neither.
				if strings.ContainsAny(s, "\r\n") {
					return sig, invalidf("content is not standard padded base64: line breaks")
				}
				raw, err := base64.StdEncoding.Strict().DecodeString(s)
				if err != nil {
					return sig, invalidf("content is not standard padded base64: %v", err)
				}
				sig.Content = raw
			}
		default:
			return sig, invalidf("unknown key %q", truncate(key))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return sig, invalidf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return sig, invalidf("trailing data after the JSON object")
	}
	if !seen["schemaVersion"] {
		return sig, invalidf("schemaVersion is missing")
	}
	return sig, nil
}

// listEncoder renders the GET body from signaturestore.VisitList's calls
// (start, add each, finish): exactly what json.Marshal writes for the
// SignatureList (wire_test.go compares the two), and where each
// signature's base64 content lies in it, so a cached list can serve one
// content without keeping the decoded signatures. An image without
// signatures renders as {"signatures":[]}, never null: containers/image
// treats anything but a list as an error.
type listEncoder struct {
	b       []byte
	offsets [][2]int
}

// start sizes the list for n signatures with contentBytes of content in
// all and about nameBytes of names and types.
func (e *listEncoder) start(n int, contentBytes int64, nameBytes int) {
	// 64 bytes of JSON around each signature's fields, and base64 of
	// each content rounded up to whole groups of 3 bytes.
	size := int64(len(`{"signatures":[]}`)) + int64(n)*64 + int64(nameBytes) + (contentBytes+2*int64(n))/3*4 + 4
	e.b = make([]byte, 0, size)
	e.offsets = make([][2]int, 0, n)
	e.b = append(e.b, `{"signatures":[`...)
}

// add appends one signature; its slices are not kept.
func (e *listEncoder) add(v signaturestore.SignatureView) error {
	b := e.b
	if len(e.offsets) > 0 {
		b = append(b, ',')
	}
	b = append(b, `{"schemaVersion":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"name":`...)
	b, err := appendJSONString(b, v.Name)
	if err != nil {
		return err
	}
	b = append(b, `,"type":`...)
	if b, err = appendJSONString(b, v.Type); err != nil {
		return err
	}
	b = append(b, `,"content":`...)
	if v.Content == nil {
		b = append(b, "null"...)
		e.offsets = append(e.offsets, [2]int{len(b), len(b)})
	} else {
		b = append(b, '"')
		start := len(b)
		b = base64.StdEncoding.AppendEncode(b, v.Content)
		e.offsets = append(e.offsets, [2]int{start, len(b)})
		b = append(b, '"')
	}
	e.b = append(b, '}')
	return nil
}

// finish returns the list and the offsets of each content in it. A list
// whose names outgrew start's estimate is copied to its size: it may be
// cached.
func (e *listEncoder) finish() ([]byte, [][2]int) {
	b := append(e.b, "]}"...)
	if cap(b)-len(b) > len(b)/8 {
		b = bytes.Clone(b)
	}
	return b, e.offsets
}

// appendJSONString appends s as json.Marshal writes a string in a struct.
func appendJSONString[T string | []byte](b []byte, s T) ([]byte, error) {
	if plainJSON(s) {
		// What json.Marshal writes for a string it leaves unescaped:
		// the names every client sends.
		return append(append(append(b, '"'), s...), '"'), nil
	}
	v, err := json.Marshal(string(s))
	if err != nil {
		return nil, fmt.Errorf("encode signature list: %w", err)
	}
	return append(b, v...), nil
}

// plainJSON reports whether json.Marshal writes s as itself in quotes:
// printable ASCII without the characters it escapes (quote, backslash,
// and <, > and & for HTML safety).
func plainJSON[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// decodeFast decodes the body every client sends, a flat object of the
// four keys with unescaped strings and an integer schemaVersion, without
// encoding/json's token machinery (a tenth of a PUT's CPU). It accepts
// only input the strict decoder accepts, with the same result
// (wire_test.go holds the two together, also under fuzzing); anything
// else, valid or not, reports false and goes to the strict decoder for
// its verdict and error message. body is valid UTF-8.
func decodeFast(body []byte) (Signature, bool) {
	var sig Signature
	i := 0
	ws := func() {
		for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
			i++
		}
	}
	// str reads a string without escapes or control characters.
	str := func() ([]byte, bool) {
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		start := i + 1
		for j := start; j < len(body); j++ {
			switch c := body[j]; {
			case c == '"':
				i = j + 1
				return body[start:j], true
			case c == '\\' || c < 0x20:
				return nil, false
			}
		}
		return nil, false
	}
	ws()
	if i >= len(body) || body[i] != '{' {
		return sig, false
	}
	i++
	var seen [4]bool
	for {
		ws()
		key, ok := str()
		if !ok {
			return sig, false
		}
		ws()
		if i >= len(body) || body[i] != ':' {
			return sig, false
		}
		i++
		ws()
		switch string(key) {
		case "schemaVersion":
			if seen[0] {
				return sig, false
			}
			seen[0] = true
			start := i
			if i < len(body) && body[i] == '-' {
				i++
			}
			digits := i
			for i < len(body) && body[i] >= '0' && body[i] <= '9' {
				i++
			}
			n := i - digits
			if n == 0 || n > 10 || (n > 1 && body[digits] == '0') {
				return sig, false
			}
			v, err := strconv.ParseInt(string(body[start:i]), 10, 64)
			if err != nil || v < -1<<31 || v > 1<<31-1 {
				return sig, false
			}
			sig.SchemaVersion = int(v)
		case "name", "type", "content":
			k := 3
			switch string(key) {
			case "name":
				k = 1
			case "type":
				k = 2
			}
			if seen[k] {
				return sig, false
			}
			seen[k] = true
			val, ok := str()
			if !ok {
				return sig, false
			}
			switch k {
			case 1:
				sig.Name = string(val)
			case 2:
				sig.Type = string(val)
			case 3:
				raw := make([]byte, base64.StdEncoding.DecodedLen(len(val)))
				n, err := base64.StdEncoding.Strict().Decode(raw, val)
				if err != nil {
					return sig, false
				}
				sig.Content = raw[:n]
			}
		default:
			return sig, false
		}
		ws()
		if i >= len(body) {
			return sig, false
		}
		if body[i] == ',' {
			i++
			continue
		}
		if body[i] != '}' {
			return sig, false
		}
		i++
		break
	}
	ws()
	if i != len(body) || !seen[0] {
		return sig, false
	}
	return sig, true
}

// truncate keeps hostile values from blowing up error messages and logs.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
