package opa

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/store"
)

// storeNodes, pooled between a Policy's evaluations, hold nothing of the
// last one after reset: no node points to its snapshot or parent, no
// unit is kept, the key buffer is empty — whether the evaluation took
// fewer nodes than the kept chunk or more — and a units map grown past
// keptUnits is let go, as the listed units' keys past keptUnitKeys.
func TestStoreNodesReset(t *testing.T) {
	snap := store.Empty(1)
	for _, n := range []int{1, firstNodes - 1, firstNodes, firstNodes + nodesChunk + 5} {
		a := &storeNodes{terms: terms{}}
		var parent *storeDoc
		for i := range n {
			parent = a.node(storeDoc{snap: snap, nodes: a, parent: parent, seg: fmt.Sprint(i)})
		}
		units := min(n, unitsListed+keptUnits+1)
		for i := range units {
			a.units.put(fmt.Appendf(nil, "%d:%0*d", i, n*30, 0), unitRead{t: ast.StringTerm("x"), small: true})
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
		if a.units.len() != 0 || len(a.key) != 0 {
			t.Fatalf("%d nodes taken: after reset %d units and key %q kept", n, a.units.len(), a.key)
		}
		for i := range units {
			if _, ok := a.units.get(fmt.Appendf(nil, "%d:%0*d", i, n*30, 0)); ok {
				t.Fatalf("%d nodes taken: unit %d found after reset", n, i)
			}
		}
		if units > unitsListed+keptUnits && a.units.more != nil {
			t.Fatalf("a units map of %d kept", units-unitsListed)
		}
		if cap(a.units.keys) > keptUnitKeys {
			t.Fatalf("%d nodes taken: %d bytes of units' keys kept", n, cap(a.units.keys))
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
					if o != (openObject{}) {
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

// Every object a builder makes hashes as the same value built anew (from
// its JSON): a set or an object's key finds one by the other. Keys at
// random depths, with empty segments and segments shared with the
// previous key at another depth, read whole and cut short by a unit's
// limit, by a kept builder and a new one.
func TestSubtreeHashesAsItsCopy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 11))
	segs := []string{"", "a", "b", "ab", "role", "service", "0"}
	var kept subtreeBuilder
	for round := range 200 {
		m := store.NewMemory()
		batch := &store.Batch{}
		for range 1 + rng.IntN(40) {
			k := []string{"d", "grants", "user:u", "sys"}
			for range 1 + rng.IntN(5) {
				k = append(k, segs[rng.IntN(len(segs))])
			}
			batch.Ops = append(batch.Ops, store.Op{Key: store.Key(k...), Value: []byte(`{"assignment":"a","scope":{"type":"service"}}`)})
		}
		if _, err := m.Commit(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		snap, err := m.View()
		if err != nil {
			t.Fatal(err)
		}
		prefix := store.Prefix("d", "grants", "user:u", "sys")
		for _, max := range []int{-1, unitLeaves} {
			for _, b := range []*subtreeBuilder{&kept, {}} {
				obj, _, err := b.build(snap, prefix, max, newTerms(nil))
				if err != nil || obj == nil {
					t.Fatalf("round %d: %v, %v", round, obj, err)
				}
				var check func(v ast.Value)
				check = func(v ast.Value) {
					o, ok := v.(ast.Object)
					if !ok {
						return
					}
					cp, err := ast.InterfaceToValue(ast.MustJSON(o))
					if err != nil {
						t.Fatal(err)
					}
					if o.Hash() != cp.Hash() || o.Compare(cp) != 0 {
						t.Fatalf("round %d, max %d: %v hashes %d, its copy %d", round, max, o, o.Hash(), cp.Hash())
					}
					o.Foreach(func(_, v *ast.Term) { check(v.Value) })
				}
				check(obj)
			}
		}
		snap.Close()
	}
}

// A unitIndex finds every unit put in it, the listed ones and those in its
// map past unitsListed, and nothing else: keys that are one another's
// prefixes, the empty key, and keys no put made.
func TestUnitIndexFindsEveryUnit(t *testing.T) {
	var x unitIndex
	keys := []string{"", "a", "ab", "abc", "b", "a\x00", "\x00"}
	for i := range 3 * unitsListed {
		keys = append(keys, fmt.Sprintf("d\x00grants\x00u%d", i))
	}
	for round := range 2 {
		for i, k := range keys {
			x.put([]byte(k), unitRead{lo: i, hi: i + 1})
		}
		if x.len() != len(keys) {
			t.Fatalf("round %d: %d units held, %d put", round, x.len(), len(keys))
		}
		for i, k := range keys {
			if u, ok := x.get([]byte(k)); !ok || u.lo != i {
				t.Fatalf("round %d: unit %q: %+v, %v", round, k, u, ok)
			}
		}
		for _, k := range []string{"abcd", "c", "d\x00grants\x00u", "d\x00grants\x00u999", "\x00\x00"} {
			if u, ok := x.get([]byte(k)); ok {
				t.Fatalf("round %d: unit %q found: %+v", round, k, u)
			}
		}
		x.reset()
		if _, ok := x.get([]byte("a")); ok || x.len() != 0 {
			t.Fatalf("round %d: units held after reset", round)
		}
	}
}
