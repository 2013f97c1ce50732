package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestVerify damages a sound store one key at a time, the way a bug in a
// write path would, and holds Verify to finding each damage — including
// those only the one-pass sum notices (an index entry under the wrong role
// that still points at a real assignment, one entry too many).
func TestVerify(t *testing.T) {
	ctx := context.Background()
	sound := func(t *testing.T) (*store.Memory, []permatrix.Assignment) {
		b := store.NewMemory()
		var as []permatrix.Assignment
		_, err := store.Update(ctx, b, func(tx *store.Tx) error {
			as = as[:0]
			for i := range 5000 { // several batches of the parallel scan
				a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%9)}}
				if i%3 == 0 {
					a.Role, a.Permission, a.Scope = "", "x", permatrix.ServiceScope
				}
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
				as = append(as, a)
			}
			return tx.AddMember(permatrix.Membership{Group: "g", User: "u1"})
		})
		if err != nil {
			t.Fatal(err)
		}
		return b, as
	}
	b, as := sound(t)
	snap, _ := b.View()
	if p := store.Verify(snap, 5); len(p) > 0 {
		t.Fatalf("a sound store: %v", p)
	}
	a := as[1] // a role grant at project scope
	cases := []struct {
		name string
		ops  []store.Op
		want string
	}{
		{"role-uses entry missing", []store.Op{{Key: store.Key("i", "role_uses", "s", "r", a.ID), Delete: true}}, "role-uses"},
		{"scopes entry missing", []store.Op{{Key: store.Key("d", "scopes", "s", store.ScopeKey(a.Scope), a.ID), Delete: true}}, "scopes"},
		{"assignment index missing", []store.Op{{Key: store.Key("i", "assignments", a.ID), Delete: true}}, "no index entry"},
		{"members entry missing", []store.Op{{Key: store.Key("i", "members", "g", "u1"), Delete: true}}, "members index"},
		{"members entry without membership", []store.Op{{Key: store.Key("i", "members", "g", "u2"), Value: []byte("true")}}, "without its membership"},
		{"role-uses entry under another role", []store.Op{{Key: store.Key("i", "role_uses", "s", "other", a.ID), Value: []byte("true")}}, "do not match the records"},
		{"scopes entry under another scope", []store.Op{{Key: store.Key("d", "scopes", "s", "project:elsewhere", a.ID), Value: []byte("true")}}, "do not match the records"},
		{"assignment index to another grant", []store.Op{{Key: store.Key("i", "assignments", a.ID), Value: store.GrantKey(as[2])}}, "no index entry"},
		{"grant leaf does not decode", []store.Op{{Key: store.GrantKey(a), Value: []byte("{")}}, "grants"},
		{"key outside the layout", []store.Op{{Key: store.Key("d", "nonsense", "x"), Value: []byte("1")}}, "outside the layout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := sound(t)
			if _, err := b.Commit(ctx, &store.Batch{Base: b.Revision(), Ops: c.ops}); err != nil {
				t.Fatal(err)
			}
			snap, _ := b.View()
			p := store.Verify(snap, 5)
			if len(p) == 0 {
				t.Fatal("no problem found")
			}
			if s := fmt.Sprint(p); !strings.Contains(s, c.want) {
				t.Fatalf("problems %v: want one mentioning %q", p, c.want)
			}
		})
	}
}

// TestCheckRecord: one record on its own, as Verify checks each — and its
// error names the kind of record, never the value.
func TestCheckRecord(t *testing.T) {
	for _, c := range []struct {
		key, value, want string
	}{
		{string(store.Key("d", "roles", "s", "r")), `{"permissions":["view"]}`, ""},
		{string(store.Key("d", "memberships", "u", "g")), "true", ""},
		{string(store.Key("d", "roles", "s", "r")), `{"secret":"hunter2"`, "not a role as permatrix writes it"},
		{string(store.Key("d", "memberships", "u", "g")), "hunter2", "not a membership"},
		{string(store.Key("d", "grants", "user:u", "s", "role", "r", "service")), "hunter2", "not a grant"},
		{string(store.Key("x", "y")), "hunter2", "outside the store's layout"},
		{"", "hunter2", "outside the store's layout"},
	} {
		err := store.CheckRecord([]byte(c.key), []byte(c.value))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q = %q: %v", c.key, c.value, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q = %q: %v, want %q", c.key, c.value, err, c.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%q: the error shows the value: %v", c.key, err)
		}
	}
}
