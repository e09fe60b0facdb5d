package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

// How the read caches of a replica follow a shared etcd store. A probe
// every changeFeedProbe proves etcd reachable and extends the caches for
// changeFeedLease; when etcd goes away the caches stop serving within the
// lease and every read goes to the store (and fails with 503 while etcd
// is down). Changes other replicas commit arrive through the watch and
// invalidate what they touch, typically within milliseconds.
const (
	changeFeedProbe = 500 * time.Millisecond
	changeFeedLease = 2 * time.Second
	changeFeedRetry = time.Second
)

// cacheControl is what the feed needs of the server.
type cacheControl interface {
	InvalidateSignatures(key signaturestore.ImageKey)
	InvalidateImage(key signaturestore.ImageKey)
	ExtendCaches(until time.Time)
	PurgeCaches()
}

var _ cacheControl = (*registry.Server)(nil)

// followChanges runs until ctx ends. Each round reads etcd's revision,
// drops everything cached (it may predate changes made while the feed
// was down), watches from that revision, and only then turns the caches
// on; any watch error ends the round, and the caches with it.
func followChanges(ctx context.Context, st *etcdstore.Store, srv cacheControl, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := followRound(ctx, st, srv); err != nil && ctx.Err() == nil {
			log.Warn("signature store change feed interrupted; read caches off until it resumes", "err", err)
		}
		srv.PurgeCaches()
		select {
		case <-ctx.Done():
		case <-time.After(changeFeedRetry):
		}
	}
}

func followRound(ctx context.Context, st *etcdstore.Store, srv cacheControl) error {
	probe := func() (int64, error) {
		pctx, cancel := context.WithTimeout(ctx, changeFeedProbe)
		defer cancel()
		return st.CurrentRevision(pctx)
	}
	rev, err := probe()
	if err != nil {
		return err
	}
	srv.PurgeCaches()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := st.Watch(wctx, rev)
	srv.ExtendCaches(time.Now().Add(changeFeedLease))
	tick := time.NewTicker(changeFeedProbe)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if ev.Err != nil {
				return ev.Err
			}
			for _, c := range ev.Changes {
				switch c.Kind {
				case etcdstore.SignaturesChanged:
					srv.InvalidateSignatures(c.Image)
				case etcdstore.DeleteJournalChanged:
					// Another replica is deleting the manifest (or has):
					// forget that it exists, its bytes and its list.
					srv.InvalidateImage(c.Image)
				}
			}
		case <-tick.C:
			// A watch can stay silent rather than fail while etcd is
			// unreachable; a successful probe is what keeps the caches on.
			if _, err := probe(); err == nil {
				srv.ExtendCaches(time.Now().Add(changeFeedLease))
			}
		}
	}
}
