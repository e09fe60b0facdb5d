package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

// migrateWorkers is how many images are copied at once: each image's
// signatures go in order, images in parallel, so etcd round trips overlap.
const migrateWorkers = 8

func newMigrateCmd(getenv func(string) string) *cobra.Command {
	var (
		configPath string
		from, to   string
		prefix     string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate --from bbolt:PATH --to etcd:ENDPOINTS",
		Short: "Copy the signature store from bbolt into etcd",
		Long: `Copy every signature (name, type, content, creation time, verification
status, in the order they were stored), the pending manifest deletes and the
referrers index from a bbolt database into etcd.

PATH is a signatures.db file (a stopped server's, or a backup taken with
"signet backup") or a data directory holding one. ENDPOINTS is a
comma-separated list of etcd client URLs. TLS, credentials and the key prefix
come from storage.etcd in --config (or SIGNET_STORAGE_ETCD_*); --prefix
overrides the prefix. The per-image limits are signatures.maxPerImage and
maxBytesPerImage, as the server will enforce them.

Running it again copies nothing twice: signatures already in etcd (same name,
type and content) are skipped, and their status is brought in line with the
source. A signature whose name or content is stored in etcd with different
bytes is a conflict: that image is reported and the rest go on, and the exit
status is non-zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, getenv)
			if err != nil {
				return err
			}
			src, err := parseMigrateSource(from)
			if err != nil {
				return err
			}
			endpoints, err := parseMigrateTarget(to)
			if err != nil {
				return err
			}
			cfg.Storage.Etcd.Endpoints = endpoints
			if cmd.Flags().Changed("prefix") {
				cfg.Storage.Etcd.Prefix = prefix
			}
			cfg.Storage.Backend = config.BackendEtcd
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			reader, err := boltstore.OpenReader(src, timeout)
			if errors.Is(err, boltstore.ErrLocked) {
				return fmt.Errorf("%s is in use by a running signet server; stop it, or migrate a backup (signet backup FILE): %w", src, err)
			}
			if err != nil {
				return err
			}
			defer reader.Close()
			opts, err := etcdOptions(cfg.Storage.Etcd)
			if err != nil {
				return err
			}
			opts.Limits = signaturestore.Limits{MaxPerImage: cfg.Signatures.MaxPerImage, MaxBytesPerImage: cfg.Signatures.MaxBytesPerImage}
			dst, err := etcdstore.Open(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer dst.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "migrating %s to etcd %s (prefix %s)\n", src, strings.Join(endpoints, ","), dst.Prefix())
			m := &migration{src: reader, dst: dst, progress: newMigrateProgress(cmd.ErrOrStderr())}
			runErr := m.run(cmd.Context())
			m.progress.finish(&m.counts)
			c := &m.counts
			fmt.Fprintf(cmd.OutOrStdout(), "migrated %d images: %d signatures copied, %d already present, %d statuses updated, %d pending manifest deletes, %d referrers; %d images failed\n",
				c.images.Load(), c.copied.Load(), c.present.Load(), c.statuses.Load(), c.deletes.Load(), c.referrers.Load(), c.failed.Load())
			if runErr != nil {
				return runErr
			}
			if n := c.failed.Load(); n > 0 {
				return fmt.Errorf("%d images failed to migrate (see above)", n)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML configuration file (storage.etcd settings, signature limits)")
	fl.StringVar(&from, "from", "", "source: bbolt:PATH (a signatures.db file or a data directory)")
	fl.StringVar(&to, "to", "", "destination: etcd:ENDPOINT[,ENDPOINT...]")
	fl.StringVar(&prefix, "prefix", "", "etcd key prefix (overrides storage.etcd.prefix)")
	fl.DurationVar(&timeout, "timeout", time.Second, "how long to wait for another process to release the source file")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// parseMigrateSource reads bbolt:PATH; a directory means its signatures.db.
func parseMigrateSource(s string) (string, error) {
	path, ok := strings.CutPrefix(s, "bbolt:")
	if !ok || path == "" {
		return "", fmt.Errorf("--from %q: want bbolt:PATH", s)
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		path = filepath.Join(path, "signatures.db")
	}
	return path, nil
}

// parseMigrateTarget reads etcd:URL[,URL...].
func parseMigrateTarget(s string) ([]string, error) {
	list, ok := strings.CutPrefix(s, "etcd:")
	if !ok || list == "" {
		return nil, fmt.Errorf("--to %q: want etcd:ENDPOINT[,ENDPOINT...]", s)
	}
	var eps []string
	for _, ep := range strings.Split(list, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("--to %q: no endpoints", s)
	}
	return eps, nil
}

type migrateCounts struct {
	images, copied, present, statuses, deletes, referrers, failed atomic.Int64
}

type migration struct {
	src      *boltstore.Reader
	dst      *etcdstore.Store
	progress *migrateProgress
	counts   migrateCounts
}

type migrateImage struct {
	key  signaturestore.ImageKey
	sigs []signaturestore.Signature
}

func (m *migration) run(ctx context.Context) error {
	work := make(chan migrateImage)
	var wg sync.WaitGroup
	for range migrateWorkers {
		wg.Go(func() {
			for im := range work {
				if err := m.image(ctx, im); err != nil {
					m.counts.failed.Add(1)
					m.progress.fail(im.key, err)
				}
				m.counts.images.Add(1)
				m.progress.update(&m.counts)
			}
		})
	}
	// The walk copies each image's signatures out of the read
	// transaction, so workers never touch bbolt memory.
	walkErr := m.src.Walk(ctx, func(key signaturestore.ImageKey, sigs []signaturestore.Signature) error {
		select {
		case work <- migrateImage{key, sigs}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if walkErr != nil {
		return fmt.Errorf("read the source: %w", walkErr)
	}

	deletes, err := m.src.PendingImageDeletes(ctx)
	if err != nil {
		return err
	}
	for _, key := range deletes {
		// Beginning an intent twice is one intent.
		if err := m.dst.BeginImageDelete(ctx, key); err != nil {
			return fmt.Errorf("copy pending manifest delete %s: %w", key, err)
		}
		m.counts.deletes.Add(1)
	}
	err = m.src.WalkReferrers(ctx, func(repo string, subject digest.Digest, desc signaturestore.Descriptor, pending bool) error {
		// BeginReferrer keeps an already confirmed record confirmed, so
		// a second run changes nothing.
		if err := m.dst.BeginReferrer(ctx, repo, subject, desc); err != nil {
			return err
		}
		if !pending {
			if err := m.dst.EndReferrer(ctx, signaturestore.ReferrerKey{Repository: repo, Digest: desc.Digest}, true); err != nil {
				return err
			}
		}
		m.counts.referrers.Add(1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy referrers: %w", err)
	}
	return nil
}

// image copies one image's signatures in their order. What etcd already
// holds is compared, not overwritten.
func (m *migration) image(ctx context.Context, im migrateImage) error {
	have, err := m.dst.List(ctx, im.key)
	if err != nil {
		return err
	}
	byName := make(map[string]signaturestore.Signature, len(have))
	for _, s := range have {
		byName[s.Name] = s
	}
	for _, sig := range im.sigs {
		cur, ok := byName[sig.Name]
		if !ok {
			err := m.dst.Put(ctx, im.key, sig)
			if errors.Is(err, signaturestore.ErrExists) {
				return fmt.Errorf("conflict: etcd holds the content of %q under another name", sig.Name)
			}
			if err != nil {
				return err
			}
			m.counts.copied.Add(1)
			continue
		}
		if cur.Type != sig.Type || !bytes.Equal(cur.Content, sig.Content) {
			return fmt.Errorf("conflict: etcd holds a different signature named %q", sig.Name)
		}
		m.counts.present.Add(1)
		if !sameStatus(cur.Status, sig.Status) {
			if err := m.dst.SetStatus(ctx, im.key, sig.Name, sig.Status); err != nil {
				return err
			}
			m.counts.statuses.Add(1)
		}
	}
	return nil
}

func sameStatus(a, b *signaturestore.Status) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// migrateProgress reports as it goes: one line redrawn in place on a
// terminal, otherwise a line every second.
type migrateProgress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	last     time.Time
}

func newMigrateProgress(w io.Writer) *migrateProgress {
	f, ok := w.(*os.File)
	return &migrateProgress{w: w, terminal: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *migrateProgress) line(c *migrateCounts) string {
	return fmt.Sprintf("%d images: %d copied, %d already present, %d statuses updated, %d failed",
		c.images.Load(), c.copied.Load(), c.present.Load(), c.statuses.Load(), c.failed.Load())
}

func (p *migrateProgress) update(c *migrateCounts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < time.Second && !p.terminal {
		return
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(c))
	} else {
		fmt.Fprintln(p.w, p.line(c))
	}
	p.last = time.Now()
}

func (p *migrateProgress) fail(key signaturestore.ImageKey, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "FAILED %s: %v\n", key, err)
}

func (p *migrateProgress) finish(c *migrateCounts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, p.line(c))
}
