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

// A node from a kept chunk allocates nothing: the nodes of a decision come
// from its evaluation's chunks, not one allocation each (as when node's
// argument escaped: its address was taken for the case of no storeNodes).
func TestStoreNodesFromChunksAllocateNothing(t *testing.T) {
	snap := store.Empty(1)
	a := &storeNodes{terms: terms{}}
	a.node(storeDoc{}) // the first chunk
	a.reset()
	allocs := testing.AllocsPerRun(100, func() {
		root := a.node(storeDoc{snap: snap, nodes: a})
		for _, seg := range []string{"grants", "user:u", "sys"} {
			root = a.node(storeDoc{snap: snap, nodes: a, parent: root, seg: seg})
		}
		a.reset()
	})
	if allocs != 0 {
		t.Fatalf("taking 4 nodes from the kept chunk: %.1f allocations, want 0", allocs)
	}
}

// One subtreeBuilder, as an evaluation keeps it, builds each unit as a new
// one would — after a unit cut short by its limit, after a leaf that does
// not parse, with shared terms or without — and holds nothing of a unit
// once built.
func TestSubtreeBuilderReused(t *testing.T) {
	m := store.NewMemory()
	b := &store.Batch{}
	put := func(v string, segs ...string) {
		b.Ops = append(b.Ops, store.Op{Key: store.Key(segs...), Value: []byte(v)})
	}
	for u := range 6 {
		p := fmt.Sprintf("user:u%d", u)
		for i := range u * 3 {
			put(fmt.Sprintf(`{"assignment":"a%d","via":%q}`, i, p), "d", "grants", p, "sys", []string{"role", "permission"}[i%2], fmt.Sprintf("n%d", i/2), "service")
			put("true", "d", "grants", p, "sys", "role", fmt.Sprintf("n%d", i), fmt.Sprintf("project:p%d", i))
		}
	}
	put("{not json", "d", "grants", "user:bad", "sys", "role", "r", "service")
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := m.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var kept subtreeBuilder
	for _, ts := range []terms{nil, newTerms(nil)} {
		for _, max := range []int{-1, 4, 0} {
			for _, p := range []string{"user:u5", "user:bad", "user:u0", "user:u3", "user:u1", "user:none", "user:u4"} {
				prefix := store.Prefix("d", "grants", p, "sys")
				got, gotComplete, gotErr := kept.build(snap, prefix, max, ts)
				want, wantComplete, wantErr := (&subtreeBuilder{}).build(snap, prefix, max, ts)
				if (gotErr == nil) != (wantErr == nil) || gotComplete != wantComplete || (got == nil) != (want == nil) || (got != nil && got.Compare(want) != 0) {
					t.Fatalf("%s, max %d: the kept builder built %v (complete %v, %v), a new one %v (complete %v, %v)", p, max, got, gotComplete, gotErr, want, wantComplete, wantErr)
				}
				if kept.root != nil || kept.ts != nil || len(kept.stack)+len(kept.prev)+len(kept.segs) != 0 {
					t.Fatalf("%s, max %d: the builder holds what it built", p, max)
				}
				for _, o := range kept.stack[:cap(kept.stack)] {
					if o != nil {
						t.Fatalf("%s, max %d: the builder's stack holds an object", p, max)
					}
				}
				for _, s := range append(kept.prev[:cap(kept.prev)], kept.segs[:cap(kept.segs)]...) {
					if s != nil {
						t.Fatalf("%s, max %d: the builder holds a key's segment", p, max)
					}
				}
			}
		}
	}
}
