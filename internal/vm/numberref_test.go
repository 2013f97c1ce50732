package vm_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"

	"github.com/permatrix/permatrix/internal/vm"
)

// A number of the plan (MakeNumberRefStmt: 1.5, 10000000000, any number
// literal that is not a small int) is a constant: it is made when the plan
// is prepared, not on every evaluation (a tenth of a decision's
// allocations at 1M were its term and its boxed value).
func TestNumberRefsAllocateNothing(t *testing.T) {
	const n, obj = ir.Local(5), ir.Local(8)
	numbers := []string{"1.5", "10000000000", "-2"}
	plan := func(makes int) *vm.Program {
		policy := &ir.Policy{Static: &ir.Static{}, Funcs: &ir.Funcs{}}
		for _, s := range append([]string{"x"}, numbers...) {
			policy.Static.Strings = append(policy.Static.Strings, &ir.StringConst{Value: s})
		}
		var stmts []ir.Stmt
		for i := range makes {
			stmts = append(stmts, &ir.MakeNumberRefStmt{Index: 1 + i%len(numbers), Target: n})
		}
		stmts = append(stmts,
			&ir.MakeObjectStmt{Target: obj},
			&ir.ObjectInsertStmt{Key: ir.Operand{Value: ir.StringIndex(0)}, Value: ir.Operand{Value: n}, Object: obj},
			&ir.ResultSetAddStmt{Value: obj})
		policy.Plans = &ir.Plans{Plans: []*ir.Plan{{Name: "q", Blocks: []*ir.Block{{Stmts: stmts}}}}}
		p, err := vm.New(policy)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	data := vm.Value(ast.NewObject())
	eval := func(p *vm.Program) (ast.Value, float64) {
		var got ast.Value
		allocs := testing.AllocsPerRun(200, func() {
			rs, err := p.Results(context.Background(), nil, data)
			if err != nil || len(rs) != 1 {
				t.Fatalf("got %v, %v", rs, err)
			}
			got = rs[0].Get(ast.StringTerm("x")).Value
		})
		return got, allocs
	}
	one, base := eval(plan(1))
	if want := ast.Number("1.5"); one.Compare(want) != 0 {
		t.Fatalf("x is %v, want %v", one, want)
	}
	many, allocs := eval(plan(30))
	if want := ast.Number("-2"); many.Compare(want) != 0 {
		t.Fatalf("x is %v, want %v", many, want)
	}
	if allocs > base {
		t.Errorf("29 more numbers made: %v allocations an evaluation, %v with one", allocs, base)
	}
}
