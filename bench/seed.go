package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

var httpClient = &http.Client{Timeout: 2 * time.Minute}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func do(method, u string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return resp, data, err
}

// pushBlob uploads b monolithically to the registry at base.
func pushBlob(base, repo string, b []byte) (string, error) {
	resp, body, err := do("POST", base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %d %s", resp.StatusCode, body)
	}
	baseURL, _ := url.Parse(base)
	loc, err := baseURL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	q := loc.Query()
	q.Set("digest", digestOf(b))
	loc.RawQuery = q.Encode()
	resp, body, err = do("PUT", loc.String(), b, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %d %s", resp.StatusCode, body)
	}
	return digestOf(b), nil
}

// image is content pushed identically to every server of a comparison.
type image struct {
	repo     string
	config   []byte
	layer    []byte
	manifest []byte
	digest   string
}

func newImage(repo string, layerSize int) *image {
	img := &image{repo: repo, layer: randomBytes(layerSize)}
	img.config = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Labels":{"nonce":%q}},"rootfs":{"type":"layers","diff_ids":[%q]}}`,
		hex.EncodeToString(randomBytes(8)), digestOf(img.layer)))
	img.manifest = manifestFor(img.config, img.layer, "")
	img.digest = digestOf(img.manifest)
	return img
}

// manifestFor builds an OCI manifest; a distinct variant gives a distinct
// digest over the same blobs.
func manifestFor(config, layer []byte, variant string) []byte {
	ann := ""
	if variant != "" {
		ann = fmt.Sprintf(`,"annotations":{"org.example.bench":%q}`, variant)
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]%s}`,
		ociManifest, digestOf(config), len(config), digestOf(layer), len(layer), ann))
}

func (img *image) push(base string) error {
	for _, b := range [][]byte{img.layer, img.config} {
		if _, err := pushBlob(base, img.repo, b); err != nil {
			return err
		}
	}
	return putManifest(base, img.repo, "latest", img.manifest)
}

func putManifest(base, repo, ref string, m []byte) error {
	resp, body, err := do("PUT", base+"/v2/"+repo+"/manifests/"+ref, m, map[string]string{"Content-Type": ociManifest})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push manifest %s:%s: %d %s", repo, ref, resp.StatusCode, body)
	}
	return nil
}

// variants pushes n more manifests over img's blobs, by digest, and
// returns their digests.
func (img *image) variants(base string, n int) ([]string, error) {
	out := make([]string, 0, n)
	for i := range n {
		m := manifestFor(img.config, img.layer, fmt.Sprintf("v%d", i))
		d := digestOf(m)
		if err := putManifest(base, img.repo, d, m); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// putSignature stores a signature of size bytes of random content.
func putSignature(base, repo, dgst string, size int) error {
	name := dgst + "@" + hex.EncodeToString(randomBytes(16))
	body := fmt.Sprintf(`{"schemaVersion":2,"name":%q,"type":"atomic","content":%q}`, name, base64.StdEncoding.EncodeToString(randomBytes(size)))
	resp, data, err := do("PUT", base+"/extensions/v2/"+repo+"/signatures/"+dgst, []byte(body), map[string]string{"Content-Type": "application/json"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put signature: %d %s", resp.StatusCode, data)
	}
	return nil
}
