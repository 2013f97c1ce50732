package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/permatrix/permatrix/internal/vm"
)

// test.panic_if panics when its argument is true: a builtin failing as no
// builtin should, recovered by the caller (as Echo's recoverer does).
func init() {
	rego.RegisterBuiltin1(&rego.Function{
		Name: "test.panic_if",
		Decl: types.NewFunction(types.Args(types.B), types.B),
	}, func(_ rego.BuiltinContext, op *ast.Term) (*ast.Term, error) {
		if op.Value.Compare(ast.Boolean(true)) == 0 {
			panic("test.panic_if")
		}
		return ast.BooleanTerm(false), nil
	})
}

// An evaluation leaves nothing behind for the next one that reuses its
// state: not its rules' values (memos), not its frames' locals — also
// when it ended in a panic, mid-frame and inside a with, where its frames
// were never cleared.
func TestReleaseLeavesNothing(t *testing.T) {
	const module = `package test

a := input.v

b := [x | some x in input.xs; x > 1]

c := v if {
	v := input.xs[1]
	v > 2
} else := "none"

boom if test.panic_if(input.boom)

inner := [a, boom] if input.deep

p := [a, b, c, inner] if {
	not input.within
}

p := [a, b, c, y] if {
	input.within
	y := inner with input.deep as true
}

p := "boom" if boom
`
	prog := plan(t, "data.test.p = x", module)
	data := vm.Value(ast.NewObject())
	eval := func(in string) (got string, panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		rs, err := prog.Results(context.Background(), ast.MustParseTerm(in).Value, data)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(rs), false
	}
	inputs := make([]string, 0, 8)
	for i := range 8 {
		inputs = append(inputs, fmt.Sprintf(`{"v": %d, "xs": [%d, %d], "within": %v, "boom": false}`, i, i%4, i+1, i%2 == 0))
	}
	want := map[string]string{}
	fresh := plan(t, "data.test.p = x", module)
	for _, in := range inputs {
		rs, err := fresh.Results(context.Background(), ast.MustParseTerm(in).Value, data)
		if err != nil {
			t.Fatal(err)
		}
		want[in] = fmt.Sprint(rs)
	}
	for round := range 200 {
		in := inputs[round%len(inputs)]
		if round%3 == 0 {
			boom := fmt.Sprintf(`{"v": %d, "xs": [7, 8, 9], "within": %v, "deep": true, "boom": true}`, 100+round, round%2 == 0)
			if _, panicked := eval(boom); !panicked {
				t.Fatalf("round %d: test.panic_if did not panic", round)
			}
		}
		if got, _ := eval(in); got != want[in] {
			t.Fatalf("round %d, input %s: got %s, want %s", round, in, got, want[in])
		}
	}
}
