package vm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/permatrix/permatrix/internal/vm"
)

// scansModule nests scans every way the vm keeps them (its stack of scans
// under way): in functions called from a scan's block, in a with inside a
// scan, over a relation's (walk's) values, broken out of by some/every,
// and a builtin error in the innermost one (input.zero: strict, the
// evaluation ends there; lenient, that value is undefined).
const scansModule = `package test

inner(xs) := [y | some x in xs; some y in walk(x); is_number(y[1]); y[1] > 1]

pairs contains [k, n] if {
	some k, xs in input.m
	n := count(inner(xs))
}

withs contains [k, v] if {
	some k, _ in input.m
	v := [z | some z in data.test.vals] with data.test.vals as input.m[k]
}

every_ok contains k if {
	some k, xs in input.m
	every x in xs { x != 99 }
}

first contains k if {
	some k, xs in input.m
	some x in xs
	x == 3
}

ratio contains [k, q] if {
	some k, xs in input.m
	some x in xs
	is_number(x)
	q := x / (x - input.zero)
}

vals := []

all := {"pairs": pairs, "withs": withs, "every_ok": every_ok, "first": first, "ratio": ratio}
`

// TestNestedScansAgreeAfterErrors runs scansModule on one Program from many
// goroutines, evaluations ending with an error mid-scan (strict) between
// ones that do not, and holds each answer to topdown's: an evaluation
// that left a scan behind (on the error path) would hand the next one from
// the pool a stack of scans whose innermost is not its own.
func TestNestedScansAgreeAfterErrors(t *testing.T) {
	ctx := context.Background()
	p := plan(t, "data.test.all = x", scansModule)
	inputs := []string{
		`{"m": {"a": [1, 2, 3], "b": [[4, 5], {"c": 6}], "c": []}, "zero": 0}`,
		`{"m": {"a": [1, 99], "b": [3, 3, 3], "d": [[[7]]]}, "zero": 0}`,
		`{"m": {"x": [5, 4, 3, 2, 1]}, "zero": 0}`,
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		rs, err := rego.New(rego.Query("x = data.test.all"), rego.Module("test.rego", scansModule),
			rego.ParsedInput(ast.MustParseTerm(in).Value)).Eval(ctx)
		if err != nil || len(rs) != 1 {
			t.Fatalf("topdown %s: %v %v", in, rs, err)
		}
		v, err := ast.InterfaceToValue(rs[0].Bindings["x"])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = v.String()
	}
	// With a zero that is the value of an element, ratio divides by zero
	// in the innermost scan.
	failing := ast.MustParseTerm(`{"m": {"a": [1, 2, 3], "b": [[4, 5], {"c": 6}]}, "zero": 2}`).Value
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if (j+w)%3 == 0 {
					if rs, err := p.Results(ctx, failing, vm.Value(ast.NewObject())); err == nil {
						errs <- fmt.Sprintf("strict: got %v, want divide by zero", rs)
						return
					}
					continue
				}
				i := (j + w) % len(inputs)
				rs, err := p.Results(ctx, ast.MustParseTerm(inputs[i]).Value, vm.Value(ast.NewObject()))
				if err != nil || len(rs) != 1 {
					errs <- fmt.Sprintf("%s: %v %v", inputs[i], rs, err)
					return
				}
				j, err := ast.JSONWithOpt(rs[0].Get(ast.StringTerm("x")).Value, ast.JSONOpt{SortSets: true})
				if err != nil {
					errs <- err.Error()
					return
				}
				v, err := ast.InterfaceToValue(j)
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := v.String(); got != want[i] {
					errs <- fmt.Sprintf("%s:\n vm      %s\n topdown %s", inputs[i], got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
