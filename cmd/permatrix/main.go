// Command permatrix is the permatrix policy decision point: `permatrix serve`
// runs the sidecar; the other commands work on policies, bundles and
// decisions from the command line. Every flag can also be set through an
// environment variable PERMATRIX_<FLAG> (e.g. PERMATRIX_ADDR; not replay's
// --store and --bundle, whose PERMATRIX_STORE and PERMATRIX_BUNDLE are
// serve's store URL and bundle; and --format, of export, replay, matrix and
// test, is PERMATRIX_<COMMAND>_FORMAT), and serve's
// through its configuration file (--config); a flag given wins over the
// environment, which wins over the file.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// exitError carries a process exit code without an error message of its
// own (e.g. `check` exits 1 on a deny).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		// A domain error says "permatrix: <code>: …" itself.
		fmt.Fprintln(os.Stderr, "permatrix:", strings.TrimPrefix(err.Error(), "permatrix: "))
		os.Exit(2)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "permatrix",
		Short:         "permatrix: a policy decision point for vendor permission matrices",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags())
		},
	}
	root.AddCommand(newServe(), newCheck(), newTest(), newMatrix(), newBundle(), newReplay(), newStore(), newImport(), newExport(), newConfig(), newHealth(), newVersion())
	return root
}

// bindEnv sets each flag not given on the command line from
// PERMATRIX_<FLAG> (dashes become underscores), if that is set.
func bindEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || f.Annotations[noEnvAnnotation] != nil {
			return
		}
		names := f.Annotations[envNamesAnnotation]
		if names == nil {
			names = []string{"PERMATRIX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))}
		}
		for _, name := range names {
			v, ok := os.LookupEnv(name)
			if !ok {
				continue
			}
			if serr := flags.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
				return
			}
			_ = flags.SetAnnotation(f.Name, envAnnotation, []string{name})
			return
		}
	})
	return err
}

// envNamesAnnotation names the variables that set a flag instead of
// PERMATRIX_<FLAG>, the first set winning: a flag of the same name and
// another meaning in each command (--format) reads its own.
const envNamesAnnotation = "permatrix-env-names"

// ownEnv makes flag of command read PERMATRIX_<COMMAND>_<FLAG> (then the
// old names given, kept working), not the PERMATRIX_<FLAG> every command
// shares, and says so in its help.
func ownEnv(f *pflag.FlagSet, command, flag string, old ...string) {
	name := "PERMATRIX_" + strings.ToUpper(strings.ReplaceAll(command+"_"+flag, "-", "_"))
	_ = f.SetAnnotation(flag, envNamesAnnotation, append([]string{name}, old...))
	f.Lookup(flag).Usage += " (env " + name + ")"
}

// envAnnotation marks a flag bindEnv set from the environment.
const envAnnotation = "permatrix-env"

// noEnvAnnotation marks a flag that PERMATRIX_<FLAG> does not set: its
// name is another command's flag of another meaning, which the environment
// (a container's, made for serve) holds.
const noEnvAnnotation = "permatrix-no-env"

// fromEnv reports whether a flag's value came from PERMATRIX_<FLAG>.
func fromEnv(f *pflag.Flag) bool {
	_, ok := f.Annotations[envAnnotation]
	return ok
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
