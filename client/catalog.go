package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Bounds on listings: a page is at most pageSize names, a listing at most
// maxListed, so a hostile registry cannot make the client loop or buffer
// without end.
const (
	pageSize     = 1000
	maxPageBytes = 1 << 20
	maxListed    = 10000
)

// Catalog lists the registry's repositories (GET /v2/_catalog, paged).
func (c *Client) Catalog(ctx context.Context) ([]string, error) {
	var page struct {
		Repositories []string `json:"repositories"`
	}
	return c.pages(ctx, "/v2/_catalog", func(b []byte) ([]string, error) {
		page.Repositories = nil
		err := json.Unmarshal(b, &page)
		return page.Repositories, err
	})
}

// Tags lists repo's tags (GET /v2/<repo>/tags/list, paged).
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	var page struct {
		Tags []string `json:"tags"`
	}
	return c.pages(ctx, "/v2/"+repo+"/tags/list", func(b []byte) ([]string, error) {
		page.Tags = nil
		err := json.Unmarshal(b, &page)
		return page.Tags, err
	})
}

// pages follows distribution's n/last paging: a full page means there may
// be more after its last name.
func (c *Client) pages(ctx context.Context, path string, decode func([]byte) ([]string, error)) ([]string, error) {
	var all []string
	last := ""
	for {
		q := url.Values{"n": {fmt.Sprint(pageSize)}}
		if last != "" {
			q.Set("last", last)
		}
		_, body, err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, nil, maxPageBytes)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", path, err)
		}
		names, err := decode(body)
		if err != nil {
			return nil, fmt.Errorf("list %s: decode: %w", path, err)
		}
		if last != "" && len(names) > 0 && names[0] <= last {
			// The registry ignored "last": the rest would repeat.
			return all, nil
		}
		all = append(all, names...)
		if len(all) > maxListed {
			return nil, fmt.Errorf("list %s: more than %d entries", path, maxListed)
		}
		if len(names) < pageSize {
			return all, nil
		}
		last = names[len(names)-1]
	}
}
