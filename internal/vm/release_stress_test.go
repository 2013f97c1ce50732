package vm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// releaseModule uses every part of an evaluation's state that release
// leaves to the evaluation itself to clear: rules' values (memos) set
// outside a with, inside one and read after it, in an evaluation that then
// fails (a conflict; strict, a builtin's error); frames of a call chain
// deep enough that the stack is grown mid-evaluation (frames then live on
// the old stack), with a panic at its bottom; functions with arguments
// called in and out of a with; a dynamic call; a scan stopped early; rules
// of data outside data.store (Constants keeps them) and of data.store.
func releaseModule(depth int) string {
	var b strings.Builder
	b.WriteString(`package test

a := input.v

b := [x | some x in input.xs; x > 1]

above := count([x | some x in input.xs; x > a])

inner := [a, b, above]

under := x if {
	input.within
	x := inner with input.v as 1000 with input.xs as [9, 9, 1]
} else := inner

g(x) := [x, a, count(b)]

gs := [x, y, z] if {
	x := g(1)
	y := g(2) with input.v as 7
	z := g(3)
}

conflict := 1 if input.conflict

conflict := 2 if input.conflict

ratio := a / input.zero

d.one := a

d.two := [b, a]

dyn := data.test.d[input.k]

has2 if {
	some x in input.xs
	x == 2
}

fixed := count(data.fixed) + 1

stored := data.store.n + fixed

deep := f0(input.v)

wb := y if y := in_with with input.v as 555

in_with := [v, w] if {
	v := v_in
	w := test.panic_if(object.get(input, "wboom", false))
}

v_in := input.v

`)
	for i := range depth {
		fmt.Fprintf(&b, "f%d(x) := y if {\n\tp := x + 1\n\tq := [p, p, {\"k\": p}]\n\tr := q[2].k\n\ty := f%d(r)\n}\n\n", i, i+1)
	}
	fmt.Fprintf(&b, "f%d(x) := x if {\n\tb := object.get(input, \"deepboom\", false)\n\tnot test.panic_if(b)\n}\n\n", depth)
	b.WriteString(`p := {
	"a": a, "b": b, "above": above, "under": under, "after": [a, b, above], "gs": gs,
	"conflict": [c | c := conflict], "ratio": [q | q := ratio], "dyn": [v | v := dyn], "has2": [h | h := has2],
	"fixed": fixed, "stored": [s | s := stored], "deep": deep, "wb": w, "v_in": v,
} if {
	w := wb
	v := v_in
}
`)
	return b.String()
}

// One Program (strict, lenient, keeping constants) evaluates cases in
// turn and from many goroutines, evaluations that panic (at the bottom
// of a grown stack, inside a with) or are cancelled mid-way between them:
// every answer is the one a Program never evaluated before gives.
func TestReleaseUnderStress(t *testing.T) {
	const query = "x = data.test.p"
	module := releaseModule(60)
	type tcase struct {
		input ast.Value
		data  ast.Value
	}
	var cases []tcase
	for i := range 12 {
		in := fmt.Sprintf(`{"v": %d, "xs": [%d, %d, 2], "within": %v, "conflict": %v, "zero": %d, "k": %q}`,
			i, i%5, i+1, i%2 == 0, i%4 == 3, i%3, []string{"one", "two", "none"}[i%3])
		store := fmt.Sprintf(`{"n": %d}`, i)
		if i%5 == 4 {
			store = `{}`
		}
		cases = append(cases, tcase{ast.MustParseTerm(in).Value, ast.MustParseTerm(`{"fixed": [1, 2, 3], "store": ` + store + `}`).Value})
	}
	// eval is an evaluation's answer: its x as JSON, or its error.
	eval := func(p *vm.Program, ctx context.Context, c tcase, data vm.Document) (got string, panicked bool) {
		defer func() {
			if recover() != nil {
				got, panicked = "", true
			}
		}()
		rs, err := p.Results(ctx, c.input, data)
		switch {
		case err != nil:
			return "error: " + err.Error(), false
		case len(rs) != 1:
			return fmt.Sprint(rs), false
		}
		return asJSON(t, rs[0].Get(ast.StringTerm("x"))), false
	}
	variants := map[string]func(*vm.Program) *vm.Program{
		"strict":            func(p *vm.Program) *vm.Program { return p },
		"lenient":           func(p *vm.Program) *vm.Program { return p.Lenient() },
		"constants":         func(p *vm.Program) *vm.Program { return p.Constants("store") },
		"lenient constants": func(p *vm.Program) *vm.Program { return p.Lenient().Constants("store") },
	}
	want := map[string][]string{}
	for name, variant := range variants {
		for _, c := range cases {
			// A Program's first evaluation: nothing pooled.
			got, _ := eval(variant(plan(t, query, module)), context.Background(), c, vm.Value(c.data))
			want[name] = append(want[name], got)
		}
	}
	for name, variant := range variants {
		p := variant(plan(t, query, module))
		// check evaluates case i after what breaks an evaluation mid-way
		// (j picks which): a panic at the bottom of the deep chain, a
		// panic inside a with, a cancellation while data is read.
		check := func(i, j int) error {
			c := cases[i]
			switch j % 4 {
			case 0, 1:
				flag := []string{"deepboom", "wboom"}[j%2]
				boom := ast.MustParseTerm(fmt.Sprintf(`{"v": %d, "xs": [7, 8, 2], "within": true, %q: true}`, 100+j, flag)).Value
				if _, panicked := eval(p, context.Background(), tcase{boom, c.data}, vm.Value(c.data)); !panicked {
					return fmt.Errorf("%s: %s did not panic", name, flag)
				}
			case 2:
				ctx, cancel := context.WithCancel(context.Background())
				got, _ := eval(p, ctx, c, cancelling{vm.Value(c.data), cancel})
				if !strings.HasPrefix(got, "error: ") {
					return fmt.Errorf("%s: a cancelled evaluation of case %d gave %s", name, i, got)
				}
			}
			if got, _ := eval(p, context.Background(), c, vm.Value(c.data)); got != want[name][i] {
				return fmt.Errorf("%s, case %d after %d:\n got  %s\n want %s", name, i, j%4, got, want[name][i])
			}
			return nil
		}
		for j := range 3 * len(cases) {
			if err := check((j*5)%len(cases), j); err != nil {
				t.Fatal(err)
			}
		}
		inParallel(t, 24, len(cases), func(i int) error { return check(i, i/3) })
	}
}
