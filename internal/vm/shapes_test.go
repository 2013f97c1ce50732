package vm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"

	"github.com/permatrix/permatrix/internal/vm"
)

// stepsOf is how many statements one evaluation of p runs over input and
// an empty data, and its result's x.
func stepsOf(t *testing.T, p *vm.Program, input string) (uint64, string) {
	t.Helper()
	var in ast.Value
	if input != "" {
		in = ast.MustParseTerm(input).Value
	}
	before := p.Steps()
	rs, err := p.Results(context.Background(), in, vm.Value(ast.NewObject()))
	if err != nil || len(rs) != 1 {
		t.Fatalf("got %v, %v", rs, err)
	}
	return p.Steps() - before, asJSON(t, rs[0].Get(ast.StringTerm("x")))
}

// A statement that does nothing here (ReturnLocalStmt: the function names
// its return local; NopStmt) is dropped when the plan is prepared, not
// run: every rule's and function's last block is one, a tenth of a
// decision's statements.
func TestDoNothingStatementsNotRun(t *testing.T) {
	p := handPlan(t,
		&ir.Block{Stmts: []ir.Stmt{&ir.NopStmt{}, &ir.ReturnLocalStmt{Source: ir.Input}}},
		&ir.Block{Stmts: append([]ir.Stmt{&ir.NopStmt{}}, found(sA)...)})
	if steps, x := stepsOf(t, p, ""); steps != 2 || x != `"a"` {
		t.Fatalf("ran %d statements (want 2: the literal and the result) for x = %s", steps, x)
	}
	// A rule's value is found as before: its function's last block is
	// its ReturnLocalStmt alone.
	rule := plan(t, "x = data.test.p", "package test\n\np := input.a\n")
	steps, x := stepsOf(t, rule, `{"a": 1}`)
	if x != "1" {
		t.Fatalf("x = %s, want 1", x)
	}
	// The rule (the read, the value's assignment) and the query (the
	// call, the object, its insert, the result): no ReturnLocalStmt (nor
	// the copies of the read and of the call's value, the reset of the
	// new frame's value, the copy of the value into the return local:
	// TestCopiesOfMadeValuesNotRun, TestResetsOfNewFramesNotRun,
	// TestRuleValuesMadeInTheirReturnLocal).
	if steps != 6 {
		t.Fatalf("ran %d statements, want 6", steps)
	}
}

// A value the plan makes and at once copies into the variable it is for
// (the planner's call, or read of input, then AssignVarStmt) is made
// into that variable when the copy is the made local's only use: the copy
// is not run. What each rule decides stays topdown's, with values
// undefined on the way (the copy never made, the variable read only after
// it), in loops and from many goroutines at once.
func TestCopiesOfMadeValuesNotRun(t *testing.T) {
	const module = `package test

up := upper(input.s)

greet := concat(" ", ["hello", input.s])

names contains n if {
	some x in input.xs
	n := concat("", ["n", x])
	startswith(n, "n")
}

firsts := [y | some x in input.xs; y := substring(x, 0, 1)]

lens := {k: count(v) | some k, v in input.obj; is_string(v)}

maybe := concat("", [input.none, "x"])

typed := t if {
	t := type_name(input.s)
} else := "none"
`
	modules := map[string]string{"test.rego": module}
	inputs := []string{
		`{"s": "ab", "xs": ["a", "bb", "ccc"], "obj": {"a": "x", "b": 1, "c": "yyy"}}`,
		`{"s": 1, "xs": [], "obj": {}}`,
		`{"xs": ["a", 2], "obj": {"a": null}}`,
		`{}`,
	}
	p := plan(t, "x = data.test", module)
	want := make([]string, len(inputs))
	for i, in := range inputs {
		want[i] = topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, ast.NewObject(), false)
		if _, got := stepsOf(t, p.Lenient(), in); got != want[i] {
			t.Fatalf("input %d:\n vm      %s\n topdown %s", i, got, want[i])
		}
	}
	inParallel(t, 50, len(inputs), func(i int) error {
		rs, err := p.Lenient().Results(context.Background(), ast.MustParseTerm(inputs[i]).Value, vm.Value(ast.NewObject()))
		if err != nil || len(rs) != 1 {
			return fmt.Errorf("input %d: %v, %v", i, rs, err)
		}
		if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want[i] {
			return fmt.Errorf("input %d:\n vm      %s\n topdown %s", i, got, want[i])
		}
		return nil
	})
	// One rule of one read: its read's copy and the query's copy of the
	// rule's value are not run (11 statements before; 6 with its reset
	// and its copy into the return local not run either:
	// TestResetsOfNewFramesNotRun, TestRuleValuesMadeInTheirReturnLocal).
	rule := plan(t, "x = data.test.p", "package test\n\np := input.a\n")
	if steps, x := stepsOf(t, rule, `{"a": 1}`); steps != 6 || x != "1" {
		t.Fatalf("ran %d statements, want 6, for x = %s", steps, x)
	}
}

// A ResetLocalStmt before anything in its function names the local (every
// rule's first statement, resetting its value's local) resets what a new
// frame holds already, nothing: it is not run. One in a loop, or after
// the local was set, is: a rule's values, partial ones and else chains
// over many bodies, are topdown's.
func TestResetsOfNewFramesNotRun(t *testing.T) {
	const module = `package test

p := input.a

q contains x if some x in input.xs

q contains "b" if input.b

r := 1 if input.a == 1
else := 2 if input.a == 2
else := 3

s := [v | some x in input.xs; v := {y | some y in input.xs; y != x}]
`
	modules := map[string]string{"test.rego": module}
	for i, in := range []string{`{"a": 1, "xs": [1, 2], "b": true}`, `{"a": 2, "xs": []}`, `{"a": 3}`, `{}`} {
		want := topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, ast.NewObject(), false)
		if _, got := stepsOf(t, plan(t, "x = data.test", module).Lenient(), in); got != want {
			t.Fatalf("input %d:\n vm      %s\n topdown %s", i, got, want)
		}
	}
	// The rule of one read: no reset (9 statements before; 6 with its
	// value made in the return local: TestRuleValuesMadeInTheirReturnLocal).
	rule := plan(t, "x = data.test.p", "package test\n\np := input.a\n")
	if steps, x := stepsOf(t, rule, `{"a": 1}`); steps != 6 || x != "1" {
		t.Fatalf("ran %d statements, want 6, for x = %s", steps, x)
	}
}

// A rule's value is made into its function's return local directly: the
// planner makes it into a local of its own and copies it into the return
// local in a block of its own (IsDefinedStmt, AssignVarOnceStmt), two
// statements of every rule and function evaluated. Where the return local
// is named by nothing before that block nor the value's local by anything
// after it, the two are one local and the block is not run. Values,
// defaults, else chains, functions and conflicts are topdown's.
func TestRuleValuesMadeInTheirReturnLocal(t *testing.T) {
	const module = `package test

default p := 0

p := input.a

r := 1 if input.a == 1
else := 2 if input.a == 2

default s := "none"

s := "one" if input.a == 1
else := "two" if input.a == 2

f(x) := x + 1 if x > 1
else := 0

g := f(input.a)

h(x) := y if {
	y := x * 2
}

k := h(input.a)

c := 1 if input.c
c := 2 if input.d
`
	modules := map[string]string{"test.rego": module}
	p := plan(t, "x = data.test", module)
	for i, in := range []string{`{"a": 1}`, `{"a": 2, "c": true}`, `{"a": 3, "c": true, "d": false}`, `{}`, `{"a": "x"}`} {
		want := topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, ast.NewObject(), false)
		if _, got := stepsOf(t, p.Lenient(), in); got != want {
			t.Fatalf("input %d:\n vm      %s\n topdown %s", i, got, want)
		}
	}
	// Two values of c: topdown's conflict.
	_, err := p.Results(context.Background(), ast.MustParseTerm(`{"c": true, "d": true}`).Value, vm.Value(ast.NewObject()))
	if !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("got %v, want a conflict", err)
	}
	// The rule of one read (8 statements before): its read and the
	// assignment of its value, the query's call, object, insert and
	// result.
	rule := plan(t, "x = data.test.p", "package test\n\np := input.a\n")
	if steps, x := stepsOf(t, rule, `{"a": 1}`); steps != 6 || x != "1" {
		t.Fatalf("ran %d statements, want 6, for x = %s", steps, x)
	}
}

// A block of blocks and breaks only (the planner's scan of `some k, v in
// x` holds one in its body, run on every element: three statements for
// nothing) does the same on every run: it is worked out when the plan is
// prepared, left out when it leaves nothing and one break when it leaves
// blocks.
func TestBlocksOfBreaksWorkedOut(t *testing.T) {
	nothing := &ir.BlockStmt{Blocks: []*ir.Block{{Stmts: []ir.Stmt{
		&ir.BlockStmt{Blocks: []*ir.Block{{Stmts: []ir.Stmt{&ir.BreakStmt{Index: 1}}}}},
		&ir.BreakStmt{Index: 1},
	}}}}
	leaves := &ir.BlockStmt{Blocks: []*ir.Block{{}, {Stmts: []ir.Stmt{&ir.BreakStmt{Index: 1}}}}}
	for _, c := range []struct {
		name   string
		blocks []*ir.Block
		steps  uint64
		want   []string
	}{
		// The planner's: the results after it are made.
		{"nothing", []*ir.Block{{Stmts: append([]ir.Stmt{nothing}, found(sA)...)}}, 2, []string{"a"}},
		// It leaves its block: the results after it in the block are not
		// made, those of the next block are (one break, then the next
		// block's literal and result).
		{"leaves", []*ir.Block{{Stmts: append([]ir.Stmt{leaves}, found(sA)...)}, {Stmts: found(sB)}}, 3, []string{"b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := handPlan(t, c.blocks...)
			if got := run(t, c.blocks...); !slices.Equal(got, c.want) {
				t.Fatalf("results %v, want %v", got, c.want)
			}
			before := p.Steps()
			if _, err := p.Results(context.Background(), nil, vm.Value(ast.NewObject())); err != nil {
				t.Fatal(err)
			}
			if got := p.Steps() - before; got != c.steps {
				t.Fatalf("ran %d statements, want %d", got, c.steps)
			}
		})
	}
}

// An empty array the plan makes (MakeArrayStmt of capacity 0: a verdict's
// "reasons": [] or "missing": [], in every decision) is one array every
// evaluation shares, not an array and a term each time (that it stays
// empty: TestEmptyArraysShared).
func TestEmptyArraysAllocateNothing(t *testing.T) {
	const arr, obj = ir.Local(5), ir.Local(8)
	op := func(v ir.Val) ir.Operand { return ir.Operand{Value: v} }
	plan := func(makes int) *vm.Program {
		var stmts []ir.Stmt
		for range makes {
			stmts = append(stmts, &ir.MakeArrayStmt{Target: arr})
		}
		stmts = append(stmts,
			&ir.MakeObjectStmt{Target: obj},
			&ir.ObjectInsertStmt{Key: op(sX), Value: op(arr), Object: obj},
			&ir.ResultSetAddStmt{Value: obj})
		return handPlan(t, &ir.Block{Stmts: stmts})
	}
	data := vm.Value(ast.NewObject())
	allocs := func(p *vm.Program) float64 {
		return testing.AllocsPerRun(200, func() {
			rs, err := p.Results(context.Background(), nil, data)
			if err != nil || len(rs) != 1 || rs[0].Get(ast.StringTerm("x")).String() != "[]" {
				t.Fatalf("got %v, %v; want x = []", rs, err)
			}
		})
	}
	if one, many := allocs(plan(1)), allocs(plan(30)); many > one {
		t.Errorf("29 more empty arrays made: %v allocations an evaluation, %v with one", many, one)
	}
}

// The empty array every evaluation shares stays empty: an append to it
// makes a new one, in turn and from many goroutines at once (test/race
// runs it under the race detector).
func TestEmptyArraysShared(t *testing.T) {
	const arr, in, obj = ir.Local(5), ir.Local(6), ir.Local(8)
	op := func(v ir.Val) ir.Operand { return ir.Operand{Value: v} }
	plan := func(add bool) *vm.Program {
		stmts := []ir.Stmt{&ir.MakeArrayStmt{Target: arr}}
		if add {
			stmts = append(stmts, &ir.DotStmt{Source: op(ir.Input), Key: op(sX), Target: in},
				&ir.ArrayAppendStmt{Value: op(in), Array: arr})
		}
		stmts = append(stmts,
			&ir.MakeObjectStmt{Target: obj},
			&ir.ObjectInsertStmt{Key: op(sX), Value: op(arr), Object: obj},
			&ir.ResultSetAddStmt{Value: obj})
		return handPlan(t, &ir.Block{Stmts: stmts})
	}
	data := vm.Value(ast.NewObject())
	eval := func(p *vm.Program, input ast.Value) (string, error) {
		rs, err := p.Results(context.Background(), input, data)
		if err != nil || len(rs) != 1 {
			return "", fmt.Errorf("got %v, %v", rs, err)
		}
		return rs[0].Get(ast.StringTerm("x")).String(), nil
	}
	added, empty := plan(true), plan(false)
	inParallel(t, 50, 400, func(i int) error {
		x := fmt.Sprintf("input %d", i)
		if got, err := eval(added, ast.NewObject(ast.Item(ast.StringTerm("x"), ast.StringTerm(x)))); err != nil || got != fmt.Sprintf("[%q]", x) {
			return fmt.Errorf("x is %s (%v), want [%q]", got, err, x)
		}
		if got, err := eval(empty, nil); err != nil || got != "[]" {
			return fmt.Errorf("x is %s (%v), want []", got, err)
		}
		return nil
	})
}

// A comprehension's set is made in a local of its own and copied into its
// variable after the block that fills it; where that local is named by
// nothing else and the block cannot leave the one around it, the set is
// made in the variable and the copy is not run. Values are topdown's:
// empty and full sets, nested comprehensions, ones in loops.
func TestComprehensionSetsMadeInTheirVariable(t *testing.T) {
	const module = `package test

p := {x | some x in input.xs} | {"a"}

q := [s | some y in input.xs; s := {z | some z in input.xs; z != y}]

r := count({x | some x in input.xs; x != "b"})
`
	modules := map[string]string{"test.rego": module}
	p := plan(t, "x = data.test", module)
	for i, in := range []string{`{"xs": ["a", "b", "c"]}`, `{"xs": []}`, `{}`, `{"xs": ["b"]}`} {
		want := topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, ast.NewObject(), false)
		if _, got := stepsOf(t, p.Lenient(), in); got != want {
			t.Fatalf("input %d:\n vm      %s\n topdown %s", i, got, want)
		}
	}
	// A rule of one comprehension over an empty list: the set's make,
	// the block, the scan's read and the scan (no copy), the value's
	// assignment; the query's four.
	one := plan(t, "x = data.test.p", "package test\n\np := {x | some x in input.xs}\n")
	if steps, x := stepsOf(t, one, `{"xs": []}`); steps != 9 || x != "[]" {
		t.Fatalf("ran %d statements, want 9, for x = %s", steps, x)
	}
}

// A rule's value is made into its return local only where the block that
// copies it there runs whenever the value was set: a break out of an else
// chain after its value was set skips the copy, and the rule is then its
// default (a plan written by hand; the planner's else chains have none).
func TestRuleValueSkippedCopyKept(t *testing.T) {
	const value, ret, result, obj = ir.Local(3), ir.Local(2), ir.Local(4), ir.Local(8)
	op := func(v ir.Val) ir.Operand { return ir.Operand{Value: v} }
	chain := &ir.BlockStmt{Blocks: []*ir.Block{
		{Stmts: []ir.Stmt{&ir.AssignVarOnceStmt{Source: op(sA), Target: value}, &ir.BreakStmt{Index: 1}}},
		{Stmts: []ir.Stmt{&ir.IsDefinedStmt{Source: value}, &ir.AssignVarOnceStmt{Source: op(value), Target: ret}}},
	}}
	policy := &ir.Policy{
		Static: &ir.Static{},
		Funcs: &ir.Funcs{Funcs: []*ir.Func{{Name: "g0.data.test.f", Params: []ir.Local{ir.Input, ir.Data}, Return: ret, Blocks: []*ir.Block{
			{Stmts: []ir.Stmt{chain}},
			{Stmts: []ir.Stmt{&ir.IsUndefinedStmt{Source: ret}, &ir.AssignVarOnceStmt{Source: op(sB), Target: ret}}},
		}}}},
		Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "q", Blocks: []*ir.Block{{Stmts: []ir.Stmt{
			&ir.CallStmt{Func: "g0.data.test.f", Args: []ir.Operand{op(ir.Input), op(ir.Data)}, Result: result},
			&ir.MakeObjectStmt{Target: obj},
			&ir.ObjectInsertStmt{Key: op(sX), Value: op(result), Object: obj},
			&ir.ResultSetAddStmt{Value: obj},
		}}}}}},
	}
	for _, s := range strs {
		policy.Static.Strings = append(policy.Static.Strings, &ir.StringConst{Value: s})
	}
	p, err := vm.New(policy)
	if err != nil {
		t.Fatal(err)
	}
	if _, x := stepsOf(t, p, ""); x != `"b"` {
		t.Fatalf("x = %s, want \"b\" (the copy skipped, the default)", x)
	}
}

// A read of a term read from input (input.resource.id: the read of id
// from the read of resource) is a term too: its copy into its variable is
// not run either. A read of data is not made so (a copy reads it whole),
// nor one of a function's parameter (a parameter may be data). Values
// are topdown's.
func TestCopiesOfReadsOfInputNotRun(t *testing.T) {
	const module = `package test

id := input.resource.id

deep := input.a.b.c

f(r) := r.id

g := f(input.resource)

d := data.x.y

missing := input.resource.none.x
`
	modules := map[string]string{"test.rego": module}
	data := ast.MustParseTerm(`{"x": {"y": {"2": "two"}}}`).Value
	p := plan(t, "x = data.test", module)
	for i, in := range []string{`{"resource": {"id": "r1"}, "a": {"b": {"c": 1}}}`, `{"resource": {}}`, `{}`} {
		want := topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, data, false)
		rs, err := p.Lenient().Results(context.Background(), ast.MustParseTerm(in).Value, vm.Value(data))
		if err != nil || len(rs) != 1 {
			t.Fatalf("input %d: %v, %v", i, rs, err)
		}
		if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want {
			t.Fatalf("input %d:\n vm      %s\n topdown %s", i, got, want)
		}
	}
	// The rule: two reads and the value's assignment; the query's four.
	rule := plan(t, "x = data.test.id", "package test\n\nid := input.resource.id\n")
	if steps, x := stepsOf(t, rule, `{"resource": {"id": "r1"}}`); steps != 7 || x != `"r1"` {
		t.Fatalf("ran %d statements, want 7, for x = %s", steps, x)
	}
}
