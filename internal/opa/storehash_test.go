package opa_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// equalReads hold a part of data.store read from the store (a unit read
// whole, an index, a subtree below a unit) equal to the same value made
// anew (json.unmarshal of its JSON): in a set, as an object's key, by `in`.
// A set and an object find their elements by hash: a value read from the
// store must hash as the same value built any other way, as in OPA.
var equalReads = []string{
	`count({data.store.memberships, json.unmarshal(json.marshal(data.store.memberships))})`,
	`count({data.store.grants["user:ann"].blueprism, json.unmarshal(json.marshal(data.store.grants["user:ann"].blueprism))})`,
	`count({data.store.grants["user:ann"], json.unmarshal(json.marshal(data.store.grants["user:ann"]))})`,
	`count({data.store.grants["user:big"].blueprism.role, json.unmarshal(json.marshal(data.store.grants["user:big"].blueprism.role))})`,
	`count({data.store.roles, json.unmarshal(json.marshal(data.store.roles))})`,
	`data.store.grants["user:ann"].blueprism in {json.unmarshal(json.marshal(data.store.grants["user:ann"].blueprism))}`,
	`json.unmarshal(json.marshal(data.store.grants["user:ann"].blueprism)) in {data.store.grants["user:ann"].blueprism}`,
	`{data.store.grants["user:ann"].blueprism: 1}[json.unmarshal(json.marshal(data.store.grants["user:ann"].blueprism))]`,
	`count({data.store.memberships.ann, {"ops": true, "0": true}})`,
	`count({data.store.memberships, {"ann": {"ops": true, "0": true}, "bob": {"x": true}}})`,
}

// TestStoreValuesHashAsTheirCopies: under the vm and topdown, each of
// equalReads answers as OPA does over the same data as JSON.
func TestStoreValuesHashAsTheirCopies(t *testing.T) {
	ctx := context.Background()
	db := tempDB(t)
	_, err := store.Update(ctx, db, func(tx *store.Tx) error {
		for _, m := range []permatrix.Membership{{Group: "ops", User: "ann"}, {Group: "0", User: "ann"}, {Group: "x", User: "bob"}} {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		if err := tx.PutRole(permatrix.Role{System: "blueprism", Name: "0", Permissions: []string{"view_dashboards"}}); err != nil {
			return err
		}
		as := []permatrix.Assignment{
			{Subject: "user:ann", System: "blueprism", Role: "0", Scope: permatrix.ServiceScope},
			{Subject: "user:ann", System: "blueprism", Role: "0", Scope: permatrix.Scope{Type: "process_group", ID: "0"}},
			{Subject: "user:ann", System: "blueprism", Permission: "view_dashboards", Scope: permatrix.ServiceScope},
			{Subject: "user:ann", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope},
		}
		for i := range bigUnit {
			as = append(as, permatrix.Assignment{Subject: "user:big", System: "blueprism", Role: "0", Scope: permatrix.Scope{Type: "process_group", ID: fmt.Sprint(i)}})
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
	vm, td, snap := readsOver(t, db, equalReads)
	in := readsInput()
	var want []string
	for i, r := range equalReads {
		v := "1"
		if r[0] != 'c' && r[0] != '{' {
			v = "true"
		}
		want = append(want, fmt.Sprintf("read %d: %s", i, v))
	}
	for name, p := range map[string]interface {
		Verdict(context.Context, store.Snapshot, any) ([]string, []string, error)
	}{"vm": vm, "topdown": td} {
		got, _, err := p.Verdict(ctx, snap, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got = slices.DeleteFunc(got, func(s string) bool { return len(s) < 5 || s[:5] != "read " })
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			t.Errorf("%s:\n got  %q\n want %q", name, got, w)
		}
	}
}
