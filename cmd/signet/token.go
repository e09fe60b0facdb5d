package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/signet-registry/signet/auth"
	"github.com/signet-registry/signet/config"
)

// newTokenCmd groups the users-file maintenance commands. They edit the
// file in place; a running server picks the change up on its next poll
// or at once on SIGHUP.
func newTokenCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, revoke and list API tokens; hash passwords for the users file",
		Long: `Maintain the users file (auth.usersFile in the config).

API tokens are stored only as their SHA-256; "token create" prints the
token once. Use it as the Basic password (curl http://USER:TOKEN@host/...,
skopeo --creds USER:TOKEN) or as "Authorization: Bearer TOKEN".

The file is rewritten atomically (mode 0600), keeping comments and the
rest of its content. A running server reloads it within its reload
interval, or at once on SIGHUP.`,
	}
	cmd.AddCommand(
		newTokenCreateCmd(getenv),
		newTokenRevokeCmd(getenv),
		newTokenListCmd(getenv),
		newHashPasswordCmd(),
	)
	return cmd
}

// usersFileFlag is the --users-file flag, defaulting to the environment
// variable that sets auth.usersFile for serve.
type usersFileFlag struct {
	path   string
	getenv func(string) string
}

func (f *usersFileFlag) register(cmd *cobra.Command, getenv func(string) string) {
	f.getenv = getenv
	cmd.Flags().StringVar(&f.path, "users-file", "",
		"the users file to edit (default $"+config.EnvName("auth", "usersFile")+")")
}

func (f *usersFileFlag) get() (string, error) {
	if f.path != "" {
		return f.path, nil
	}
	if p := f.getenv(config.EnvName("auth", "usersFile")); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("--users-file is required (or set %s)", config.EnvName("auth", "usersFile"))
}

func newTokenCreateCmd(getenv func(string) string) *cobra.Command {
	var (
		uf          usersFileFlag
		expires     time.Duration
		description string
	)
	cmd := &cobra.Command{
		Use:   "create USER",
		Short: "Create an API token for USER and print it once",
		Long: `Create an API token for USER, add its hash to the users file and print
the token on stdout. Nothing else is printed on stdout, so
TOKEN=$(signet token create ...) captures exactly the token. The token
cannot be shown again; if it is lost, revoke it and create another.

USER must already be in the users file (or its htpasswd file); grant it
roles under "grants:".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := uf.get()
			if err != nil {
				return err
			}
			token, info, err := auth.CreateToken(path, args[0], auth.CreateTokenOptions{TTL: expires, Description: description})
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), token); err != nil {
				return err
			}
			until := "never expires"
			if !info.Expires.IsZero() {
				until = "expires " + info.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created token %s for user %q (%s); it is shown only this once\n", info.ID, args[0], until)
			return nil
		},
	}
	uf.register(cmd, getenv)
	cmd.Flags().DurationVar(&expires, "expires", 0, "lifetime of the token, e.g. 720h (default: never expires)")
	cmd.Flags().StringVar(&description, "description", "", "note stored with the token, shown by \"token list\"")
	return cmd
}

func newTokenRevokeCmd(getenv func(string) string) *cobra.Command {
	var uf usersFileFlag
	cmd := &cobra.Command{
		Use:   "revoke USER ID",
		Short: "Revoke USER's API token ID",
		Long: `Mark USER's token ID as revoked. The entry stays in the users file so
that its id still explains older audit-log records.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := uf.get()
			if err != nil {
				return err
			}
			if err := auth.RevokeToken(path, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked token %s of user %q\n", args[1], args[0])
			return nil
		},
	}
	uf.register(cmd, getenv)
	return cmd
}

// tokenListEntry is one token in "token list --json".
type tokenListEntry struct {
	ID          string     `json:"id"`
	Created     *time.Time `json:"created,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	Status      string     `json:"status"`
	Description string     `json:"description,omitempty"`
}

func newTokenListCmd(getenv func(string) string) *cobra.Command {
	var (
		uf     usersFileFlag
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list USER",
		Short: "List USER's API tokens (ids and dates, never secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := uf.get()
			if err != nil {
				return err
			}
			tokens, err := auth.ListTokens(path, args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			out := cmd.OutOrStdout()
			if asJSON {
				entries := make([]tokenListEntry, 0, len(tokens))
				for _, t := range tokens {
					e := tokenListEntry{ID: t.ID, Status: t.Status(now), Description: t.Description}
					if !t.Created.IsZero() {
						e.Created = &t.Created
					}
					if !t.Expires.IsZero() {
						e.Expires = &t.Expires
					}
					entries = append(entries, e)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tEXPIRES\tSTATUS\tDESCRIPTION")
			for _, t := range tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, dateOrDash(t.Created), dateOrDash(t.Expires), t.Status(now), t.Description)
			}
			return tw.Flush()
		},
	}
	uf.register(cmd, getenv)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// maxPasswordInput bounds what hash-password reads from stdin.
const maxPasswordInput = 4096

func newHashPasswordCmd() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password on stdin and print its bcrypt hash",
		Long: `Read a password and print a bcrypt hash for the "password:" field of
the users file, or for an htpasswd line (USER:HASH). From a terminal the
password is asked for twice without echo; otherwise stdin must hold one
line, e.g.

  printf '%s\n' "$PW" | signet token hash-password

Passwords are 1 to 72 bytes (bcrypt ignores anything longer).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw, cost)
			clear(pw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), hash)
			return err
		},
	}
	cmd.Flags().IntVar(&cost, "cost", 10, "bcrypt cost, 4 to 16; each step doubles the work of every login")
	return cmd
}

// readPassword prompts without echo on a terminal, and otherwise reads
// exactly one line.
func readPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(prompt, "Repeat password: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passwords differ")
		}
		clear(again)
		return pw, nil
	}
	data, err := io.ReadAll(io.LimitReader(in, maxPasswordInput+1))
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if len(data) > maxPasswordInput {
		return nil, errors.New("read password: stdin is too long for a password")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	clear(data)
	if len(lines) != 1 {
		return nil, fmt.Errorf("read password: want exactly one line on stdin, got %d", len(lines))
	}
	return bytes.TrimSuffix(lines[0], []byte("\r")), nil
}
