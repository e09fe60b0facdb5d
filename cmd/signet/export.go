package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/internal/repoglob"
	"github.com/signet-registry/signet/lookaside"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

func newExportCmd(getenv func(string) string) *cobra.Command {
	var (
		configPath string
		dataDir    string
		file       string
		pattern    string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "export-sigstore DIR",
		Short: "Write the signature store as a lookaside tree for static hosting",
		Long: `Write every signature as DIR/<repository>@sha256=<hex>/signature-<N>, the
registries.d lookaside layout that /sigstore/ serves, so any web server can
serve DIR to podman, skopeo and CRI-O (lookaside: https://HOST/PATH).

The export is incremental (an image whose signatures have not changed is
not rewritten) and atomic per image (each image's set is swapped in with
one rename, so readers never see a partial set). Images whose signatures
are gone are removed. Directories the export did not write are left alone.

It reads the database file directly and never writes to it. bbolt lets
one process write a file, so while "signet serve" runs on the data
directory the export cannot open it: take a backup ("signet backup FILE",
a consistent snapshot from the running server) and export that with
--file FILE, or stop the server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			match, err := repoglob.Compile(pattern)
			if err != nil {
				return fmt.Errorf("--repository: %w", err)
			}
			path := file
			if path == "" {
				cfg, err := config.Load(configPath, getenv)
				if err != nil {
					return err
				}
				if cmd.Flags().Changed("data-dir") {
					cfg.Storage.DataDir = dataDir
				}
				path = signaturesDB(cfg.Storage.DataDir)
			}
			r, err := boltstore.OpenReader(path, timeout)
			if errors.Is(err, boltstore.ErrLocked) {
				return fmt.Errorf("%w\n%s is in use by a running signet serve: stop it, or export a consistent copy (signet backup FILE, then signet export-sigstore %s --file FILE)", err, path, args[0])
			}
			if err != nil {
				return err
			}
			defer r.Close()
			st, err := lookaside.Export(cmd.Context(), r, args[0], match.Match)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "exported %d signatures of %d images to %s: %d written, %d unchanged, %d removed\n",
				st.Signatures, st.Images, args[0], st.Written, st.Unchanged, st.Removed)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML configuration file (optional; for storage.dataDir)")
	fl.StringVar(&dataDir, "data-dir", "./signet-data", "data directory (overrides storage.dataDir)")
	fl.StringVar(&file, "file", "", "export this database file instead (for example a backup)")
	fl.StringVar(&pattern, "repository", "**", "repositories to export, a glob (* one component, ** anything)")
	fl.DurationVar(&timeout, "timeout", time.Second, "how long to wait for another process to release the database")
	return cmd
}
