package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Snapshotter takes a consistent copy of the signature database while the
// server runs. bbolt lets one process open the file, so an online backup
// has to come from the server itself.
type Snapshotter interface {
	// Snapshot returns the copy and its exact size. The reader must be
	// closed.
	Snapshot(ctx context.Context) (io.ReadCloser, int64, error)
}

// BackupContentType is the media type of GET /signet/v1/backup: a bbolt
// database file, restored by copying it to DATA_DIR/signatures.db.
const BackupContentType = "application/vnd.signet.bbolt.v1"

// serveBackup serves GET /signet/v1/backup (admin): the signature database
// as one bbolt file. Content-Length is exact, so a client can tell a
// complete copy from a cut one. Blobs and manifests are plain files under
// DATA_DIR/registry and are backed up as files.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request) {
	snap, size, err := s.snapshots.Snapshot(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "backup snapshot", "err", err)
		writeAPIError(w, err)
		return
	}
	defer snap.Close()
	h := w.Header()
	h.Set("Content-Type", BackupContentType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="signatures-%s.db"`, time.Now().UTC().Format("20060102T150405Z")))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	n, err := io.Copy(w, snap)
	if err != nil || n != size {
		// The status is gone; the short body tells the client.
		s.log.WarnContext(r.Context(), "backup download cut off", "sent", n, "size", size, "err", err)
		return
	}
	s.log.InfoContext(r.Context(), "backup sent", "bytes", n)
}
