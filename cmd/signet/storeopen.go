package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/registry"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/boltstore"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

// Both backends are everything the server needs of a signature store.
var (
	_ registry.Store = (*boltstore.Store)(nil)
	_ registry.Store = (*etcdstore.Store)(nil)
)

// openSignatureStore opens the backend storage.backend names.
func openSignatureStore(ctx context.Context, cfg config.Config, observer signaturestore.CommitObserver, log *slog.Logger) (registry.Store, error) {
	limits := signaturestore.Limits{
		MaxPerImage:      cfg.Signatures.MaxPerImage,
		MaxBytesPerImage: cfg.Signatures.MaxBytesPerImage,
	}
	switch cfg.Storage.Backend {
	case config.BackendEtcd:
		opts, err := etcdOptions(cfg.Storage.Etcd)
		if err != nil {
			return nil, err
		}
		opts.Limits, opts.Observer = limits, observer
		// Snapshots (GET /signet/v1/backup) are built here.
		opts.SpoolDir = cfg.Storage.DataDir
		s, err := etcdstore.Open(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("open signature store: %w", err)
		}
		log.Info("signature store: etcd", "endpoints", opts.Endpoints, "prefix", s.Prefix())
		return s, nil
	default:
		s, err := boltstore.Open(signaturesDB(cfg.Storage.DataDir), boltstore.Options{
			Limits:      limits,
			Observer:    observer,
			OpenTimeout: storeOpenTimeout,
		})
		if errors.Is(err, boltstore.ErrLocked) {
			return nil, fmt.Errorf("data directory %s is in use by another signet process; stop it or choose another --data-dir: %w", cfg.Storage.DataDir, err)
		}
		if err != nil {
			return nil, fmt.Errorf("open signature store: %w", err)
		}
		return s, nil
	}
}

// maxSecretFile bounds a password file.
const maxSecretFile = 64 << 10

// etcdOptions turns storage.etcd into client options: TLS from the CA and
// client certificate files, the password from its file.
func etcdOptions(c config.Etcd) (etcdstore.Options, error) {
	opts := etcdstore.Options{
		Endpoints:      c.Endpoints,
		Prefix:         c.Prefix,
		Username:       c.Username,
		DialTimeout:    c.DialTimeout,
		RequestTimeout: c.RequestTimeout,
	}
	if c.PasswordFile != "" {
		b, err := readBounded(c.PasswordFile, maxSecretFile)
		if err != nil {
			return opts, fmt.Errorf("storage.etcd.passwordFile: %w", err)
		}
		opts.Password = string(bytes.TrimRight(b, "\r\n"))
	}
	if c.CAFile != "" || c.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := readBounded(c.CAFile, maxSecretFile)
			if err != nil {
				return opts, fmt.Errorf("storage.etcd.caFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return opts, fmt.Errorf("storage.etcd.caFile %s: no PEM certificates", c.CAFile)
			}
			tc.RootCAs = pool
		}
		if c.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return opts, fmt.Errorf("storage.etcd.certFile/keyFile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.TLS = tc
	}
	return opts, nil
}
