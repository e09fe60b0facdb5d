package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/signet-registry/signet/registry/errcode"
)

// failingRegistry fails the lists with err.
type failingRegistry struct {
	*fakeRegistry
	err error
}

func (f failingRegistry) Repositories(context.Context, func(string) bool, int, int) ([]string, int, error) {
	return nil, 0, f.err
}

func (f failingRegistry) Tags(context.Context, string) ([]string, error) { return nil, f.err }

// TestBackendUnavailablePage: a registry failure that carries an
// unavailable or rate-limit API error (the upstream registry in proxy
// mode) is shown with its status and its message; any other failure is a
// 500 that names no cause.
func TestBackendUnavailablePage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		want       string
	}{
		{"refused", fmt.Errorf("list: %w", errcode.Unavailable.WithMessage("the upstream registry refused Signet's service credentials")),
			http.StatusServiceUnavailable, "refused Signet&#39;s service credentials"},
		{"rate limited", fmt.Errorf("list: %w", errcode.TooManyRequests.WithDetail(nil)), http.StatusTooManyRequests, "too many requests"},
		{"bad gateway", errcode.BadGateway.WithDetail(nil), http.StatusBadGateway, "the upstream registry is unavailable"},
		{"denied is not passed on", fmt.Errorf("x: %w", errcode.Denied.WithMessage("secret cause")), http.StatusInternalServerError, "the server log has the details"},
		{"plain", errors.New("disk at /secret/path failed"), http.StatusInternalServerError, "the server log has the details"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Registry: failingRegistry{newFakeRegistry(), tc.err}, Signatures: &fakeSignatures{}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(c)
			defer srv.Close()
			for _, path := range []string{"/ui/", "/ui/repositories/team/app"} {
				resp, err := srv.Client().Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				body := string(raw)
				if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.want) {
					t.Fatalf("%s: %d, want %d with %q:\n%s", path, resp.StatusCode, tc.wantStatus, tc.want, body)
				}
				if strings.Contains(body, "secret") {
					t.Fatalf("%s: the cause is shown:\n%s", path, body)
				}
			}
		})
	}
}
