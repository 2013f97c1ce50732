package regotest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/regotest"
)

const policy = `package demo

allow if input.user == data.systems.demo.admin

double(x) := x * 2

# Never evaluated by the tests below: what coverage reports.
deny if {
	input.user == "mallory"
	input.action == "delete"
}
`

const tests = `package demo_test

import data.demo

test_admin_allowed if demo.allow with input as {"user": "alice"}

test_bob_allowed if demo.allow with input as {"user": "bob"}

test_double if demo.double(2) == 4

test_conflict if {
	x := conflict
	x > 0
}

conflict := 1 if true

conflict := 2 if true

todo_test_later if false
`

// tree writes a policy directory: Rego and its tests, and a catalog placed
// by its directory (data.systems.demo).
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func demo(t *testing.T) string {
	return tree(t, map[string]string{
		"policies/demo/demo.rego":      policy,
		"policies/demo/demo_test.rego": tests,
		"systems/demo/data.json":       `{"admin": "alice"}`,
	})
}

func run(t *testing.T, o regotest.Options) *regotest.Report {
	t.Helper()
	rep, err := regotest.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run(%+v): %v", o, err)
	}
	return rep
}

func names(rep *regotest.Report) []string {
	var out []string
	for _, tr := range rep.Results {
		out = append(out, regotest.Name(tr))
	}
	return out
}

func TestRun(t *testing.T) {
	dir := demo(t)
	rep := run(t, regotest.Options{Paths: []string{dir}})
	if c := rep.Counts(); c != (regotest.Counts{Pass: 2, Fail: 1, Skip: 1, Error: 1}) {
		t.Fatalf("counts %+v", c)
	}
	if rep.OK() {
		t.Fatal("OK() with a failing test")
	}
	// By file and line, named as --run matches them.
	want := []string{"data.demo_test.test_admin_allowed", "data.demo_test.test_bob_allowed", "data.demo_test.test_double",
		"data.demo_test.test_conflict", "data.demo_test.todo_test_later"}
	if got := names(rep); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("results %v\nwant    %v", got, want)
	}
	for _, tr := range rep.Results {
		if tr.Location == nil || !strings.HasSuffix(tr.Location.File, "demo_test.rego") {
			t.Errorf("%s: location %v", tr.Name, tr.Location)
		}
	}
	if err := rep.Results[3].Error; err == nil || !strings.Contains(err.Error(), "eval_conflict_error") {
		t.Errorf("test_conflict: error %v", err)
	}
	if rep.Coverage != nil {
		t.Error("coverage recorded without Options.Coverage")
	}
	// One test at a time gives the same results.
	if got := names(run(t, regotest.Options{Paths: []string{dir}, Parallel: 1})); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Parallel 1: %v", got)
	}
}

func TestRunFilter(t *testing.T) {
	dir := demo(t)
	rep := run(t, regotest.Options{Paths: []string{dir}, Run: "test_(admin|double)"})
	if got := names(rep); strings.Join(got, " ") != "data.demo_test.test_admin_allowed data.demo_test.test_double" {
		t.Fatalf("--run kept %v", got)
	}
	if !rep.OK() || rep.Counts() != (regotest.Counts{Pass: 2}) {
		t.Fatalf("counts %+v", rep.Counts())
	}
	// The full name is matched, package included.
	if got := names(run(t, regotest.Options{Paths: []string{dir}, Run: `^data\.demo_test\.test_double$`})); len(got) != 1 {
		t.Fatalf("anchored full name kept %v", got)
	}
	if got := run(t, regotest.Options{Paths: []string{dir}, Run: "nothing-matches"}); len(got.Results) != 0 || !got.OK() {
		t.Fatalf("no test selected: %v", names(got))
	}
	_, err := regotest.Run(context.Background(), regotest.Options{Paths: []string{dir}, Run: "test_(["})
	if err == nil || !strings.HasPrefix(err.Error(), "--run: ") {
		t.Fatalf("a bad --run: %v", err)
	}
}

// Load and compile errors are errors, with file:line; a missing path too.
func TestRunErrors(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		msg   *regexp.Regexp
	}{
		"syntax": {map[string]string{"p/bad.rego": "package bad\n\nallow if {\n"},
			regexp.MustCompile(`bad\.rego:\d+: rego_parse_error`)},
		"v0 syntax": {map[string]string{"p/old.rego": "package old\n\nallow { true }\n"},
			regexp.MustCompile(`old\.rego:3: rego_parse_error`)},
		"type": {map[string]string{"p/typ.rego": "package typ\n\nx := count(1)\n"},
			regexp.MustCompile(`typ\.rego:3: rego_type_error`)},
		"unsafe": {map[string]string{"p/u.rego": "package u\n\nx if y > 1\n"},
			regexp.MustCompile(`u\.rego:3: rego_unsafe_var_error`)},
		"data conflict": {map[string]string{"a/data.json": `{"x": 1}`, "a/x/data.json": `{"y": 1}`},
			regexp.MustCompile(`merge error|conflict`)},
		"bad json": {map[string]string{"d/data.json": `{"k": `},
			regexp.MustCompile(`data\.json`)},
	} {
		dir := tree(t, c.files)
		_, err := regotest.Run(context.Background(), regotest.Options{Paths: []string{dir}})
		if err == nil || !c.msg.MatchString(err.Error()) {
			t.Errorf("%s: %v, want %s", name, err, c.msg)
		}
	}
	_, err := regotest.Run(context.Background(), regotest.Options{Paths: []string{filepath.Join(t.TempDir(), "missing")}})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("a missing path: %v", err)
	}
}

// Each test is bounded by the timeout: a runaway test is an error of its
// own, the others still run.
func TestTimeout(t *testing.T) {
	dir := tree(t, map[string]string{"slow_test.rego": `package slow_test

test_quick if true

test_runaway if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`})
	start := time.Now()
	rep := run(t, regotest.Options{Paths: []string{dir}, Timeout: 200 * time.Millisecond})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v: the timeout did not stop the test", took)
	}
	if rep.Counts() != (regotest.Counts{Pass: 1, Error: 1}) {
		t.Fatalf("counts %+v", rep.Counts())
	}
	if err := rep.Results[1].Error; err == nil || !strings.Contains(err.Error(), "timed out") && !strings.Contains(err.Error(), "cancel") {
		t.Fatalf("the runaway test: %v", rep.Results[1].Error)
	}
}

func TestCoverage(t *testing.T) {
	dir := demo(t)
	rep := run(t, regotest.Options{Paths: []string{dir}, Coverage: true})
	cov := rep.Coverage
	if cov == nil || cov.Coverage <= 0 || cov.Coverage >= 100 {
		t.Fatalf("coverage %+v", cov)
	}
	var policyFile string
	for f := range cov.Files {
		if strings.HasSuffix(f, "policies/demo/demo.rego") {
			policyFile = f
		}
	}
	if policyFile == "" {
		t.Fatalf("no report of demo.rego: %v", cov.Files)
	}
	// deny's body (lines 9-10) was never evaluated.
	notCovered := map[int]bool{}
	for _, r := range cov.Files[policyFile].NotCovered {
		for row := r.Start.Row; row <= r.End.Row; row++ {
			notCovered[row] = true
		}
	}
	if !notCovered[9] || !notCovered[10] || notCovered[3] || notCovered[5] {
		t.Fatalf("not covered: %v", cov.Files[policyFile].NotCovered)
	}

	if err := rep.CheckThreshold(0); err != nil {
		t.Errorf("threshold 0: %v", err)
	}
	if err := rep.CheckThreshold(cov.Coverage); err != nil {
		t.Errorf("threshold = coverage: %v", err)
	}
	err := rep.CheckThreshold(100)
	if !errors.Is(err, regotest.ErrThreshold) || !strings.Contains(err.Error(), "< 100.00%") {
		t.Errorf("threshold 100: %v", err)
	}
	if err := run(t, regotest.Options{Paths: []string{dir}}).CheckThreshold(50); err == nil || errors.Is(err, regotest.ErrThreshold) {
		t.Errorf("a threshold without coverage recorded: %v", err)
	}

	un := rep.Uncovered(100)
	// Worst first; rows merged into ranges, each row once.
	if len(un) != 2 || !strings.HasPrefix(un[0], policyFile+": ") || !strings.HasSuffix(un[0], "% (not covered: 8-10)") ||
		!strings.HasSuffix(un[1], "demo_test.rego: 80.00% (not covered: 7, 20)") {
		t.Fatalf("Uncovered(100) = %q", un)
	}
	if got := rep.Uncovered(0); len(got) != 0 {
		t.Errorf("Uncovered(0) = %q", got)
	}
	if got := run(t, regotest.Options{Paths: []string{dir}}).Uncovered(100); got != nil {
		t.Errorf("Uncovered without coverage = %q", got)
	}
}

// The failed test, explained: the failing expression in the test file
// with its variables' values, as stock opa's --var-values shows it.
func TestExplainAndReports(t *testing.T) {
	dir := demo(t)
	rep := run(t, regotest.Options{Paths: []string{dir}})
	explained, err := rep.Explain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tr := explained["data.demo_test.test_bob_allowed"]
	if len(explained) != 1 || tr == nil || !tr.Fail {
		t.Fatalf("explained %v, want test_bob_allowed alone (errors and skips are not failures)", explained)
	}
	var buf bytes.Buffer
	if err := regotest.FailureLines(&buf, tr); err != nil {
		t.Fatal(err)
	}
	t.Logf("FailureLines:\n%s", buf.String())
	if out := buf.String(); !regexp.MustCompile(`demo_test\.rego:7:`).MatchString(out) || !strings.Contains(out, "demo.allow") {
		t.Fatalf("FailureLines:\n%s", out)
	}

	buf.Reset()
	if err := regotest.Pretty(&buf, rep.Results, false, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"FAIL: 1/5", "PASS: 2/5", "ERROR: 1/5", "SKIPPED: 1/5", "test_bob_allowed", "test_conflict"} {
		if !strings.Contains(out, want) {
			t.Errorf("Pretty lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "test_admin_allowed") {
		t.Errorf("Pretty lists passing tests without verbose:\n%s", out)
	}
	buf.Reset()
	_ = regotest.Pretty(&buf, rep.Results, true, false)
	if !strings.Contains(buf.String(), "test_admin_allowed") {
		t.Errorf("verbose Pretty does not list passing tests:\n%s", buf.String())
	}

	// Nothing failed, nothing to explain.
	ok := run(t, regotest.Options{Paths: []string{dir}, Run: "test_admin"})
	if ex, err := ok.Explain(context.Background()); err != nil || ex != nil {
		t.Fatalf("Explain of a passing run: %v, %v", ex, err)
	}
}

// A test over cases reports the case that failed.
func TestParameterizedFailure(t *testing.T) {
	dir := tree(t, map[string]string{
		"p/demo.rego": policy,
		"p/cases_test.rego": `package cases_test

import data.demo

test_doubles[name] if {
	some name, c in {"one": [1, 2], "two": [2, 4], "three": [3, 7]}
	demo.double(c[0]) == c[1]
}
`,
	})
	rep := run(t, regotest.Options{Paths: []string{dir}})
	if rep.OK() || len(rep.Results) != 1 {
		t.Fatalf("results %v", names(rep))
	}
	ex, err := rep.Explain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := regotest.FailureLines(&buf, ex["data.cases_test.test_doubles"]); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Logf("FailureLines:\n%s", out)
	if !strings.Contains(out, "case three:\n") || !strings.Contains(out, "cases_test.rego:7:") || strings.Count(out, "case ") != 1 ||
		!strings.Contains(out, "c[1]: 7") {
		t.Fatalf("FailureLines of a parameterized test:\n%s", out)
	}
}
