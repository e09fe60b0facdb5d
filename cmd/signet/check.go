package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

// Exit codes of `signet check`.
const (
	exitCheckFailed = 1 // the database is damaged or from an unsupported version
	exitCannotCheck = 2 // the check could not run: missing file, in use, I/O error
)

// signaturesDB is the signature database inside a data directory.
func signaturesDB(dataDir string) string { return filepath.Join(dataDir, "signatures.db") }

func newCheckCmd(getenv func(string) string) *cobra.Command {
	var (
		configPath string
		dataDir    string
		file       string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the signature database's integrity (offline)",
		Long: `Check the signature database: bbolt's page-level consistency check, then
Signet's key layout, indexes and counters. The file is opened read-only and
never modified. The server must be stopped (bbolt allows one process per
file); to check a running server's data, take a backup with
"signet backup FILE" and check that with --file FILE.

Exit status: 0 the database is sound; 1 it is damaged or written by an
unsupported version; 2 it could not be checked (missing, in use, I/O).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := file
			if path == "" {
				cfg, err := config.Load(configPath, getenv)
				if err != nil {
					return &exitError{code: exitCannotCheck, err: err}
				}
				if cmd.Flags().Changed("data-dir") {
					cfg.Storage.DataDir = dataDir
				}
				path = signaturesDB(cfg.Storage.DataDir)
			}
			rep, err := boltstore.CheckFile(path, timeout)
			switch {
			case err == nil:
			case errors.Is(err, boltstore.ErrLocked):
				return &exitError{code: exitCannotCheck, err: fmt.Errorf("%s is in use by a running signet process; stop it first, or check a backup (signet backup FILE, then signet check --file FILE): %w", path, err)}
			case errors.Is(err, boltstore.ErrCorrupt), errors.Is(err, boltstore.ErrUnsupportedSchema):
				return &exitError{code: exitCheckFailed, err: fmt.Errorf("FAILED: %w", err)}
			default:
				return &exitError{code: exitCannotCheck, err: err}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: ok: %d signatures in %d repositories, %d pending manifest deletes, schema version %d, %d bytes\n",
				rep.Path, rep.Signatures, rep.Repositories, rep.PendingDeletes, rep.SchemaVersion, rep.Size)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML configuration file (optional; for storage.dataDir)")
	fl.StringVar(&dataDir, "data-dir", "./signet-data", "data directory (overrides storage.dataDir)")
	fl.StringVar(&file, "file", "", "check this database file instead (for example a backup)")
	fl.DurationVar(&timeout, "timeout", time.Second, "how long to wait for another process to release the file")
	return cmd
}

// exitError carries a specific exit status to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
