package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/regotest"
)

type testOptions struct {
	coverage  bool
	threshold float64
	format    string
	run       string
	verbose   bool
	timeout   time.Duration
	// skipZero is stock opa's --exit-zero-on-skipped.
	skipZero bool
}

func newTest() *cobra.Command {
	o := testOptions{}
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run the Rego tests of the policies (like `opa test`, in-process)",
		Long: `Run the Rego tests (*_test.rego) found under PATH... (default: ., the repository root)
with OPA's own tester, set up as stock ` + "`opa test`" + ` sets it up: the same
tests pass and fail and --coverage gives the same percentage.

A failing test is shown with the expression that failed and its variables'
values. Exit status: 0 all passed (and coverage at or over --threshold),
2 a test failed, was skipped (todo_test_…; 0 with --exit-zero-on-skipped) or
coverage is under the threshold, 1 the policies do not load or compile (the
error names file:line).`,
		RunE: func(cmd *cobra.Command, args []string) error { return runTest(cmd, args, o) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.coverage, "coverage", "c", false, "report coverage")
	f.Float64Var(&o.threshold, "threshold", 0, "fail when coverage is under this percentage (implies --coverage)")
	f.StringVarP(&o.format, "format", "f", "pretty", "pretty or json (json with --coverage prints the report of `opa test --coverage --format json`)")
	// --format means another thing in each command: its own variable.
	ownEnv(f, "test", "format")
	f.StringVarP(&o.run, "run", "r", "", "run only tests whose full name (data.pkg.test_x) matches this regular expression")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "list passing tests too")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "timeout of each test")
	f.BoolVarP(&o.skipZero, "exit-zero-on-skipped", "z", false, "skipped tests return status 0")
	return cmd
}

func runTest(cmd *cobra.Command, paths []string, o testOptions) error {
	if o.format != "pretty" && o.format != "json" {
		return fmt.Errorf("--format %q: want pretty or json", o.format)
	}
	if o.threshold < 0 || o.threshold > 100 {
		return fmt.Errorf("--threshold %v: want a percentage from 0 to 100", o.threshold)
	}
	if o.threshold > 0 {
		o.coverage = true
	}
	if len(paths) == 0 {
		paths = regotest.DefaultPaths
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	rep, err := regotest.Run(cmd.Context(), regotest.Options{Paths: paths, Coverage: o.coverage, Run: o.run, Timeout: o.timeout})
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitError{code: 1}
	}
	if o.format == "json" {
		if err := writeTestJSON(out, rep); err != nil {
			return err
		}
	} else if err := writeTestPretty(cmd, rep, o); err != nil {
		return err
	}
	// A skipped test did not pass: stock opa exits 2 for it too, unless
	// --exit-zero-on-skipped.
	if !rep.OK() || (rep.Counts().Skip > 0 && !o.skipZero) {
		return exitError{code: 2}
	}
	if err := rep.CheckThreshold(o.threshold); err != nil {
		fmt.Fprintln(errOut, err)
		for _, line := range rep.Uncovered(o.threshold) {
			fmt.Fprintln(errOut, "  "+line)
		}
		return exitError{code: 2}
	}
	return nil
}

// writeTestJSON prints what `opa test --format json` prints: the results,
// or with --coverage the coverage report (when every test passed).
func writeTestJSON(w io.Writer, rep *regotest.Report) error {
	if rep.Coverage != nil && rep.OK() {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep.Coverage)
	}
	ch := make(chan *tester.Result, len(rep.Results))
	for _, tr := range rep.Results {
		ch <- tr
	}
	close(ch)
	return tester.JSONReporter{Output: w}.Report(ch)
}

func writeTestPretty(cmd *cobra.Command, rep *regotest.Report, o testOptions) error {
	out := cmd.OutOrStdout()
	if len(rep.Results) == 0 {
		fmt.Fprintln(out, "no tests found")
	}
	if err := regotest.Pretty(out, rep.Results, o.verbose, false); err != nil {
		return err
	}
	if !rep.OK() {
		explained, err := rep.Explain(cmd.Context())
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(explained)) {
			fmt.Fprintf(out, "\n%s failed here:\n", name)
			if err := regotest.FailureLines(out, explained[name]); err != nil {
				return err
			}
		}
	}
	if rep.Coverage != nil {
		c := rep.Coverage
		fmt.Fprintf(out, "Coverage: %.2f%% (%d of %d lines)\n", c.Coverage, c.CoveredLines, c.CoveredLines+c.NotCoveredLines)
	}
	return nil
}
