package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"

	"github.com/permatrix/permatrix/internal/vm"
)

// A literal of constants is made once and shared by every evaluation
// (constLiteral); a plan that adds more to the local holding it adds to a
// copy. Each evaluation here makes {"a", "b"} (or ["a", "b"], or
// {"a": "b"}) and adds input.x to it: the shared literal must never gain
// one evaluation's input, in turn or from many goroutines at once.
func TestConstLiteralsAreNotChanged(t *testing.T) {
	const lit, in, obj = ir.Local(5), ir.Local(6), ir.Local(8)
	op := func(v ir.Val) ir.Operand { return ir.Operand{Value: v} }
	readInput := &ir.DotStmt{Source: op(ir.Input), Key: op(sX), Target: in}
	kinds := map[string]struct {
		stmts []ir.Stmt
		want  func(x string) string
	}{
		"set": {[]ir.Stmt{
			&ir.MakeSetStmt{Target: lit},
			&ir.SetAddStmt{Value: op(sA), Set: lit}, &ir.SetAddStmt{Value: op(sB), Set: lit},
			readInput, &ir.SetAddStmt{Value: op(in), Set: lit},
		}, func(x string) string { return fmt.Sprintf(`{"a", "b", %q}`, x) }},
		// Three constants: a slice appended to three times has room for
		// a fourth, which an evaluation's append must not write into.
		"array": {[]ir.Stmt{
			&ir.MakeArrayStmt{Capacity: 4, Target: lit},
			&ir.ArrayAppendStmt{Value: op(sA), Array: lit}, &ir.ArrayAppendStmt{Value: op(sB), Array: lit},
			&ir.ArrayAppendStmt{Value: op(sAfter), Array: lit},
			readInput, &ir.ArrayAppendStmt{Value: op(in), Array: lit},
		}, func(x string) string { return fmt.Sprintf(`["a", "b", "after", %q]`, x) }},
		"object": {[]ir.Stmt{
			&ir.MakeObjectStmt{Target: lit},
			&ir.ObjectInsertStmt{Key: op(sA), Value: op(sB), Object: lit},
			readInput, &ir.ObjectInsertStmt{Key: op(sX), Value: op(in), Object: lit},
		}, func(x string) string { return fmt.Sprintf(`{"a": "b", "x": %q}`, x) }},
	}
	for name, k := range kinds {
		t.Run(name, func(t *testing.T) {
			stmts := append(k.stmts,
				&ir.MakeObjectStmt{Target: obj},
				&ir.ObjectInsertStmt{Key: op(sX), Value: op(lit), Object: obj},
				&ir.ResultSetAddStmt{Value: obj})
			p := handPlan(t, &ir.Block{Stmts: stmts})
			check := func(i int) error {
				x := fmt.Sprintf("input %d", i)
				rs, err := p.Results(context.Background(), ast.NewObject(ast.Item(ast.StringTerm("x"), ast.StringTerm(x))), vm.Value(ast.NewObject()))
				if err != nil || len(rs) != 1 {
					return fmt.Errorf("got %v, %v", rs, err)
				}
				if got, want := rs[0].Get(ast.StringTerm("x")), ast.MustParseTerm(k.want(x)); !got.Equal(want) {
					return fmt.Errorf("got %v, want %v", got, want)
				}
				return nil
			}
			for i := range 3 {
				if err := check(i); err != nil {
					t.Fatal(err)
				}
			}
			inParallel(t, 50, 400, check)
		})
	}
}
