package main

import (
	"fmt"
	"runtime"

	opaversion "github.com/open-policy-agent/opa/v1/version"
	"github.com/spf13/cobra"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of permatrix and of the embedded OPA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "permatrix %s\nopa %s\ngo %s\n", version, opaversion.Version, runtime.Version())
			return nil
		},
	}
}
