package boltstore

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// ImagesAfter lists up to limit images holding signatures that sort after
// after (by repository, then digest; the zero key starts at the first). It
// seeks, so each call is one short read transaction however far into the
// store it starts: a caller pages through a large store without holding a
// reader open, which would delay writes that grow the file. The proxy
// mode sweep reads the store this way.
func (s *Store) ImagesAfter(ctx context.Context, after signaturestore.ImageKey, limit int) ([]signaturestore.ImageKey, error) {
	var out []signaturestore.ImageKey
	err := s.view(func(tx *bbolt.Tx) error {
		t, err := openTree(tx)
		if err != nil {
			return err
		}
		// Image keys sort by repository, then digest (layout.go).
		c := t.images.Cursor()
		k, _ := c.First()
		if after.Repository != "" {
			start := imageKeyBytes(after)
			if k, _ = c.Seek(start); k != nil && bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			key, err := parseImageKey(k)
			if err != nil {
				return err
			}
			out = append(out, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}
