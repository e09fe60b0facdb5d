package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/signet-registry/signet/auth"
	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/registry"
)

// setUpAuth loads the users file, if any, and keeps it fresh: polled for
// changes, and reloaded at once on SIGHUP. Without one it applies the
// anonymous safe default and returns a nil Authorizer.
func setUpAuth(ctx context.Context, cfg config.Config, log *slog.Logger) (registry.Authorizer, error) {
	if err := checkAnonymous(cfg, log); err != nil {
		return nil, err
	}
	if cfg.Auth.UsersFile == "" {
		return nil, nil
	}
	a, err := auth.Load(cfg.Auth.UsersFile)
	if err != nil {
		return nil, fmt.Errorf("load users file: %w", err)
	}
	go a.Watch(ctx, cfg.Auth.ReloadInterval, log)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := a.Reload(); err != nil {
					log.Error("reload users file on SIGHUP; keeping the previous one", "err", err)
				} else {
					log.Info("reloaded users file on SIGHUP")
				}
			}
		}
	}()
	return a, nil
}
