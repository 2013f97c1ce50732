package opa

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/vm"
)

// Reading a unit (here one that holds nothing: most users' memberships)
// allocates nothing besides the snapshot's scan: not its key twice (built,
// then again with the scan's terminator), nor a string of it for the
// evaluation's units (unitIndex lists it in a buffer kept between
// evaluations), nor errors.As's target for a corrupt leaf on every read.
func TestUnitReadAllocatesItsKey(t *testing.T) {
	snap, err := store.NewMemory().View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	a := &storeNodes{terms: terms{}}
	var root vm.Document = dataDoc{snap: snap, nodes: a}
	path := []*ast.Term{ast.StringTerm(permatrix.StoreRoot), ast.StringTerm("memberships"), ast.StringTerm("user:nobody")}
	g := ast.StringTerm("g")
	read := func() *storeDoc {
		d := root
		for _, seg := range path {
			if _, d, err = d.Child(seg); err != nil || d == nil {
				t.Fatalf("data.store.memberships: no node at %v (%v)", seg, err)
			}
		}
		// A lookup in the unit reads it whole.
		if v, c, err := d.Child(g); v != nil || c != nil || err != nil {
			t.Fatalf("nobody's memberships hold g: %v, %v, %v", v, c, err)
		}
		return d.(*storeDoc)
	}
	prefix := append(read().key(), 0)
	a.reset()
	scan := testing.AllocsPerRun(100, func() {
		if err := snap.Scan(prefix, nil, func(k, v []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	allocs := testing.AllocsPerRun(100, func() {
		read()
		if a.units.len() != 1 {
			t.Fatalf("%d units kept, want 1", a.units.len())
		}
		a.reset()
	})
	if allocs > scan {
		t.Errorf("a unit read takes %v allocations, its scan %v", allocs, scan)
	}
}
