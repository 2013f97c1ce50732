package opa_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// scanReads iterate units member by member (vm.Members) in the shapes a
// policy may take: nested scans over the same unit, a member read whole
// and looked into, compared, counted, passed to functions (whose parameter
// copies keep a scan's member unread), under withs, with numeric-looking
// keys looked up through a scan's variable.
var scanReads = []string{
	`[[r, s] | some r, v in data.store.grants["user:7"].blueprism.role; some s, _ in v]`,
	`[[r, v] | some r, v in data.store.grants["user:7"].blueprism.role; v.service.via]`,
	`[[r, v, v.service] | some r, v in data.store.grants["user:7"].blueprism.role; v == data.store.grants["user:7"].blueprism.role[r]]`,
	`[r | some r, v in data.store.grants["user:7"].blueprism.role; v == {"service": v.service, "process_group:0": v["process_group:0"]}]`,
	`[r | some r, v in data.store.grants["user:7"].blueprism.role; v["process_group:0"].scope == {"type": "process_group", "id": "0"}]`,
	`[[a, b] | some a, va in data.store.grants["user:7"].blueprism.role; some b, vb in data.store.grants["user:7"].blueprism.role; va == vb]`,
	`[[a, b, count(va), count(vb)] | some a, va in data.store.grants["user:7"].blueprism; some b, vb in va]`,
	`[[g, v] | some g, v in data.store.memberships["7"]]`,
	`[[g, v[0], v["0"]] | some g, v in data.store.grants["user:7"].blueprism.role]`,
	`[[k, v[1], v["1"], v[1.0]] | some k, v in data.store.grants["user:7"].blueprism]`,
	`[[k, x] | some k, v in data.store.grants["user:num"].blueprism.role; x := v[1]]`,
	`[[k, x] | some k, v in data.store.grants["user:num"].blueprism.role; x := v["1"]]`,
	`[[k, x] | some k, v in data.store.grants["user:num"].blueprism; x := v[2]]`,
	`[[k, x] | some k, v in data.store.grants["user:num"].blueprism; x := v["2"]]`,
	`data.store.grants["user:num"].blueprism.role[2]`,
	`data.store.grants["user:num"].blueprism.role[2][1]`,
	`[k | some k, v in data.store.grants["user:num"].blueprism.role; v[1]]`,
	`[[k, object.get(v, ["service", "via"], "none"), object.get(v, [1], "none"), object.get(v, "1", "none")] | some k, v in data.store.grants["user:num"].blueprism.role]`,
	`[[k, p] | some k, v in data.store.grants["user:7"].blueprism.role; walk(v, [p, _])]`,
	`[[k, count(v), is_object(v), object.keys(v)] | some k, v in data.store.grants["user:u33"].blueprism]`,
	`[[k, count(v)] | some k, v in data.store.grants["user:u32"].blueprism.role]`,
	`[[k, j] | some k, v in data.store.grants["user:u32"].blueprism.role; some j, _ in v]`,
	`[[k, j] | some k, v in data.store.grants["user:u33"].blueprism.role; some j, _ in v]`,
	`[k | some k, v in data.store.grants["user:7"].blueprism.role] with data.store.grants["user:7"].blueprism.role["9"] as {"x": 1}`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism.role] with data.store.grants["user:7"].blueprism.role["1"].service as 5`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism.role] with data.store.grants["user:7"].blueprism.permission as {}`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism] with data.store.grants["user:7"].blueprism.role["1"] as 5`,
	`[[k, f(v)] | some k, v in data.store.grants["user:7"].blueprism.role]`,
	`[[k, g(v, k)] | some k, v in data.store.grants["user:num"].blueprism.role]`,
	`[[k, h(v)] | some k, v in data.store.grants["user:num"].blueprism.role]`,
	`[[k, y] | some k, v in data.store.grants["user:7"].blueprism.role; y := f(v) with data.store.grants["user:7"].blueprism.role as {}]`,
	`[[k, x] | some k, v in data.store.grants["user:7"].blueprism.role; x := v with data.store.grants["user:7"].blueprism.role as {}]`,
	`[[k, y] | some k, v in data.store.grants["user:7"].blueprism.role; x := v; y := x.service.scope]`,
	`[[k, y] | some k, v in data.store.grants["user:num"].blueprism.role; x := v; y := x[1]]`,
	`[[k, y] | some k, v in data.store.grants["user:num"].blueprism.role; x := v; some i, y in x]`,
	`{k: v | some k, v in data.store.grants["user:7"].blueprism.role}`,
	`{k | some k, v in data.store.grants["user:7"].blueprism.role; v}`,
	`[v | some v in data.store.grants["user:7"].blueprism.role]`,
	`[v | some v in data.store.memberships["7"]]`,
	`[[k, v] | some k, v in data.store.scopes.blueprism]`,
	`[[k, count(v)] | some k, v in data.store.scopes.blueprism]`,
	`[k | some k, v in data.store.grants["user:7"].blueprism.role; v.service; not v["process_group:9"]]`,
	`[k | some k, v in data.store.grants["user:7"].blueprism.role; not v.service]`,
	`count([1 | some _, v in data.store.grants["user:7"].blueprism.role; some _, w in v; w.via == "user:7"])`,
	`[[k, v] | some k, v in data.store.grants["user:empty"].blueprism]`,
	`[[k, v] | some k, v in data.store.grants["user:ann"].nosys]`,
	`[x | some k, v in data.store.grants["user:7"].blueprism.role; x := json.marshal(v)]`,
	`[x | some k, v in data.store.grants["user:7"].blueprism.role; x := [v | true][0]]`,
	`[x | some k, v in data.store.grants["user:7"].blueprism.role; x := {"a": v}.a.service.via]`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism.role; v != {}]`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism.role; v == v]`,
	`[[k, m] | some k, v in data.store.grants["user:7"].blueprism.role; m := object.union(v, {"z": 1})]`,
	`[[k, v] | some k, v in data.store.grants["user:7"].blueprism.role; v in [v]]`,
	`[k | some k, v in data.store.grants["user:7"].blueprism.role; v[_].scope.type == "service"]`,
	`[[k, i] | some k, v in data.store.grants["user:7"].blueprism.role; some i; v[i].scope.type == "service"]`,
	`[[k, i] | some k, v in data.store.grants["user:num"].blueprism.role; some i; v[i]]`,
	`[[k, r] | some k, v in data.store.grants["user:num"].blueprism.role; r := data.store.grants["user:num"].blueprism.role[k][1]]`,
	// Functions given data: whole, a part, missing, numeric keys.
	`[one(data.store.memberships["7"]), one(data.store.memberships[7])]`,
	`[x | x := one(data.store.memberships.nobody)]`,
	`[two(data.store.memberships["7"], 1), two(data.store.memberships["7"], "1")]`,
	`[f(data.store.grants["user:7"].blueprism.role["1"]), h(data.store.grants["user:num"].blueprism.role)]`,
	`[h(data.store.grants["user:u33"].blueprism.role["0"]), h(data.store.grants["user:u32"].blueprism.role["0"])]`,
	`[[g, one(gs)] | some g, gs in data.store.grants["user:num"].blueprism]`,
	`[[k, two(v, 1)] | some k, v in data.store.grants["user:num"].blueprism]`,
	`[[k, two(v, "2")] | some k, v in data.store.grants["user:num"].blueprism]`,
	`[[k, three(v)] | some k, v in data.store.grants["user:num"].blueprism]`,
}

// The functions scanReads call with a scan's members.
const scanFuncs = `
f(x) := [x.service.via, count(x), x == x]
g(x, k) := [x[1], x["1"], k, object.get(x, "1", "none")]
one(x) := [x[1], x["1"], object.get(x, 1, "none")]
two(x, y) := [x[y], object.get(x, y, "none")]
three(x) := x[2]["service"].via
h(x) := y if {
	y := [k | some k, _ in x]
}
`

// TestVMScansUnitsAsTopdown is TestVMReadsTheStoreAsTopdown for scanReads.
func TestVMScansUnitsAsTopdown(t *testing.T) {
	db := tempDB(t)
	fillScanUnits(t, db)
	vm, td, snap := readsOverWith(t, db, scanReads, scanFuncs)
	in := readsInput()
	if n := compareReads(t, "scan reads", vm, td, snap, in); n < len(scanReads)*3/4 {
		t.Errorf("%d of %d reads defined", n, len(scanReads))
	}
}

// The vm's pooled store nodes (the units' arena, their entries and parts)
// keep nothing of one evaluation in the next: scanReads evaluated by many
// goroutines at once, each over its own snapshot, and again and again on
// the nodes others used, read what topdown reads, and what an evaluation
// answered is not changed by the evaluations after it.
func TestVMScansUnitsConcurrently(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	fillScanUnits(t, db)
	vm, td, snap := readsOverWith(t, db, scanReads, scanFuncs)
	in := readsInput()
	want, _, err := td.Verdict(ctx, snap, in)
	if err != nil || len(want) < len(scanReads)*3/4 {
		t.Fatalf("topdown: %d reads defined (%v)", len(want), err)
	}
	const workers, rounds = 4, 15
	kept := make([][][]string, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s, err := db.View()
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for range rounds {
				got, _, err := vm.Verdict(ctx, s, in)
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(got, want) {
					errs <- fmt.Errorf("vm %q, topdown %q", got, want)
					return
				}
				kept[w] = append(kept[w], got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range kept {
		for _, got := range kept[w] {
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("an answer kept changed: %q", got)
			}
		}
	}
}

// fillScanUnits writes the units scanReads read.
func fillScanUnits(t *testing.T, db store.Backend) {
	t.Helper()
	ctx := context.Background()
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		ms := []permatrix.Membership{{Group: "0", User: "7"}, {Group: "1", User: "7"}, {Group: "10", User: "7"}}
		for _, m := range ms {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		for _, name := range []string{"0", "1", "2", "10"} {
			if err := tx.PutRole(permatrix.Role{System: "blueprism", Name: name, Permissions: []string{"view_dashboards"}}); err != nil {
				return err
			}
		}
		pg := func(id string) permatrix.Scope { return permatrix.Scope{Type: "process_group", ID: id} }
		as := []permatrix.Assignment{
			{Subject: "user:7", System: "blueprism", Role: "1", Scope: pg("0")},
			{Subject: "user:7", System: "blueprism", Role: "1", Scope: permatrix.ServiceScope},
			{Subject: "user:7", System: "blueprism", Role: "0", Scope: permatrix.ServiceScope},
			{Subject: "user:7", System: "blueprism", Permission: "view_dashboards", Scope: permatrix.ServiceScope},
			{Subject: "user:num", System: "blueprism", Role: "2", Scope: permatrix.ServiceScope},
			{Subject: "user:num", System: "blueprism", Role: "10", Scope: pg("1")},
			{Subject: "user:num", System: "blueprism", Role: "1", Scope: pg("1")},
		}
		for i := range 33 {
			if i < 32 {
				as = append(as, permatrix.Assignment{Subject: "user:u32", System: "blueprism", Role: fmt.Sprint(i % 3), Scope: pg(fmt.Sprint(i))})
			}
			as = append(as, permatrix.Assignment{Subject: "user:u33", System: "blueprism", Role: fmt.Sprint(i % 3), Scope: pg(fmt.Sprint(i))})
		}
		for _, a := range as {
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
