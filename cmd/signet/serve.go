package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/internal/certreload"
	"github.com/signet-registry/signet/internal/gctune"
	"github.com/signet-registry/signet/internal/logbuf"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

type serveFlags struct {
	configPath     string
	addr           string
	dataDir        string
	printConfig    bool
	tlsCert        string
	tlsKey         string
	usersFile      string
	allowAnonymous bool
	upstream       string
}

func newServeCmd(getenv func(string) string) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry and signature store",
		Long: `Run the registry (/v2/), the signature extension API (/extensions/v2/),
health checks and metrics. Without --config, built-in defaults apply:
127.0.0.1:5000 and ./signet-data. SIGNET_SECTION_FIELD environment variables
override the file, and flags override both. With --upstream, Signet fronts
an existing registry (proxy mode) and keeps only signatures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(f.configPath, getenv)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") {
				cfg.Server.Addr = f.addr
			}
			if cmd.Flags().Changed("data-dir") {
				cfg.Storage.DataDir = f.dataDir
			}
			if cmd.Flags().Changed("tls-cert") {
				cfg.Server.TLSCertFile = f.tlsCert
			}
			if cmd.Flags().Changed("tls-key") {
				cfg.Server.TLSKeyFile = f.tlsKey
			}
			if cmd.Flags().Changed("users-file") {
				cfg.Auth.UsersFile = f.usersFile
			}
			if cmd.Flags().Changed("upstream") {
				cfg.Registry.Upstream.URL = f.upstream
			}
			if f.allowAnonymous {
				cfg.Auth.AllowAnonymous = true
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			if f.printConfig {
				out, err := cfg.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configPath, "config", "", "YAML configuration file (optional)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:5000", "listen address HOST:PORT (overrides server.addr)")
	fl.StringVar(&f.dataDir, "data-dir", "./signet-data", "data directory (overrides storage.dataDir)")
	fl.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration and exit")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM); enables HTTPS (overrides server.tlsCertFile)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM) (overrides server.tlsKeyFile)")
	fl.StringVar(&f.usersFile, "users-file", "", "users, tokens and grants (overrides auth.usersFile)")
	fl.BoolVar(&f.allowAnonymous, "insecure-allow-anonymous", false, "serve without access control on a non-loopback address")
	fl.StringVar(&f.upstream, "upstream", "", "proxy mode: front this registry (http[s]://host[:port]) instead of the embedded one (overrides registry.upstream.url)")
	return cmd
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// textWriter is w when the log format is text, else nil.
func textWriter(cfg config.Log, w io.Writer) io.Writer {
	if cfg.Format == "json" {
		return nil
	}
	return w
}

// infoText is w when the log format is text and log lets INFO through.
func infoText(cfg config.Log, log *slog.Logger, w io.Writer) io.Writer {
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return nil
	}
	return textWriter(cfg, w)
}

// storeOpenTimeout is how long serve waits for the signature database's
// file lock. A second server on the same data directory must fail fast
// with a clear message rather than hang on the lock.
const storeOpenTimeout = time.Second

// serve runs until ctx is cancelled (SIGINT/SIGTERM), then drains in-flight
// requests and closes the store.
func serve(ctx context.Context, cfg config.Config, logw io.Writer) error {
	// Every writer of the log (slog, the batched access log, audit
	// lines, logrus) goes through one Group: writes are serialized, so
	// a batch over PIPE_BUF cannot interleave with a record on a pipe,
	// and concurrent records (the audit lines of one group commit) share
	// a write(2).
	logw = logbuf.NewGroup(logw)
	log := newLogger(cfg.Log, logw)
	// distribution logs through logrus' standard logger; keep its
	// per-request chatter out unless debugging.
	logrus.SetOutput(logw)
	if cfg.Log.Level == "debug" {
		logrus.SetLevel(logrus.InfoLevel)
	} else {
		logrus.SetLevel(logrus.WarnLevel)
	}

	// The collector's heap goal between a floor and a headroom bound
	// (server.heapFloorMiB, heapHeadroomMiB), unless the operator set GOGC.
	floor, room := cfg.Server.HeapFloorMiB, cfg.Server.HeapHeadroomMiB
	if (floor > 0 || room > 0) && os.Getenv("GOGC") == "" {
		t := gctune.Start(uint64(floor)<<20, uint64(room)<<20)
		defer t.Stop()
	}

	if err := os.MkdirAll(cfg.Storage.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var store registry.Store
	metrics, err := registry.NewMetrics(reg, func(ctx context.Context) (int64, error) { return store.Count(ctx) })
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	// storage.backend: bbolt (DataDir/signatures.db) or etcd (storeopen.go).
	store, err = openSignatureStore(ctx, cfg, metrics, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close signature store", "err", err)
		}
	}()

	authorizer, err := setUpAuth(ctx, cfg, log)
	if err != nil {
		return err
	}
	// The access log is batched into one write per 32 KiB or 200 ms, as
	// nginx's access_log buffer= does: a write per request was a tenth of
	// a signature GET. Everything else (errors, audit) is written at once.
	accessw := logbuf.New(logw, 32<<10, 200*time.Millisecond)
	defer accessw.Close()
	srv, err := registry.New(ctx, registry.Options{
		Config:       cfg,
		Store:        store,
		Metrics:      metrics,
		Gatherer:     reg,
		Logger:       log,
		AccessLogger: newLogger(cfg.Log, accessw),
		// In text format the access log skips slog (same bytes, less CPU),
		// and so do audit records when INFO is logged.
		AccessLogText: textWriter(cfg.Log, accessw),
		LogText:       infoText(cfg.Log, log, logw),
		Authorizer:    authorizer,
		// The web console logs in the same users (nil without a users file).
		ConsoleUsers: consoleUsers(authorizer),
		// Other replicas write to an etcd store: caches follow its feed.
		SharedStore: cfg.Storage.Backend == config.BackendEtcd,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if es, ok := store.(*etcdstore.Store); ok {
		feedCtx, stopFeed := context.WithCancel(ctx)
		defer stopFeed()
		go followChanges(feedCtx, es, srv, log)
	}

	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" {
		certs, err := certreload.New(cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile, 5*time.Second)
		if err != nil {
			_ = ln.Close()
			return err
		}
		hs.TLSConfig = certs.ServerConfig()
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if u := cfg.Registry.Upstream; u.URL != "" {
		log.Info("proxy mode: /v2/ goes to the upstream registry", "upstream", u.URL, "auth", u.Auth)
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "data_dir", cfg.Storage.DataDir)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout)
	srv.SetReady(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// Drain deadline passed: close what is left.
		_ = hs.Close()
		log.Warn("shutdown deadline passed; closed remaining connections", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// checkAnonymous enforces the safe default: without a users file Signet
// serves anonymously only on a loopback address, unless the operator
// explicitly allows it.
func checkAnonymous(cfg config.Config, log *slog.Logger) error {
	if cfg.Auth.UsersFile != "" {
		return nil
	}
	if isLoopback(cfg.Server.Addr) {
		log.Warn("no users file: serving anonymously on a loopback address; anyone on this host can push, sign and delete", "addr", cfg.Server.Addr)
		return nil
	}
	if !cfg.Auth.AllowAnonymous {
		return fmt.Errorf("refusing to serve %s without access control: set auth.usersFile (--users-file), bind to a loopback address, or pass --insecure-allow-anonymous", cfg.Server.Addr)
	}
	log.Warn("no users file and --insecure-allow-anonymous: anyone who can reach this address can push, sign and delete", "addr", cfg.Server.Addr)
	return nil
}

// isLoopback reports whether HOST:PORT names only loopback addresses.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// consoleUsers is the users file's login and grant lookups for the web
// console, or nil when there is no users file.
func consoleUsers(a registry.Authorizer) registry.ConsoleUsers {
	u, _ := a.(registry.ConsoleUsers)
	return u
}
