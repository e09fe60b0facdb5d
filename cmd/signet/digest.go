package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDigestCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "digest IMAGE",
		Short: "Print the manifest digest of an image",
		Long: `Print the digest of IMAGE's manifest (HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]),
computed from the bytes the registry serves, like "regctl manifest digest".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := cf.resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t.digest)
			return err
		},
	}
	cf.register(cmd.Flags(), getenv)
	return cmd
}
