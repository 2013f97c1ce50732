package vm_test

import (
	"context"
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
	// The rule (a reset, the read, its copy, the value's assignment; the
	// test that it is defined, the return local's assignment) and the
	// query (the call, its copy, the object, its insert, the result): no
	// ReturnLocalStmt.
	if steps != 11 {
		t.Fatalf("ran %d statements, want 11", steps)
	}
}
