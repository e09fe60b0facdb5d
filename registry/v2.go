package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/extensions"
	"github.com/signet-registry/signet/signaturestore"
)

// newApp builds distribution's registry application over the configured
// storage driver (filesystem in DataDir/registry, or S3). It deliberately avoids distribution's registry.NewRegistry,
// which forces an OpenTelemetry exporter that costs about a fifth of the
// CPU. NewApp reports configuration problems by panicking; they are turned
// into errors here so that serve can fail cleanly.
func newApp(ctx context.Context, blobs blobStorage, secret string) (app *handlers.App, err error) {
	cfg := &configuration.Configuration{}
	cfg.Storage = blobs.configuration()
	cfg.HTTP.Secret = secret
	cfg.Catalog.MaxEntries = 1000
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start embedded registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// loadSecret returns the HTTP secret distribution signs upload state with,
// creating it on first start. Keeping it across restarts lets a client
// resume an upload after Signet restarts.
func loadSecret(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "http-secret")
	b, err := os.ReadFile(p)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", fmt.Errorf("http secret %s is shorter than 32 characters", p)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read http secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate http secret: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(p, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write http secret: %w", err)
	}
	return s, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// manifestIndex answers existence questions over the same storage the
// embedded app writes.
type manifestIndex struct {
	ns distribution.Namespace
}

func newManifestIndex(ctx context.Context, blobs blobStorage) (*manifestIndex, error) {
	// The same driver configuration as the app: existence answers come
	// from where pushes went, through the driver, never from os calls.
	drv, err := blobs.create(ctx)
	if err != nil {
		return nil, fmt.Errorf("open manifest index: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("open manifest index: %w", err)
	}
	return &manifestIndex{ns: ns}, nil
}

var _ extensions.ManifestChecker = (*manifestIndex)(nil)

// ManifestExists reports whether repository holds the manifest dgst.
func (m *manifestIndex) ManifestExists(ctx context.Context, repository string, dgst digest.Digest) (bool, error) {
	named, err := reference.WithName(repository)
	if err != nil {
		return false, nil
	}
	repo, err := m.ns.Repository(ctx, named)
	if err != nil {
		return false, fmt.Errorf("open repository %s: %w", repository, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return false, fmt.Errorf("open manifests of %s: %w", repository, err)
	}
	ok, err := ms.Exists(ctx, dgst)
	if err != nil {
		return false, fmt.Errorf("stat manifest %s@%s: %w", repository, dgst, err)
	}
	return ok, nil
}

// maxDigestLookup bounds how many repositories a digest lookup returns.
const maxDigestLookup = 100

// errStopWalk ends a repository walk early.
var errStopWalk = errors.New("stop walk")

// RepositoriesWithManifest lists repositories holding dgst, walking the
// catalog. The walk visits every repository, so it is for occasional CLI
// lookups (a bare digest given to verify-image-signature), not hot paths.
func (m *manifestIndex) RepositoriesWithManifest(ctx context.Context, dgst digest.Digest) ([]string, error) {
	enum, ok := m.ns.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("registry storage cannot enumerate repositories")
	}
	var found []string
	err := enum.Enumerate(ctx, func(repo string) error {
		ok, err := m.ManifestExists(ctx, repo, dgst)
		if err != nil {
			return err
		}
		if ok {
			found = append(found, repo)
			if len(found) >= maxDigestLookup {
				return errStopWalk
			}
		}
		return ctx.Err()
	})
	if err != nil && !errors.Is(err, errStopWalk) && !isPathNotFound(err) {
		return nil, fmt.Errorf("walk repositories: %w", err)
	}
	return found, nil
}

// isPathNotFound: an empty registry has no repositories directory yet.
func isPathNotFound(err error) bool {
	var pnf storagedriver.PathNotFoundError
	return errors.As(err, &pnf)
}

// manifestDeleteTarget extracts <name> and <digest> from
// DELETE /v2/<name>/manifests/<digest>. Deletes by tag only untag, so
// they do not remove signatures.
func manifestDeleteTarget(r *http.Request) (signaturestore.ImageKey, bool) {
	if r.Method != http.MethodDelete || !strings.HasPrefix(r.URL.Path, "/v2/") {
		return signaturestore.ImageKey{}, false
	}
	rest := r.URL.Path[len("/v2/"):]
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return signaturestore.ImageKey{}, false
	}
	dgst, err := extensions.ParseDigest(rest[i+len("/manifests/"):])
	if err != nil {
		return signaturestore.ImageKey{}, false
	}
	return signaturestore.ImageKey{Repository: rest[:i], Digest: dgst}, true
}

// withManifestDeletes wraps the registry app so that deleting a manifest
// deletes its signatures. The intent is journaled before the manifest is
// removed and settled after, so a crash in between is repaired at the
// next start (recoverDeletes); the image lock keeps a concurrent signature
// PUT from landing between the two.
func (s *Server) withManifestDeletes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := manifestDeleteTarget(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		unlock := s.locks.Lock(extensions.LockKey(key.Repository, key.Digest))
		defer unlock()
		if err := s.journal.BeginImageDelete(r.Context(), key); err != nil {
			s.log.ErrorContext(r.Context(), "journal manifest delete", "image", key.String(), "err", err)
			writeAPIError(w, err)
			return
		}
		// The response is held back until the signatures are gone, so a
		// client that saw 202 can never read them afterwards. The caches
		// are dropped before the delete and again after it, so a lookup
		// that raced with it cannot cache what it saw.
		s.InvalidateImage(key)
		buf := &bufferedResponse{header: http.Header{}}
		next.ServeHTTP(buf, r)
		s.InvalidateImage(key)
		deleted := buf.status == http.StatusAccepted
		// Settling must finish even if the client has gone away.
		ctx := context.WithoutCancel(r.Context())
		if deleted {
			// distribution unlinks the manifest without syncing the
			// directories. Were the signatures removed (a synced commit)
			// first, a power cut could bring the manifest back without
			// them, and the 202 would be a lie. The intent stays
			// journaled if this fails, and the next start settles it.
			if err := syncFS(s.registryRoot); err != nil {
				s.log.ErrorContext(ctx, "sync manifest delete; settled at next start", "image", key.String(), "err", err)
				writeAPIError(w, fmt.Errorf("sync registry storage: %w", err))
				return
			}
		}
		if err := s.journal.EndImageDelete(ctx, key, deleted); err != nil {
			s.log.ErrorContext(ctx, "settle manifest delete; repaired at next start", "image", key.String(), "err", err)
		}
		if deleted {
			if err := s.referrers.RemoveReferrer(ctx, signaturestore.ReferrerKey(key)); err != nil {
				s.log.ErrorContext(ctx, "drop deleted manifest from the referrers index", "image", key.String(), "err", err)
			}
			s.audit.Record(r, "manifest.delete", key)
		}
		buf.copyTo(w)
	})
}

// bufferedResponse holds a small response (a manifest DELETE answer) until
// the caller decides to send it.
type bufferedResponse struct {
	header http.Header
	status int
	body   []byte
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	// DELETE answers are an empty body or one error envelope; cap what
	// is held just in case.
	if len(b.body)+len(p) > 1<<20 {
		return 0, errors.New("response too large to buffer")
	}
	b.body = append(b.body, p...)
	return len(p), nil
}

func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body)
}

// recoverDeletes settles manifest deletes interrupted by a crash: if the
// manifest is gone its signatures go too, otherwise the intent is dropped.
// With replicas sharing the store (shared), an intent whose manifest still
// exists may be another replica's delete in progress: dropping it would
// lose the signatures' removal should that replica die right after
// deleting the manifest, so it is left pending (it is harmless, and the
// next delete of that manifest settles it). In proxy mode the embedded
// registry holds no manifests, so nothing could be told apart: proxy
// mode journals nothing, and intents left from embedded mode stay.
func (s *Server) recoverDeletes(ctx context.Context, shared bool) error {
	if s.upstream != nil {
		return nil
	}
	pending, err := s.journal.PendingImageDeletes(ctx)
	if err != nil {
		return fmt.Errorf("list pending manifest deletes: %w", err)
	}
	for _, key := range pending {
		exists, err := s.manifests.ManifestExists(ctx, key.Repository, key.Digest)
		if err != nil {
			return fmt.Errorf("recover manifest delete %s: %w", key, err)
		}
		if exists && shared {
			s.log.Info("pending manifest delete left for the replica that began it", "image", key.String())
			continue
		}
		if err := s.journal.EndImageDelete(ctx, key, !exists); err != nil {
			return fmt.Errorf("recover manifest delete %s: %w", key, err)
		}
		s.log.Info("recovered interrupted manifest delete", "image", key.String(), "signatures_removed", !exists)
	}
	return nil
}
