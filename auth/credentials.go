package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"
)

// maxAuthorizationLen bounds the header the parser looks at. Real
// credentials are far shorter; net/http bounds the whole header block,
// this bounds the work done here.
const maxAuthorizationLen = 4096

type credentialKind int

const (
	credNone credentialKind = iota
	credBasic
	credBearer
)

// credentials are what a request claims; nothing in them is verified yet.
type credentials struct {
	kind credentialKind
	user string // Basic only
	// secret is the Basic password or the Bearer token.
	secret string
}

var errMalformedAuthorization = errors.New("malformed authorization header")

// parseAuthorization reads the Authorization header values of a request.
// No header is credNone without error. More than one header, an unknown
// scheme, bad base64, a Basic pair without ':' or with an empty user or
// password, or control characters are all errMalformedAuthorization:
// a caller that sends credentials we cannot read is not anonymous.
func parseAuthorization(untrustedValues []string) (credentials, error) {
	switch len(untrustedValues) {
	case 0:
		return credentials{}, nil
	case 1:
	default:
		return credentials{}, errMalformedAuthorization
	}
	h := untrustedValues[0]
	if h == "" || len(h) > maxAuthorizationLen {
		return credentials{}, errMalformedAuthorization
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return credentials{}, errMalformedAuthorization
	}
	rest = strings.Trim(rest, " \t")
	if rest == "" || strings.ContainsAny(rest, " \t") {
		return credentials{}, errMalformedAuthorization
	}
	switch {
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil {
			return credentials{}, errMalformedAuthorization
		}
		pair := string(raw)
		if !utf8.ValidString(pair) || hasControl(pair) {
			return credentials{}, errMalformedAuthorization
		}
		user, password, ok := strings.Cut(pair, ":")
		if !ok || user == "" || password == "" {
			return credentials{}, errMalformedAuthorization
		}
		return credentials{kind: credBasic, user: user, secret: password}, nil
	case strings.EqualFold(scheme, "Bearer"):
		if hasControl(rest) || !utf8.ValidString(rest) {
			return credentials{}, errMalformedAuthorization
		}
		return credentials{kind: credBearer, secret: rest}, nil
	}
	return credentials{}, errMalformedAuthorization
}

// hasControl reports ASCII control characters, which no user name,
// password or token of ours contains and which would corrupt logs.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
