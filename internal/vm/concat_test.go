package vm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/permatrix/permatrix/internal/vm"
)

// concatPlan is a plan of one call, concat(sep, arr) (or arr itself
// without the call), arr the array ["a", input.x]: its result binds x.
func concatPlan(t *testing.T, call bool) *vm.Program {
	t.Helper()
	const in, arr, sep, out, obj = ir.Local(2), ir.Local(3), ir.Local(4), ir.Local(5), ir.Local(8)
	op := func(v ir.Val) ir.Operand { return ir.Operand{Value: v} }
	stmts := []ir.Stmt{
		&ir.DotStmt{Source: op(ir.Input), Key: op(sX), Target: in},
		&ir.MakeArrayStmt{Capacity: 2, Target: arr},
		&ir.ArrayAppendStmt{Value: op(sA), Array: arr},
		&ir.ArrayAppendStmt{Value: op(in), Array: arr},
		&ir.AssignVarStmt{Source: op(sIn), Target: sep},
		&ir.AssignVarStmt{Source: op(arr), Target: out},
	}
	if call {
		stmts[len(stmts)-1] = &ir.CallStmt{Func: "concat", Args: []ir.Operand{op(sep), op(arr)}, Result: out}
	}
	stmts = append(stmts,
		&ir.MakeObjectStmt{Target: obj},
		&ir.ObjectInsertStmt{Key: op(sX), Value: op(out), Object: obj},
		&ir.ResultSetAddStmt{Value: obj})
	return handPlan(t, &ir.Block{Stmts: stmts})
}

// concat of an array of strings, the policies' one use ("group:" + a
// name, a message's parts), allocates its string and its term, not
// topdown's sink (a buffer, a writer watching the cancellation and its
// timeout error, made for every call).
func TestConcatAllocatesItsString(t *testing.T) {
	input := ast.NewObject(ast.Item(ast.StringTerm("x"), ast.StringTerm("bee")))
	eval := func(p *vm.Program) (*ast.Term, float64) {
		var got *ast.Term
		allocs := testing.AllocsPerRun(200, func() {
			rs, err := p.Results(context.Background(), input, vm.Value(ast.NewObject()))
			if err != nil || len(rs) != 1 {
				t.Fatalf("got %v, %v", rs, err)
			}
			got = rs[0].Get(ast.StringTerm("x"))
		})
		return got, allocs
	}
	joined, withCall := eval(concatPlan(t, true))
	if want := ast.StringTerm("ainbee"); !joined.Equal(want) {
		t.Fatalf("concat gave %v, want %v", joined, want)
	}
	_, without := eval(concatPlan(t, false))
	// The string, its term and its boxed value.
	if withCall-without > 3 {
		t.Errorf("concat takes %v allocations (%v an evaluation, %v without it)", withCall-without, withCall, without)
	}
}

// concat is topdown's for every operand: the same string or the same
// error.
func TestConcatIsTopdowns(t *testing.T) {
	td := topdown.GetBuiltin("concat")
	big := strings.Repeat("x", 40000)
	for _, src := range [][2]string{
		{`""`, `["a", "b"]`}, {`", "`, `["a", "b", "c"]`}, {`":"`, `["a", "", "c"]`}, {`""`, `[]`},
		{`"-"`, `["only"]`}, {`"é"`, `["ü", "ß", "日本"]`}, {`""`, `{"b", "a"}`}, {`","`, `{"b", "a", "c"}`},
		{`""`, `["a", 1]`}, {`""`, `[1, "a"]`}, {`1`, `["a", "b"]`}, {`""`, `"ab"`}, {`""`, `{"a": "b"}`},
		{`""`, `[null, "a"]`}, {`","`, `{1, "a"}`},
		{`""`, `["` + big + `", "` + big + `"]`}, {`"` + big + `"`, `["a", "b", "c"]`},
	} {
		ops := []*ast.Term{ast.MustParseTerm(src[0]), ast.MustParseTerm(src[1])}
		run := func(f topdown.BuiltinFunc) (*ast.Term, error) {
			var out *ast.Term
			err := f(topdown.BuiltinContext{Context: context.Background()}, ops, func(t *ast.Term) error { out = t; return nil })
			return out, err
		}
		want, wantErr := run(td)
		got, err := run(vm.Concat(td))
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("concat(%.20s, %.40s): error %v, want %v", src[0], src[1], err, wantErr)
			continue
		}
		if err == nil && !got.Equal(want) {
			t.Errorf("concat(%.20s, %.40s) = %.40v, want %.40v", src[0], src[1], got, want)
		}
	}
}
