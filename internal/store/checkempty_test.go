package store_test

import (
	"context"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestCheckRecordRefusesEmptiedRecords: every kind of record permatrix
// writes that decisions read (data.store's leaves), its value emptied, made
// null or followed by more bytes, is refused
// by the check a bolt file's open and an etcd replica's apply run on each
// record — so a store whose leaf was emptied (read by both evaluators as
// null, which Rego takes as present: internal/opa TestEmptyLeafFailsItsReads)
// is not served at all: serve stops at open with exit 3, a replica is not
// served while etcd holds the key. Before, a project's value of null and a
// scope's use of any value were sound records.
func TestCheckRecordRefusesEmptiedRecords(t *testing.T) {
	mem := store.NewMemory()
	_, err := store.Update(context.Background(), mem, func(tx *store.Tx) error {
		for _, a := range []permatrix.Assignment{
			{Subject: "user:ann", System: "s", Role: "r", Scope: permatrix.ServiceScope},
			{Subject: "group:ops", System: "s", Permission: "p", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		} {
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		if err := tx.AddMember(permatrix.Membership{Group: "ops", User: "ann"}); err != nil {
			return err
		}
		if err := tx.PutRole(permatrix.Role{System: "s", Name: "custom", Permissions: []string{"p"}}); err != nil {
			return err
		}
		return tx.PutProject(permatrix.Project{System: "s", ID: "p1", CreatedBy: "ann", Kind: "assisted"})
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := mem.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	kinds := map[string]bool{}
	err = snap.Scan(nil, nil, func(k, v []byte) error {
		if store.CheckRecord(k, v) != nil {
			return nil // not a record (the revision's, the counter's)
		}
		seg := store.Segments(k)
		if seg[0] != "d" {
			return nil // an index entry: no decision reads it; Verify sums its value with its record's
		}
		kinds[seg[0]+" "+seg[1]] = true
		for _, bad := range [][]byte{nil, []byte("null"), append(append([]byte{}, v...), " x"...), append(append([]byte{}, v...), v...)} {
			if err := store.CheckRecord(k, bad); err == nil {
				t.Errorf("%q: its value %q accepted", k, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"d grants", "d memberships", "d roles", "d projects", "d scopes"} {
		if !kinds[want] {
			t.Errorf("no %s record was tried (tried %v)", want, kinds)
		}
	}
}

// TestCheckRecordRefusesPartialProjects: a project's value is an object
// with created_by and kind, strings, as permatrix writes it (Tx.PutProject,
// with "" for none). Before, one without them, or with null, was a sound
// record: json.Unmarshal reads them as "", while the policies read an
// absent created_by as undefined, and the write rule refusing to let a
// non-administrator re-register another's project (data.permatrix.admin:
// registered.created_by != input.actor) does not fire on it — "" does.
func TestCheckRecordRefusesPartialProjects(t *testing.T) {
	k := store.Key("d", "projects", "s", "p1")
	for _, sound := range []string{`{"created_by":"ann","kind":"assisted"}`, `{"created_by":"","kind":""}`} {
		if err := store.CheckRecord(k, []byte(sound)); err != nil {
			t.Errorf("%s refused: %v", sound, err)
		}
	}
	for _, bad := range []string{`{}`, `{"kind":"unassisted"}`, `{"created_by":"ann"}`, `{"created_by":null,"kind":"assisted"}`, `{"created_by":"ann","kind":null}`, `[]`, `"x"`, `7`} {
		if err := store.CheckRecord(k, []byte(bad)); err == nil {
			t.Errorf("the project value %s accepted", bad)
		}
	}
}
