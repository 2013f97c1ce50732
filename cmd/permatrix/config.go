package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/config"
)

func newConfig() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check configuration files (serve --config)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a configuration file: every problem with its line; exit 0 when valid",
		Long: `Check a configuration file as serve --config reads it: YAML syntax, unknown and
duplicate keys, values of the wrong type for the flag they set, OPA's sections
(services, keys, bundles, decision_logs, labels, default_decision) as OPA's own
parsers read them. Every problem is printed as FILE:LINE: message. Exit status:
0 valid, 1 problems, 2 the file cannot be read. What needs the network or the
store (a JWKS URL, the etcd cluster, the bundle server) is checked by serve.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The values too, against serve's own flags and the checks
			// serve makes of them before it starts.
			flags := newServe().Flags()
			file, err := readConfig(flags, args[0])
			if file != nil {
				err = checkServeValues(flags, file)
			}
			var probs *config.Problems
			if errors.As(err, &probs) {
				fmt.Fprintln(cmd.ErrOrStderr(), probs.Error())
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d problem(s)\n", args[0], len(probs.List))
				return exitError{1}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return nil
		},
	})
	return cmd
}
