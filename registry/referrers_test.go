package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const emptyConfig = "{}"

// pushArtifact pushes an OCI artifact manifest into repo naming subject
// and returns its digest and the PUT response.
func (e *testEnv) pushArtifact(repo, subject, artifactType string, annotations map[string]string) (string, response) {
	e.t.Helper()
	cfgDigest := e.pushBlob(repo, []byte(emptyConfig))
	layer := e.pushBlob(repo, []byte("artifact payload "+artifactType+fmt.Sprint(annotations)))
	ann, _ := json.Marshal(annotations)
	at := ""
	if artifactType != "" {
		at = fmt.Sprintf(`"artifactType":%q,`, artifactType)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",%s`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":"application/octet-stream","digest":%q,"size":%d}],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":100},"annotations":%s}`,
		at, cfgDigest, layer, len("artifact payload "+artifactType+fmt.Sprint(annotations)), subject, ann)
	d := sha([]byte(m))
	r := e.do("PUT", "/v2/"+repo+"/manifests/"+d, strings.NewReader(m), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	return d, r
}

type indexBody struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Manifests     []struct {
		MediaType    string            `json:"mediaType"`
		Digest       string            `json:"digest"`
		Size         int64             `json:"size"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"manifests"`
}

func (e *testEnv) referrers(path string) (indexBody, response) {
	e.t.Helper()
	r := e.do("GET", path, nil, nil)
	var idx indexBody
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &idx); err != nil {
			e.t.Fatalf("referrers body %s: %v", r.body, err)
		}
	}
	return idx, r
}

func TestReferrersAPI(t *testing.T) {
	e := newTestEnv(t, nil) // page size 3
	subject := e.pushImage("ns/app", "v1")

	// Nothing refers to it yet: 200 with an empty index.
	idx, r := e.referrers("/v2/ns/app/referrers/" + subject)
	if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" ||
		idx.SchemaVersion != 2 || idx.MediaType != "application/vnd.oci.image.index.v1+json" || idx.Manifests == nil || len(idx.Manifests) != 0 {
		t.Fatalf("empty: %d %v %s", r.status, r.header, r.body)
	}
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("empty index must list [] not null: %s", r.body)
	}

	sig, put := e.pushArtifact("ns/app", subject, "application/vnd.dev.cosign.artifact.sig.v1+json", map[string]string{"k": "sig"})
	if put.status != 201 || put.header.Get("OCI-Subject") != subject {
		t.Fatalf("PUT with subject: %d OCI-Subject=%q %s", put.status, put.header.Get("OCI-Subject"), put.body)
	}
	sbom, _ := e.pushArtifact("ns/app", subject, "application/spdx+json", map[string]string{"k": "sbom"})
	// No artifactType: listed with the config media type.
	plain, _ := e.pushArtifact("ns/app", subject, "", nil)

	idx, r = e.referrers("/v2/ns/app/referrers/" + subject)
	if r.status != 200 || len(idx.Manifests) != 3 || r.header.Get("Link") != "" {
		t.Fatalf("three referrers: %d %s link=%q", r.status, r.body, r.header.Get("Link"))
	}
	byDigest := map[string]int{}
	for i, m := range idx.Manifests {
		byDigest[m.Digest] = i
	}
	if m := idx.Manifests[byDigest[sig]]; m.ArtifactType != "application/vnd.dev.cosign.artifact.sig.v1+json" || m.Annotations["k"] != "sig" ||
		m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Size <= 0 {
		t.Fatalf("sig descriptor %+v", m)
	}
	if m := idx.Manifests[byDigest[plain]]; m.ArtifactType != "application/vnd.oci.empty.v1+json" {
		t.Fatalf("artifactType fallback to config media type: %+v", m)
	}

	// Filtered.
	idx, r = e.referrers("/v2/ns/app/referrers/" + subject + "?artifactType=" + url.QueryEscape("application/spdx+json"))
	if r.status != 200 || r.header.Get("OCI-Filters-Applied") != "artifactType" || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom {
		t.Fatalf("filtered: %d %v %s", r.status, r.header, r.body)
	}

	// Paginated: page size 3, five referrers.
	for i := 0; i < 2; i++ {
		e.pushArtifact("ns/app", subject, "application/x-extra", map[string]string{"i": fmt.Sprint(i)})
	}
	seen := map[string]bool{}
	next := "/v2/ns/app/referrers/" + subject
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		idx, r = e.referrers(next)
		for _, m := range idx.Manifests {
			if seen[m.Digest] {
				t.Fatalf("%s listed twice", m.Digest)
			}
			seen[m.Digest] = true
		}
		next = ""
		if link := r.header.Get("Link"); link != "" {
			if !strings.HasSuffix(link, `>; rel="next"`) || !strings.HasPrefix(link, "</v2/ns/app/referrers/") {
				t.Fatalf("Link %q", link)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("pages held %d referrers, want 5", len(seen))
	}

	// Deleting a referrer drops it from the index.
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+sbom, nil, nil); r.status != 202 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	idx, _ = e.referrers("/v2/ns/app/referrers/" + subject + "?artifactType=" + url.QueryEscape("application/spdx+json"))
	if len(idx.Manifests) != 0 {
		t.Fatalf("deleted referrer still listed: %+v", idx.Manifests)
	}
	if pending, _ := e.store.PendingReferrers(t.Context()); len(pending) != 0 {
		t.Fatalf("pending referrers left: %+v", pending)
	}
}

func TestReferrersSubjectElsewhere(t *testing.T) {
	e := newTestEnv(t, nil)
	subject := e.pushImage("ns/app", "v1")
	// The subject lives in another repository.
	ref, put := e.pushArtifact("ns/notary", subject, "application/x-sig", nil)
	if put.status != 201 || put.header.Get("OCI-Subject") != subject {
		t.Fatalf("cross-repository subject: %d %v", put.status, put.header)
	}
	idx, _ := e.referrers("/v2/ns/notary/referrers/" + subject)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ref {
		t.Fatalf("cross-repository referrer: %+v", idx.Manifests)
	}
	// ns/app's own index is unaffected.
	if idx, _ := e.referrers("/v2/ns/app/referrers/" + subject); len(idx.Manifests) != 0 {
		t.Fatalf("listed in the subject's repository: %+v", idx.Manifests)
	}
	// The subject need not exist at all.
	missing := sha([]byte("never pushed"))
	ref2, put := e.pushArtifact("ns/app", missing, "application/x-sig", nil)
	if put.status != 201 || put.header.Get("OCI-Subject") != missing {
		t.Fatalf("absent subject: %d %v %s", put.status, put.header, put.body)
	}
	if idx, _ := e.referrers("/v2/ns/app/referrers/" + missing); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ref2 {
		t.Fatalf("absent subject's referrers: %+v", idx.Manifests)
	}
	// Deleting the subject leaves its referrers listed (OCI 1.1 allows
	// either; dangling referrers stay discoverable for cleanup).
	if r := e.do("DELETE", "/v2/ns/app/manifests/"+subject, nil, nil); r.status != 202 {
		t.Fatalf("delete subject: %d", r.status)
	}
	if idx, _ := e.referrers("/v2/ns/notary/referrers/" + subject); len(idx.Manifests) != 1 {
		t.Fatalf("after subject delete: %+v", idx.Manifests)
	}
	// Bad digests are 400.
	if _, r := e.referrers("/v2/ns/app/referrers/sha256:nothex"); r.status != http.StatusBadRequest || errorCode(t, r.body) != "DIGEST_INVALID" {
		t.Fatalf("bad digest: %d %s", r.status, r.body)
	}
	// A failed PUT (missing blobs) indexes nothing.
	bad := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1}}`,
		sha([]byte("no such blob")), subject)
	if r := e.do("PUT", "/v2/ns/app/manifests/"+sha([]byte(bad)), strings.NewReader(bad), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); r.status == 201 {
		t.Fatal("manifest with a missing config blob accepted")
	}
	if idx, _ := e.referrers("/v2/ns/app/referrers/" + subject); len(idx.Manifests) != 0 {
		t.Fatalf("failed PUT indexed: %+v", idx.Manifests)
	}
	if pending, _ := e.store.PendingReferrers(t.Context()); len(pending) != 0 {
		t.Fatalf("pending referrers left: %+v", pending)
	}
}
