package opa

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/store"
)

// storeNodes, pooled between a Policy's evaluations, hold nothing of the
// last one after reset: no node points to its snapshot or parent, no
// unit is kept, the key buffer is empty — whether the evaluation took
// fewer nodes than the kept chunk or more — and a units map grown past
// keptUnits is let go.
func TestStoreNodesReset(t *testing.T) {
	snap := store.Empty(1)
	for _, n := range []int{1, firstNodes - 1, firstNodes, firstNodes + nodesChunk + 5} {
		a := &storeNodes{terms: terms{}}
		var parent *storeDoc
		for i := range n {
			parent = a.node(storeDoc{snap: snap, nodes: a, parent: parent, seg: fmt.Sprint(i)})
		}
		units := min(n, keptUnits+1)
		for i := range units {
			if a.units == nil {
				a.units = map[string]unitRead{}
			}
			a.units[fmt.Sprint(i)] = unitRead{t: ast.StringTerm("x"), small: true}
		}
		a.key = append(a.key, "some key"...)
		first := a.first
		a.reset()
		for i, d := range a.first {
			if d != (storeDoc{}) {
				t.Fatalf("%d nodes taken: node %d after reset: %+v", n, i, d)
			}
		}
		if &a.first[0] != &first[0] || len(a.free) != firstNodes || &a.free[0] != &a.first[0] || a.taken != 0 {
			t.Fatalf("%d nodes taken: after reset the kept chunk is not what is handed out next (free %d, taken %d)", n, len(a.free), a.taken)
		}
		if len(a.units) != 0 || len(a.key) != 0 {
			t.Fatalf("%d nodes taken: after reset %d units and key %q kept", n, len(a.units), a.key)
		}
		if units > keptUnits && a.units != nil {
			t.Fatalf("a units map of %d kept", units)
		}
		if a.node(storeDoc{seg: "next"}) != &first[0] {
			t.Fatalf("%d nodes taken: the next evaluation's first node is not the kept chunk's", n)
		}
	}
}
