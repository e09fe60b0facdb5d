package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ErrShortBackup: the download ended before Content-Length bytes.
var ErrShortBackup = errors.New("backup download incomplete")

// Backup streams the registry's signature database snapshot
// (GET /signet/v1/backup, admin only) into w and returns the bytes
// written. The server sends an exact Content-Length; a body that ends
// early or runs long is an error, so a cut connection never passes for a
// complete backup. The client's Timeout bounds the whole download.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := c.settleScheme(ctx); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+"://"+c.host+"/signet/v1/backup", nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return 0, fmt.Errorf("download backup: %w", newError(resp.StatusCode, b))
	}
	size, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return 0, fmt.Errorf("download backup: no valid Content-Length (%q)", resp.Header.Get("Content-Length"))
	}
	// One byte past size shows a body that runs long.
	n, err := io.Copy(w, io.LimitReader(resp.Body, size+1))
	if err != nil {
		return n, fmt.Errorf("download backup: %w after %d of %d bytes: %w", ErrShortBackup, n, size, err)
	}
	if n != size {
		return n, fmt.Errorf("download backup: %w: got %d bytes, Content-Length %d", ErrShortBackup, n, size)
	}
	return n, nil
}

// RegistryHost parses a --registry-url value (HOST[:PORT], or a URL) into
// the host a Client is bound to.
func RegistryHost(registryURL string) (string, error) { return hostOf(registryURL) }
