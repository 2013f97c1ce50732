package opa_test

import (
	"context"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// TestGrantLeafDuplicateKeysReadAsTheStoreCheckReadsThem: a grant leaf
// with a key twice (a damaged or foreign-written store; json.Unmarshal,
// which the open-time check and store.Verify use, takes the last value) is
// read by decisions and by the Data API as one object with the last value
// — not as an object holding the key twice (ast.NewObject does not
// deduplicate), whose size, equality and JSON differ from the value the
// store's own check accepted.
func TestGrantLeafDuplicateKeysReadAsTheStoreCheckReadsThem(t *testing.T) {
	ctx := context.Background()
	b := store.NewMemory()
	a := permatrix.Assignment{Subject: "user:u0", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
		t.Fatal(err)
	}
	leaf := `{"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:someone-else","assignment":"` + a.ID + `","via":"user:u0"}`
	if _, err := b.Commit(ctx, &store.Batch{Base: b.Revision(), Ops: []store.Op{{Key: store.GrantKey(a), Value: []byte(leaf)}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if p := store.Verify(snap, 5); len(p) > 0 {
		t.Fatalf("the store's check refuses the leaf (%v): this test needs one it accepts", p)
	}
	if got, err := store.Assignment(snap, a.ID); err != nil || got.Subject != "user:u0" {
		t.Fatalf("store.Assignment: %+v %v", got, err)
	}
	for _, ev := range []opa.Evaluator{opa.VM, opa.Topdown} {
		p := compile(t, b, opa.WithEvaluator(ev))
		// Rego sees one object of five keys, via the last one.
		q := `l := data.store.grants["user:u0"]["celonis-task-mining"].role.analyst.service; n := count(l); v := l.via; keys := [k | some k, _ in l]; same := l == {"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:u0","assignment":"` + a.ID + `"}`
		res, err := p.EvalQuery(ctx, snap, q, nil, opa.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bs := res.Result.([]map[string]any)
		if len(bs) != 1 {
			t.Fatalf("%s: %v", ev, bs)
		}
		r := bs[0]
		if n, _ := r["n"].(interface{ String() string }); n == nil || n.String() != "5" || r["v"] != "user:u0" || r["same"] != true {
			t.Errorf("%s: the leaf reads as count %v, via %v, keys %v, equal to its value %v", ev, r["n"], r["v"], r["keys"], r["same"])
		}
		// And a decision's reason names the via the store's check read.
		in := any(map[string]any{"subject": "u0", "system": "celonis-task-mining", "action": "view_project", "resource": map[string]any{"type": "project", "id": "p1"}})
		d, err := p.EvalData(ctx, snap, []string{"store", "grants", "user:u0", "celonis-task-mining", "role", "analyst", "service"}, &in, opa.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := d.Result.(map[string]any); m["via"] != "user:u0" {
			t.Errorf("%s: the Data API reads the leaf as %v", ev, d.Result)
		}
	}
}
