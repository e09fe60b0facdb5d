package client

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Image is a parsed image argument of the CLI.
type Image struct {
	// Host is HOST[:PORT] of the registry.
	Host string
	// Repository is empty for a bare digest until it is resolved.
	Repository string
	Tag        string
	Digest     digest.Digest
}

// Ref returns HOST/REPO:TAG or HOST/REPO@DIGEST (digest preferred).
func (i Image) Ref() string {
	base := i.Host + "/" + i.Repository
	if i.Digest != "" {
		return base + "@" + i.Digest.String()
	}
	if i.Tag != "" {
		return base + ":" + i.Tag
	}
	return base
}

// Reference is the tag or digest to fetch the manifest by.
func (i Image) Reference() string {
	if i.Digest != "" {
		return i.Digest.String()
	}
	if i.Tag != "" {
		return i.Tag
	}
	return "latest"
}

// ParseImage parses HOST[:PORT]/REPO[:TAG|@DIGEST], or a bare sha256
// digest. registryURL, when set, overrides the host (as oc's
// --registry-url does) and is required for a bare digest.
func ParseImage(s, registryURL string) (Image, error) {
	override := ""
	if registryURL != "" {
		host, err := hostOf(registryURL)
		if err != nil {
			return Image{}, err
		}
		override = host
	}
	if strings.HasPrefix(s, "sha256:") {
		d, err := digest.Parse(s)
		if err != nil {
			return Image{}, fmt.Errorf("invalid digest %q: %w", s, err)
		}
		if override == "" {
			return Image{}, errors.New("a bare digest needs --registry-url")
		}
		return Image{Host: override, Digest: d}, nil
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Image{}, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	img := Image{Host: reference.Domain(named), Repository: reference.Path(named)}
	// Without an explicit host the reference would silently mean
	// docker.io; Signet commands talk to a Signet registry, so refuse.
	first, _, hasSlash := strings.Cut(s, "/")
	hasHost := hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost")
	if !hasHost && override == "" {
		return Image{}, fmt.Errorf("image %q names no registry host; write HOST[:PORT]/REPOSITORY or pass --registry-url", s)
	}
	if override != "" {
		img.Host = override
	}
	if t, ok := named.(reference.Tagged); ok {
		img.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		img.Digest = d.Digest()
	}
	return img, nil
}

func hostOf(registryURL string) (string, error) {
	if !strings.Contains(registryURL, "://") {
		registryURL = "https://" + registryURL
	}
	u, err := url.Parse(registryURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("invalid --registry-url %q", registryURL)
	}
	return u.Host, nil
}
