package vm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/vm"
)

// sharedSortModule has values every evaluation of a Program shares — a set
// and an object literal of constants (constLiteral), a set and an object
// Constants keeps (of bundle data only) — each read both ways at once: by
// what sorts it in place the first time (an iteration, a JSON conversion:
// OPA sorts a set's or an object's keys once, in the value itself) and by
// what reads its keys as they lie (a union, a difference, a copy).
const sharedSortModule = `package test

lit := {"e", "c", "a", "d", "b"}

olit := {"z": "1", "y": "2", "x": "3", "w": "4"}

kept := {x | some x in data.fixed}

okept := {x: "v" | some x in data.fixed}

p := {
	"iterated": [x | some x in lit],
	"union": lit | {input.s},
	"diff": lit - {input.s},
	"kiterated": [x | some x in kept],
	"kunion": kept | {input.s},
	"keys": [k | some k, _ in olit],
	"oinsert": object.union(olit, {input.s: "5"}),
	"okeys": [k | some k, _ in okept],
	"ounion": object.union(okept, {input.s: "v"}),
}
`

// TestSharedValuesSortedBeforeShared: a fresh Program's first evaluations,
// run at once, read the values they share both ways (sharedSortModule):
// under -race, a value sorted in place by one while another reads its
// keys is a race. Each answer is topdown's.
func TestSharedValuesSortedBeforeShared(t *testing.T) {
	data := ast.MustParseTerm(`{"fixed": ["q", "m", "t", "a", "k"]}`).Value
	input := ast.MustParseTerm(`{"s": "s"}`).Value
	want := topdownJSON(t, sharedSortModule, input, data)
	for round := range 20 {
		p := plan(t, "x = data.test.p", sharedSortModule)
		if round%2 == 1 {
			p = p.Constants("store")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				rs, err := p.Results(context.Background(), input, vm.Value(data))
				if err != nil || len(rs) != 1 {
					errs <- fmt.Errorf("round %d: %v, %v", round, rs, err)
					return
				}
				if got := asJSON(t, rs[0].Get(ast.StringTerm("x"))); got != want {
					errs <- fmt.Errorf("round %d: got %s, want %s", round, got, want)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}
