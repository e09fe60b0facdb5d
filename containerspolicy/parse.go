package containerspolicy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.podman.io/image/v5/docker/reference"

	"github.com/signet-registry/signet/gpg/policy"
	"github.com/signet-registry/signet/internal/strictjson"
)

const (
	// MaxPolicyBytes bounds a policy file. Real ones are a few KiB; inline
	// keyData keyrings are the only large values.
	MaxPolicyBytes = 4 << 20
	// maxListEntries bounds every list in the file (requirements of one
	// scope, keyPaths, keyDatas, …), so that one file cannot make Signet
	// read thousands of key files.
	maxListEntries = 64
)

// ErrInvalidPolicy: the policy file is malformed or asks for something
// Signet does not implement. Parse errors are *ParseError wrapping it.
var ErrInvalidPolicy = errors.New("invalid containers policy")

// ParseError says where in the file the policy is invalid, as a path like
// transports.docker["quay.io/org"][1].keyPath.
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%v: %v", ErrInvalidPolicy, e.Err)
	}
	return fmt.Sprintf("%v: %s: %v", ErrInvalidPolicy, e.Path, e.Err)
}

func (e *ParseError) Unwrap() []error { return []error{ErrInvalidPolicy, e.Err} }

func bad(path, format string, args ...any) error {
	return &ParseError{Path: path, Err: fmt.Errorf(format, args...)}
}

// The transports containers/image knows. Scopes of transports other than
// docker are parsed and checked but never apply: Signet verifies registry
// images only. An unknown name is refused, since a typo ("dokcer") would
// otherwise silently leave the docker images to the default.
var knownTransports = map[string]bool{
	"atomic": true, "containers-storage": true, "dir": true, "docker": true,
	"docker-archive": true, "docker-daemon": true, "oci": true, "oci-archive": true,
	"ostree": true, "sif": true, "tarball": true,
}

// Policy is a parsed containers-policy.json.
type Policy struct {
	// Default applies when no transport scope does.
	Default Requirements
	// Docker holds the transports.docker scopes ("" is the transport's
	// own default).
	Docker map[string]Requirements
	// Transports lists every transport section present, docker included.
	Transports []string
}

// Requirements is one scope's list; all of them must allow an image.
type Requirements []Requirement

// Requirement is one entry of a requirements list: *InsecureAcceptAnything,
// *Reject, *SignedBy or *SigstoreSigned.
type Requirement interface {
	// String describes the requirement for reports.
	String() string
}

// InsecureAcceptAnything allows every image.
type InsecureAcceptAnything struct{}

func (*InsecureAcceptAnything) String() string { return "insecureAcceptAnything" }

// Reject allows no image.
type Reject struct{}

func (*Reject) String() string { return "reject" }

// Source is where key material comes from: files (keyPath, keyPaths) or
// inline data (keyData, keyDatas). Exactly one of Paths and Data is set.
type Source struct {
	// Field is the policy key that named it, for messages.
	Field string
	Paths []string
	Data  [][]byte
}

func (s Source) String() string {
	if len(s.Paths) > 0 {
		return s.Field + " " + strings.Join(s.Paths, ", ")
	}
	return s.Field
}

func (s Source) isZero() bool { return len(s.Paths) == 0 && len(s.Data) == 0 }

// SignedBy requires a GPG simple-signing signature by one of the keys,
// whose signed identity the rule accepts.
type SignedBy struct {
	Keys     Source
	Identity policy.Rule
}

func (r *SignedBy) String() string {
	return fmt.Sprintf("signedBy (GPGKeys, %s, signedIdentity %s)", r.Keys, ruleName(r.Identity))
}

// SigstoreSigned requires a cosign signature by one of the keys, or by a
// Fulcio certificate for SubjectEmail from OIDCIssuer, whose signed
// identity the rule accepts. With Rekor keys the signature must carry a
// Rekor SET from one of them.
type SigstoreSigned struct {
	Keys     Source // empty with Fulcio
	Fulcio   *Fulcio
	Rekor    Source // optional, except with Fulcio
	Identity policy.Rule
}

// Fulcio is a sigstoreSigned requirement's fulcio object.
type Fulcio struct {
	CA           Source
	OIDCIssuer   string
	SubjectEmail string
}

func (r *SigstoreSigned) String() string {
	var parts []string
	if r.Fulcio != nil {
		parts = append(parts, fmt.Sprintf("fulcio %s, oidcIssuer %q, subjectEmail %q", r.Fulcio.CA, r.Fulcio.OIDCIssuer, r.Fulcio.SubjectEmail))
	} else {
		parts = append(parts, r.Keys.String())
	}
	if !r.Rekor.isZero() {
		parts = append(parts, r.Rekor.String())
	}
	parts = append(parts, "signedIdentity "+ruleName(r.Identity))
	return "sigstoreSigned (" + strings.Join(parts, ", ") + ")"
}

func ruleName(r policy.Rule) string {
	if s, ok := r.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", r)
}

// Parse parses a containers-policy.json strictly. It reads no files: key
// paths are read by Prepare, for the scope that applies.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, bad("", "policy larger than %d bytes", MaxPolicyBytes)
	}
	v, err := strictjson.Parse(data)
	if err != nil {
		return nil, bad("", "%v", err)
	}
	if err := keys(v, "", []string{"default"}, "transports"); err != nil {
		return nil, err
	}
	p := &Policy{Docker: map[string]Requirements{}}
	def, _ := v.Get("default")
	if p.Default, err = parseRequirements(def, "default"); err != nil {
		return nil, err
	}
	t, ok := v.Get("transports")
	if !ok {
		return p, nil
	}
	if t.Kind != strictjson.Object {
		return nil, bad("transports", "must be an object, not %v", t.Kind)
	}
	for _, tm := range t.Members {
		path := "transports." + tm.Key
		if !knownTransports[tm.Key] {
			return nil, bad(path, "unknown transport %q", tm.Key)
		}
		p.Transports = append(p.Transports, tm.Key)
		if tm.Value.Kind != strictjson.Object {
			return nil, bad(path, "must be an object of scopes, not %v", tm.Value.Kind)
		}
		for _, sm := range tm.Value.Members {
			spath := fmt.Sprintf("%s[%q]", path, sm.Key)
			if tm.Key == "docker" {
				if err := validateDockerScope(sm.Key); err != nil {
					return nil, bad(spath, "%v", err)
				}
			}
			reqs, err := parseRequirements(sm.Value, spath)
			if err != nil {
				return nil, err
			}
			if tm.Key == "docker" {
				p.Docker[sm.Key] = reqs
			}
		}
	}
	return p, nil
}

// keys checks that v is an object with every key of required and none
// outside required and optional.
func keys(v strictjson.Value, path string, required []string, optional ...string) error {
	if v.Kind != strictjson.Object {
		return bad(path, "must be an object, not %v", v.Kind)
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, required...), optional...) {
		allowed[k] = true
	}
	for _, m := range v.Members {
		if !allowed[m.Key] {
			return bad(path, "unknown key %q", m.Key)
		}
	}
	for _, k := range required {
		if _, ok := v.Get(k); !ok {
			return bad(path, "missing key %q", k)
		}
	}
	return nil
}

func parseRequirements(v strictjson.Value, path string) (Requirements, error) {
	if v.Kind != strictjson.Array {
		return nil, bad(path, "must be a list of requirements, not %v", v.Kind)
	}
	if len(v.Elems) == 0 {
		return nil, bad(path, "the list of requirements must not be empty")
	}
	if len(v.Elems) > maxListEntries {
		return nil, bad(path, "more than %d requirements", maxListEntries)
	}
	out := make(Requirements, 0, len(v.Elems))
	for i, e := range v.Elems {
		r, err := parseRequirement(e, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRequirement(v strictjson.Value, path string) (Requirement, error) {
	if v.Kind != strictjson.Object {
		return nil, bad(path, "a requirement must be an object, not %v", v.Kind)
	}
	typ, err := stringField(v, path, "type")
	if err != nil {
		return nil, err
	}
	switch typ {
	case "insecureAcceptAnything":
		if err := keys(v, path, []string{"type"}); err != nil {
			return nil, err
		}
		return &InsecureAcceptAnything{}, nil
	case "reject":
		if err := keys(v, path, []string{"type"}); err != nil {
			return nil, err
		}
		return &Reject{}, nil
	case "signedBy":
		return parseSignedBy(v, path)
	case "sigstoreSigned":
		return parseSigstoreSigned(v, path)
	case "signedBaseLayer":
		return nil, bad(path, "signedBaseLayer is not implemented (containers/image rejects every image under it too)")
	}
	return nil, bad(path, "unknown requirement type %q", typ)
}

func parseSignedBy(v strictjson.Value, path string) (Requirement, error) {
	if err := keys(v, path, []string{"type", "keyType"}, "keyPath", "keyPaths", "keyData", "signedIdentity"); err != nil {
		return nil, err
	}
	kt, err := stringField(v, path, "keyType")
	if err != nil {
		return nil, err
	}
	switch kt {
	case "GPGKeys":
	case "signedByGPGKeys", "X509Certificates", "signedByX509CAs":
		return nil, bad(path+".keyType", "%q is not implemented (containers/image rejects every signature under it too); use GPGKeys", kt)
	default:
		return nil, bad(path+".keyType", "unknown keyType %q", kt)
	}
	src, err := oneSource(v, path, "keyPath", "keyPaths", "keyData", "")
	if err != nil {
		return nil, err
	}
	if src.isZero() {
		return nil, bad(path, "exactly one of keyPath, keyPaths and keyData must be given")
	}
	id, err := parseIdentity(v, path)
	if err != nil {
		return nil, err
	}
	return &SignedBy{Keys: src, Identity: id}, nil
}

func parseSigstoreSigned(v strictjson.Value, path string) (Requirement, error) {
	err := keys(v, path, []string{"type"}, "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
		"rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas", "signedIdentity")
	if err != nil {
		return nil, err
	}
	if _, ok := v.Get("pki"); ok {
		return nil, bad(path+".pki", "pki (X.509 without Fulcio) is not supported by Signet")
	}
	r := &SigstoreSigned{}
	if r.Keys, err = oneSource(v, path, "keyPath", "keyPaths", "keyData", "keyDatas"); err != nil {
		return nil, err
	}
	if f, ok := v.Get("fulcio"); ok {
		if !r.Keys.isZero() {
			return nil, bad(path, "exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio must be given")
		}
		if r.Fulcio, err = parseFulcio(f, path+".fulcio"); err != nil {
			return nil, err
		}
	} else if r.Keys.isZero() {
		return nil, bad(path, "exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio must be given")
	}
	if r.Rekor, err = oneSource(v, path, "rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"); err != nil {
		return nil, err
	}
	if r.Fulcio != nil && r.Rekor.isZero() {
		return nil, bad(path, "fulcio needs one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and rekorPublicKeyDatas")
	}
	if r.Identity, err = parseIdentity(v, path); err != nil {
		return nil, err
	}
	return r, nil
}

func parseFulcio(v strictjson.Value, path string) (*Fulcio, error) {
	if err := keys(v, path, []string{"oidcIssuer", "subjectEmail"}, "caPath", "caData"); err != nil {
		return nil, err
	}
	f := &Fulcio{}
	var err error
	if f.CA, err = oneSource(v, path, "caPath", "", "caData", ""); err != nil {
		return nil, err
	}
	if f.CA.isZero() {
		return nil, bad(path, "exactly one of caPath and caData must be given")
	}
	if f.OIDCIssuer, err = nonEmptyString(v, path, "oidcIssuer"); err != nil {
		return nil, err
	}
	if f.SubjectEmail, err = nonEmptyString(v, path, "subjectEmail"); err != nil {
		return nil, err
	}
	return f, nil
}

// oneSource reads at most one of the four keys (an empty name is not
// allowed in this position): a path, a list of paths, base64 data, a list
// of base64 data. None gives a zero Source.
func oneSource(v strictjson.Value, path, pathKey, pathsKey, dataKey, datasKey string) (Source, error) {
	var present []string
	for _, k := range []string{pathKey, pathsKey, dataKey, datasKey} {
		if _, ok := v.Get(k); ok && k != "" {
			present = append(present, k)
		}
	}
	switch len(present) {
	case 0:
		return Source{}, nil
	case 1:
	default:
		return Source{}, bad(path, "%s are exclusive", strings.Join(present, " and "))
	}
	k := present[0]
	fv, _ := v.Get(k)
	fpath := path + "." + k
	src := Source{Field: k}
	switch k {
	case pathKey:
		p, err := nonEmptyString(v, path, k)
		if err != nil {
			return Source{}, err
		}
		src.Paths = []string{p}
	case dataKey:
		d, err := base64Value(fv, fpath)
		if err != nil {
			return Source{}, err
		}
		src.Data = [][]byte{d}
	default: // a list
		if fv.Kind != strictjson.Array {
			return Source{}, bad(fpath, "must be a list, not %v", fv.Kind)
		}
		if len(fv.Elems) == 0 {
			return Source{}, bad(fpath, "must not be empty")
		}
		if len(fv.Elems) > maxListEntries {
			return Source{}, bad(fpath, "more than %d entries", maxListEntries)
		}
		for i, e := range fv.Elems {
			epath := fmt.Sprintf("%s[%d]", fpath, i)
			if k == pathsKey {
				if e.Kind != strictjson.String || e.String == "" {
					return Source{}, bad(epath, "must be a non-empty string")
				}
				src.Paths = append(src.Paths, e.String)
				continue
			}
			d, err := base64Value(e, epath)
			if err != nil {
				return Source{}, err
			}
			src.Data = append(src.Data, d)
		}
	}
	return src, nil
}

// base64Value decodes standard base64 as encoding/json decodes []byte
// (line breaks ignored); the result must not be empty.
func base64Value(v strictjson.Value, path string) ([]byte, error) {
	if v.Kind != strictjson.String {
		return nil, bad(path, "must be a base64 string, not %v", v.Kind)
	}
	d, err := base64.StdEncoding.DecodeString(v.String)
	if err != nil {
		return nil, bad(path, "not valid base64: %v", err)
	}
	if len(d) == 0 {
		return nil, bad(path, "must not be empty")
	}
	return d, nil
}

func stringField(v strictjson.Value, path, key string) (string, error) {
	f, ok := v.Get(key)
	if !ok {
		return "", bad(path, "missing key %q", key)
	}
	if f.Kind != strictjson.String {
		return "", bad(path+"."+key, "must be a string, not %v", f.Kind)
	}
	return f.String, nil
}

func nonEmptyString(v strictjson.Value, path, key string) (string, error) {
	s, err := stringField(v, path, key)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", bad(path+"."+key, "must not be empty")
	}
	return s, nil
}

// parseIdentity reads signedIdentity with gpg/policy's rules; absent, it
// is matchRepoDigestOrExact, as in containers/image.
func parseIdentity(v strictjson.Value, path string) (policy.Rule, error) {
	si, ok := v.Get("signedIdentity")
	if !ok {
		return policy.Default(), nil
	}
	r, err := policy.ParseValue(si)
	if err != nil {
		return nil, bad(path+".signedIdentity", "%v", err)
	}
	return r, nil
}

// validateDockerScope accepts what containers/image can look up for a
// docker image (its policy identity and namespaces): "", a host[:port], a
// fully expanded repository or namespace ("docker.io/library/busybox",
// not "busybox"), one with a tag or a digest, or "*.domain".
// containers/image accepts any string here; one it can never match is a
// typo that would silently leave the images it meant to the default, so
// Signet refuses it.
func validateDockerScope(scope string) error {
	if scope == "" {
		return nil
	}
	domain, err := regexp.Compile("^" + reference.DomainRegexp.String() + "$")
	if err != nil {
		return fmt.Errorf("compiling the domain pattern: %w", err)
	}
	if rest, ok := strings.CutPrefix(scope, "*."); ok {
		if !domain.MatchString(rest) || strings.Contains(rest, ":") || strings.HasPrefix(rest, "[") {
			return fmt.Errorf("wildcard scope %q must be *. followed by a domain without a port", scope)
		}
		return nil
	}
	if domain.MatchString(scope) {
		// "busybox" is a valid host name, but no reference has it as its
		// host: without a dot, a port or "localhost" it is a docker.io
		// path component.
		if ref, err := reference.ParseNormalizedNamed(scope + "/x"); err != nil || reference.Domain(ref) != scope {
			return fmt.Errorf("scope %q is not a host any image reference can name (no dot, port or localhost), nor a fully expanded repository or namespace (e.g. docker.io/library/busybox)", scope)
		}
		return nil
	}
	ref, err := reference.ParseNamed(scope)
	if err != nil {
		return fmt.Errorf("scope %q is not a host, a fully expanded repository or namespace (e.g. docker.io/library/busybox), or *.domain: %w", scope, err)
	}
	_, tagged := ref.(reference.Tagged)
	_, digested := ref.(reference.Digested)
	if tagged && digested {
		return fmt.Errorf("scope %q has both a tag and a digest, which no image reference has", scope)
	}
	return nil
}
