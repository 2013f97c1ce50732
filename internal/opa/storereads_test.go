package opa_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// storeReads are Rego expressions reading data.store in the ways a bundle
// may: whole and index by index, iterated at each level, missing and
// beyond a leaf, with numeric keys, in builtins, under with statements
// replacing parts of it and reading above, below and beside them.
var storeReads = []string{
	`count(data.store.grants)`,
	`count(data.store.projects)`,
	`[k | some k, _ in data.store.memberships]`,
	`{k | some k, _ in data.store}`,
	`data.store.grants[input.assignment.subject][input.assignment.system]`,
	`object.keys(data.store.roles.blueprism)`,
	`data.store.revision`,
	`data.store.grants["user:ann"].blueprism.role["0"]`,
	`data.store.grants["user:ann"].blueprism.role[0]`,
	`data.store.grants["user:ann"].blueprism.role[0].service.assignment`,
	`[x | walk(data.store.memberships, x)]`,
	`data.store.memberships.ann.ops == true`,
	`data.store.memberships.ann.nope`,
	`data.store[concat("", ["gr", "ants"])][concat(":", ["user", "ann"])]`,
	`data.store.nope`,
	`data.store.grants.x.y.z.w.v.u.t`,
	`data.store.grants["user:ann"].blueprism.role["0"].service.scope.type`,
	`data.store.grants["user:ann"].blueprism.role["0"].service.scope.type.x`,
	`data.store.projects.blueprism.p1.created_by`,
	`[[p, r] | data.store.grants[p][_].role[r]]`,
	`[p | some p; data.store.grants[p]]`,
	`[s | some s, x in data.store.grants["user:ann"]; x.role]`,
	`data.store.grants["user:nobody"] == {}`,
	`count(data.store.grants["user:nobody"])`,
	`data.store.roles.blueprism[1].permissions[0]`,
	`data.store.roles.blueprism["1"].permissions["0"]`,
	`data.store.memberships[1]`,
	`[x | some x in data.store.memberships["1"]]`,
	`{g | data.store.memberships[input.actor][g]}`,
	`object.get(data.store.memberships, [input.actor, "ops"], false)`,
	`[k | data.store.scopes.blueprism[k][_]]`,
	`input.assignment.subject in object.keys(data.store.grants)`,
	`data.store.grants["user:ann"] with data.store.grants as {"user:ann": 1}`,
	`[data.store.roles.blueprism.r1, data.store.memberships.ann] with data.store.roles.blueprism.r1 as {"permissions": []}`,
	`[data.store.revision, count(data.store.roles)] with data.store.roles.x as 1`,
	`data.store with data.store.grants as {}`,
	`[k | some k, _ in data.store.grants] with data.store.grants["user:zed"] as {}`,
	`[[k, v] | some k, v in data.store.memberships] with data.store.memberships.ann as {"new": true}`,
	`data.store.memberships with data.store.memberships.ann as {"new": true}`,
	`count(data.store.grants["user:ann"].blueprism.role) with data.store.grants["user:ann"].blueprism.role["9"] as {}`,
	// user:big holds more grants in one system than a unit read whole
	// (unitLeaves): read a leaf at a time.
	`count(data.store.grants["user:big"].blueprism.role["0"])`,
	`data.store.grants["user:big"].blueprism.role["0"]["process_group:7"].assignment`,
	`data.store.grants["user:big"].blueprism.role["0"]["process_group:x"]`,
	`[s | some s, _ in data.store.grants["user:big"].blueprism.role["0"]]`,
	`{k | some k, _ in data.store.grants["user:big"].blueprism}`,
	`count(data.store.grants["user:big"])`,
	`data.store.grants["user:big"].blueprism.permission`,
}

// bigUnit is how many grants user:big holds in blueprism: more than a unit
// read whole.
const bigUnit = 40

// TestVMReadsTheStoreAsTopdown holds the vm to topdown on Rego reading
// data.store every which way (storeReads), over a bbolt store read on
// demand: each expression's value, made a violation of a write, is the
// same, and the vm's reads guard everything topdown's read.
func TestVMReadsTheStoreAsTopdown(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		for _, m := range []permatrix.Membership{{Group: "ops", User: "ann"}, {Group: "0", User: "ann"}, {Group: "ops", User: "1"}, {Group: "x", User: "bob"}} {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		for _, r := range []permatrix.Role{
			{System: "blueprism", Name: "0", Permissions: []string{"view_dashboards"}},
			{System: "blueprism", Name: "1", Permissions: []string{"view_dashboards", "import_tile"}},
			{System: "blueprism", Name: "r1", Permissions: []string{}},
		} {
			if err := tx.PutRole(r); err != nil {
				return err
			}
		}
		if err := tx.PutProject(permatrix.Project{System: "blueprism", ID: "p1", CreatedBy: "ann"}); err != nil {
			return err
		}
		for _, a := range []permatrix.Assignment{
			{Subject: "user:ann", System: "blueprism", Role: "0", Scope: permatrix.ServiceScope},
			{Subject: "user:ann", System: "blueprism", Role: "1", Scope: permatrix.Scope{Type: "process_group", ID: "0"}},
			{Subject: "group:0", System: "blueprism", Role: "1", Scope: permatrix.ServiceScope},
			{Subject: "group:ops", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope},
		} {
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		for i := range bigUnit {
			a := permatrix.Assignment{Subject: "user:big", System: "blueprism", Role: "0", Scope: permatrix.Scope{Type: "process_group", ID: fmt.Sprint(i)}}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	vm, td, snap := readsOver(t, db, storeReads)
	assign := func(subject, role string) map[string]any {
		return map[string]any{"subject": subject, "system": "blueprism", "role": role, "scope": map[string]any{"type": "service"}}
	}
	for _, in := range []map[string]any{
		{"op": "assign", "assignment": assign("user:ann", "0")},
		{"op": "assign", "assignment": assign("group:0", "1"), "actor": "ann"},
		{"op": "assign", "assignment": assign("user:1", "1"), "actor": "1"},
	} {
		if n := compareReads(t, fmt.Sprintf("write %v", in), vm, td, snap, in); n < len(storeReads)/2 {
			t.Fatalf("%v: %d reads defined of %d", in, n, len(storeReads))
		}
	}
}

// readsPolicies are the default bundle plus a module making each of reads
// (Rego expressions) a violation, "read <i>: <value>", compiled for the vm
// and for topdown: a write's verdict then reports what each evaluator read.
// readsOver is readsPolicies and a snapshot of db, closed when t ends.
func readsOver(t *testing.T, db store.Backend, reads []string) (vm, td *opa.Policy, snap store.Snapshot) {
	t.Helper()
	return readsOverWith(t, db, reads, "")
}

// readsOverWith is readsOver with funcs (Rego rules and functions) in the
// reads' module.
func readsOverWith(t *testing.T, db store.Backend, reads []string, funcs string) (vm, td *opa.Policy, snap store.Snapshot) {
	t.Helper()
	vm, td = readsPoliciesWith(t, db, reads, funcs)
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	return vm, td, snap
}

// readsInput is a write the reads policies judge (any write: their
// violations are the reads).
func readsInput() map[string]any {
	return map[string]any{"op": "assign", "assignment": map[string]any{"subject": "user:ann", "system": "blueprism", "role": "0", "scope": map[string]any{"type": "service"}}}
}

func readsPolicies(t *testing.T, db store.Backend, reads []string) (vm, td *opa.Policy) {
	t.Helper()
	return readsPoliciesWith(t, db, reads, "")
}

// readsPoliciesWith is readsPolicies with funcs (Rego rules and functions)
// in the reads' module.
func readsPoliciesWith(t *testing.T, db store.Backend, reads []string, funcs string) (vm, td *opa.Policy) {
	t.Helper()
	src := "package permatrix.systems.blueprism\n\n" + funcs + "\n"
	for i, r := range reads {
		src += fmt.Sprintf("violations contains sprintf(\"read %d: %%v\", [x]) if x := %s\n\n", i, r)
	}
	var policies []*opa.Policy
	for _, ev := range []opa.Evaluator{opa.VM, opa.Topdown} {
		b, err := opa.ReadDefault()
		if err != nil {
			t.Fatal(err)
		}
		e := opa.NewEngine(db, opa.WithEvaluator(ev))
		e.AddModule(opa.ModuleSource{Name: "reads.rego", Source: src})
		p, err := e.Activate(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		policies = append(policies, p)
	}
	return policies[0], policies[1]
}

// compareReads judges the write in with vm and td (readsPolicies) over
// snap: the same reads and refusals, and the vm's reads guarding
// topdown's. It returns how many reads were defined.
func compareReads(t *testing.T, what string, vm, td *opa.Policy, snap store.Snapshot, in map[string]any) int {
	t.Helper()
	ctx := context.Background()
	readV, readT := store.Track(snap), store.Track(snap)
	vv, fv, errV := vm.Verdict(ctx, readV, in)
	vt, ft, errT := td.Verdict(ctx, readT, in)
	if errV != nil || errT != nil {
		t.Fatalf("%s: vm %v, topdown %v", what, errV, errT)
	}
	if !reflect.DeepEqual(fv, ft) {
		t.Errorf("%s: forbidden\n vm      %q\n topdown %q", what, fv, ft)
	}
	for i := range max(len(vv), len(vt)) {
		var v, td string
		if i < len(vv) {
			v = vv[i]
		}
		if i < len(vt) {
			td = vt[i]
		}
		if v != td {
			t.Errorf("%s:\n vm      %s\n topdown %s", what, v, td)
		}
	}
	guards(t, what, readV, readT)
	return len(vt)
}
