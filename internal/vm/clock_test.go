package vm_test

import (
	"context"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"

	"github.com/permatrix/permatrix/internal/vm"
)

// An evaluation makes its time (what time.now_ns answers, and the clock
// of io.jwt.decode_verify and http.send) only when its plan calls a
// builtin whose value is not a function of its arguments: the time's term
// was three allocations of every decision, which reads no clock.
func TestTimeOnlyForClockReaders(t *testing.T) {
	const now, obj = ir.Local(5), ir.Local(8)
	plan := func(clock bool) *vm.Program {
		var stmts []ir.Stmt
		value := ir.Operand{Value: sA}
		if clock {
			stmts = append(stmts, &ir.CallStmt{Func: "time.now_ns", Result: now})
			value = ir.Operand{Value: now}
		}
		stmts = append(stmts,
			&ir.MakeObjectStmt{Target: obj},
			&ir.ObjectInsertStmt{Key: ir.Operand{Value: sX}, Value: value, Object: obj},
			&ir.ResultSetAddStmt{Value: obj})
		return handPlan(t, &ir.Block{Stmts: stmts})
	}
	eval := func(p *vm.Program) *ast.Term {
		var got *ast.Term
		func() {
			rs, err := p.Results(context.Background(), nil, vm.Value(ast.NewObject()))
			if err != nil || len(rs) != 1 {
				t.Fatalf("got %v, %v", rs, err)
			}
			got = rs[0].Get(ast.StringTerm("x"))
		}()
		return got
	}
	before := time.Now().UnixNano()
	stamp := eval(plan(true))
	after := time.Now().UnixNano()
	ns, ok := stamp.Value.(ast.Number).Int64()
	if !ok || ns < before || ns > after {
		t.Fatalf("time.now_ns is %v, not between %d and %d", stamp, before, after)
	}
	if !plan(true).ReadsClock() {
		t.Error("a plan calling time.now_ns does not read the clock")
	}
	a := eval(plan(false))
	if !a.Equal(ast.StringTerm("a")) {
		t.Fatalf("x is %v", a)
	}
	if plan(false).ReadsClock() {
		t.Error("a plan calling no builtin reads the clock")
	}
	if concatPlan(t, true).ReadsClock() {
		t.Error("a plan calling concat reads the clock")
	}
}
