package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/bolt"
)

// Exit codes about the store file (docs/security.md).
const (
	// exitStoreDamaged: `store check` found damage; `serve` refused to
	// open a damaged or empty store file.
	exitStoreDamaged = 3
)

func newStore() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Work on the assignment store file",
	}
	var db string
	check := &cobra.Command{
		Use:   "check",
		Short: "Check a store file for damage (exit 0 sound, 3 damaged, 2 cannot check)",
		Long: `Check the store file without changing it: its bbolt page structure (read from
the file, so damage cannot crash the check), bbolt's own consistency check, and
every record (decodes strictly, valid ids, indexes agree). Prints what is wrong.
Exit 0: sound. Exit 3: damaged (serve refuses such a file with the same exit
code). Exit 2: the file cannot be checked (absent, unreadable, or locked by a
running permatrix serve).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bolt.Check(db)
			var ce *bolt.CorruptError
			if errors.As(err, &ce) {
				fmt.Fprintf(cmd.OutOrStdout(), "store %s is damaged:\n", db)
				for _, p := range ce.Problems {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", p)
				}
				return exitError{exitStoreDamaged}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "store %s is sound: revision %d, %d assignments, %d memberships, %d roles, %d projects\n",
				db, r.Revision, r.Assignments, r.Memberships, r.Roles, r.Projects)
			return nil
		},
	}
	check.Flags().StringVar(&db, "db", "./permatrix.db", "the store file")
	cmd.AddCommand(check)
	return cmd
}
