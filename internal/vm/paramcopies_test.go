package vm_test

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// A function's first statements copy its parameters into locals of their
// own (AssignVarStmt, one a parameter: some 15 of a decision's). A
// parameter that holds a term is copied when the call starts and those
// statements are not run; one that holds data (a Document, read whole by
// the copy, which a missing one makes undefined) runs them as before.
// Every answer is topdown's: terms, data passed whole and in parts,
// missing data, undefined arguments and withs.
func TestParameterCopiesNotRun(t *testing.T) {
	const module = `package test

f(a, b, c) := [a, b, c]

g(x) := y if {
	y := x.k
}

g(x) := "none" if not x.k

h(x) := count(x)

p := f(input.a, input.b, 3)

q := [g(data.d), g(data.d.e), g(input), g({"k": 2})]

q2 := [g(data.missing)]

r := [h(data.d), h(data.d.e), h(input.xs)]

s := y if y := f(input.a, input.b, 3) with input.a as "w"

t := [h(data.missing)]

u := [f(x, x, x) | some x in input.xs]

w := [[g(v), h(v), f(v, k, v)] | some k, v in data.d; k != "k"]
`
	modules := map[string]string{"test.rego": module}
	data := ast.MustParseTerm(`{"d": {"k": 1, "e": {"k": "one", "2": true}}}`).Value
	for i, in := range []string{`{"a": 1, "b": [2], "k": 3, "xs": [1, 2]}`, `{"a": 2, "xs": []}`, `{}`} {
		for _, rule := range []string{"p", "q", "q2", "r", "s", "t", "u", "w"} {
			query := "x = [v | v := data.test." + rule + "]"
			want := topdownQuery(t, query, modules, ast.MustParseTerm(in).Value, data, false)
			p := plan(t, query, module).Lenient()
			// Data read on demand, and with members a scan hands out as
			// Documents (a parameter then holds one: w).
			for _, d := range []vm.Document{lazyDocument{ast.NewTerm(data)}, membersDocument{t: ast.NewTerm(data)}} {
				if _, got := stepsOfData(t, p, in, d); got != want {
					t.Errorf("%s, input %d, %T:\n vm      %s\n topdown %s", rule, i, d, got, want)
				}
			}
		}
	}
	// f of three terms: its three copies not run (17 statements before).
	rule := plan(t, "x = data.test.p", module)
	if steps, x := stepsOf(t, rule, `{"a": 1, "b": 2}`); steps != 14 || x != "[1,2,3]" {
		t.Fatalf("ran %d statements, want 14, for x = %s", steps, x)
	}
}

// stepsOfData is stepsOf over data read on demand.
func stepsOfData(t *testing.T, p *vm.Program, input string, data vm.Document) (uint64, string) {
	t.Helper()
	var in ast.Value
	if input != "" {
		in = ast.MustParseTerm(input).Value
	}
	before := p.Steps()
	rs, err := p.Results(context.Background(), in, data)
	if err != nil || len(rs) != 1 {
		t.Fatalf("got %v, %v", rs, err)
	}
	return p.Steps() - before, asJSON(t, rs[0].Get(ast.StringTerm("x")))
}
