package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// numbersModule puts the plan's number literals (MakeNumberRefStmt: shared
// by every evaluation of a Program) everywhere a later statement or a
// builtin could write into what holds them: as the values and keys of
// objects built from input, elements of sets and arrays grown from input,
// values a with replaces, arguments of builtins that build values from
// theirs (object.union, json.patch, array.concat, sort, walk), rules
// Constants keeps (bundle data only) and rules it does not.
const numbersModule = `package test

half := 1.5

big := 10000000000

fixed := {"half": half, "big": big, "neg": -2, "pi": 3.14159}

keyed := {1.5: input.v, -2: input.s, 10000000000: [input.v, 0.25]}

grown contains x if some x in [1.5, -2, 0.25, input.v]

listed := array.concat([1.5, -2], [input.v, 10000000000])

sorted := sort([input.v, 1.5, -2, 0.25, 10000000000])

merged := object.union({"a": 1.5, "b": {"c": -2}}, {"b": {"d": input.v}, "e": 0.25})

patched := json.patch({"a": 1.5, "b": [-2]}, [{"op": "add", "path": "/b/-", "value": input.v}, {"op": "replace", "path": "/a", "value": 0.25}])

walked := [v | walk({"x": [1.5, {"y": -2}], "z": input.v}, [_, v]); is_number(v)]

sums := [1.5 + input.v, 10000000000 * 2, -2 - input.v]

under := x if {
	x := keyed with input.v as 2.5
}

withs := x if {
	x := [keyed, grown, sums] with input.v as 0.125
}

p := {
	"half": half, "big": big, "fixed": fixed, "keyed": keyed, "grown": grown,
	"listed": listed, "sorted": sorted, "merged": merged, "patched": patched,
	"walked": walked, "sums": sums, "under": under, "withs": withs,
	"data": [n | some n in data.fixed; n > 1.5],
}
`

// TestNumberLiteralsSharedAcrossEvaluations: a Program's number literals
// are made once and shared by its evaluations, so no statement and no
// builtin may write into them. Evaluations of one Program (plain, lenient,
// with Constants), many in turn and many at once, each agree with a fresh
// Program's first evaluation of the same input and with topdown; under
// -race, a write into a shared number by any of them is a race.
func TestNumberLiteralsSharedAcrossEvaluations(t *testing.T) {
	const query = "x = data.test.p"
	data := ast.MustParseTerm(`{"fixed": [1, 2, 2.5, 10000000000]}`).Value
	var inputs []ast.Value
	for i := range 8 {
		inputs = append(inputs, ast.MustParseTerm(fmt.Sprintf(`{"v": %d.5, "s": "s%d"}`, i, i)).Value)
	}
	variants := map[string]func(*vm.Program) *vm.Program{
		"strict":    func(p *vm.Program) *vm.Program { return p },
		"lenient":   func(p *vm.Program) *vm.Program { return p.Lenient() },
		"constants": func(p *vm.Program) *vm.Program { return p.Constants("store") },
	}
	eval := func(p *vm.Program, i int) (string, error) {
		rs, err := p.Results(context.Background(), inputs[i], vm.Value(data))
		if err != nil {
			return "", err
		}
		if len(rs) != 1 {
			return "", fmt.Errorf("%d results", len(rs))
		}
		return asJSON(t, rs[0].Get(ast.StringTerm("x"))), nil
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		want[i] = topdownJSON(t, numbersModule, in, data)
	}
	for name, variant := range variants {
		for i := range inputs {
			got, err := eval(variant(plan(t, query, numbersModule)), i)
			if err != nil || got != want[i] {
				t.Fatalf("%s, a fresh Program, input %d: got %s, %v\nwant (topdown) %s", name, i, got, err, want[i])
			}
		}
		p := variant(plan(t, query, numbersModule))
		check := func(i int) error {
			got, err := eval(p, i)
			if err != nil || got != want[i] {
				return fmt.Errorf("%s, input %d again: got %s, %v\nwant %s", name, i, got, err, want[i])
			}
			return nil
		}
		for j := range 3 * len(inputs) {
			if err := check(j % len(inputs)); err != nil {
				t.Fatal(err)
			}
		}
		inParallel(t, 3*len(inputs), len(inputs), check)
	}
}
