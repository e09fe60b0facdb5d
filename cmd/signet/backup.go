package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-registry/signet/client"
	"github.com/signet-registry/signet/signaturestore/boltstore"
)

func newBackupCmd(getenv func(string) string) *cobra.Command {
	var (
		f       clientFlags
		force   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "backup FILE --registry-url HOST[:PORT]",
		Short: "Save a consistent snapshot of a running server's signature database",
		Long: `Download a consistent online snapshot of the signature database
(GET /signet/v1/backup, which needs the admin role on **) into FILE. The
server keeps serving meanwhile. The download is checked before FILE appears:
its length must match, and it must pass the same integrity check as
"signet check". Nothing is written to FILE unless the whole backup is good.

Restore: stop the server, copy FILE to DATA_DIR/signatures.db, start it.
Blobs and manifests live as plain files under DATA_DIR/registry; copy that
directory with any file backup tool (a manifest whose signatures are missing
from an older backup simply shows fewer signatures; signatures of a manifest
missing from the files are not served).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := args[0]
			if f.registryURL == "" {
				return errors.New("--registry-url HOST[:PORT] is required: the registry to back up")
			}
			if _, err := os.Lstat(dest); err == nil && !force {
				return fmt.Errorf("%s exists; pass --force to replace it", dest)
			}
			host, err := client.RegistryHost(f.registryURL)
			if err != nil {
				return err
			}
			opts, err := f.options(host)
			if err != nil {
				return err
			}
			opts.Timeout = timeout
			c, err := client.New(host, opts)
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".partial-*")
			if err != nil {
				return fmt.Errorf("create backup file: %w", err)
			}
			defer func() {
				_ = tmp.Close()
				_ = os.Remove(tmp.Name()) // gone already after the rename
			}()
			n, err := c.Backup(cmd.Context(), tmp)
			if err != nil {
				return err
			}
			if err := tmp.Sync(); err != nil {
				return fmt.Errorf("sync backup file: %w", err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("close backup file: %w", err)
			}
			rep, err := boltstore.CheckFile(tmp.Name(), time.Second)
			if err != nil {
				return fmt.Errorf("downloaded backup failed its check; nothing written to %s: %w", dest, err)
			}
			if err := os.Rename(tmp.Name(), dest); err != nil {
				return fmt.Errorf("save backup: %w", err)
			}
			if err := syncDir(filepath.Dir(dest)); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bytes, %d signatures in %d repositories, checked\n",
				dest, n, rep.Signatures, rep.Repositories)
			return err
		},
	}
	f.register(cmd.Flags(), getenv)
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "bound on the whole download")
	return cmd
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
