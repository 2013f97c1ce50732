package opa_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// Every shape of write — each system's roles (built-in, custom, unknown),
// permissions and actions, at every scope type, a wrong one and with or
// without an id, for a user and a group, by the operator and by actors who
// hold roles or nothing; custom roles and projects defined and removed;
// inputs of odd shapes — is judged alike by the vm and by topdown over a
// store holding a custom role and the actors' grants: the same violations
// and forbidden lists. (A change to the write rules was held to its
// policies before it by the same writes.)
func TestVerdictsOfEveryWriteShapeVMAsTopdown(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	cur, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	vmPolicy, err := opa.Compile(ctx, cur, db, opa.WithEvaluator(opa.VM))
	if err != nil {
		t.Fatal(err)
	}
	cat := vmPolicy.Catalog
	// A store with a custom role and u1's grants: verdicts reading it
	// see something (a custom role's scopes, an actor's authority).
	bpPerms := slices.Sorted(maps.Keys(cat["blueprism"].Permissions))
	if _, err := store.Update(ctx, db, func(tx *store.Tx) error {
		if err := tx.PutRole(permatrix.Role{System: "blueprism", Name: "r0", Permissions: bpPerms[:3]}); err != nil {
			return err
		}
		// u1 holds each system's first role and permission, at service scope where it may.
		for _, id := range cat.IDs() {
			sys := cat[id]
			for _, r := range slices.Sorted(maps.Keys(sys.Roles)) {
				a := permatrix.Assignment{Subject: "user:u1", System: id, Role: r, Scope: permatrix.ServiceScope}
				if slices.Contains(sys.Roles[r].Scopes, "service") {
					if err := tx.CreateAssignment(&a); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	topdown, err := opa.Compile(ctx, cur, db, opa.WithEvaluator(opa.Topdown))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var inputs []any
	for _, id := range cat.IDs() {
		sys := cat[id]
		roles := append(slices.Sorted(maps.Keys(sys.Roles)), "r0", "nope")
		perms := append(slices.Sorted(maps.Keys(sys.Permissions)), sys.ActionIDs()...)
		perms = append(perms, "nope")
		scopes := []permatrix.Scope{permatrix.ServiceScope, {Type: "service", ID: "x"}, {Type: "bogus", ID: "x"}, {Type: "project"}}
		for _, typ := range sys.ScopeTypes {
			scopes = append(scopes, permatrix.Scope{Type: typ, ID: "x1"})
		}
		for _, subj := range []string{"user:u1", "group:g1"} {
			for _, sc := range scopes {
				for _, actor := range []string{"", "u1", "u2"} {
					for _, r := range roles {
						inputs = append(inputs, opa.AssignInput{Actor: actor, Assignment: permatrix.Assignment{Subject: subj, System: id, Role: r, Scope: sc}})
					}
					for _, p := range perms {
						inputs = append(inputs, opa.AssignInput{Actor: actor, Assignment: permatrix.Assignment{Subject: subj, System: id, Permission: p, Scope: sc}})
					}
					inputs = append(inputs,
						opa.AssignInput{Actor: actor, Assignment: permatrix.Assignment{Subject: subj, System: id, Role: roles[0], Permission: perms[0], Scope: sc}},
						opa.AssignInput{Actor: actor, Assignment: permatrix.Assignment{Subject: subj, System: id, Scope: sc}})
				}
			}
		}
		for _, actor := range []any{nil, "u1"} {
			for _, op := range []string{"define_role", "delete_role"} {
				for _, name := range []string{"r0", roles[0]} {
					in := map[string]any{"op": op, "role": map[string]any{"system": id, "name": name, "permissions": []any{perms[0], "nope"}}}
					if actor != nil {
						in["actor"] = actor
					}
					inputs = append(inputs, in)
				}
			}
			for _, op := range []string{"register_project", "delete_project", "unassign"} {
				in := map[string]any{"op": op, "project": map[string]any{"system": id, "id": "p1", "created_by": "u1", "kind": ""},
					"assignment": map[string]any{"subject": "user:u1", "system": id, "role": roles[0], "scope": map[string]any{"type": "service"}}}
				if actor != nil {
					in["actor"] = actor
				}
				inputs = append(inputs, in)
			}
		}
	}
	for _, odd := range []map[string]any{
		{"op": "assign", "assignment": "x"}, {"op": "assign", "assignment": map[string]any{"system": 1}},
		{"op": 3}, {"op": "assignment"}, {"op": "define_role", "role": []any{}}, {"op": "define_role", "assignment": map[string]any{"system": "blueprism"}},
	} {
		inputs = append(inputs, odd)
	}
	differ, refused := 0, 0
	for _, in := range inputs {
		v, f, err := vmPolicy.Verdict(ctx, store.Track(snap), in)
		tv, tf, terr := topdown.Verdict(ctx, store.Track(snap), in)
		if err != nil || terr != nil {
			t.Fatalf("%+v: vm %v, topdown %v", in, err, terr)
		}
		if !slices.Equal(v, tv) || !slices.Equal(f, tf) {
			if differ++; differ < 10 {
				t.Errorf("%+v:\nvm      %q %q\ntopdown %q %q", in, v, f, tv, tf)
			}
		}
		if len(v)+len(f) > 0 {
			refused++
		}
	}
	t.Logf("%d writes, %d refused, %d judged otherwise by the vm", len(inputs), refused, differ)
	if refused == 0 || refused == len(inputs) {
		t.Fatalf("%d of %d writes refused: the test needs both", refused, len(inputs))
	}
}
