package opa_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// TestVMAgreesWithTopdown holds the vm to OPA's topdown on the default
// bundle: over a random store (written below the write rules, so it holds
// states they would refuse too), every decision of a few thousand random
// checks — valid ones over every system, action and scope type, and
// broken ones — and every verdict of random writes are identical, errors
// included, and what the vm reads of the store guards everything
// topdown's evaluation read (guards).
func TestVMAgreesWithTopdown(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, uint64(len(t.Name()))))
	db := tempDB(t)
	vmPolicy, tdPolicy := bothEvaluators(t, db)
	cat := vmPolicy.Catalog

	c := corpus{rng: rng, cat: cat, systems: cat.IDs(),
		users:  []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"},
		groups: []string{"g0", "g1", "administrators", "ops"},
		ids:    []string{"p1", "p2", "p3", "p4"}}
	ctx := context.Background()
	c.fill(t, db, 30, 400, func(tx *store.Tx) error {
		for _, sys := range c.systems {
			for _, id := range c.ids[:3] {
				p := permatrix.Project{System: sys, ID: id, CreatedBy: c.pick(c.users), Kind: c.pick([]string{"assisted", "unassisted", ""})}
				if err := tx.PutProject(p); err != nil {
					return err
				}
			}
			if cat[sys].CustomRoles.Enabled {
				for _, name := range []string{"custom-a", "custom-b"} {
					r := permatrix.Role{System: sys, Name: name, Permissions: c.some(slices.Sorted(maps.Keys(cat[sys].Permissions)))}
					if err := tx.PutRole(r); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})

	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	const checks, writes = 1500, 800
	allowed := 0
	for i := range checks {
		check := c.check(i)
		readV, readT := store.Track(snap), store.Track(snap)
		dv, errV := vmPolicy.Decide(ctx, readV, check)
		dt, errT := tdPolicy.Decide(ctx, readT, check)
		if (errV == nil) != (errT == nil) {
			t.Fatalf("check %+v: vm error %v, topdown error %v", check, errV, errT)
		}
		if !reflect.DeepEqual(dv, dt) {
			t.Fatalf("check %+v:\n vm      %+v\n topdown %+v", check, dv, dt)
		}
		if errV == nil {
			guards(t, fmt.Sprintf("check %+v", check), readV, readT)
		}
		if dv != nil && dv.Allow {
			allowed++
		}
	}
	// The corpus must exercise both answers, or the comparison says little.
	t.Logf("%d of %d checks allowed", allowed, checks)
	if allowed < checks/20 || allowed > checks-checks/20 {
		t.Fatalf("%d of %d checks allowed: the corpus is lopsided", allowed, checks)
	}

	refused := 0
	for range writes {
		w := c.write()
		readV, readT := store.Track(snap), store.Track(snap)
		vv, fv, errV := vmPolicy.Verdict(ctx, readV, w)
		vt, ft, errT := tdPolicy.Verdict(ctx, readT, w)
		if (errV == nil) != (errT == nil) || !reflect.DeepEqual(vv, vt) || !reflect.DeepEqual(fv, ft) {
			t.Fatalf("write %v:\n vm      %v %v %v\n topdown %v %v %v", w, vv, fv, errV, vt, ft, errT)
		}
		if errV == nil {
			guards(t, fmt.Sprintf("write %v", w), readV, readT)
		}
		if len(vv)+len(fv) > 0 {
			refused++
		}
	}
	t.Logf("%d of %d writes refused", refused, writes)
	if refused < writes/20 || refused > writes-writes/20 {
		t.Fatalf("%d of %d writes refused: the corpus is lopsided", refused, writes)
	}
}

// guards fails unless every unit topdown read (readT) is guarded by the
// vm's reads (readV): the same unit, or a unit it lies within (a read of a
// whole subtree). A verdict's reads are its write's guards and a
// decision's the decision cache's: one the vm misses would let a
// concurrent write that changes the answer commit, or a stale decision
// answer.
// fill writes members random memberships, then what before writes (nil:
// nothing), then assignments random assignments, in one transaction.
func (c *corpus) fill(t testing.TB, db store.Backend, members, assignments int, before func(tx *store.Tx) error) {
	t.Helper()
	_, err := store.Update(context.Background(), db, func(tx *store.Tx) error {
		for range members {
			if err := tx.AddMember(permatrix.Membership{Group: c.pick(c.groups), User: c.pick(c.users)}); err != nil {
				return err
			}
		}
		if before != nil {
			if err := before(tx); err != nil {
				return err
			}
		}
		for range assignments {
			a := c.assignment()
			if err := tx.CreateAssignment(&a); err != nil {
				return fmt.Errorf("%+v: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func guards(t *testing.T, what string, readV, readT *store.Tracked) {
	t.Helper()
	vm := readV.Units()
	for _, u := range readT.Units() {
		if !slices.ContainsFunc(vm, func(v []byte) bool {
			return bytes.Equal(u, v) || bytes.HasPrefix(u, append(slices.Clip(v), 0))
		}) {
			t.Fatalf("%s: the vm read nothing guarding unit %q, which topdown read\n vm      %q\n topdown %q", what, u, vm, readT.Units())
		}
	}
}

// corpus draws random assignments, checks and writes over a catalog.
type corpus struct {
	rng                *rand.Rand
	cat                permatrix.Catalog
	systems            []string
	users, groups, ids []string
}

func (c *corpus) pick(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[c.rng.IntN(len(list))]
}

// some is a random subset of list.
func (c *corpus) some(list []string) []string {
	var out []string
	for _, x := range list {
		if c.rng.IntN(2) == 0 {
			out = append(out, x)
		}
	}
	return out
}

func (c *corpus) scope(types []string) permatrix.Scope {
	t := c.pick(types)
	if t == "" || t == "service" {
		return permatrix.ServiceScope
	}
	return permatrix.Scope{Type: t, ID: c.pick(c.ids)}
}

func (c *corpus) subject() string {
	if c.rng.IntN(4) == 0 {
		return "group:" + c.pick(c.groups)
	}
	return "user:" + c.pick(c.users)
}

// assignment is a role or permission of the catalog at one of its scopes,
// or now and then a custom role.
func (c *corpus) assignment() permatrix.Assignment {
	sys := c.cat[c.pick(c.systems)]
	a := permatrix.Assignment{Subject: c.subject(), System: sys.ID}
	switch {
	case sys.CustomRoles.Enabled && c.rng.IntN(5) == 0:
		a.Role = c.pick([]string{"custom-a", "custom-b"})
		a.Scope = c.scope(sys.CustomRoles.Scopes)
	case len(sys.Permissions) > 0 && (len(sys.Roles) == 0 || c.rng.IntN(3) == 0):
		a.Permission = c.pick(slices.Sorted(maps.Keys(sys.Permissions)))
		a.Scope = c.scope(sys.Permissions[a.Permission].Scopes)
	default:
		a.Role = c.pick(slices.Sorted(maps.Keys(sys.Roles)))
		a.Scope = c.scope(sys.Roles[a.Role].Scopes)
	}
	return a
}

// check is a valid check most of the time, and otherwise one broken in one
// of the ways a client breaks them.
func (c *corpus) check(i int) permatrix.Check {
	sys := c.cat[c.pick(c.systems)]
	action := c.pick(slices.Sorted(maps.Keys(sys.Actions)))
	ch := permatrix.Check{Subject: c.pick(c.users), System: sys.ID, Action: action}
	if s := c.scope(sys.ScopeTypes); s.Type != "service" || c.rng.IntN(2) == 0 {
		ch.Resource = &s
	}
	if c.rng.IntN(4) == 0 {
		ch.Groups = c.some(c.groups)
	}
	if len(sys.ContextKeys) > 0 && c.rng.IntN(2) == 0 {
		ch.Context = map[string]any{}
		for _, k := range c.some(slices.Sorted(maps.Keys(sys.ContextKeys))) {
			ch.Context[k] = []any{true, false, "yes", 1, nil}[c.rng.IntN(5)]
		}
	}
	switch i % 17 {
	case 1:
		ch.System = "no-such-system"
	case 2:
		ch.Action = "no-such-action"
	case 3:
		ch.Subject = ""
	case 4:
		ch.Resource = &permatrix.Scope{Type: "no-such-type", ID: "x"}
	case 5:
		ch.Resource = &permatrix.Scope{Type: c.pick(sys.ScopeTypes)}
	}
	return ch
}

// write is a write's input to the write rules: an assignment made or
// removed, a role defined or deleted, a project registered, a membership
// changed; by an operator (no actor) or by a user.
func (c *corpus) write() map[string]any {
	var w map[string]any
	sys := c.cat[c.pick(c.systems)]
	switch c.rng.IntN(6) {
	case 0, 1:
		w = map[string]any{"op": c.pick([]string{"assign", "assign", "unassign"}), "assignment": c.assignment().Value()}
	case 2:
		w = map[string]any{"op": "define_role", "role": map[string]any{"system": sys.ID, "name": c.pick([]string{"custom-a", "custom-c", ""}),
			"permissions": anys(c.some(append(slices.Sorted(maps.Keys(sys.Permissions)), "no-such-permission")))}}
	case 3:
		w = map[string]any{"op": "delete_role", "role": map[string]any{"system": sys.ID, "name": c.pick([]string{"custom-a", "custom-c"})}}
	case 4:
		w = map[string]any{"op": "register_project", "project": map[string]any{"system": sys.ID, "id": c.pick(c.ids), "created_by": c.pick(c.users), "kind": c.pick([]string{"assisted", "unassisted", "other"})}}
	default:
		w = map[string]any{"op": c.pick([]string{"add_member", "remove_member"}), "membership": map[string]any{"group": c.pick(c.groups), "user": c.pick(c.users)}}
	}
	if c.rng.IntN(2) == 0 {
		w["actor"] = c.pick(c.users)
		if c.rng.IntN(3) == 0 {
			w["groups"] = anys(c.some(c.groups))
		}
	}
	return w
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestEvaluatorOption: the engine compiles with its options; the default
// bundle is run by the vm unless topdown is asked for; a flag's value is
// checked.
func TestEvaluatorOption(t *testing.T) {
	ctx := context.Background()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag string
		want opa.Evaluator
	}{{"", opa.VM}, {"vm", opa.VM}, {"topdown", opa.Topdown}} {
		ev, err := opa.ParseEvaluator(tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		p, err := opa.NewEngine(nil, opa.WithEvaluator(ev)).Activate(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Evaluator(); got != tc.want {
			t.Errorf("--evaluator %q: policy evaluated by %s, want %s", tc.flag, got, tc.want)
		}
	}
	if _, err := opa.ParseEvaluator("wasm"); err == nil {
		t.Error("an unknown evaluator was accepted")
	}
}

// TestVerdictReadsOneProject: an actor's project assignment in UiPath Task
// Mining Cloud reads that project's record, not every project (its guard
// would otherwise be the whole projects index: any project written anywhere
// would conflict with it), with either evaluator.
func TestVerdictReadsOneProject(t *testing.T) {
	db := tempDB(t)
	ctx := context.Background()
	const sys = "uipath-task-mining-cloud"
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		for _, id := range []string{"p1", "p2", "p3"} {
			if err := tx.PutProject(permatrix.Project{System: sys, ID: id, CreatedBy: "boss", Kind: "unassisted"}); err != nil {
				return err
			}
		}
		return tx.CreateAssignment(&permatrix.Assignment{Subject: "user:boss", System: sys, Role: "project_admin", Scope: permatrix.Scope{Type: "project", ID: "p1"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	// An actor without the right: the refusal names the rule, which reads
	// the project's kind.
	w := map[string]any{"op": "assign", "actor": "nobody", "assignment": permatrix.Assignment{
		Subject: "user:u1", System: sys, Role: "business_analyst", Scope: permatrix.Scope{Type: "project", ID: "p1"}}.Value()}
	for _, ev := range evaluators {
		p := compile(t, db, opa.WithEvaluator(ev))
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		tracked := store.Track(snap)
		_, forbidden, err := p.Verdict(ctx, tracked, w)
		if err != nil || len(forbidden) == 0 {
			t.Fatalf("%s: forbidden %v, %v: the write must be refused", ev, forbidden, err)
		}
		for _, u := range tracked.Units() {
			if path := store.DocPath(u); len(path) > 0 && path[0] == "projects" && len(path) < 3 {
				t.Errorf("%s: the verdict read data.store%q (every project) — its guard would conflict with any project write", ev, path)
			}
		}
		snap.Close()
	}
}

// assignCorpus is a store of 10 users' and 200 assignments' random corpus
// (corpus.fill), both evaluators over it, the store and a snapshot of it, for the
// tests that judge assignments against it by both.
func assignCorpus(t *testing.T, rng *rand.Rand) (vmPolicy, tdPolicy *opa.Policy, c corpus, db *bolt.DB, snap store.Snapshot) {
	t.Helper()
	db = tempDB(t)
	vmPolicy, tdPolicy = bothEvaluators(t, db)
	cat := vmPolicy.Catalog
	c = corpus{rng: rng, cat: cat, systems: cat.IDs(),
		users:  []string{"u0", "u1", "u2", "u3"},
		groups: []string{"g0", "administrators"},
		ids:    []string{"p1", "p2"}}
	c.fill(t, db, 10, 200, nil)
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	return vmPolicy, tdPolicy, c, db, snap
}

// TestVMAgreesWithTopdownOnAssignInputs: an assignment's verdict judged
// by the vm from its AssignInput — filled into objects used again for the
// next verdict — is topdown's of the same input as a map, for a run of
// random assignments of every kind, with and without an actor, in a row.
func TestVMAgreesWithTopdownOnAssignInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	vmPolicy, tdPolicy, c, _, snap := assignCorpus(t, rng)
	ctx := context.Background()
	refused := 0
	const writes = 600
	for range writes {
		in := opa.AssignInput{Assignment: c.assignment()}
		m := map[string]any{"op": "assign", "assignment": in.Assignment.Value()}
		if rng.IntN(2) == 0 {
			in.Actor = c.pick(c.users)
			m["actor"] = in.Actor
		}
		vv, fv, errV := vmPolicy.Verdict(ctx, store.Track(snap), &in)
		vt, ft, errT := tdPolicy.Verdict(ctx, store.Track(snap), m)
		if (errV == nil) != (errT == nil) || !reflect.DeepEqual(vv, vt) || !reflect.DeepEqual(fv, ft) {
			t.Fatalf("assign %+v:\n vm      %v %v %v\n topdown %v %v %v", in, vv, fv, errV, vt, ft, errT)
		}
		if len(vv)+len(fv) > 0 {
			refused++
		}
	}
	t.Logf("%d of %d assignments refused", refused, writes)
	if refused < writes/20 || refused > writes-writes/20 {
		t.Fatalf("%d of %d assignments refused: the corpus is lopsided", refused, writes)
	}
}
