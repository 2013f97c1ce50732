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

// unitReads read data.store around its units (a principal's grants in a
// system, a user's memberships, a scope's uses), which the vm reads whole
// when they hold at most 32 leaves: at the edge (32 and 33 leaves), with
// numeric-looking keys looked up as numbers and strings, a unit read whole
// then below it, under withs on, above and below a unit, in nested scans
// and relations.
var unitReads = []string{
	// 32 leaves: read whole; 33: a leaf at a time.
	`count(data.store.grants["user:u32"].blueprism.role["0"])`,
	`count(data.store.grants["user:u33"].blueprism.role["0"])`,
	`data.store.grants["user:u32"].blueprism.role["0"]["process_group:31"].scope`,
	`data.store.grants["user:u33"].blueprism.role["0"]["process_group:32"].scope`,
	`[k | some k, _ in data.store.grants["user:u32"].blueprism.role["0"]]`,
	`[k | some k, _ in data.store.grants["user:u33"].blueprism.role["0"]]`,
	`count(data.store.memberships.m32)`,
	`count(data.store.memberships.m33)`,
	`data.store.memberships.m32["31"]`,
	`data.store.memberships.m33[32]`,
	`data.store.memberships.m32[31]`,
	// Numeric-looking keys through a unit read whole.
	`data.store.memberships["7"]`,
	`data.store.memberships[7]`,
	`data.store.memberships[7][0]`,
	`data.store.memberships[7]["10"]`,
	`data.store.memberships["7"][10]`,
	`[g | data.store.memberships[7][g]]`,
	`[g | some g, _ in data.store.memberships["7"]]`,
	`data.store.grants["user:7"]["blueprism"].role[1][0]`,
	`data.store.grants["user:7"].blueprism.role["1"]["0"]`,
	`data.store.grants["user:7"].blueprism.role[1]["process_group:0"]`,
	`data.store.grants["user:7"].blueprism[0]`,
	`data.store.grants["user:7"].blueprism.permission.view_dashboards`,
	`data.store.scopes.blueprism["process_group:0"]`,
	`count(data.store.scopes.blueprism["process_group:0"])`,
	`[k | data.store.scopes.blueprism["process_group:0"][k]]`,
	`data.store.memberships[7][1.0]`,
	`data.store.memberships[7][1e1]`,
	`data.store.memberships[7]["010"]`,
	`data.store.memberships[7][true]`,
	`data.store.memberships[7][null]`,
	`data.store.grants["user:7"].blueprism[["role"]]`,
	`data.store.grants["user:7"].blueprism.role[1.0]`,
	// A unit whole, then below it.
	`[data.store.grants["user:ann"].blueprism, data.store.grants["user:ann"].blueprism.role["0"].service.scope]`,
	`[data.store.grants["user:ann"].blueprism.role["0"].service.scope, data.store.grants["user:ann"].blueprism]`,
	`data.store.grants["user:ann"].blueprism.role["0"] == data.store.grants["user:ann"]["blueprism"]["role"][0]`,
	`object.get(data.store.grants["user:ann"].blueprism, ["role", "0", "service", "scope"], "none")`,
	`object.get(data.store.memberships, ["7", "10"], "none")`,
	`[p | walk(data.store.grants["user:ann"].blueprism, [p, _])]`,
	`[[s, r] | some s, x in data.store.grants["user:ann"]; some r, _ in x.role]`,
	`[[u, g] | some u, gs in data.store.memberships; some g, _ in gs]`,
	// Empty units.
	`data.store.grants["user:ann"].nosys`,
	`data.store.grants["user:ann"].nosys.role`,
	`count(data.store.grants["user:ann"].nosys)`,
	`data.store.memberships.nobody`,
	`object.get(data.store.memberships, "nobody", "none")`,
	`object.get(data.store.grants["user:ann"], ["nosys", "role"], "none")`,
	// Withs on, above and below a unit.
	`data.store.grants["user:ann"].blueprism with data.store.grants["user:ann"].blueprism.role["0"].service as 5`,
	`[data.store.grants["user:ann"].blueprism.role, data.store.grants["user:ann"].blueprism.role["0"]] with data.store.grants["user:ann"].blueprism.role["7"] as {}`,
	`data.store.memberships.ann with data.store.memberships.ann.ops as false`,
	`data.store.memberships.ann.ops with data.store.memberships.ann as {"x": 1}`,
	`[k | some k, _ in data.store.grants["user:ann"].blueprism.role] with data.store.grants["user:ann"].blueprism.role.x as 1`,
	`data.store.grants["user:ann"].blueprism.role["0"].service with data.store.grants["user:ann"].blueprism as {}`,
	`[[a, b] | a := data.store.grants["user:ann"].blueprism.role["0"].service; b := data.store.grants["user:ann"].blueprism.role["0"].service with data.store.grants["user:ann"].blueprism.role["0"] as {"service": 1}]`,
	`[[a, b] | a := data.store.memberships["7"] with data.store.memberships["7"]["0"] as 1; b := data.store.memberships["7"]]`,
	`count(data.store.grants["user:u33"].blueprism.role["0"]) with data.store.grants["user:u33"].blueprism.role["0"]["process_group:x"] as 1`,
	`count(data.store.grants["user:u32"].blueprism.role["0"]) with data.store.grants["user:u32"].blueprism.role["0"]["process_group:x"] as 1`,
	`data.store.memberships[7][10] with data.store.memberships["7"]["11"] as true`,
	`[data.store.memberships.ann, data.store.memberships.bob] with data.store.memberships.ann as {}`,
	`data.store.grants["user:ann"].blueprism.role["0"].service.scope with data.store.grants as {}`,
}

// TestVMReadsUnitsAsTopdown is TestVMReadsTheStoreAsTopdown for unitReads.
func TestVMReadsUnitsAsTopdown(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		ms := []permatrix.Membership{{Group: "ops", User: "ann"}, {Group: "0", User: "7"}, {Group: "1", User: "7"}, {Group: "10", User: "7"}, {Group: "x", User: "bob"}}
		for i := range 33 {
			if i < 32 {
				ms = append(ms, permatrix.Membership{Group: fmt.Sprint(i), User: "m32"})
			}
			ms = append(ms, permatrix.Membership{Group: fmt.Sprint(i), User: "m33"})
		}
		for _, m := range ms {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		for _, r := range []permatrix.Role{
			{System: "blueprism", Name: "0", Permissions: []string{"view_dashboards"}},
			{System: "blueprism", Name: "1", Permissions: []string{"view_dashboards", "import_tile"}},
		} {
			if err := tx.PutRole(r); err != nil {
				return err
			}
		}
		as := []permatrix.Assignment{
			{Subject: "user:ann", System: "blueprism", Role: "0", Scope: permatrix.ServiceScope},
			{Subject: "user:ann", System: "blueprism", Role: "1", Scope: permatrix.Scope{Type: "process_group", ID: "0"}},
			{Subject: "user:ann", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope},
			{Subject: "user:7", System: "blueprism", Role: "1", Scope: permatrix.Scope{Type: "process_group", ID: "0"}},
			{Subject: "user:7", System: "blueprism", Role: "1", Scope: permatrix.ServiceScope},
			{Subject: "user:7", System: "blueprism", Permission: "view_dashboards", Scope: permatrix.ServiceScope},
		}
		for i := range 33 {
			sc := permatrix.Scope{Type: "process_group", ID: fmt.Sprint(i)}
			if i < 32 {
				as = append(as, permatrix.Assignment{Subject: "user:u32", System: "blueprism", Role: "0", Scope: sc})
			}
			as = append(as, permatrix.Assignment{Subject: "user:u33", System: "blueprism", Role: "0", Scope: sc})
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
	vm, td, snap := readsOver(t, db, unitReads)
	in := readsInput()
	t.Logf("%d of %d reads defined", compareReads(t, "unit reads", vm, td, snap, in), len(unitReads))
}

// overlayReads read units whose leaves are partly pending in a Tx (the
// overlay a write's verdict reads): base keys and pending ones merged,
// pending deletes hidden, across the 32-leaf edge both ways.
var overlayReads = []string{
	`count(data.store.grants["user:up"].blueprism.role["0"])`,
	`count(data.store.grants["user:down"].blueprism.role["0"])`,
	`data.store.grants["user:up"].blueprism.role["0"]["process_group:40"].scope`,
	`data.store.grants["user:down"].blueprism.role["0"]["process_group:0"]`,
	`data.store.grants["user:down"].blueprism.role["0"]["process_group:5"].scope`,
	`[k | some k, _ in data.store.grants["user:up"].blueprism.role["0"]]`,
	`[k | some k, _ in data.store.grants["user:down"].blueprism.role["0"]]`,
	`count(data.store.memberships.mu)`,
	`data.store.memberships.mu["40"]`,
	`data.store.memberships.mu["0"]`,
}

// TestVMReadsPendingUnitsAsTopdown: a verdict judged inside a Tx reads
// the units the Tx changed as topdown does, and guards them.
func TestVMReadsPendingUnitsAsTopdown(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	grant := func(subject string, i int) permatrix.Assignment {
		return permatrix.Assignment{Subject: subject, System: "blueprism", Role: "0", Scope: permatrix.Scope{Type: "process_group", ID: fmt.Sprint(i)}}
	}
	ids := map[int]string{}
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		if err := tx.PutRole(permatrix.Role{System: "blueprism", Name: "0", Permissions: []string{"view_dashboards"}}); err != nil {
			return err
		}
		for i := range 33 {
			if i < 31 {
				a := grant("user:up", i)
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
				if err := tx.AddMember(permatrix.Membership{Group: fmt.Sprint(i), User: "mu"}); err != nil {
					return err
				}
			}
			a := grant("user:down", i)
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			ids[i] = a.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	vm, td := readsPolicies(t, db, overlayReads)
	in := readsInput()
	judged := false
	_, err = store.Update(ctx, db, func(tx *store.Tx) error {
		// user:up and mu go from 31 leaves to 34 (3 pending); user:down
		// from 33 to 31 (2 pending deletes).
		for _, i := range []int{40, 41, 42} {
			a := grant("user:up", i)
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			if err := tx.AddMember(permatrix.Membership{Group: fmt.Sprint(i), User: "mu"}); err != nil {
				return err
			}
		}
		for _, i := range []int{0, 32} {
			if _, err := tx.DeleteAssignment(ids[i]); err != nil {
				return err
			}
		}
		if n := compareReads(t, "pending reads", vm, td, tx.View(), in); n < len(overlayReads)/2 {
			t.Errorf("%d reads defined of %d", n, len(overlayReads))
		}
		judged = true
		return nil
	})
	if err != nil || !judged {
		t.Fatal(err)
	}
}

// A leaf that does not parse (a corrupt file) fails the reads that take it
// and no other, under both evaluators: the vm, which reads a small unit
// whole, reads the unit of such a leaf a leaf at a time, as topdown does,
// instead of failing every read in it.
func TestVMReadsAroundACorruptLeafAsTopdown(t *testing.T) {
	m := store.NewMemory()
	b := &store.Batch{}
	put := func(v string, segs ...string) {
		b.Ops = append(b.Ops, store.Op{Key: store.Key(segs...), Value: []byte(v)})
	}
	good := `{"assignment":"a1","scope":{"type":"service"},"via":"user:bad"}`
	put("{not json", "d", "grants", "user:bad", "blueprism", "role", "0", "service")
	put(good, "d", "grants", "user:bad", "blueprism", "role", "1", "service")
	put(good, "d", "grants", "user:bad", "blueprism", "permission", "view_dashboards", "service")
	put("true", "d", "memberships", "bad", "ops")
	put("[1,", "d", "memberships", "bad", "x")
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	in := readsInput()
	for _, c := range []struct {
		read string
		fail bool
	}{
		{`data.store.grants["user:bad"].blueprism.role["1"].service.assignment`, false},
		{`data.store.grants["user:bad"].blueprism.permission.view_dashboards.service.scope`, false},
		{`data.store.grants["user:bad"].blueprism.role["7"]`, false},
		{`data.store.memberships.bad.ops`, false},
		{`data.store.grants["user:bad"].blueprism.role["0"].service`, true},
		{`data.store.grants["user:bad"].blueprism.role["0"]`, true},
		{`count(data.store.grants["user:bad"].blueprism)`, true},
		{`[k | some k, _ in data.store.grants["user:bad"].blueprism.role]`, true},
		{`data.store.memberships.bad.x`, true},
		{`count(data.store.memberships.bad)`, true},
	} {
		vm, td, snap := readsOver(t, m, []string{c.read})
		vv, _, errV := vm.Verdict(t.Context(), snap, in)
		vt, _, errT := td.Verdict(t.Context(), snap, in)
		if (errV != nil) != c.fail || (errT != nil) != c.fail {
			t.Errorf("%s: want failed %v; vm: %v, topdown: %v", c.read, c.fail, errV, errT)
			continue
		}
		if !c.fail {
			if fmt.Sprint(vv) != fmt.Sprint(vt) {
				t.Errorf("%s: vm %q, topdown %q", c.read, vv, vt)
			}
			compareReads(t, c.read, vm, td, snap, in)
		}
	}
}

// gets counts a snapshot's Gets, by key.
type gets struct {
	store.Snapshot
	n map[string]int
}

func (g *gets) Get(key []byte) ([]byte, error) {
	g.n[string(key)]++
	return g.Snapshot.Get(key)
}

// A leaf the vm reads again in one evaluation (each use of a function
// reads anew: Blue Prism's role_permissions) is read and parsed once, and
// answers as topdown's reads do, also when a with lays a value over it
// between two reads, and when it is absent.
func TestVMReadsALeafOncePerEvaluation(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		return tx.PutRole(permatrix.Role{System: "blueprism", Name: "0", Permissions: []string{"view_dashboards", "import_tile"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	reads := []string{
		`[count(data.store.roles.blueprism["0"].permissions), data.store.roles.blueprism["0"].permissions[1], data.store.roles.blueprism["0"]]`,
		`[p | some i in [1, 2, 3]; p := data.store.roles.blueprism["0"].permissions[i % 2]]`,
		`[[a, b, c] | a := data.store.roles.blueprism["0"]; b := data.store.roles.blueprism["0"] with data.store.roles.blueprism["0"] as {"permissions": []}; c := data.store.roles.blueprism["0"]]`,
		`[count([1 | data.store.roles.blueprism.none]), count([1 | data.store.roles.blueprism.none.permissions])]`,
	}
	vm, td, snap := readsOver(t, db, reads)
	in := readsInput()
	if n := compareReads(t, "a leaf read again", vm, td, snap, in); n != len(reads) {
		t.Fatalf("%d of %d reads defined", n, len(reads))
	}
	counted := &gets{Snapshot: snap, n: map[string]int{}}
	if _, _, err := vm.Verdict(ctx, counted, in); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0", "none"} {
		key := string(store.DocNodeKey("roles", "blueprism", name))
		if counted.n[key] != 1 {
			t.Errorf("role %q read %d times in one evaluation, want 1", name, counted.n[key])
		}
	}
}

// A leaf the vm kept in one evaluation is not what the next one reads: the
// evaluations' storeNodes are pooled, and each evaluation reads its own
// snapshot (an older one after a newer, and many at once).
func TestVMKeepsNoLeafBetweenEvaluations(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	// putRole writes role "0" and opens snapshots of the revision: one per
	// goroutine below (a snapshot is read by one goroutine at a time).
	const perRevision = 4
	putRole := func(perms ...string) []store.Snapshot {
		t.Helper()
		if _, err := store.Update(ctx, db, func(tx *store.Tx) error {
			return tx.PutRole(permatrix.Role{System: "blueprism", Name: "0", Permissions: perms})
		}); err != nil {
			t.Fatal(err)
		}
		var snaps []store.Snapshot
		for range perRevision {
			snap, err := db.View()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { snap.Close() })
			snaps = append(snaps, snap)
		}
		return snaps
	}
	reads := []string{
		`[data.store.roles.blueprism["0"].permissions, data.store.roles.blueprism["0"].permissions[0]]`,
		`data.store.roles.blueprism["0"]`,
	}
	vm, td := readsPolicies(t, db, reads)
	revisions := [][]store.Snapshot{putRole("view_dashboards", "import_tile"), putRole("import_skill"), putRole("view_dashboards")}
	in := readsInput()
	want := make([][]string, len(revisions))
	for i, snaps := range revisions {
		v, _, err := td.Verdict(ctx, snaps[0], in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = v
	}
	if reflect.DeepEqual(want[0], want[1]) {
		t.Fatalf("the snapshots read alike: %q", want[0])
	}
	check := func(i, j int) error {
		got, _, err := vm.Verdict(ctx, revisions[i][j], in)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want[i]) {
			return fmt.Errorf("revision %d: vm read %q, topdown %q", i, got, want[i])
		}
		return nil
	}
	for _, i := range []int{0, 1, 2, 1, 0, 2, 0} {
		if err := check(i, 0); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, len(revisions)*perRevision)
	var wg sync.WaitGroup
	for i := range revisions {
		for j := range perRevision {
			wg.Go(func() {
				for range 20 {
					if err := check(i, j); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
