package vm_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/permatrix/permatrix/internal/vm"
)

// The tests here hold statements to the Wasm compiler's semantics where
// the planner's plans do not reach (so OPA's cases cannot): each runs a
// plan written by hand.

// strs are the string constants of the hand-written plans.
var strs = []string{"x", "a", "b", "in", "after"}

const (
	sX = ir.StringIndex(iota)
	sA
	sB
	sIn
	sAfter
)

// undefinedLocal is a local no statement sets.
const undefinedLocal = ir.Local(9)

// found adds a result binding x to the string constant s.
func found(s ir.StringIndex) []ir.Stmt {
	const obj = ir.Local(8)
	return []ir.Stmt{
		&ir.MakeObjectStmt{Target: obj},
		&ir.ObjectInsertStmt{Key: ir.Operand{Value: sX}, Value: ir.Operand{Value: s}, Object: obj},
		&ir.ResultSetAddStmt{Value: obj},
	}
}

// handPlan prepares a hand-written plan of blocks, with strs as its string
// constants.
func handPlan(t *testing.T, blocks ...*ir.Block) *vm.Program {
	t.Helper()
	policy := &ir.Policy{
		Static: &ir.Static{},
		Plans:  &ir.Plans{Plans: []*ir.Plan{{Name: "q", Blocks: blocks}}},
		Funcs:  &ir.Funcs{},
	}
	for _, s := range strs {
		policy.Static.Strings = append(policy.Static.Strings, &ir.StringConst{Value: s})
	}
	p, err := vm.New(policy)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run evaluates a plan of blocks and returns the x of each result.
func run(t *testing.T, blocks ...*ir.Block) []string {
	t.Helper()
	p := handPlan(t, blocks...)
	rs, err := p.Results(context.Background(), nil, vm.Value(ast.NewObject()))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Get(ast.StringTerm("x")).Value.(ast.String)))
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An undefined operand equals only another undefined one
// (opa_value_compare): EqualStmt stops and NotEqualStmt goes on when just
// one is undefined.
func TestEqualUndefined(t *testing.T) {
	undef, a, b := ir.Operand{Value: undefinedLocal}, ir.Operand{Value: sA}, ir.Operand{Value: sB}
	for _, c := range []struct {
		name    string
		stmt    ir.Stmt
		defined bool
	}{
		{"equal/undefined and defined", &ir.EqualStmt{A: undef, B: a}, false},
		{"equal/defined and undefined", &ir.EqualStmt{A: a, B: undef}, false},
		{"equal/both undefined", &ir.EqualStmt{A: undef, B: undef}, true},
		{"equal/same", &ir.EqualStmt{A: a, B: a}, true},
		{"equal/different", &ir.EqualStmt{A: a, B: b}, false},
		{"not equal/undefined and defined", &ir.NotEqualStmt{A: undef, B: a}, true},
		{"not equal/defined and undefined", &ir.NotEqualStmt{A: a, B: undef}, true},
		{"not equal/both undefined", &ir.NotEqualStmt{A: undef, B: undef}, false},
		{"not equal/same", &ir.NotEqualStmt{A: a, B: a}, false},
		{"not equal/different", &ir.NotEqualStmt{A: a, B: b}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, &ir.Block{Stmts: append([]ir.Stmt{c.stmt}, found(sIn)...)})
			if defined := len(got) > 0; defined != c.defined {
				t.Fatalf("defined: got %v, want %v", defined, c.defined)
			}
		})
	}
}

// A with block is a block: a break out of it ends the with (which is then
// undefined), a break out of it and beyond goes on as out of any block.
func TestWithBreak(t *testing.T) {
	for _, c := range []struct {
		name string
		body []ir.Stmt
		want []string
	}{
		{"completes", nil, []string{"in", "after"}},
		{"break 0: the with is undefined", []ir.Stmt{&ir.BreakStmt{Index: 0}}, []string{"after"}},
		{"break 1: out of the with's block", []ir.Stmt{&ir.BreakStmt{Index: 1}}, []string{"after"}},
		{"break 2: out of the block around it", []ir.Stmt{&ir.BreakStmt{Index: 2}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			inner := &ir.Block{Stmts: append([]ir.Stmt{
				&ir.WithStmt{Local: ir.Input, Value: ir.Operand{Value: ir.Bool(true)}, Block: &ir.Block{Stmts: c.body}},
			}, found(sIn)...)}
			outer := &ir.Block{Stmts: append([]ir.Stmt{&ir.BlockStmt{Blocks: []*ir.Block{inner}}}, found(sAfter)...)}
			if got := run(t, outer); !equalStrings(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// A dynamic call through a path with an undefined part is undefined.
func TestCallDynamicUndefinedPath(t *testing.T) {
	call := &ir.CallDynamicStmt{
		Path:   []ir.Operand{{Value: sA}, {Value: undefinedLocal}},
		Args:   []ir.Local{ir.Input, ir.Data},
		Result: ir.Local(7),
	}
	if got := run(t, &ir.Block{Stmts: append([]ir.Stmt{call}, found(sIn)...)}); len(got) != 0 {
		t.Fatalf("got %v, want undefined", got)
	}
}

func plan(t *testing.T, query, module string) *vm.Program {
	t.Helper()
	p, err := vm.Plan(context.Background(), ast.MustParseBody(query), rego.Module("test.rego", module))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A builtin that builds a large value stops when the context is done: it
// watches the evaluation's Cancel.
func TestBuiltinsSeeDeadline(t *testing.T) {
	p := plan(t, "data.test.p = x", "package test\n\np := count(numbers.range(1, 2000000))\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Results(ctx, nil, vm.Value(ast.NewObject()))
	var te *topdown.Error
	if !errors.As(err, &te) || te.Code != topdown.CancelErr {
		t.Fatalf("got %v, want %s", err, topdown.CancelErr)
	}
}

// A Program's builtin errors end the evaluation (rego.StrictBuiltinErrors);
// Lenient makes them undefined, as topdown's default does.
func TestBuiltinErrors(t *testing.T) {
	p := plan(t, "data.test.p = x", "package test\n\np := 1 / input.zero\n")
	input := ast.MustParseTerm(`{"zero": 0}`).Value
	data := vm.Value(ast.NewObject())
	if rs, err := p.Results(context.Background(), input, data); err == nil {
		t.Fatalf("strict: got %v, want divide by zero", rs)
	}
	rs, err := p.Lenient().Results(context.Background(), input, data)
	if err != nil || len(rs) != 0 {
		t.Fatalf("lenient: got %v, %v; want undefined", rs, err)
	}
	if rs, err := p.Results(context.Background(), input, data); err == nil {
		t.Fatalf("Lenient changed p: got %v", rs)
	}
}

// A conflict is topdown's error, and ErrConflict.
func TestConflict(t *testing.T) {
	p := plan(t, "data.test.p = x", "package test\n\np := 1 if input.a\n\np := 2 if input.b\n")
	_, err := p.Results(context.Background(), ast.MustParseTerm(`{"a": true, "b": true}`).Value, vm.Value(ast.NewObject()))
	var te *topdown.Error
	if !errors.Is(err, vm.ErrConflict) || !errors.As(err, &te) || te.Code != topdown.ConflictErr ||
		te.Message != "rule data.test.p produced conflicting values" || te.Location == nil {
		t.Fatalf("got %#v", err)
	}
}

// readsDocument is data read on demand that records the paths read whole.
type readsDocument struct {
	t     *ast.Term
	path  string
	reads *[]string
}

func (d readsDocument) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	c, _, _ := vm.Value(d.t.Value).Child(key)
	if c == nil {
		return nil, nil, nil
	}
	return nil, readsDocument{c, d.path + "." + string(key.Value.(ast.String)), d.reads}, nil
}

func (d readsDocument) Value() (*ast.Term, error) {
	*d.reads = append(*d.reads, "data"+d.path)
	return d.t, nil
}

// A with on a part of data replaces that part and reads no more of data
// than without it: reading data whole would read all of a store read on
// demand (every assignment of permatrix's) for each evaluation.
func TestWithDataReadsOnDemand(t *testing.T) {
	p := plan(t, "data.test.p = x", "package test\n\nq := [data.a.c, data.a.b]\n\np := x if x := q with data.a.b as 1\n")
	var reads []string
	data := readsDocument{ast.MustParseTerm(`{"a": {"b": 0, "c": 2}, "big": {"d": 3}}`), "", &reads}
	rs, err := p.Results(context.Background(), nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !rs[0].Get(ast.StringTerm("x")).Equal(ast.MustParseTerm("[2, 1]")) {
		t.Fatalf("got %v, want x = [2, 1]", rs)
	}
	if len(reads) != 1 || reads[0] != "data.a.c" {
		t.Fatalf("read whole: %v, want data.a.c only", reads)
	}
}

// cancelling is data whose reading ends the evaluation's context: a
// deadline that passes while an evaluation runs.
type cancelling struct {
	vm.Document
	cancel context.CancelFunc
}

func (d cancelling) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	d.cancel()
	return d.Document.Child(key)
}

// An evaluation whose context is done before it ends is an error —
// topdown's, wrapping the context's — however few statements it runs (the
// statements look at the context every so many steps only): never a
// result, so a check cut by its deadline is never an allow.
func TestCancelledEvaluation(t *testing.T) {
	p := plan(t, "data.test.allow = x", "package test\n\nallow if data.users[input.user].admin\n")
	input := ast.MustParseTerm(`{"user": "alice"}`).Value
	users := vm.Value(ast.MustParseTerm(`{"users": {"alice": {"admin": true}}}`).Value)
	if rs, err := p.Results(context.Background(), input, users); err != nil || len(rs) != 1 {
		t.Fatalf("not cancelled: got %v, %v; want allow", rs, err)
	}
	before, cancel := context.WithCancel(context.Background())
	cancel()
	during, cancel := context.WithCancel(context.Background())
	for name, c := range map[string]struct {
		ctx  context.Context
		data vm.Document
	}{
		"before": {before, users},
		"during": {during, cancelling{users, cancel}},
	} {
		rs, err := p.Results(c.ctx, input, c.data)
		var te *topdown.Error
		if !errors.As(err, &te) || te.Code != topdown.CancelErr || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled %s: got %v, %v; want %s wrapping %v", name, rs, err, topdown.CancelErr, context.Canceled)
		}
	}
}

// A query OPA's planner refuses, though topdown evaluates it, is
// ErrUnsupported (its caller leaves it to topdown); a module or a query
// that does not parse or compile is an error of its own.
func TestPlanRefusalsUnsupported(t *testing.T) {
	for _, c := range []struct {
		name, module string
		unsupported  bool
	}{
		{"a rule body reading its own rules' prefix", "package t\n\np[r] := 1 if some r in [\"a\"]\n\np.b := p.a + 1\n\nq := p\n", true},
		{"iteration over a string", "package t\n\nq := [x | some x in \"abc\"]\n", true},
		{"a parse error", "package t\n\nq := 1 with input as 2\n", false},
		{"a type error", "package t\n\nq := 1 + \"a\"\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := vm.Plan(context.Background(), ast.MustParseBody("data.t.q"), rego.Module("m.rego", c.module))
			if err == nil {
				t.Fatal("planned")
			}
			if errors.Is(err, vm.ErrUnsupported) != c.unsupported {
				t.Fatalf("unsupported: want %v, got %v", c.unsupported, err)
			}
		})
	}
}

// NakedComprehensions finds a comprehension that is a whole expression,
// negated or not, and no other: one inside a term the compiler takes out
// into an expression of its own, which the planner plans.
func TestNakedComprehensions(t *testing.T) {
	c := ast.MustCompileModules(map[string]string{"m.rego": `package t

p if {
	{k: 1 | some k in input.ks}
	not [x | some x in input.xs]
}

q if [[x | some x in input.xs]]

r := {x | some x in input.xs}

s if {x | some x in input.xs} with input as {"xs": [1]}
`})
	var rows []int
	for _, l := range vm.NakedComprehensions(c.Modules) {
		rows = append(rows, l.Row)
	}
	slices.Sort(rows)
	if !slices.Equal(rows, []int{4, 5, 12}) {
		t.Fatalf("rows %v, want [4 5 12]", rows)
	}
}

// Steps counts the statements each evaluation runs, added up: the same
// plan evaluated twice over the same input has run twice the statements
// of once, and a Program made from it (Lenient) counts into the same total.
func TestStepsCountStatements(t *testing.T) {
	ctx := context.Background()
	p := handPlan(t, &ir.Block{Stmts: found(sA)}, &ir.Block{Stmts: found(sB)})
	if p.Steps() != 0 {
		t.Fatalf("a plan never evaluated has run %d statements", p.Steps())
	}
	if _, err := p.Eval(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Two blocks of two statements each, as prepared: the object of
	// constants is one literal made once (constLiteral), then the result.
	if got := p.Steps(); got != 4 {
		t.Fatalf("one evaluation ran %d statements, want 4", got)
	}
	if _, err := p.Lenient().Eval(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.Steps(); got != 8 {
		t.Fatalf("two evaluations ran %d statements, want 8", got)
	}
}
