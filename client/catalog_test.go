package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCatalogAndTagsPaging(t *testing.T) {
	var repos []string
	for i := range 2500 {
		repos = append(repos, fmt.Sprintf("ns/app%05d", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
		case "/v2/_catalog":
			last := r.URL.Query().Get("last")
			var page []string
			for _, name := range repos {
				if name > last && len(page) < pageSize {
					page = append(page, name)
				}
			}
			fmt.Fprintf(w, `{"repositories":["%s"]}`, strings.Join(page, `","`))
		case "/v2/ns/app/tags/list":
			fmt.Fprint(w, `{"name":"ns/app","tags":["v1","v2"]}`)
		case "/v2/loop/tags/list":
			// A broken registry that always answers the same full page.
			fmt.Fprintf(w, `{"tags":["%s"]}`, strings.Repeat(`x","`, pageSize-1)+"x")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := New(strings.TrimPrefix(srv.URL, "http://"), Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Catalog(context.Background())
	if err != nil || len(got) != len(repos) || got[2499] != repos[2499] {
		t.Fatalf("catalog: %d entries, %v", len(got), err)
	}
	tags, err := c.Tags(context.Background(), "ns/app")
	if err != nil || strings.Join(tags, ",") != "v1,v2" {
		t.Fatalf("tags %v %v", tags, err)
	}
	if tags, err := c.Tags(context.Background(), "loop"); err != nil || len(tags) != pageSize {
		t.Fatalf("a page that does not advance must end the listing: %d %v", len(tags), err)
	}
	if _, err := c.Tags(context.Background(), "missing"); !IsStatus(err, 404) {
		t.Fatalf("missing repository: %v", err)
	}
}
