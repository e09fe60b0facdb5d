package lookaside

import (
	"fmt"
	"net/url"

	"github.com/distribution/reference"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/types"
)

// BaseURL returns the lookaside base for image, "<lookaside>/<repository
// path>", exactly as containers/image computes it when it reads: the
// registries.d files in dir (empty: the system and user defaults,
// /etc/containers/registries.d and ~/.config/containers/registries.d) are
// merged, the most specific "docker:" scope that sets lookaside (or its
// old name sigstore) wins (image with tag or digest, then the repository,
// its parent namespaces, the host, and *.domain wildcards), then
// "default-docker". The -staging keys are for writers and are ignored
// here. Without any match containers/image falls back to a local file://
// directory, and so does this.
//
// Calling containers/image itself, rather than re-implementing the scope
// rules, keeps the import reading exactly where skopeo and podman would.
func BaseURL(dir string, image reference.Named) (*url.URL, error) {
	ref, err := docker.ParseReference("//" + image.String())
	if err != nil {
		return nil, fmt.Errorf("lookaside for %s: %w", image, err)
	}
	u, err := docker.SignatureStorageBaseURL(&types.SystemContext{RegistriesDirPath: dir}, ref, false)
	if err != nil {
		return nil, fmt.Errorf("lookaside for %s: registries.d: %w", image, err)
	}
	return u, nil
}
