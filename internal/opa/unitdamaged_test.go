package opa_test

import (
	"fmt"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// damagedUnit is a store whose unit user:bad/blueprism holds the leaves
// given (key segments below the unit, value), besides a good grant.
func damagedUnit(t *testing.T, leaves map[string][]string) store.Backend {
	t.Helper()
	m := store.NewMemory()
	b := &store.Batch{}
	b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "grants", "user:bad", "blueprism", "role", "1", "service"),
		Value: []byte(`{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}`)})
	for v, segs := range leaves {
		b.Ops = append(b.Ops, store.Op{Key: store.Key(append([]string{"d", "grants", "user:bad", "blueprism"}, segs...)...), Value: []byte(v)})
	}
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return m
}

// A corrupt leaf below the layout's leaves (a damaged store: a key longer
// than a grant's) fails the vm's read that reaches it, with an error: it
// does not panic.
func TestVMCorruptLeafBelowALeafFails(t *testing.T) {
	m := damagedUnit(t, map[string][]string{`{bad`: {"role", "0", "service", "extra"}})
	for _, read := range []string{
		`data.store.grants["user:bad"].blueprism.role["0"].service.extra`,
		`[x | some x in data.store.grants["user:bad"].blueprism.role["0"].service]`,
	} {
		vm, _, snap := readsOver(t, m, []string{read})
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
					t.Errorf("%s: the vm panicked: %v", read, p)
				}
			}()
			_, _, err = vm.Verdict(t.Context(), snap, readsInput())
		}()
		if err == nil {
			t.Errorf("%s: no error for a corrupt leaf", read)
		}
		t.Logf("%s: %v", read, err)
	}
}

// A leaf the store's parser reads (the JSON decoder stops at the value:
// a closing bracket after it is not "more") is read by a scan over its
// unit member by member as it is read whole, and as topdown reads it: the
// check that a scan's leaves parse is the parser's, not json.Valid's.
func TestVMScanReadsLeavesTheParserReads(t *testing.T) {
	m := damagedUnit(t, map[string][]string{
		`"x"]`:          {"role", "0", "service"},
		`{"a": 1}}`:     {"permission", "view_dashboards", "service"},
		` [true, 2] ] `: {"permission", "import_tile", "service"},
	})
	reads := []string{
		`[k | some k, _ in data.store.grants["user:bad"].blueprism.role]`,
		`[[k, v] | some k, v in data.store.grants["user:bad"].blueprism.permission]`,
		`[k | some k, v in data.store.grants["user:bad"].blueprism; v.view_dashboards]`,
		`data.store.grants["user:bad"].blueprism`,
		`data.store.grants["user:bad"].blueprism.role["0"].service`,
	}
	vm, td, snap := readsOver(t, m, reads)
	in := readsInput()
	vv, _, errV := vm.Verdict(t.Context(), snap, in)
	vt, _, errT := td.Verdict(t.Context(), snap, in)
	if errV != nil || errT != nil || len(vt) < len(reads) {
		t.Fatalf("vm: %v (%v); topdown: %v (%v)", vv, errV, vt, errT)
	}
	if fmt.Sprint(vv) != fmt.Sprint(vt) {
		t.Errorf("vm %q, topdown %q", vv, vt)
	}
}
