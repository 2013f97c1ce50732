package opa

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/vm"
)

// A lookup of one leaf in a unit builds that leaf, not the unit: a
// principal holding 30 grants in a system costs such a lookup what one
// holding only the grant looked up costs, besides the scan of the longer
// unit (a decision at 1M read ~1.6 leaves in ~2.4 units and built every
// leaf and the objects above them).
func TestUnitBuildsOnlyWhatIsRead(t *testing.T) {
	m := store.NewMemory()
	b := &store.Batch{}
	grant := func(p, kind, name, scope string) {
		b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "grants", p, "blueprism", kind, name, scope),
			Value: fmt.Appendf(nil, `{"assignment":"a-%s-%s","kind":%q,%q:%q,"scope":{"type":"process_group","id":%q},"via":%q}`, p, scope, kind, kind, name, scope, p)})
	}
	for i := range 30 {
		grant("user:many", "role", fmt.Sprint(i%3), fmt.Sprintf("process_group:%d", i))
	}
	grant("user:many", "permission", "view_dashboards", "service")
	grant("user:one", "permission", "view_dashboards", "service")
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := m.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	a := &storeNodes{terms: terms{}}
	var root vm.Document = dataDoc{snap: snap, nodes: a}
	read := func(p string) *ast.Term {
		d := root
		var v *ast.Term
		for _, seg := range []string{permatrix.StoreRoot, "grants", p, "blueprism", "permission", "view_dashboards", "service", "via"} {
			if d == nil {
				v = v.Value.(ast.Object).Get(ast.StringTerm(seg))
				continue
			}
			if v, d, err = d.Child(ast.StringTerm(seg)); err != nil || (v == nil && d == nil) {
				t.Fatalf("%s: nothing at %s (%v)", p, seg, err)
			}
		}
		return v
	}
	allocs := map[string]float64{}
	scans := map[string]float64{}
	for _, p := range []string{"user:many", "user:one"} {
		if v := read(p); v == nil || !v.Equal(ast.StringTerm(p)) {
			t.Fatalf("%s's grant is via %v", p, v)
		}
		a.reset()
		allocs[p] = testing.AllocsPerRun(100, func() { read(p); a.reset() })
		prefix := append(store.DocNodeKey("grants", p, "blueprism"), 0)
		scans[p] = testing.AllocsPerRun(100, func() {
			if err := snap.Scan(prefix, nil, func(k, v []byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
	if extra := allocs["user:many"] - allocs["user:one"] - (scans["user:many"] - scans["user:one"]); extra > 0 {
		t.Errorf("reading one grant of 31 takes %v allocations, of 1 %v (scans %v, %v): %v for leaves not read",
			allocs["user:many"], allocs["user:one"], scans["user:many"], scans["user:one"], extra)
	}
	t.Logf("allocations: %v, scans: %v", allocs, scans)
}

// A unit of a damaged store holding a leaf above another leaf (a key that
// is another's prefix) reads as the store's subtree read builds it (the
// object below replaces the leaf), part by part and whole, and nothing
// panics.
func TestUnitLeafAboveALeaf(t *testing.T) {
	m := store.NewMemory()
	b := &store.Batch{}
	for _, k := range [][]string{
		{"d", "grants", "user:bad", "blueprism", "role", "0"},
		{"d", "grants", "user:bad", "blueprism", "role", "0", "service"},
		{"d", "grants", "user:bad", "blueprism", "role", "1", "service"},
	} {
		b.Ops = append(b.Ops, store.Op{Key: store.Key(k...), Value: fmt.Appendf(nil, "%q", k[len(k)-1])})
	}
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := m.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var root vm.Document = dataDoc{snap: snap, nodes: &storeNodes{terms: terms{}}}
	at := func(segs ...string) (*ast.Term, vm.Document) {
		d := root
		var v *ast.Term
		for _, seg := range append([]string{permatrix.StoreRoot}, segs...) {
			if v, d, err = d.Child(ast.StringTerm(seg)); err != nil || (v == nil && d == nil) {
				t.Fatalf("%v: nothing at %s (%v)", segs, seg, err)
			}
		}
		return v, d
	}
	want, err := subtreeAt(snap, store.DocNodeKey("grants", "user:bad", "blueprism"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, unit := at("grants", "user:bad", "blueprism")
	got, err := unit.Value()
	if err != nil || got == nil || got.Value.Compare(want) != 0 {
		t.Errorf("the unit whole: %v (%v), want %v", got, err, want)
	}
	_, zero := at("grants", "user:bad", "blueprism", "role", "0")
	if got, err := zero.Value(); err != nil || got.String() != `{"service": "service"}` {
		t.Errorf(`role "0": %v (%v)`, got, err)
	}
	if v, _ := at("grants", "user:bad", "blueprism", "role", "0", "service"); v.String() != `"service"` {
		t.Errorf(`role "0" at service: %v`, v)
	}
	var keys []string
	_, role := at("grants", "user:bad", "blueprism", "role")
	for _, d := range []vm.Document{role, zero} {
		ok, err := d.(vm.Members).Members(func(k, v *ast.Term, c vm.Document) error {
			keys = append(keys, k.String())
			if c != nil {
				_, err := c.(vm.Members).Members(func(k, v *ast.Term, _ vm.Document) error {
					keys = append(keys, k.String()+"="+v.String())
					return nil
				})
				return err
			}
			return nil
		})
		if !ok || err != nil {
			t.Fatalf("members: %v, %v", ok, err)
		}
	}
	if got := fmt.Sprint(keys); got != `["0" "service"="service" "1" "service"="service" "service"]` {
		t.Errorf("members: %s", got)
	}
}

// A scan over a unit read whole, or a part of one, hands out its members
// without building it (vm.Members): the names of a principal's roles
// parse none of their grants and build no object, and a member's value,
// looked into, parses the leaves it reaches only.
func TestUnitMembersReadOnDemand(t *testing.T) {
	m := store.NewMemory()
	b := &store.Batch{}
	for i := range 12 {
		b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "grants", "user:many", "blueprism", "role", fmt.Sprint(i%4), fmt.Sprintf("process_group:%d", i)),
			Value: fmt.Appendf(nil, `{"assignment":"a%d","scope":{"type":"process_group","id":"%d"},"via":"user:many"}`, i, i)})
	}
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := m.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	a := &storeNodes{terms: terms{}}
	var d vm.Document = dataDoc{snap: snap, nodes: a}
	for _, seg := range []string{permatrix.StoreRoot, "grants", "user:many", "blueprism", "role"} {
		if _, d, err = d.Child(ast.StringTerm(seg)); err != nil || d == nil {
			t.Fatalf("nothing at %s (%v)", seg, err)
		}
	}
	var roles []string
	var role3 vm.Document
	ok, err := d.(vm.Members).Members(func(k, v *ast.Term, c vm.Document) error {
		roles = append(roles, string(k.Value.(ast.String)))
		if v != nil || c == nil || !c.(vm.Bound).Bound() {
			t.Errorf("role %v: %v, %v: want a bound document", k, v, c)
		}
		role3 = c
		return nil
	})
	if !ok || err != nil || fmt.Sprint(roles) != "[0 1 2 3]" {
		t.Fatalf("members %v, %v: %v, want [0 1 2 3]", ok, err, roles)
	}
	parsed := func() (n int) {
		for _, e := range a.entries {
			if e.parsed {
				n++
			}
		}
		return n
	}
	if n := parsed(); n != 0 || len(a.values) != 0 {
		t.Errorf("the roles' names parsed %d leaves and built %d objects", n, len(a.values))
	}
	v, c, err := role3.Child(ast.StringTerm("process_group:7"))
	if err != nil || c != nil || v == nil || v.Value.(ast.Object).Get(ast.StringTerm("assignment")).String() != `"a7"` {
		t.Fatalf("role 3 at process_group:7: %v, %v, %v", v, c, err)
	}
	if n := parsed(); n != 1 || len(a.values) != 0 {
		t.Errorf("one grant looked up parsed %d leaves and built %d objects", n, len(a.values))
	}
	want, err := subtreeAt(snap, store.DocNodeKey("grants", "user:many", "blueprism", "role", "3"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := role3.Value(); err != nil || got.Value.Compare(want) != 0 {
		t.Errorf("role 3 whole: %v (%v), want %v", got, err, want)
	}
}
