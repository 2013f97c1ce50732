package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/permatrix/permatrix/internal/vm"
)

const readKeptModule = `package test

obj := {"a": input.a, "b": [input.a, input.b], "c": {x | some x in input.list}}

arr := [x | some x in input.list; x != input.b]

set contains x if some x in input.list

num := sum(input.list) if count(input.list) > 0

f(x) := {"in": x, "list": input.list}

called := f(input.a)

withed := y if {
	y := obj with input.a as "withed"
}
`

// topdownAll is every binding of x of query under topdown, as sorted JSON.
func topdownAll(t *testing.T, query string, input ast.Value) []string {
	t.Helper()
	in, err := ast.JSON(input)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query(query), rego.Module("test.rego", readKeptModule), rego.Input(in)).Eval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		v, err := ast.InterfaceToValue(r.Bindings["x"])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, asJSON(t, ast.NewTerm(v)))
	}
	slices.Sort(out)
	return out
}

func readKeptInput(i int) ast.Value {
	raw, _ := json.Marshal(map[string]any{"a": fmt.Sprint("a", i), "b": i % 3, "list": []int{i, i + 1, i % 3, 7}})
	return ast.MustParseTerm(string(raw)).Value
}

// The values Read hands out are the caller's to keep (Read's doc): a
// value kept from one evaluation reads the same after many more of the
// same program, with other inputs, on the same goroutine (the pooled
// evaluation reused) and on others at once — for a result made in
// full (an object, an array, a set), a function's result, a result under
// with, several results (a set's members in turn) and none. Each agrees
// with topdown, under Eval and Read. Tried hard, nothing found: it
// passes on main (and under -race).
func TestReadValuesKeptAcrossEvaluations(t *testing.T) {
	ctx := context.Background()
	data := vm.Value(ast.NewObject())
	for _, query := range []string{"x = data.test.obj", "x = data.test.arr", "x = data.test.set", "x = data.test.set[_]",
		"x = data.test.num", "x = data.test.called", "x = data.test.withed", "x = data.test.obj with input.b as 99",
		"x = data.test.none", "x = data.test.arr[_]"} {
		p := plan(t, query, readKeptModule)
		read := func(input ast.Value) (kept []*ast.Term, at []string) {
			if err := p.Read(ctx, ast.NewTerm(input), data, func(vs []*ast.Term) error {
				kept = append(kept, vs...)
				for _, v := range vs {
					at = append(at, asJSON(t, v))
				}
				return nil
			}); err != nil {
				t.Fatalf("%s: Read: %v", query, err)
			}
			return kept, at
		}
		first := readKeptInput(1)
		kept, at := read(first)
		sorted := slices.Sorted(slices.Values(at))
		if want := topdownAll(t, query, first); !slices.Equal(sorted, want) {
			t.Fatalf("%s: Read %v, topdown %v", query, sorted, want)
		}
		vs, err := p.Eval(ctx, first, data)
		if err != nil {
			t.Fatal(err)
		}
		var evals []string
		for _, v := range vs {
			evals = append(evals, asJSON(t, v))
		}
		if slices.Sort(evals); !slices.Equal(evals, sorted) {
			t.Fatalf("%s: Eval %v, Read %v", query, evals, sorted)
		}
		for i := 2; i < 50; i++ {
			read(readKeptInput(i))
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					_ = p.Read(ctx, ast.NewTerm(readKeptInput(100*g+i)), data, func([]*ast.Term) error { return nil })
				}
			}()
		}
		wg.Wait()
		for i, v := range kept {
			if got := asJSON(t, v); got != at[i] {
				t.Errorf("%s: a kept value read %s, then %s after other evaluations", query, at[i], got)
			}
		}
	}
}
