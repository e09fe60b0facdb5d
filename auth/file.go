package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/signet-registry/signet/internal/repoglob"
	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/registry"
)

// FormatVersion is the only users-file version this package reads.
const FormatVersion = 1

// maxFileBytes bounds the users file and the htpasswd file. Both are
// small (a token entry is about 200 bytes); the bound keeps a mistaken
// path (a disk image, /dev/zero) from exhausting memory.
const maxFileBytes = 1 << 20

// Bcrypt cost bounds. Below 4 bcrypt refuses; above 16 a single login
// takes seconds, and an unauthenticated caller could keep the server busy.
const (
	minBcryptCost = bcrypt.MinCost
	maxBcryptCost = 16
	// maxPasswordLen is bcrypt's limit: it ignores everything after 72
	// bytes, so a longer password would accept any suffix.
	maxPasswordLen = 72
	maxUserNameLen = 128
)

// File is the users file, format version 1. It is YAML, decoded strictly:
// unknown keys, duplicate keys and a second document are errors.
type File struct {
	// Version must be 1.
	Version int `yaml:"version"`
	// Htpasswd optionally names an htpasswd file ("user:$2y$..." lines,
	// '#' comments) whose bcrypt passwords are added to Users. A relative
	// path is relative to the directory of the users file. A user may
	// appear in both files, but may have a password in only one. The
	// htpasswd file is watched and reloaded with the users file.
	Htpasswd string `yaml:"htpasswd,omitempty"`
	// Users maps a user name to its credentials. Names are 1 to 128
	// characters of letters, digits and . _ @ + -, starting with a letter
	// or digit; "anonymous" is reserved. A user with neither password
	// nor token can be named in grants but cannot log in.
	Users map[string]User `yaml:"users,omitempty"`
	// Grants give roles on repository patterns, to users or to anonymous
	// callers. Grants add up; nothing is denied explicitly.
	Grants []Grant `yaml:"grants,omitempty"`
}

// User is one user's credentials.
type User struct {
	// Password is an optional bcrypt hash in htpasswd style: $2y$, $2a$
	// or $2b$, cost 4 to 16. Other hash kinds ($apr1$, {SHA}, crypt) are
	// rejected at load. "signet token hash-password" makes one. Use one
	// cost for everybody: a login attempt for an unknown user is checked
	// at the highest cost in use, so a user with a cheaper hash can be
	// told apart by timing.
	Password string `yaml:"password,omitempty"`
	// Tokens are the user's API tokens, usable as the Basic password or
	// as a Bearer token. "signet token create" appends to this list.
	Tokens []Token `yaml:"tokens,omitempty"`
}

// Token is one API token, stored only as a hash.
type Token struct {
	// ID is the public part of the token string sgt_<id>_<secret>:
	// 1 to 64 lowercase letters and digits, unique in the whole file.
	ID string `yaml:"id"`
	// SHA256 is the lowercase hex SHA-256 of the whole token string
	// (printf %s "$token" | sha256sum). Required.
	SHA256 string `yaml:"sha256"`
	// Created is when the token was made; informational.
	Created time.Time `yaml:"created,omitempty"`
	// Expires is optional; from this instant on the token is refused.
	Expires time.Time `yaml:"expires,omitempty"`
	// Description is optional free text shown by "signet token list".
	Description string `yaml:"description,omitempty"`
	// Revoked tokens are refused. Revoking keeps the entry, so its id
	// still explains old audit-log lines.
	Revoked bool `yaml:"revoked,omitempty"`
}

// Grant gives roles on repositories.
type Grant struct {
	// Repositories are globs over repository names: * is any run of
	// characters other than '/', ? one such character, ** anything
	// including '/' (and "**/" zero or more whole components). A
	// pattern matches the whole name: "ns/math" does not match
	// "ns/math-voila". Requests about no single repository (the
	// catalog, the global digest lookup) are matched only by "**".
	Repositories []string `yaml:"repositories"`
	// Users the grant applies to; each must be defined in Users or in
	// the htpasswd file.
	Users []string `yaml:"users,omitempty"`
	// Anonymous applies the grant to callers without credentials (and,
	// since logging in must never lose rights, to every authenticated
	// user too). Anonymous grants may only give the reader role.
	Anonymous bool `yaml:"anonymous,omitempty"`
	// Roles are reader, writer, signer, auditor and admin.
	Roles []Role `yaml:"roles"`
}

// FileError is a problem in the users file or the htpasswd file, with the
// line it was found on when known.
type FileError struct {
	File  string // path of the file
	Line  int    // 1-based; 0 when unknown
	Field string // e.g. "grants[1].roles[0]"; empty for the whole file
	Err   error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// config is a validated users file, compiled for lookups.
type config struct {
	users  map[string]*userEntry
	tokens map[string]tokenEntry // by id
	grants []grant
	// htpasswd is the resolved htpasswd path, "" when none.
	htpasswd string
	// maxCost is the highest bcrypt cost of any password, or the default.
	maxCost int
}

type userEntry struct {
	password []byte // bcrypt hash; nil when the user has none
}

type tokenEntry struct {
	user    string
	sum     [sha256.Size]byte
	expires time.Time
	revoked bool
}

type grant struct {
	patterns  []repoglob.Pattern
	users     map[string]bool
	anonymous bool
	access    accessSet
}

// allows reports whether user (reqctx.Anonymous for no credentials) has
// access on repository. Anonymous grants apply to everybody.
func (c *config) allows(user, repository string, access registry.Access) bool {
	for _, g := range c.grants {
		if !g.access.has(access) {
			continue
		}
		if !g.anonymous && !g.users[user] {
			continue
		}
		for _, p := range g.patterns {
			if p.Match(repository) {
				return true
			}
		}
	}
	return false
}

// readBounded reads a whole file of at most maxFileBytes, returning the
// stamp of the very file read so a change during the read is noticed.
func readBounded(path string) ([]byte, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, err
	}
	if !info.Mode().IsRegular() {
		return nil, fileStamp{}, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fileStamp{}, err
	}
	if len(data) > maxFileBytes {
		return nil, fileStamp{}, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return data, stampOf(path, info), nil
}

// loaded is one consistent read of the users file and its htpasswd file.
type loaded struct {
	file   *File
	cfg    *config
	stamps []fileStamp
}

// loadFiles reads, decodes and validates path and the htpasswd file it
// names.
func loadFiles(path string) (*loaded, error) {
	data, stamp, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("read users file: %w", err)
	}
	return loadData(path, data, stamp)
}

func loadData(path string, data []byte, stamp fileStamp) (*loaded, error) {
	f, root, err := decodeFile(path, data)
	if err != nil {
		return nil, err
	}
	l := &loaded{file: f, stamps: []fileStamp{stamp}}
	var ht []htpasswdEntry
	htPath := ""
	if f.Htpasswd != "" {
		htPath = f.Htpasswd
		if !filepath.IsAbs(htPath) {
			htPath = filepath.Join(filepath.Dir(path), htPath)
		}
		htData, htStamp, err := readBounded(htPath)
		if err != nil {
			return nil, &FileError{File: path, Line: lineOf(root, "htpasswd"), Field: "htpasswd", Err: err}
		}
		ht, err = parseHtpasswd(htPath, htData)
		if err != nil {
			return nil, err
		}
		l.stamps = append(l.stamps, htStamp)
	}
	cfg, err := compile(path, root, f, ht)
	if err != nil {
		return nil, err
	}
	cfg.htpasswd = htPath
	l.cfg = cfg
	return l, nil
}

// decodeFile decodes strictly into File, and separately into a node tree
// used only to put line numbers on validation errors.
func decodeFile(path string, data []byte) (*File, *yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &FileError{File: path, Err: errors.New("empty users file")}
		}
		return nil, nil, &FileError{File: path, Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, &FileError{File: path, Err: errors.New("more than one YAML document")}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, &FileError{File: path, Err: err}
	}
	return &f, &root, nil
}

// compile validates f (plus the htpasswd entries) and builds the lookup
// form. It reports every problem found, not only the first.
func compile(path string, root *yaml.Node, f *File, ht []htpasswdEntry) (*config, error) {
	var errs []error
	fail := func(err error, keys ...any) {
		errs = append(errs, &FileError{File: path, Line: lineOf(root, keys...), Field: fieldName(keys), Err: err})
	}
	if f.Version != FormatVersion {
		if f.Version == 0 {
			fail(fmt.Errorf("missing; write \"version: %d\"", FormatVersion), "version")
		} else {
			fail(fmt.Errorf("unsupported version %d (want %d)", f.Version, FormatVersion), "version")
		}
	}
	cfg := &config{
		users:   make(map[string]*userEntry),
		tokens:  make(map[string]tokenEntry),
		maxCost: 0,
	}
	names := make([]string, 0, len(f.Users))
	for name := range f.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := f.Users[name]
		if err := validUserName(name); err != nil {
			fail(err, "users", name)
			continue
		}
		e := &userEntry{}
		if u.Password != "" {
			cost, err := checkBcrypt(u.Password)
			if err != nil {
				fail(err, "users", name, "password")
			} else {
				e.password = []byte(u.Password)
				cfg.maxCost = max(cfg.maxCost, cost)
			}
		}
		for i, t := range u.Tokens {
			if !validTokenID(t.ID) {
				fail(errors.New("token id must be 1 to 64 lowercase letters and digits"), "users", name, "tokens", i, "id")
				continue
			}
			if prev, dup := cfg.tokens[t.ID]; dup {
				fail(fmt.Errorf("token id %q is also used by user %q", t.ID, prev.user), "users", name, "tokens", i, "id")
				continue
			}
			sum, err := hex.DecodeString(t.SHA256)
			if t.SHA256 == "" {
				fail(errors.New("missing: tokens are stored only as their sha256"), "users", name, "tokens", i)
				continue
			}
			if err != nil || len(sum) != sha256.Size || strings.ToLower(t.SHA256) != t.SHA256 {
				fail(errors.New("must be 64 lowercase hex characters"), "users", name, "tokens", i, "sha256")
				continue
			}
			te := tokenEntry{user: name, expires: t.Expires, revoked: t.Revoked}
			copy(te.sum[:], sum)
			cfg.tokens[t.ID] = te
		}
		cfg.users[name] = e
	}
	for _, h := range ht {
		if err := validUserName(h.user); err != nil {
			errs = append(errs, &FileError{File: h.file, Line: h.line, Err: err})
			continue
		}
		cost, err := checkBcrypt(h.hash)
		if err != nil {
			errs = append(errs, &FileError{File: h.file, Line: h.line, Field: h.user, Err: err})
			continue
		}
		e := cfg.users[h.user]
		if e == nil {
			e = &userEntry{}
			cfg.users[h.user] = e
		} else if e.password != nil || f.Users[h.user].Password != "" {
			errs = append(errs, &FileError{File: h.file, Line: h.line, Field: h.user,
				Err: fmt.Errorf("user also has a password in %s; keep one", path)})
			continue
		}
		e.password = []byte(h.hash)
		cfg.maxCost = max(cfg.maxCost, cost)
	}
	if cfg.maxCost == 0 {
		cfg.maxCost = bcrypt.DefaultCost
	}
	for i, g := range f.Grants {
		cg, gerrs := compileGrant(g, cfg.users)
		for _, ge := range gerrs {
			fail(ge.err, append([]any{"grants", i}, ge.keys...)...)
		}
		if len(gerrs) == 0 {
			cfg.grants = append(cfg.grants, cg)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

type keyedError struct {
	keys []any
	err  error
}

func compileGrant(g Grant, users map[string]*userEntry) (grant, []keyedError) {
	var errs []keyedError
	fail := func(err error, keys ...any) { errs = append(errs, keyedError{keys, err}) }
	cg := grant{users: make(map[string]bool), anonymous: g.Anonymous}
	if len(g.Repositories) == 0 {
		fail(errors.New("at least one pattern is required (\"**\" for all)"), "repositories")
	}
	for j, text := range g.Repositories {
		p, err := repoglob.Compile(text)
		if err != nil {
			fail(err, "repositories", j)
			continue
		}
		cg.patterns = append(cg.patterns, p)
	}
	if len(g.Users) == 0 && !g.Anonymous {
		fail(errors.New("a grant needs users or anonymous: true"), "users")
	}
	for j, u := range g.Users {
		if users[u] == nil {
			fail(fmt.Errorf("unknown user %q", u), "users", j)
			continue
		}
		cg.users[u] = true
	}
	if len(g.Roles) == 0 {
		fail(errors.New("at least one role is required"), "roles")
	}
	for j, r := range g.Roles {
		set, err := r.accesses()
		if err != nil {
			fail(err, "roles", j)
			continue
		}
		if g.Anonymous && r != RoleReader {
			fail(fmt.Errorf("anonymous grants may only give the reader role, not %q", string(r)), "roles", j)
			continue
		}
		cg.access |= set
	}
	return cg, errs
}

// validUserName keeps names safe to put in Basic credentials (no ':'),
// in logs and in audit records (no spaces or control characters).
func validUserName(name string) error {
	if name == "" || len(name) > maxUserNameLen {
		return fmt.Errorf("user name must be 1 to %d characters", maxUserNameLen)
	}
	if name == reqctx.Anonymous {
		return fmt.Errorf("user name %q is reserved for callers without credentials", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("user name %q must start with a letter or digit", name)
		}
		if !alnum && !strings.ContainsRune("._@+-", rune(c)) {
			return fmt.Errorf("user name %q: only letters, digits and . _ @ + - are allowed", name)
		}
	}
	return nil
}

// checkBcrypt accepts only bcrypt hashes of a sane cost and returns the
// cost. The message never includes the hash.
func checkBcrypt(hash string) (int, error) {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return 0, errors.New("only bcrypt password hashes ($2y$, $2a$, $2b$) are supported; make one with \"signet token hash-password\" or \"htpasswd -nB\"")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil || len(hash) != 60 {
		return 0, errors.New("malformed bcrypt hash")
	}
	if cost < minBcryptCost || cost > maxBcryptCost {
		return 0, fmt.Errorf("bcrypt cost %d outside %d..%d", cost, minBcryptCost, maxBcryptCost)
	}
	return cost, nil
}

// lineOf finds the line of the node at keys (map keys as strings,
// sequence indexes as ints) in a document, falling back to the deepest
// node found; 0 when there is no document.
func lineOf(root *yaml.Node, keys ...any) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := n.Line
	for _, k := range keys {
		var next *yaml.Node
		switch k := k.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						// A null value may sit on a later line
						// than its key; the key is what people look for.
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// fieldName renders keys as a path: grants[1].roles[0].
func fieldName(keys []any) string {
	var b strings.Builder
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			b.WriteString("[" + strconv.Itoa(k) + "]")
		}
	}
	return b.String()
}
