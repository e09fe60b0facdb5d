package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
)

// Display bounds: a manifest may hold thousands of entries; the page
// shows the first ones and says how many more there are.
const (
	maxRows = 500
	// maxConfigBytes bounds the config blob read for the platform.
	maxConfigBytes = 4 << 20
	// maxShown bounds one displayed string (an annotation value, an
	// identity); the rest is cut with an ellipsis.
	maxShown = 4096
)

// untrustedDescriptor is an OCI descriptor as a manifest holds it.
type untrustedDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
		OSVersion    string `json:"os.version"`
	} `json:"platform"`
}

// untrustedManifest is an OCI or Docker image manifest or index. It is
// parsed leniently, for display only: the registry validated it on push.
type untrustedManifest struct {
	SchemaVersion int                   `json:"schemaVersion"`
	MediaType     string                `json:"mediaType"`
	ArtifactType  string                `json:"artifactType"`
	Config        *untrustedDescriptor  `json:"config"`
	Layers        []untrustedDescriptor `json:"layers"`
	Manifests     []untrustedDescriptor `json:"manifests"`
	Subject       *untrustedDescriptor  `json:"subject"`
	Annotations   map[string]string     `json:"annotations"`
}

// untrustedConfig is the part of an image config the summary shows.
type untrustedConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	Created      string `json:"created"`
}

type keyValue struct{ Key, Value string }

// descView is one descriptor as the page shows it.
type descView struct {
	MediaType    string
	Digest       string
	Size         int64
	ArtifactType string
	Platform     string
	// URL links to the image page of a child manifest or subject in the
	// same repository; empty when the digest is not valid.
	URL string
}

type manifestView struct {
	MediaType    string
	ArtifactType string
	Size         int64
	Index        bool
	Platform     string
	Created      string
	Config       *descView
	Subject      *descView
	Layers       []descView
	LayersMore   int
	LayersTotal  int64
	Manifests    []descView
	ManifestMore int
	Annotations  []keyValue
	// Problem says what could not be read (the config blob, say).
	Problem string
}

func sortedPairs(m map[string]string) []keyValue {
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		out = append(out, keyValue{truncate(k, maxShown), truncate(v, maxShown)})
	}
	slices.SortFunc(out, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func platformString(os, arch, variant, osVersion string) string {
	p := os + "/" + arch
	if variant != "" {
		p += "/" + variant
	}
	if osVersion != "" {
		p += " (" + osVersion + ")"
	}
	if p == "/" {
		return ""
	}
	return p
}

// summarise builds the manifest summary; the config blob (for the
// platform of an image) is read through reg, bounded.
func summarise(ctx context.Context, reg Registry, repository string, body []byte) manifestView {
	v := manifestView{Size: int64(len(body))}
	var m untrustedManifest
	if err := json.Unmarshal(body, &m); err != nil {
		v.Problem = "the manifest is not valid JSON: " + truncate(err.Error(), 200)
		return v
	}
	v.MediaType = m.MediaType
	v.ArtifactType = m.ArtifactType
	v.Index = m.Manifests != nil && m.Config == nil
	v.Annotations = sortedPairs(m.Annotations)
	desc := func(d untrustedDescriptor) descView {
		dv := descView{MediaType: truncate(d.MediaType, 256), Digest: truncate(d.Digest, 256), Size: d.Size, ArtifactType: truncate(d.ArtifactType, 256)}
		if d.Platform != nil {
			dv.Platform = truncate(platformString(d.Platform.OS, d.Platform.Architecture, d.Platform.Variant, d.Platform.OSVersion), 256)
		}
		if dg, err := digest.Parse(d.Digest); err == nil {
			dv.URL = imageURL(repository, dg, "")
		}
		return dv
	}
	if m.Subject != nil {
		s := desc(*m.Subject)
		v.Subject = &s
	}
	for i, l := range m.Layers {
		v.LayersTotal += max(l.Size, 0)
		if i < maxRows {
			d := desc(l)
			d.URL = ""
			v.Layers = append(v.Layers, d)
		}
	}
	v.LayersMore = max(len(m.Layers)-maxRows, 0)
	for i, c := range m.Manifests {
		if i < maxRows {
			v.Manifests = append(v.Manifests, desc(c))
		}
	}
	v.ManifestMore = max(len(m.Manifests)-maxRows, 0)
	if m.Config == nil {
		return v
	}
	cfg := desc(*m.Config)
	cfg.URL = ""
	v.Config = &cfg
	if !isImageConfig(m.Config.MediaType) {
		return v
	}
	dg, err := digest.Parse(m.Config.Digest)
	if err != nil {
		v.Problem = "the config digest is not valid"
		return v
	}
	if m.Config.Size > maxConfigBytes {
		v.Problem = fmt.Sprintf("the config blob is over %d bytes; not read", maxConfigBytes)
		return v
	}
	raw, err := reg.Blob(ctx, repository, dg, maxConfigBytes)
	if err != nil {
		if errors.Is(err, cosign.ErrNotFound) {
			v.Problem = "the config blob is not in this repository"
		} else {
			v.Problem = "the config blob could not be read"
		}
		return v
	}
	var c untrustedConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		v.Problem = "the config blob is not valid JSON"
		return v
	}
	v.Platform = truncate(platformString(c.OS, c.Architecture, c.Variant, ""), 256)
	v.Created = truncate(c.Created, 64)
	return v
}

func isImageConfig(mediaType string) bool {
	switch mediaType {
	case "application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json":
		return true
	}
	return false
}
