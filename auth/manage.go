package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Errors of the token management functions.
var (
	ErrUnknownUser   = errors.New("unknown user")
	ErrTokenNotFound = errors.New("token not found")
	// ErrFileChanged means someone else wrote the users file between our
	// read and our write; nothing was written.
	ErrFileChanged = errors.New("users file changed while it was being edited; try again")
)

// TokenInfo describes a token without its secret or hash.
type TokenInfo struct {
	ID          string
	Created     time.Time
	Expires     time.Time // zero: never
	Description string
	Revoked     bool
}

// Status is "active", "expired" or "revoked" at now.
func (t TokenInfo) Status(now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// CreateTokenOptions tune CreateToken.
type CreateTokenOptions struct {
	// TTL is how long the token is valid; 0 means it never expires.
	TTL time.Duration
	// Description is stored with the token and shown by ListTokens.
	Description string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// maxDescriptionLen keeps descriptions to one readable line.
const maxDescriptionLen = 200

// CreateToken makes a new API token for user, appends its hash to the
// users file at path and returns the token string, which is not stored
// anywhere and cannot be shown again. The user must already exist in the
// users file or its htpasswd file.
func CreateToken(path, user string, opts CreateTokenOptions) (string, TokenInfo, error) {
	if opts.TTL < 0 {
		return "", TokenInfo{}, errors.New("token lifetime must not be negative")
	}
	if len(opts.Description) > maxDescriptionLen || hasControl(opts.Description) {
		return "", TokenInfo{}, fmt.Errorf("description must be one line of at most %d bytes", maxDescriptionLen)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	token, id, err := newToken()
	if err != nil {
		return "", TokenInfo{}, err
	}
	created := now().UTC().Truncate(time.Second)
	info := TokenInfo{ID: id, Created: created, Description: opts.Description}
	if opts.TTL > 0 {
		info.Expires = created.Add(opts.TTL)
	}
	sum := hashToken(token)
	err = editFile(path, func(l *loaded, root *yaml.Node) error {
		if l.cfg.users[user] == nil {
			return fmt.Errorf("%w %q: add it under \"users:\" first", ErrUnknownUser, user)
		}
		if _, dup := l.cfg.tokens[id]; dup {
			// 64 random bits colliding means a broken random source.
			return fmt.Errorf("token id %s already exists", id)
		}
		tokens, err := userTokensNode(root, user)
		if err != nil {
			return err
		}
		entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setKey(entry, "id", strNode(id))
		setKey(entry, "sha256", strNode(hex.EncodeToString(sum[:])))
		setKey(entry, "created", timeNode(info.Created))
		if !info.Expires.IsZero() {
			setKey(entry, "expires", timeNode(info.Expires))
		}
		if info.Description != "" {
			setKey(entry, "description", strNode(info.Description))
		}
		tokens.Content = append(tokens.Content, entry)
		return nil
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// RevokeToken marks user's token id as revoked in the users file. The
// entry stays, so the id still explains old audit records. Revoking a
// revoked token is not an error.
func RevokeToken(path, user, id string) error {
	return editFile(path, func(l *loaded, root *yaml.Node) error {
		if l.cfg.users[user] == nil {
			return fmt.Errorf("%w %q", ErrUnknownUser, user)
		}
		if t, ok := l.cfg.tokens[id]; !ok || t.user != user {
			return fmt.Errorf("%w: user %q has no token %q", ErrTokenNotFound, user, id)
		}
		tokens, err := userTokensNode(root, user)
		if err != nil {
			return err
		}
		for _, t := range tokens.Content {
			if t.Kind != yaml.MappingNode {
				continue
			}
			if v := getKey(t, "id"); v != nil && v.Value == id {
				setKey(t, "revoked", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
				return nil
			}
		}
		return fmt.Errorf("%w: user %q has no token %q", ErrTokenNotFound, user, id)
	})
}

// ListTokens returns user's tokens in file order.
func ListTokens(path, user string) ([]TokenInfo, error) {
	l, err := loadFiles(path)
	if err != nil {
		return nil, err
	}
	if l.cfg.users[user] == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, user)
	}
	var infos []TokenInfo
	for _, t := range l.file.Users[user].Tokens {
		infos = append(infos, TokenInfo{ID: t.ID, Created: t.Created, Expires: t.Expires,
			Description: t.Description, Revoked: t.Revoked})
	}
	return infos, nil
}

// HashPassword returns a bcrypt hash of password for the users file or an
// htpasswd file. cost 0 means bcrypt.DefaultCost.
func HashPassword(password []byte, cost int) (string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < minBcryptCost || cost > maxBcryptCost {
		return "", fmt.Errorf("bcrypt cost %d outside %d..%d", cost, minBcryptCost, maxBcryptCost)
	}
	switch {
	case len(password) == 0:
		return "", errors.New("empty password")
	case len(password) > maxPasswordLen:
		return "", fmt.Errorf("password longer than %d bytes (bcrypt ignores the rest)", maxPasswordLen)
	case hasControl(string(password)):
		return "", errors.New("password contains control characters")
	}
	if _, isToken := parseToken(string(password)); isToken {
		return "", errors.New("password is shaped like an API token and would be checked as one")
	}
	h, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// editFile is read, validate, edit the node tree, re-encode, validate
// again, and replace the file atomically. The file must be valid before
// and after: a tool that writes an invalid users file would lock everyone
// out at the next reload.
func editFile(path string, edit func(l *loaded, root *yaml.Node) error) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("read users file: %w", err)
	}
	data, stamp, err := readBounded(target)
	if err != nil {
		return fmt.Errorf("read users file: %w", err)
	}
	l, err := loadData(path, data, stamp)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse users file: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("users file: top level is not a mapping")
	}
	if err := edit(l, doc.Content[0]); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	indent, compact := detectIndent(data)
	enc.SetIndent(indent)
	if compact {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("encode users file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode users file: %w", err)
	}
	out := buf.Bytes()
	if _, err := loadData(path, out, stamp); err != nil {
		return fmt.Errorf("edited users file would be invalid, not written: %w", err)
	}
	if !statStamp(target).equal(stamp) {
		return ErrFileChanged
	}
	return writeAtomic(target, out, 0o600)
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync'ed, renamed over path, and the directory fsync'ed, so
// a crash leaves either the old file or the new one, never half of one.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync users file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync users file directory: %w", err)
	}
	return nil
}

// userTokensNode returns the tokens sequence of user, creating the user
// entry (for a user defined only in htpasswd) and the sequence as needed.
func userTokensNode(root *yaml.Node, user string) (*yaml.Node, error) {
	users, err := childMapping(root, "users")
	if err != nil {
		return nil, err
	}
	u, err := childMapping(users, user)
	if err != nil {
		return nil, err
	}
	tokens := getKey(u, "tokens")
	switch {
	case tokens == nil:
		tokens = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setKey(u, "tokens", tokens)
	case tokens.Kind == yaml.ScalarNode && tokens.Tag == "!!null":
		*tokens = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", HeadComment: tokens.HeadComment,
			LineComment: tokens.LineComment, FootComment: tokens.FootComment}
	case tokens.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("users.%s.tokens: not a list (YAML aliases are not edited)", user)
	}
	if tokens.Style&yaml.FlowStyle != 0 && len(tokens.Content) == 0 {
		tokens.Style = 0
	}
	return tokens, nil
}

// childMapping returns the mapping under key in m, adding an empty one
// when the key is missing or null.
func childMapping(m *yaml.Node, key string) (*yaml.Node, error) {
	v := getKey(m, key)
	switch {
	case v == nil:
		v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setKey(m, key, v)
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: v.HeadComment,
			LineComment: v.LineComment, FootComment: v.FootComment}
	case v.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("%s: not a mapping (YAML aliases are not edited)", key)
	}
	if v.Style&yaml.FlowStyle != 0 {
		// Appending to "alice: {}" should give block style, like the
		// rest of the file.
		v.Style = 0
	}
	return v, nil
}

func getKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey replaces the value of key in m, or appends the pair.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, strNode(key), v)
}

// strNode is tagged !!str so that ids and hashes made only of digits (or
// looking like floats) are quoted, not read back as numbers.
func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func timeNode(t time.Time) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: t.UTC().Format(time.RFC3339)}
}

// detectIndent guesses the indentation of a YAML file so that an edit
// does not reformat the whole file: the smallest indentation step, and
// whether sequences sit at the same indentation as their key ("compact",
// as kubectl writes) or one step in (as yaml.v3 writes).
func detectIndent(data []byte) (indent int, compact bool) {
	indent = 0
	prevKeyIndent := -1
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		n := len(line) - len(trimmed)
		if n > 0 && (indent == 0 || n < indent) {
			indent = n
		}
		if strings.HasPrefix(trimmed, "- ") && prevKeyIndent == n {
			compact = true
		}
		prevKeyIndent = -1
		if opensBlock(trimmed) {
			prevKeyIndent = n
		}
	}
	if indent < 2 || indent > 8 {
		indent = 2
	}
	return indent, compact
}

// opensBlock reports a "key:" line whose value follows on the next lines.
func opensBlock(trimmed string) bool {
	if strings.HasPrefix(trimmed, "- ") {
		return false
	}
	if i := strings.Index(trimmed, " #"); i >= 0 {
		trimmed = trimmed[:i]
	}
	return strings.HasSuffix(strings.TrimRight(trimmed, " "), ":")
}
