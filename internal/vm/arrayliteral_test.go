package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

const arrayLiteralsModule = `package test

one := [input.a]

four := [input.a, input.b, input.c, input.d]

mixed := [input.a, "const", input.b]

maybe := [input.a, input.none, input.b]

nested := [[x, input.a, [input.b, x]] | some x in input.xs]

key := concat(":", [input.a, input.b])
`

// An array the plan makes and at once fills (MakeArrayStmt and the
// ArrayAppendStmts right after it, the planner's array literal) is made
// whole (arrayLiteral): its values are topdown's, with an undefined
// element, beside constants, evaluated in turn and from many goroutines at
// once (run by test/race: the array is each evaluation's own).
func TestArrayLiteralsAreTopdowns(t *testing.T) {
	modules := map[string]string{"test.rego": arrayLiteralsModule}
	data := ast.NewObject()
	p := plan(t, "x = data.test", arrayLiteralsModule)
	inputs := []string{
		`{"a": "a", "b": "b", "c": [1], "d": {"x": 1}, "xs": [1, 2]}`,
		`{"a": "1", "b": "2", "c": 3, "d": 4, "xs": []}`,
		`{"a": "a"}`,
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

// An array literal's elements are made in one slice, not a new array and
// term for each append (ArrayAppendStmt copies its array's header): four
// elements cost what one does.
func TestArrayLiteralsMadeWhole(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: allocation counts are not the code's (race_on_test.go)")
	}
	data := ast.NewObject()
	input := ast.MustParseTerm(`{"a": "a", "b": "b", "c": [1], "d": {"x": 1}}`).Value
	allocs := func(query string) float64 {
		q := plan(t, query, arrayLiteralsModule)
		return testing.AllocsPerRun(200, func() {
			rs, err := q.Results(context.Background(), input, vm.Value(data))
			if err != nil || len(rs) != 1 {
				t.Fatalf("got %v, %v", rs, err)
			}
		})
	}
	if one, four := allocs("x = data.test.one"), allocs("x = data.test.four"); four > one {
		t.Errorf("an array of four elements: %v allocations an evaluation, %v with one", four, one)
	}
}
