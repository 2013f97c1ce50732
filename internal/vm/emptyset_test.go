package vm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// emptySetsModule makes sets every way a plan does — partial sets, general
// refs of sets (found again in the object and added to), comprehensions,
// literals, under withs, kept as constants — most of them empty for some
// inputs: the vm shares one empty set until a set's first element.
const emptySetsModule = `package test

empty contains x if some x in data.none

empty_input contains x if some x in input.none

some_set contains x if some x in input.xs

nested[k] contains v if {
	some k, vs in input.m
	some v in vs
}

nested_empty[k] contains v if {
	some k, vs in input.m
	some v in vs
	v > 100
}

compr := {x | some x in input.xs; x > 1}

compr_empty := {x | some x in input.xs; x > 1000}

lit := set()

lit_union := {1} | set()

unions := [empty | empty_input, empty | some_set, compr_empty | compr]

with_input := x if x := some_set with input.xs as []

with_data := x if x := empty with data.none as [1]

with_then := [x, empty, empty_input] if x := empty with data.none as [2]

in_obj := {"a": empty, "b": compr_empty, "c": nested_empty}

arr := [empty, empty_input, set(), compr_empty]

added := [s | some i in [1, 2, 3]; s := {y | some y in input.xs; y > i}]
`

// Sets made empty and then added to, in evaluations one after another and
// in parallel (run by test/race), are topdown's: no set is changed through
// another, and the empty set they share stays empty.
func TestEmptySets(t *testing.T) {
	inputs := []string{
		`{"xs": [1, 2, 3], "m": {"a": [1, 200], "b": []}, "none": [9]}`,
		`{"xs": [], "m": {}}`,
		`{"xs": [5], "m": {"a": [300], "c": [1, 2]}}`,
		`{}`,
	}
	modules := map[string]string{"test.rego": emptySetsModule}
	data := ast.MustParseTerm(`{"none": []}`).Value
	p := plan(t, "x = data.test", emptySetsModule).Constants("store")
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
	for i := range inputs {
		if err := check(i); err != nil {
			t.Fatal(err)
		}
	}
	inParallel(t, 50, len(inputs), check)
	// Once more, after all that: nothing was added to a shared set.
	for i := range inputs {
		if err := check(i); err != nil {
			t.Fatal(err)
		}
	}
}
