package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
)

// maxReferrersBytes bounds one referrers index page.
const maxReferrersBytes = 4 << 20

// Blob fetches a blob of at most limit bytes and checks that the bytes
// received have digest d.
func (c *Client) Blob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("blob %s: only sha256 digests are supported", d)
	}
	_, body, err := c.do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil, limit)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s@%s: %w", repo, d, err)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != d.Encoded() {
		return nil, fmt.Errorf("blob %s@%s: registry served other bytes", repo, d)
	}
	return body, nil
}

// Referrers fetches the first page of the OCI 1.1 referrers index of
// subject in repo (GET /v2/<repo>/referrers/<digest>), filtered by
// artifactType when it is not empty. The body is returned unparsed.
func (c *Client) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]byte, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("subject digest %q: %w", subject, err)
	}
	path := "/v2/" + repo + "/referrers/" + subject.String()
	if artifactType != "" {
		path += "?" + url.Values{"artifactType": {artifactType}}.Encode()
	}
	_, body, err := c.do(ctx, http.MethodGet, path, nil, http.Header{"Accept": {"application/vnd.oci.image.index.v1+json"}}, maxReferrersBytes)
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s: %w", repo, subject, err)
	}
	return body, nil
}
