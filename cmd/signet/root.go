package main

import (
	"github.com/spf13/cobra"
)

// NewRootCmd builds the whole CLI. getenv is os.Getenv in production and a
// map lookup in tests, so commands run in-process without touching the
// real environment.
func NewRootCmd(getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "signet",
		Short:         "A container registry and image signature store",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCmd(getenv),
		newDigestCmd(getenv),
		newSignCmd(getenv),
		newPushCmd(getenv),
		newVerifyCmd(getenv),
		newCosignVerifyCmd(getenv),
		newDescribeCmd(getenv),
		newTokenCmd(getenv),
		newCheckCmd(getenv),
		newMigrateCmd(getenv),
		newBackupCmd(getenv),
		newExportCmd(getenv),
		newImportCmd(getenv),
	)
	return root
}
