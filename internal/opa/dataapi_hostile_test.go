package opa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// hostileDataAPI is a store whose ids look like numbers and odd strings,
// the two evaluators of the default bundle over it, and the Data API paths
// the vm serves.
type hostileDataAPI struct {
	vm, td *opa.Policy
	snap   store.Snapshot
	paths  [][]string
	cat    permatrix.Catalog
}

func newHostileDataAPI(t testing.TB) *hostileDataAPI {
	db := tempDB(t)
	vm, td := bothEvaluators(t, db)
	c := &corpus{rng: rand.New(rand.NewPCG(11, 17)), cat: vm.Catalog, systems: vm.Catalog.IDs(),
		users:  []string{"5", "1.0", "u0", "ü", "0"},
		groups: []string{"1", "true", "g0", "null"},
		ids:    []string{"7", "p1", "x y"}}
	c.fill(t, db, 15, 300, nil)
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	h := &hostileDataAPI{vm: vm, td: td, snap: snap, cat: vm.Catalog, paths: [][]string{{"permatrix", "decision"}}}
	for _, id := range c.systems {
		h.paths = append(h.paths, []string{"permatrix", "systems", vm.Catalog[id].Package, "decision"})
	}
	return h
}

// compare evaluates data.<path> with the input JSON raw (nil: none) by both
// evaluators and fails on any difference.
func (h *hostileDataAPI) compare(t *testing.T, path []string, raw []byte) {
	t.Helper()
	var inp *any
	if raw != nil {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var in any
		if err := d.Decode(&in); err != nil {
			return
		}
		inp = &in
	}
	ctx := context.Background()
	ev, errV := h.vm.EvalData(ctx, h.snap, path, inp, opa.EvalOptions{})
	et, errT := h.td.EvalData(ctx, h.snap, path, inp, opa.EvalOptions{})
	if fmt.Sprint(errV) != fmt.Sprint(errT) {
		t.Fatalf("%v %s: vm error %v, topdown %v", path, raw, errV, errT)
	}
	if errV == nil && (ev.Defined != et.Defined || !reflect.DeepEqual(ev.Result, et.Result)) {
		t.Fatalf("%v %s:\n vm      %v %#v\n topdown %v %#v", path, raw, ev.Defined, ev.Result, et.Defined, et.Result)
	}
}

// hostileValue is a JSON value of a random shape: the store's ids as
// strings and as numbers, catalog names, and values of every other type.
func hostileValue(rng *rand.Rand, cat permatrix.Catalog, depth int) any {
	ids := []string{"5", "1.0", "u0", "ü", "0", "1", "true", "g0", "null", "7", "p1", "x y", "", "service", "project", "user:5", "group:1"}
	for id, sys := range cat {
		ids = append(ids, id, sys.Package)
		ids = append(ids, slices.Sorted(maps.Keys(sys.Actions))...)
		ids = append(ids, sys.ScopeTypes...)
	}
	switch n := rng.IntN(12); {
	case n < 4:
		return ids[rng.IntN(len(ids))]
	case n == 4:
		return json.Number([]string{"5", "0", "1", "1.0", "7", "-0", "1e2", "5.0", "1e400"}[rng.IntN(9)])
	case n == 5:
		return rng.IntN(2) == 0
	case n == 6:
		return nil
	case n < 9 && depth < 3:
		var a []any
		for range rng.IntN(4) {
			a = append(a, hostileValue(rng, cat, depth+1))
		}
		return a
	case depth < 3:
		o := map[string]any{}
		keys := []string{"type", "id", "subject", "groups", "system", "action", "resource", "context", "custom_project", "space"}
		for range rng.IntN(4) {
			o[keys[rng.IntN(len(keys))]] = hostileValue(rng, cat, depth+1)
		}
		return o
	}
	return "x"
}

// hostileInput is a check's input with each field now and then of a
// hostile shape.
func hostileInput(rng *rand.Rand, cat permatrix.Catalog, valid permatrix.Check) any {
	raw, _ := json.Marshal(valid)
	var in map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	_ = d.Decode(&in)
	for _, k := range []string{"subject", "groups", "system", "action", "resource", "context"} {
		if rng.IntN(3) == 0 {
			in[k] = hostileValue(rng, cat, 0)
		}
	}
	if rng.IntN(10) == 0 {
		return hostileValue(rng, cat, 0)
	}
	return in
}

// TestDataAPIByVMHostileInputs: the Data API's decisions answer alike by
// the vm and by topdown for inputs whose fields are of any type — numbers
// where the store has number-like ids, arrays and objects of groups,
// resources whose type or id is not a string — on the top decision and on
// each system's (which no input validation guards).
func TestDataAPIByVMHostileInputs(t *testing.T) {
	h := newHostileDataAPI(t)
	rng := rand.New(rand.NewPCG(3, 4))
	c := &corpus{rng: rng, cat: h.cat, systems: h.cat.IDs(), users: []string{"5", "u0", "0"}, groups: []string{"1", "g0"}, ids: []string{"7", "p1"}}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		raw, err := json.Marshal(hostileInput(rng, h.cat, c.check(i)))
		if err != nil {
			t.Fatal(err)
		}
		h.compare(t, h.paths[i%len(h.paths)], raw)
	}
}

// FuzzDataAPIByVM: any JSON input, on any of the Data API's decisions the
// vm serves, answers as topdown answers it. `go test ./internal/opa -run
// '^$' -fuzz FuzzDataAPIByVM -fuzztime 2m`.
func FuzzDataAPIByVM(f *testing.F) {
	for _, s := range []string{`null`, `{}`, `{"subject":5,"system":"blueprism","action":"view_dashboards"}`,
		`{"subject":"5","groups":[1,"1",{"a":1}],"system":"celonis-task-mining","action":"view_project","resource":{"type":"project","id":7}}`,
		`{"subject":"u0","system":"uipath-task-mining-cloud","action":"view_project","resource":{"type":7}}`} {
		for i := range 8 {
			f.Add(uint8(i), []byte(s))
		}
	}
	h := newHostileDataAPI(f)
	f.Fuzz(func(t *testing.T, p uint8, raw []byte) {
		h.compare(t, h.paths[int(p)%len(h.paths)], raw)
	})
}
