// Package client talks to a Signet registry over HTTP: it resolves manifest
// digests, reads and writes signatures through the extension API, and
// calls the Signet API (records, status, deletes, digest lookup).
//
// It transports bytes and never decides whether a signature is trusted;
// that is the verifier's job (gpg and its payload and policy packages).
// Every response body is read through a size limit.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
)

// Limits on what the client reads: containers/image's own caps.
const (
	maxManifestBytes = 4 << 20
	maxListBytes     = 4 << 20
	maxErrorBytes    = 64 << 10
	// maxRecordsBytes allows the record list's timestamps and status on
	// top of a full 4 MiB signature list.
	maxRecordsBytes = 8 << 20
)

// manifestAccept lists every manifest type a registry may serve.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.docker.distribution.manifest.v1+prettyjws, " +
	"application/vnd.docker.distribution.manifest.v1+json"

// Options configure a Client.
type Options struct {
	// Insecure allows plain HTTP and skips TLS verification.
	Insecure bool
	// CAFile adds a PEM bundle of trusted CAs to the system trust store
	// (which honours SSL_CERT_FILE and SSL_CERT_DIR).
	CAFile string
	// Username and Password are sent with HTTP Basic auth when set; the
	// password may be an API token.
	Username, Password string
	// Token is sent as a Bearer token when set (instead of Basic).
	Token string
	// Timeout bounds each request; zero means one minute.
	Timeout time.Duration
}

// Client is bound to one registry host.
type Client struct {
	host   string
	opts   Options
	http   *http.Client
	scheme string // "https" or "http", settled by the first request
}

// New returns a client for host (HOST[:PORT]).
func New(host string, opts Options) (*Client, error) {
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return nil, fmt.Errorf("invalid registry host %q", host)
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if opts.Insecure {
		tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // --insecure asks for exactly this
	}
	return &Client{host: host, opts: opts, http: &http.Client{Transport: tr, Timeout: opts.Timeout}}, nil
}

// Host is the registry host the client talks to.
func (c *Client) Host() string { return c.host }

// Error is a non-success answer from the registry.
type Error struct {
	Status int
	Code   string // first error code of the envelope, if any
	Body   string
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("registry answered %d %s: %s", e.Status, e.Code, e.Body)
	}
	return fmt.Sprintf("registry answered %d: %s", e.Status, e.Body)
}

// IsStatus reports whether err is a registry answer with that status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// settleScheme picks https, or http when Insecure and https fails.
func (c *Client) settleScheme(ctx context.Context) error {
	if c.scheme != "" {
		return nil
	}
	for _, scheme := range []string{"https", "http"} {
		if scheme == "http" && !c.opts.Insecure {
			break
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.host+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if scheme == "https" && c.opts.Insecure {
				continue
			}
			return fmt.Errorf("ping %s: %w", c.host, withTrustHint(err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		resp.Body.Close()
		c.scheme = scheme
		return nil
	}
	return fmt.Errorf("ping %s: https failed and --insecure was not given", c.host)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header, limit int64) (*http.Response, []byte, error) {
	if err := c.settleScheme(ctx); err != nil {
		return nil, nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+"://"+c.host+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return resp, nil, newError(resp.StatusCode, b)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("%s %s: response larger than %d bytes", method, path, limit)
	}
	return resp, b, nil
}

// authorize adds the configured credentials to req.
func (c *Client) authorize(req *http.Request) {
	switch {
	case c.opts.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	case c.opts.Username != "" || c.opts.Password != "":
		req.SetBasicAuth(c.opts.Username, c.opts.Password)
	}
}

func newError(status int, body []byte) *Error {
	e := &Error{Status: status, Body: strings.TrimSpace(string(body))}
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		e.Code = env.Errors[0].Code
	}
	return e
}

// withTrustHint explains the one TLS failure users meet most: a registry
// certificate signed by a CA this machine does not trust.
func withTrustHint(err error) error {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("%w\nhint: the registry's certificate is not trusted by this machine. Pass --ca-file CA.crt, "+
			"or trust the CA system-wide (cp CA.crt /usr/local/share/ca-certificates/ && update-ca-certificates), "+
			"or point SSL_CERT_FILE at it; --insecure skips verification", err)
	}
	return err
}

// Manifest fetches repo's manifest by tag or digest. The digest is
// computed from the bytes received, never taken from a header; when ref
// is a digest the bytes must match it.
func (c *Client) Manifest(ctx context.Context, repo, ref string) (digest.Digest, []byte, error) {
	hdr := http.Header{"Accept": {manifestAccept}}
	_, body, err := c.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+url.PathEscape(ref), nil, hdr, maxManifestBytes)
	if err != nil {
		return "", nil, fmt.Errorf("fetch manifest %s:%s: %w", repo, ref, err)
	}
	sum := sha256.Sum256(body)
	got := digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
	if strings.HasPrefix(ref, "sha256:") && got.String() != ref {
		return "", nil, fmt.Errorf("manifest %s@%s: registry served bytes with digest %s", repo, ref, got)
	}
	return got, body, nil
}

func sigPath(repo string, dgst digest.Digest) string {
	return "/extensions/v2/" + repo + "/signatures/" + dgst.String()
}

func recordsPath(repo string, dgst digest.Digest) string {
	return "/signet/v1/repositories/" + repo + "/signatures/" + dgst.String()
}

// Signatures lists the image's signatures through the extension API.
func (c *Client) Signatures(ctx context.Context, repo string, dgst digest.Digest) ([]extensions.Signature, error) {
	_, body, err := c.do(ctx, http.MethodGet, sigPath(repo, dgst), nil, nil, maxListBytes)
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s@%s: %w", repo, dgst, err)
	}
	var list extensions.SignatureList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode signature list: %w", err)
	}
	return list.Signatures, nil
}

// PutSignature stores one signature; the registry answers 201 only once it
// is durable.
func (c *Client) PutSignature(ctx context.Context, repo string, dgst digest.Digest, sig extensions.Signature) error {
	body, err := json.Marshal(sig)
	if err != nil {
		return fmt.Errorf("encode signature: %w", err)
	}
	resp, _, err := c.do(ctx, http.MethodPut, sigPath(repo, dgst), body, http.Header{"Content-Type": {"application/json"}}, 0)
	if err != nil {
		return fmt.Errorf("store signature %s: %w", sig.Name, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("store signature %s: registry answered %d, not 201", sig.Name, resp.StatusCode)
	}
	return nil
}

// Records lists the image's signatures with creation times and status.
func (c *Client) Records(ctx context.Context, repo string, dgst digest.Digest) (extensions.RecordList, error) {
	var list extensions.RecordList
	_, body, err := c.do(ctx, http.MethodGet, recordsPath(repo, dgst), nil, nil, maxRecordsBytes)
	if err != nil {
		return list, fmt.Errorf("list signature records of %s@%s: %w", repo, dgst, err)
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return list, fmt.Errorf("decode signature records: %w", err)
	}
	return list, nil
}

// SaveStatus records a verification outcome for one signature.
func (c *Client) SaveStatus(ctx context.Context, repo string, dgst digest.Digest, name string, u extensions.StatusUpdate) error {
	body, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	_, _, err = c.do(ctx, http.MethodPut, recordsPath(repo, dgst)+"/"+url.PathEscape(name)+"/status", body,
		http.Header{"Content-Type": {"application/json"}}, maxErrorBytes)
	if err != nil {
		return fmt.Errorf("save status of %s: %w", name, err)
	}
	return nil
}

// DeleteAll removes every signature of the image and reports how many.
func (c *Client) DeleteAll(ctx context.Context, repo string, dgst digest.Digest) (int, error) {
	_, body, err := c.do(ctx, http.MethodDelete, recordsPath(repo, dgst), nil, nil, maxErrorBytes)
	if err != nil {
		return 0, fmt.Errorf("remove signatures of %s@%s: %w", repo, dgst, err)
	}
	var out struct {
		Deleted int `json:"deleted"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("decode delete answer: %w", err)
	}
	return out.Deleted, nil
}

// RepositoriesWithDigest asks which repositories hold the manifest.
func (c *Client) RepositoriesWithDigest(ctx context.Context, dgst digest.Digest) ([]string, error) {
	_, body, err := c.do(ctx, http.MethodGet, "/signet/v1/digests/"+dgst.String(), nil, nil, maxErrorBytes)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", dgst, err)
	}
	var out struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode digest lookup: %w", err)
	}
	return out.Repositories, nil
}
