package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
)

// Token strings look like
//
//	sgt_<id>_<secret>
//
// The id is public and names the token in the users file, in lists and
// in the audit log; the secret is 32 bytes from crypto/rand in lowercase
// unpadded base32. Only SHA-256 of the whole string is stored: the secret
// has 256 bits of entropy, so a slow hash would add nothing, and a fast one
// keeps token logins cheap enough to verify on every request.
const (
	tokenPrefix      = "sgt_"
	tokenIDBytes     = 8
	tokenSecretBytes = 32
	maxTokenIDLen    = 64
	minTokenSecret   = 32
	maxTokenSecret   = 256
	// maxTokenLen bounds what the parser looks at.
	maxTokenLen = len(tokenPrefix) + maxTokenIDLen + 1 + maxTokenSecret
)

// newToken returns a fresh token string and its id.
func newToken() (token, id string, err error) {
	var idBytes [tokenIDBytes]byte
	var secret [tokenSecretBytes]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", fmt.Errorf("generate token id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", fmt.Errorf("generate token secret: %w", err)
	}
	id = hex.EncodeToString(idBytes[:])
	token = tokenPrefix + id + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret[:]))
	return token, id, nil
}

// hashToken is what the users file stores for a token.
func hashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// parseToken splits a token string into its id, reporting false for
// anything not shaped like a Signet token. A Basic password of this shape
// is always treated as a token, never as a password.
func parseToken(untrusted string) (id string, ok bool) {
	if len(untrusted) > maxTokenLen {
		return "", false
	}
	rest, found := strings.CutPrefix(untrusted, tokenPrefix)
	if !found {
		return "", false
	}
	id, secret, found := strings.Cut(rest, "_")
	if !found || !validTokenID(id) {
		return "", false
	}
	if len(secret) < minTokenSecret || len(secret) > maxTokenSecret || !isLowerAlnum(secret) {
		return "", false
	}
	return id, true
}

// validTokenID accepts the ids newToken makes and any other short run of
// lowercase letters and digits an operator may have written by hand.
func validTokenID(id string) bool {
	return id != "" && len(id) <= maxTokenIDLen && isLowerAlnum(id)
}

func isLowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
