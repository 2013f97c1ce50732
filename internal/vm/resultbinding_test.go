package vm_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"

	"github.com/permatrix/permatrix/internal/vm"
)

const resultBindingModule = `package test

d := {"allow": input.a, "reasons": [input.b]}

s contains input.a

s contains input.b
`

// A query's result is its binding's value (resultBinding): Eval and Read
// hand out the value, Results the object of the binding, the same as
// topdown's, for one result, several (a set's members in turn), a query
// of two variables (its object made as the plan makes it) and one without
// a result.
func TestResultBindingIsTopdowns(t *testing.T) {
	modules := map[string]string{"test.rego": resultBindingModule}
	data := ast.NewObject()
	input := ast.MustParseTerm(`{"a": true, "b": "b"}`).Value
	ctx := context.Background()
	for _, query := range []string{"x = data.test.d", "x = data.test.s[_]", "x = data.test.d.allow; y = 1", "x = data.test.none"} {
		p := plan(t, query, resultBindingModule)
		rs, err := p.Results(ctx, input, vm.Value(data))
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		vs, err := p.Eval(ctx, input, vm.Value(data))
		if query == "x = data.test.d.allow; y = 1" {
			// Eval wants one binding a result.
			if err == nil || len(rs) != 1 || rs[0].Len() != 2 {
				t.Fatalf("%s: Results %v; Eval %v, %v", query, rs, vs, err)
			}
			continue
		}
		if err != nil || len(vs) != len(rs) {
			t.Fatalf("%s: Eval %v, %v; Results %v", query, vs, err, rs)
		}
		got := ast.NewSet()
		for i, r := range rs {
			if r.Len() != 1 || r.Get(ast.StringTerm("x")) == nil {
				t.Fatalf("%s: a result %v", query, r)
			}
			got.Add(r.Get(ast.StringTerm("x")))
			if !got.Contains(vs[i]) {
				t.Fatalf("%s: Eval %v, Results %v", query, vs, rs)
			}
		}
		if query == "x = data.test.none" {
			if len(rs) != 0 {
				t.Fatalf("%s: %v", query, rs)
			}
			continue
		}
		if query == "x = data.test.s[_]" {
			// Two results, a member each (topdownQuery reads one result).
			if got.Compare(ast.NewSet(ast.BooleanTerm(true), ast.StringTerm("b"))) != 0 {
				t.Fatalf("%s: vm %v", query, got)
			}
			continue
		}
		want := topdownQuery(t, query, modules, input, data, true)
		if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want {
			t.Fatalf("%s:\n vm      %s\n topdown %s", query, got, want)
		}
	}
}

// A result whose value is undefined is what the plan's statements make of
// it: an object without the binding (Results), which Eval refuses, and the
// statements are counted as run.
func TestResultBindingUndefined(t *testing.T) {
	const obj = ir.Local(8)
	p := handPlan(t, &ir.Block{Stmts: []ir.Stmt{
		&ir.MakeObjectStmt{Target: obj},
		&ir.ObjectInsertStmt{Key: ir.Operand{Value: sX}, Value: ir.Operand{Value: undefinedLocal}, Object: obj},
		&ir.ResultSetAddStmt{Value: obj},
	}})
	ctx := context.Background()
	rs, err := p.Results(ctx, nil, vm.Value(ast.NewObject()))
	if err != nil || len(rs) != 1 || rs[0].Len() != 0 {
		t.Fatalf("got %v, %v; want one empty object", rs, err)
	}
	if p.Steps() != 3 {
		t.Fatalf("%d steps, want 3", p.Steps())
	}
	if vs, err := p.Eval(ctx, nil, vm.Value(ast.NewObject())); err == nil {
		t.Fatalf("Eval: %v, want an error", vs)
	}
}

// Eval does not make the object of a result's binding, which the plan
// makes and Eval took the value out of again (six allocations of every
// decision): it allocates at least three fewer than Results, which makes
// it.
func TestResultBindingNotMade(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: allocation counts are not the code's (race_on_test.go)")
	}
	p := plan(t, "x = data.test.d", resultBindingModule)
	input := ast.MustParseTerm(`{"a": true, "b": "b"}`).Value
	data := vm.Value(ast.NewObject())
	ctx := context.Background()
	eval := testing.AllocsPerRun(200, func() {
		if vs, err := p.Eval(ctx, input, data); err != nil || len(vs) != 1 {
			t.Fatalf("got %v, %v", vs, err)
		}
	})
	results := testing.AllocsPerRun(200, func() {
		if rs, err := p.Results(ctx, input, data); err != nil || len(rs) != 1 {
			t.Fatalf("got %v, %v", rs, err)
		}
	})
	if eval > results-3 {
		t.Errorf("Eval %v allocations an evaluation, Results %v", eval, results)
	}
}
