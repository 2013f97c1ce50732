// Package regotest runs the policies' Rego tests (*_test.rego) in-process
// with OPA's tester and cover packages, set up the way stock `opa test`
// sets them up (same loader, compiler options, coverage passes and
// timeout), so that `permatrix test`, the Go tests in test/rego and the
// stock binary agree on every result and on the coverage percentage.
package regotest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/runtime/info"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DefaultPaths are what `opa test` is given in this repository: its root,
// where the policies and the catalogs (systems/<id>/data.json) sit as
// `opa test .` and `opa test -b .` (the VS Code OPA extension) load them.
var DefaultPaths = []string{"."}

// Options select and tune a run.
type Options struct {
	// Paths are files or directories of Rego and JSON/YAML data, loaded as
	// `opa test PATH...` loads them (data files by their directory).
	Paths []string
	// Coverage records which lines the tests evaluate.
	Coverage bool
	// Run keeps only tests whose full name (data.pkg.test_x) matches.
	Run string
	// Timeout bounds each test; stock opa's default (5 s) if zero.
	Timeout time.Duration
	// Parallel is how many tests run at once; the number of CPUs if zero.
	Parallel int
}

// Report is the outcome of a run.
type Report struct {
	// Results are every test's result, ordered by file and line.
	Results []*tester.Result
	// Coverage is set when Options.Coverage was; it is exactly what
	// `opa test --coverage --format json` prints.
	Coverage *cover.Report

	opts Options
}

// Counts are a run's totals in stock opa's terms.
type Counts struct{ Pass, Fail, Skip, Error int }

// Counts tallies the results as stock opa's summary does.
func (r *Report) Counts() Counts {
	var c Counts
	for _, tr := range r.Results {
		switch {
		case tr.Skip:
			c.Skip++
		case tr.Error != nil:
			c.Error++
		case tr.Fail:
			c.Fail++
		default:
			c.Pass++
		}
	}
	return c
}

// OK reports whether every test passed (skipped ones aside).
func (r *Report) OK() bool {
	c := r.Counts()
	return c.Fail == 0 && c.Error == 0
}

// Run loads the paths, compiles policies and tests together and runs the
// tests. A load or compile error (with file:line) is an error; failing
// tests are not, they are in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if len(o.Paths) == 0 {
		o.Paths = DefaultPaths
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.NumCPU()
	}
	if o.Run != "" {
		if _, err := regexp.Compile(o.Run); err != nil {
			return nil, fmt.Errorf("--run: %w", err)
		}
	}
	modules, store, err := tester.LoadWithParserOptions(o.Paths, nil, ast.ParserOptions{
		RegoVersion:       ast.RegoV1,
		ProcessAnnotation: true,
	})
	if err != nil {
		return nil, err
	}
	rep := &Report{opts: o}
	var cov *cover.Cover
	if o.Coverage {
		cov = cover.New()
	}
	results, err := run(ctx, o, store, modules, cov, false)
	if err != nil {
		return nil, err
	}
	rep.Results = results
	if cov != nil {
		c := cov.Report(modules)
		rep.Coverage = &c
	}
	return rep, nil
}

// run compiles and runs the tests once. explain turns on what stock opa's
// --var-values does: tracing, and test rules rewritten so that a failure
// shows the failing expression with its variables' values.
func run(ctx context.Context, o Options, store storage.Store, modules map[string]*ast.Module, cov *cover.Cover, explain bool) ([]*tester.Result, error) {
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	runtimeInfo, err := info.New()
	if err != nil {
		return nil, err
	}
	// The compiler options of `opa test` (cmd/test.go, compileAndSetupTests).
	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithUseTypeCheckAnnotations(true).
		WithRewriteTestRules(explain)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		EnableTracing(explain).
		StackTraces(true).
		SetRuntime(runtimeInfo).
		SetModules(modules).
		SetTimeout(o.Timeout).
		Filter(o.Run).
		SetParallel(o.Parallel)
	if cov != nil {
		// Stock opa's default supplementary passes; they only tag ranges,
		// but are kept so the JSON report is identical.
		runner = runner.SetCoverageQueryTracer(cov).
			SetCoverageRuns([]cover.Kind{cover.KindIndexExcluded, cover.KindEarlyExit})
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return nil, err
	}
	var out []*tester.Result
	for tr := range ch {
		out = append(out, tr)
	}
	slices.SortFunc(out, func(a, b *tester.Result) int {
		if a.Location == nil || b.Location == nil {
			return strings.Compare(a.Package+"."+a.Name, b.Package+"."+b.Name)
		}
		if c := strings.Compare(a.Location.File, b.Location.File); c != 0 {
			return c
		}
		return a.Location.Row - b.Location.Row
	})
	return out, nil
}

// Name is a test's full name, data.<package>.<rule>, as --run matches it.
func Name(tr *tester.Result) string { return tr.Package + "." + tr.Name }

// Explain runs the failed tests of the report again with tracing, as
// stock opa's --var-values does, and returns their traced results by Name:
// rendered with Pretty(..., explain=true) they show the failing expression
// with its variables' values. The first run stays free of tracing, which
// would slow every test down and cannot be combined with coverage.
func (r *Report) Explain(ctx context.Context) (map[string]*tester.Result, error) {
	var names []string
	for _, tr := range r.Results {
		if tr.Fail && !tr.Skip && tr.Error == nil {
			names = append(names, regexp.QuoteMeta(Name(tr)))
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	o := r.opts
	o.Run = "^(" + strings.Join(names, "|") + ")$"
	// Load afresh: the explaining compiler rewrites the test rules.
	modules, store, err := tester.LoadWithParserOptions(o.Paths, nil, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return nil, err
	}
	results, err := run(ctx, o, store, modules, nil, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*tester.Result, len(results))
	for _, tr := range results {
		out[Name(tr)] = tr
	}
	return out, nil
}

// Pretty writes results as stock `opa test` does (failures, then the
// PASS/FAIL summary); verbose lists passing tests too; explain adds the
// failure lines of an Explain run.
func Pretty(w io.Writer, results []*tester.Result, verbose, explain bool) error {
	ch := make(chan *tester.Result, len(results))
	for _, tr := range results {
		ch <- tr
	}
	close(ch)
	return tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: explain, LocalVars: explain}.Report(ch)
}

// ErrThreshold is returned by CheckThreshold.
var ErrThreshold = errors.New("coverage below threshold")

// CheckThreshold fails when the coverage is under threshold percent.
func (r *Report) CheckThreshold(threshold float64) error {
	if threshold <= 0 {
		return nil
	}
	if r.Coverage == nil {
		return errors.New("coverage was not recorded")
	}
	if r.Coverage.Coverage < threshold {
		return fmt.Errorf("%w: %.2f%% < %.2f%%", ErrThreshold, r.Coverage.Coverage, threshold)
	}
	return nil
}

// Uncovered lists the files under threshold percent, worst first, as
// "file: NN.NN% (lines a-b, c)" — what to look at when coverage drops.
func (r *Report) Uncovered(threshold float64) []string {
	if r.Coverage == nil {
		return nil
	}
	type row struct {
		file string
		fr   *cover.FileReport
	}
	var rows []row
	for f, fr := range r.Coverage.Files {
		if fr.Coverage < threshold && len(fr.NotCovered) > 0 {
			rows = append(rows, row{f, fr})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		switch {
		case a.fr.Coverage < b.fr.Coverage:
			return -1
		case a.fr.Coverage > b.fr.Coverage:
			return 1
		}
		return strings.Compare(a.file, b.file)
	})
	out := make([]string, 0, len(rows))
	for _, x := range rows {
		out = append(out, fmt.Sprintf("%s: %.2f%% (not covered: %s)", x.file, x.fr.Coverage, lineRanges(x.fr.NotCovered)))
	}
	return out
}

// lineRanges lists the rows of ranges as "a-b, c": OPA reports one range
// per expression, often several on one row and one per row of a body.
func lineRanges(ranges []cover.Range) string {
	var rows []int
	for _, r := range ranges {
		for row := r.Start.Row; row <= r.End.Row; row++ {
			rows = append(rows, row)
		}
	}
	slices.Sort(rows)
	rows = slices.Compact(rows)
	var parts []string
	for i := 0; i < len(rows); {
		j := i
		for j+1 < len(rows) && rows[j+1] == rows[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(rows[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", rows[i], rows[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// FailureLines writes where an explained test failed: the last expression
// that evaluated to false, at file:line, with its variables' values (the
// FAILURES section of stock `opa test --var-values`, without the rest of
// its report). Test cases of a parameterized test are shown one by one.
func FailureLines(w io.Writer, tr *tester.Result) error {
	file := ""
	if tr.Location != nil {
		file = tr.Location.File
	}
	if len(tr.SubResults) == 0 {
		return failureLine(w, "  ", file, tr.Trace)
	}
	for name, sr := range tr.SubResults.Iter {
		if sr.Fail && len(sr.SubResults) == 0 {
			fmt.Fprintf(w, "  case %s:\n", strings.Join(name, " / "))
			if err := failureLine(w, "    ", file, sr.Trace); err != nil {
				return err
			}
		}
	}
	return nil
}

// failureLine prints the last failing expression in the test's own file,
// else the last one anywhere. Stock opa takes the last one anywhere, which is
// often a rule body deep in the policy that failed harmlessly (an else
// branch not taken) rather than the test's assertion.
func failureLine(w io.Writer, indent, file string, trace []*topdown.Event) error {
	var last, inTest *topdown.Event
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		if expr, ok := e.Node.(*ast.Expr); ok {
			if _, every := expr.Terms.(*ast.Every); every {
				continue // the failing expression inside the every body comes first
			}
		}
		if last == nil {
			last = e
		}
		if e.Location.File == file {
			inTest = e
			break
		}
	}
	if e := cmp.Or(inTest, last); e != nil {
		fmt.Fprintf(w, "%s%s:%d:\n", indent, e.Location.File, e.Location.Row)
		var buf strings.Builder
		if err := topdown.PrettyEvent(&buf, e, topdown.PrettyEventOpts{PrettyVars: true}); err != nil {
			return err
		}
		for line := range strings.Lines(buf.String()) {
			fmt.Fprint(w, indent+"  "+line)
		}
		if !strings.HasSuffix(buf.String(), "\n") {
			fmt.Fprintln(w)
		}
		return nil
	}
	fmt.Fprintf(w, "%s(no failing expression recorded: the test rule is undefined or false)\n", indent)
	return nil
}
