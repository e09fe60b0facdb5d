package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/cosign"
	"github.com/signet-registry/signet/gpg/payload"
	"github.com/signet-registry/signet/registry/errcode"
	"github.com/signet-registry/signet/signaturestore"
)

// Page sizes and input bounds.
const (
	reposPerPage = 50
	tagsPerPage  = 100
	maxPage      = 1_000_000
	// maxQuery is the longest search: a repository name's length.
	maxQuery = 255
	// maxNameLen is distribution's limit on a repository name.
	maxNameLen = 255
	// maxReferrerIndex bounds the referrers index read for a badge.
	maxReferrerIndex = 4 << 20
)

var (
	nameRE = regexp.MustCompile(`^` + reference.NameRegexp.String() + `$`)
	tagRE  = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	// cosignTagRE matches the tags cosign writes beside an image:
	// sha256-<hex> (referrers fallback), .sig, .att and .sbom. They are
	// signatures, not images, and are shown on the image page instead.
	cosignTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$`)
)

func validName(name string) bool {
	return name != "" && len(name) <= maxNameLen && nameRE.MatchString(name)
}

// pageParam reads ?page=, clamped to [1, maxPage]; anything unreadable is 1.
func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return min(n, maxPage)
}

// pager is the pagination of a list.
type pager struct {
	Page, Pages, From, To, Total int
	First, Prev, Next, Last      string
}

func paginate(base url.Values, path string, page, perPage, total int) pager {
	pages := max((total+perPage-1)/perPage, 1)
	p := pager{Page: page, Pages: pages, Total: total}
	if total > 0 && page <= pages {
		p.From = (page-1)*perPage + 1
		p.To = min(page*perPage, total)
	}
	link := func(n int) string {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		if n > 1 {
			q.Set("page", strconv.Itoa(n))
		}
		if len(q) == 0 {
			return path
		}
		return path + "?" + q.Encode()
	}
	if page > 1 {
		p.First, p.Prev = link(1), link(min(page-1, pages))
	}
	if page < pages {
		p.Next, p.Last = link(page+1), link(pages)
	}
	return p
}

type repositoriesView struct {
	chrome
	Query string
	Repos []repoRow
	pager
}

type repoRow struct{ Name, URL string }

// repositories serves the list: the repositories the user may pull whose
// name contains the search text, 50 a page.
func (c *Console) repositories(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if len(q) > maxQuery {
		c.fail(w, r, s, errcode.NameInvalid.WithMessage("search text longer than %d characters", maxQuery))
		return
	}
	page := pageParam(r)
	keep := func(name string) bool {
		return strings.Contains(name, q) && c.canPull(s, name)
	}
	names, total, err := c.reg.Repositories(r.Context(), keep, (page-1)*reposPerPage, reposPerPage)
	if err != nil {
		c.internal(w, r, s, "list repositories", err)
		return
	}
	v := repositoriesView{chrome: c.pages.chrome("Repositories", s), Query: q}
	for _, n := range names {
		v.Repos = append(v.Repos, repoRow{Name: n, URL: repositoryURL(n)})
	}
	base := url.Values{}
	if q != "" {
		base.Set("q", q)
	}
	v.pager = paginate(base, Prefix, page, reposPerPage, total)
	c.pages.render(w, c.pages.repositories, http.StatusOK, v)
}

func (c *Console) canPull(s *session, repository string) bool {
	return s.open || c.users.CanPull(s.user, repository)
}

// authorizeRepository validates the name and decides access, in that
// order and before anything is looked up, so a refusal looks the same
// whether or not the repository exists.
func (c *Console) authorizeRepository(w http.ResponseWriter, r *http.Request, s *session, name string) bool {
	if !validName(name) {
		c.fail(w, r, s, errcode.NameInvalid.WithMessage("not a valid repository name"))
		return false
	}
	if !c.canPull(s, name) {
		c.fail(w, r, s, errcode.Denied.WithMessage("you may not pull from this repository"))
		return false
	}
	return true
}

type repositoryView struct {
	chrome
	Name string
	Tags []tagRow
	// Hidden counts cosign signature tags not listed as images.
	Hidden int
	pager
}

type tagRow struct {
	Tag      string
	Digest   string
	URL      string
	Badge    badge
	GPG      int
	Cosign   int
	Problem  string
	Resolved bool
}

func (c *Console) repository(w http.ResponseWriter, r *http.Request, s *session, name string) {
	if !c.authorizeRepository(w, r, s, name) {
		return
	}
	ctx := r.Context()
	all, err := c.reg.Tags(ctx, name)
	if errors.Is(err, cosign.ErrNotFound) {
		c.fail(w, r, s, errcode.NameUnknown.WithDetail(nil))
		return
	}
	if err != nil {
		c.internal(w, r, s, "list tags", err)
		return
	}
	tags := make([]string, 0, len(all))
	legacy := map[string]bool{}
	hidden := 0
	for _, t := range all {
		if cosignTagRE.MatchString(t) {
			hidden++
			legacy[t] = true
			continue
		}
		tags = append(tags, t)
	}
	page := pageParam(r)
	v := repositoryView{
		chrome: c.pages.chrome(name, s, crumb{"Repositories", Prefix}),
		Name:   name,
		Hidden: hidden,
		pager:  paginate(nil, repositoryURL(name), page, tagsPerPage, len(tags)),
	}
	if v.From > 0 {
		v.Tags = c.tagRows(ctx, name, tags[v.From-1:v.To], legacy)
	}
	c.pages.render(w, c.pages.repository, http.StatusOK, v)
}

// rowWorkers bounds the tag rows of a page resolved at once. Each row is
// a few reads of the registry, which in proxy mode are requests to the
// upstream, one after another: a page of 100 tags would otherwise wait
// for about 300 round trips in a row.
const rowWorkers = 8

// tagRows resolves the rows of a page, rowWorkers at a time, in order.
func (c *Console) tagRows(ctx context.Context, repository string, tags []string, legacy map[string]bool) []tagRow {
	rows := make([]tagRow, len(tags))
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(rowWorkers, len(tags)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(tags); i = int(next.Add(1) - 1) {
				rows[i] = c.tagRow(ctx, repository, tags[i], legacy)
			}
		}()
	}
	wg.Wait()
	return rows
}

// tagRow resolves a tag and summarises its signatures: the GPG ones from
// the store, cosign bundles from the referrers index and legacy cosign
// signatures from the layers of the sha256-<hex>.sig tag.
func (c *Console) tagRow(ctx context.Context, repository, tag string, legacy map[string]bool) tagRow {
	row := tagRow{Tag: tag}
	dg, err := c.reg.TagDigest(ctx, repository, tag)
	if err != nil {
		row.Problem = "could not be resolved"
		return row
	}
	row.Resolved, row.Digest, row.URL = true, dg.String(), imageURL(repository, dg, tag)
	sigs, err := c.sigs.List(ctx, signaturestore.ImageKey{Repository: repository, Digest: dg})
	if err != nil {
		row.Problem = "signatures could not be read"
		return row
	}
	row.GPG = len(sigs)
	row.Cosign = c.countCosign(ctx, repository, dg, legacy)
	row.Badge = imageBadge(sigs, row.Cosign)
	return row
}

// countCosign counts an image's cosign signatures without reading them:
// bundle referrers in the index plus the layers of the legacy .sig tag.
func (c *Console) countCosign(ctx context.Context, repository string, dg digest.Digest, legacy map[string]bool) int {
	n := 0
	if idx, err := c.reg.Referrers(ctx, repository, dg, cosign.MediaTypeBundle); err == nil && len(idx) <= maxReferrerIndex {
		var index untrustedManifest
		if json.Unmarshal(idx, &index) == nil {
			for _, d := range index.Manifests {
				pt := d.Annotations["dev.sigstore.bundle.predicateType"]
				if d.ArtifactType == cosign.MediaTypeBundle && (pt == "" || pt == cosign.SignPredicateType) {
					n++
				}
			}
		}
	}
	sigTag := dg.Algorithm().String() + "-" + dg.Encoded() + ".sig"
	if legacy == nil || legacy[sigTag] {
		if _, body, err := c.reg.Manifest(ctx, repository, sigTag); err == nil {
			var m untrustedManifest
			if json.Unmarshal(body, &m) == nil {
				for _, l := range m.Layers {
					if l.MediaType == cosign.MediaTypeSimpleSigning {
						n++
					}
				}
			}
		}
	}
	return n
}

type imageView struct {
	chrome
	Repository string
	RepoURL    string
	Digest     string
	Tag        string
	Badge      badge
	Manifest   manifestView
	GPG        []gpgView
	Cosign     []cosignView
	CosignNote string
	Commands   []command
}

type conditionView struct {
	Type, Status, Reason, Message string
	Probe, Transition             time.Time
}

type gpgView struct {
	Name    string
	Type    string
	Created time.Time
	Badge   badge
	// KeyID is the verified key id when a Trusted status records one,
	// otherwise what the signature packet claims (KeyVerified false).
	KeyID       string
	KeyVerified bool
	Fingerprint string
	// Claimed* are read from the payload without verifying it.
	ClaimedIdentity string
	ClaimedCreator  string
	ClaimedTime     string
	ClaimProblem    string
	// VerifiedBy and VerifiedAt come from the status record.
	VerifiedBy    string
	VerifiedAt    time.Time
	ImageIdentity string
	SignedClaims  []keyValue
	Conditions    []conditionView
}

type cosignView struct {
	Format        string
	Kind          string
	Location      string
	PredicateType string
	Created       string
	Identity      string
	Issuer        string
	KeySigned     bool
	KeyHint       string
	Logged        bool
	Problem       string
}

// parseImagePath splits "<name>@<digest>".
func parseImagePath(rest string) (string, digest.Digest, bool) {
	name, raw, ok := strings.Cut(rest, "@")
	if !ok {
		return name, "", false
	}
	dg, err := digest.Parse(raw)
	if err != nil || dg.Algorithm() != digest.SHA256 {
		return name, "", false
	}
	return name, dg, true
}

func (c *Console) image(w http.ResponseWriter, r *http.Request, s *session, rest string) {
	name, dg, okDigest := parseImagePath(rest)
	if !c.authorizeRepository(w, r, s, name) {
		return
	}
	if !okDigest {
		c.fail(w, r, s, errcode.DigestInvalid.WithMessage("not a valid sha256 digest"))
		return
	}
	ctx := r.Context()
	got, body, err := c.reg.Manifest(ctx, name, dg.String())
	if errors.Is(err, cosign.ErrNotFound) {
		c.fail(w, r, s, errcode.ManifestUnknown.WithDetail(nil))
		return
	}
	if err != nil {
		c.internal(w, r, s, "read manifest", err)
		return
	}
	if got != dg {
		c.internal(w, r, s, "read manifest", fmt.Errorf("manifest of %s@%s has digest %s", name, dg, got))
		return
	}
	tag := r.URL.Query().Get("tag")
	if !tagRE.MatchString(tag) {
		// Only a context for the title and the commands: an invalid
		// one is dropped, never echoed.
		tag = ""
	}
	sigs, err := c.sigs.List(ctx, signaturestore.ImageKey{Repository: name, Digest: dg})
	if err != nil {
		c.internal(w, r, s, "read signatures", err)
		return
	}
	title := name + "@" + shortDigest(dg)
	if tag != "" {
		title = name + ":" + tag
	}
	v := imageView{
		chrome:     c.pages.chrome(title, s, crumb{"Repositories", Prefix}, crumb{name, repositoryURL(name)}),
		Repository: name,
		RepoURL:    repositoryURL(name),
		Digest:     dg.String(),
		Tag:        tag,
		Manifest:   summarise(ctx, c.reg, name, body),
		Commands:   commands(registryHost(r), r.TLS != nil, name, dg, tag),
	}
	for _, sig := range sigs {
		v.GPG = append(v.GPG, c.gpgSignature(sig))
	}
	found, err := cosign.Discover(ctx, c.reg, name, dg, cosign.DiscoverOptions{Attestations: true})
	switch {
	case err != nil:
		c.log.WarnContext(ctx, "console: cosign discovery", "image", name+"@"+dg.String(), "err", err)
		v.CosignNote = "Cosign signatures could not be read from this repository."
	default:
		for i := range found.Candidates {
			v.Cosign = append(v.Cosign, cosignRow(cosign.UntrustedClaims(&found.Candidates[i])))
		}
		for _, p := range found.Problems {
			v.Cosign = append(v.Cosign, cosignView{Location: truncate(p.Location, maxShown), Problem: truncate(p.Err.Error(), maxShown)})
		}
		if found.Skipped > 0 {
			v.CosignNote = fmt.Sprintf("%d more cosign entries were not read (at most %d are).", found.Skipped, cosign.MaxSignatures)
		}
	}
	cosignSigs := 0
	for _, cv := range v.Cosign {
		if cv.Kind == "signature" {
			cosignSigs++
		}
	}
	v.Badge = imageBadge(sigs, cosignSigs)
	c.pages.render(w, c.pages.image, http.StatusOK, v)
}

func (c *Console) gpgSignature(sig signaturestore.Signature) gpgView {
	v := gpgView{Name: sig.Name, Type: sig.Type, Created: sig.Created, Badge: signatureBadge(sig.Status)}
	if st := sig.Status; st != nil {
		if st.Trusted() && st.IssuedBy != nil && st.IssuedBy.CommonName != "" {
			v.KeyID, v.KeyVerified = truncate(st.IssuedBy.CommonName, maxShown), true
		}
		if st.Trusted() && st.IssuedTo != nil {
			v.Fingerprint = truncate(st.IssuedTo.PublicKeyID, maxShown)
		}
		v.ImageIdentity = truncate(st.ImageIdentity, maxShown)
		v.SignedClaims = sortedPairs(st.SignedClaims)
		for _, cond := range st.Conditions {
			v.Conditions = append(v.Conditions, conditionView{
				Type: truncate(cond.Type, 256), Status: truncate(cond.Status, 256),
				Reason: truncate(cond.Reason, maxShown), Message: truncate(cond.Message, maxShown),
				Probe: cond.LastProbeTime, Transition: cond.LastTransitionTime,
			})
		}
		if tc, ok := trustedCondition(st); ok {
			v.VerifiedBy, v.VerifiedAt = truncate(verifierOf(tc), 256), tc.LastProbeTime
		}
	}
	if sig.Type != signaturestore.TypeAtomic {
		return v
	}
	// Read without verifying: a claim, labelled as such on the page.
	contents, keyID, err := c.gpg.UntrustedSignatureContents(sig.Content)
	if err != nil {
		v.ClaimProblem = "the signature is not a readable OpenPGP message"
		return v
	}
	if v.KeyID == "" {
		v.KeyID = keyID
	}
	p, err := payload.ParseUntrusted(contents)
	if err != nil {
		v.ClaimProblem = "the signed payload is not a valid simple-signing payload"
		return v
	}
	v.ClaimedIdentity = truncate(p.DockerReference, maxShown)
	if p.Creator != nil {
		v.ClaimedCreator = truncate(*p.Creator, maxShown)
	}
	if p.Timestamp != nil {
		v.ClaimedTime = p.Timestamp.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return v
}

func cosignRow(cl cosign.Claims) cosignView {
	return cosignView{
		Format: cl.Format.String(), Kind: cl.Kind.String(), Location: truncate(cl.Location, maxShown),
		PredicateType: truncate(cl.PredicateType, maxShown), Created: truncate(cl.Created, 64),
		Identity: truncate(cl.UntrustedIdentity, maxShown), Issuer: truncate(cl.UntrustedIssuer, maxShown),
		KeySigned: cl.KeySigned, KeyHint: truncate(cl.KeyHint, 256), Logged: cl.Logged, Problem: truncate(cl.Problem, maxShown),
	}
}
