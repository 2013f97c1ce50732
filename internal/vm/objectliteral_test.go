package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

const objectLiteralsModule = `package test

two := {"a": input.a, "b": input.b}

six := {"a": input.a, "b": input.b, "c": input.c, "d": input.d, "e": input.e, input.k: input.f}

mixed := {"a": "const", "b": input.b, "c": "const"}

maybe := {"a": input.a, "b": input.none}

dups := {input.k: input.a, input.j: input.b}

nested := [{"a": input.a, "b": {"c": input.b, "d": x}} | some x in input.xs]
`

// An object the plan makes and at once fills (MakeObjectStmt and the
// ObjectInsertStmts right after it, the planner's object literal) is made
// whole (objectLiteral): its values are topdown's, with keys that turn out
// equal, with an undefined value, beside constants, evaluated in turn and
// from many goroutines at once (run by test/race: the object is each
// evaluation's own, and nothing shared is written).
func TestObjectLiteralsAreTopdowns(t *testing.T) {
	const module = objectLiteralsModule
	modules := map[string]string{"test.rego": module}
	data := ast.NewObject()
	p := plan(t, "x = data.test", module)
	inputs := []string{
		`{"a": 1, "b": "b", "c": [1], "d": {"x": 1}, "e": null, "f": 2, "k": "z", "j": "y", "xs": [1, 2]}`,
		`{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "k": "a", "j": "a", "xs": []}`,
		`{"a": 1, "k": 1, "j": 1.0}`,
		`{}`,
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		want[i] = topdownQuery(t, "x = data.test", modules, ast.MustParseTerm(in).Value, data, true)
	}
	check := func(i int) error {
		rs, err := p.Results(context.Background(), ast.MustParseTerm(inputs[i]).Value, vm.Value(data))
		if err != nil || len(rs) != 1 {
			return fmt.Errorf("input %d: got %v, %v", i, rs, err)
		}
		if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want[i] {
			return fmt.Errorf("input %d:\n vm      %s\n topdown %s", i, got, want[i])
		}
		return nil
	}
	for range 2 {
		for i := range inputs {
			if err := check(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	inParallel(t, 50, len(inputs), check)
	for i := range inputs {
		if err := check(i); err != nil {
			t.Fatal(err)
		}
	}
}

// An object literal's pairs are made in one block, not an allocation per
// key (an insert's pair was some 25 allocations of a decision at 1M): six
// keys cost what two do.
func TestObjectLiteralsMadeWhole(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: allocation counts are not the code's (race_on_test.go)")
	}
	data := ast.NewObject()
	input := ast.MustParseTerm(`{"a": 1, "b": "b", "c": [1], "d": {"x": 1}, "e": null, "f": 2, "k": "z"}`).Value
	allocs := func(query string) float64 {
		q := plan(t, query, objectLiteralsModule)
		return testing.AllocsPerRun(200, func() {
			rs, err := q.Results(context.Background(), input, vm.Value(data))
			if err != nil || len(rs) != 1 {
				t.Fatalf("got %v, %v", rs, err)
			}
		})
	}
	if two, six := allocs("x = data.test.two"), allocs("x = data.test.six"); six > two {
		t.Errorf("an object of six keys: %v allocations an evaluation, %v with two", six, two)
	}
}
