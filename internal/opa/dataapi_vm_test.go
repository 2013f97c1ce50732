package opa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/permatrix/permatrix/internal/opa"
)

// TestDataAPIDecisionsByVM: the Data API's decisions
// (/v1/data/permatrix/decision and each system's, as OPA clients ask
// them) answer alike when the vm runs them and when topdown does — for
// checks valid and broken and inputs of any shape — and the vm does run
// them: a decision allocates well under topdown's.
func TestDataAPIDecisionsByVM(t *testing.T) {
	db := tempDB(t)
	vm, td := bothEvaluators(t, db)
	c := &corpus{rng: rand.New(rand.NewPCG(5, 9)), cat: vm.Catalog, systems: vm.Catalog.IDs(),
		users:  []string{"u0", "u1", "u2", "u3"},
		groups: []string{"g0", "administrators", "ops"},
		ids:    []string{"p1", "p2", "p3"}}
	c.fill(t, db, 15, 300, nil)
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	paths := [][]string{{"permatrix", "decision"}}
	for _, id := range c.systems {
		paths = append(paths, []string{"permatrix", "systems", vm.Catalog[id].Package, "decision"})
	}
	var inputs []any
	for i := range 300 {
		raw, err := json.Marshal(c.check(i))
		if err != nil {
			t.Fatal(err)
		}
		var in any
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}
	for _, s := range []string{`null`, `1`, `"x"`, `[]`, `{}`, `{"subject": 5}`, `{"subject": "u0", "system": "blueprism", "action": 1}`,
		`{"subject": "u0", "system": "celonis-task-mining", "action": "view_project", "resource": "p1"}`,
		`{"subject": "u0", "system": "celonis-task-mining", "action": "create_project", "context": {"custom_project": true, "space": [1]}}`,
		`{"subject": "u0", "groups": "ops", "system": "uipath-task-mining-cloud", "action": "view_project", "resource": {"type": "project", "id": 7}}`} {
		var in any
		if err := json.Unmarshal([]byte(s), &in); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}
	ctx := context.Background()
	compared := 0
	for i, in := range inputs {
		for j, path := range paths {
			if i < 300 && j != i%len(paths) {
				continue // each check against one path; the odd inputs against all
			}
			ev, errV := vm.EvalData(ctx, snap, path, &in, opa.EvalOptions{})
			et, errT := td.EvalData(ctx, snap, path, &in, opa.EvalOptions{})
			if fmt.Sprint(errV) != fmt.Sprint(errT) {
				t.Fatalf("%v %v: vm error %v, topdown %v", path, in, errV, errT)
			}
			if errV == nil && (ev.Defined != et.Defined || !reflect.DeepEqual(ev.Result, et.Result)) {
				t.Fatalf("%v %v:\n vm      %v %#v\n topdown %v %#v", path, in, ev.Defined, ev.Result, et.Defined, et.Result)
			}
			compared++
		}
	}
	// No input at all, as GET /v1/data/permatrix/decision.
	ev, errV := vm.EvalData(ctx, snap, paths[0], nil, opa.EvalOptions{})
	et, errT := td.EvalData(ctx, snap, paths[0], nil, opa.EvalOptions{})
	if errV != nil || errT != nil || ev.Defined != et.Defined || !reflect.DeepEqual(ev.Result, et.Result) {
		t.Fatalf("no input: vm %v %v, topdown %v %v", ev, errV, et, errT)
	}
	t.Logf("%d evaluations compared", compared)

	// The benchmark's store and check, where the vm allocates 0.4 times
	// what topdown does (BenchmarkDecide).
	bench := benchStoreT(t, 200)
	bsnap, err := bench.View()
	if err != nil {
		t.Fatal(err)
	}
	defer bsnap.Close()
	raw, err := json.Marshal(benchCheck(3))
	if err != nil {
		t.Fatal(err)
	}
	var in any
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	allocs := func(p *opa.Policy) float64 {
		return testing.AllocsPerRun(50, func() {
			if _, err := p.EvalData(ctx, bsnap, paths[0], &in, opa.EvalOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	vmb, tdb := compile(t, bench, opa.WithEvaluator(opa.VM)), compile(t, bench, opa.WithEvaluator(opa.Topdown))
	if a, b := allocs(vmb), allocs(tdb); a > 0.7*b {
		t.Errorf("a Data API decision allocates %.0f times with the vm, %.0f with topdown: not run by the vm?", a, b)
	} else {
		t.Logf("a Data API decision allocates %.0f times with the vm, %.0f with topdown", a, b)
	}
}
