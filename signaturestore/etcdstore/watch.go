package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
)

// ChangeKind says what changed about an image.
type ChangeKind int

// The kinds of change Watch reports.
const (
	// SignaturesChanged: a signature of the image was stored or
	// deleted, or its status changed.
	SignaturesChanged ChangeKind = iota + 1
	// ReferrersChanged: the referrers of the image (as a subject)
	// changed.
	ReferrersChanged
	// DeleteJournalChanged: a manifest delete of the image began or was
	// settled.
	DeleteJournalChanged
)

// Change is one image whose data changed.
type Change struct {
	Kind  ChangeKind
	Image signaturestore.ImageKey
}

// WatchEvent is what Watch sends: the changes committed up to Revision
// (each image once per kind), or an error that ends the stream.
type WatchEvent struct {
	Revision int64
	Changes  []Change
	// Err, when set, is the last event. ErrCompacted means etcd no
	// longer has the history to catch up from: a consumer must drop
	// everything it derived and read afresh.
	Err error
}

// ErrCompacted: the requested watch start is older than etcd's compaction.
var ErrCompacted = errors.New("etcd history compacted past the watch start")

// CurrentRevision is etcd's revision now, for a consumer that reads state
// and then watches from that point (read, then Watch(ctx, rev)).
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.run(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.k.schema(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read etcd revision: %w", err)
	}
	return rev, nil
}

// Watch reports every change under the store's prefix committed after
// afterRevision, until ctx ends or an error occurs (then one event with
// Err, and the channel closes). It is the hook for invalidating caches
// kept by several replicas: a replica that lists an image with ListAt and
// caches the result at that revision drops it when a later event names
// the image. The watch requires an etcd leader, so a member cut off from
// the quorum ends the stream instead of going silent.
func (s *Store) Watch(ctx context.Context, afterRevision int64) <-chan WatchEvent {
	out := make(chan WatchEvent, 16)
	send := func(ev WatchEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	s.mu.RLock()
	closed := s.closed
	var wch clientv3.WatchChan
	if !closed {
		wch = s.cli.Watch(clientv3.WithRequireLeader(ctx), s.k.prefix, clientv3.WithPrefix(), clientv3.WithRev(afterRevision+1))
	}
	s.mu.RUnlock()
	go func() {
		defer close(out)
		if closed {
			send(WatchEvent{Err: signaturestore.ErrClosed})
			return
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(WatchEvent{Err: fmt.Errorf("%w: compacted at revision %d", ErrCompacted, resp.CompactRevision)})
				return
			}
			if err := resp.Err(); err != nil {
				send(WatchEvent{Err: fmt.Errorf("watch: %w", classify(ctx, err))})
				return
			}
			if resp.Canceled {
				send(WatchEvent{Err: fmt.Errorf("watch: %w: cancelled by etcd", signaturestore.ErrUnavailable)})
				return
			}
			ev := WatchEvent{Revision: resp.Header.Revision}
			seen := map[Change]bool{}
			for _, e := range resp.Events {
				c, ok := s.changeOf(string(e.Kv.Key))
				if ok && !seen[c] {
					seen[c] = true
					ev.Changes = append(ev.Changes, c)
				}
			}
			if !send(ev) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			send(WatchEvent{Err: err})
		}
	}()
	return out
}

// changeOf maps a changed key to the image it belongs to. The referrer
// trees keyed by the referrer (ref/r/, ref/p/) change only together with
// ref/s/, which names the subject, so they are not reported on their own.
func (s *Store) changeOf(key string) (Change, bool) {
	k, ok := strings.CutPrefix(key, s.k.prefix)
	if !ok {
		return Change{}, false
	}
	var kind ChangeKind
	var rest string
	for _, t := range []struct {
		tree string
		kind ChangeKind
	}{
		{treeSig, SignaturesChanged}, {treeName, SignaturesChanged}, {treeHash, SignaturesChanged},
		{treeStat, SignaturesChanged}, {treeJournal, DeleteJournalChanged}, {treeRefBySub, ReferrersChanged},
	} {
		if r, ok := strings.CutPrefix(k, t.tree); ok {
			kind, rest = t.kind, r
			break
		}
	}
	if kind == 0 {
		return Change{}, false
	}
	repo, dgst, _, err := parseImagePart(rest)
	if err != nil {
		return Change{}, false
	}
	return Change{Kind: kind, Image: signaturestore.ImageKey{Repository: repo, Digest: dgst}}, true
}
