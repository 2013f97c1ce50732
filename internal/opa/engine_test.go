package opa_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

func compile(t testing.TB, b store.Backend, opts ...opa.Option) *opa.Policy {
	t.Helper()
	bundle, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, err := opa.Compile(context.Background(), bundle, b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tempDB is a new bbolt store in t's temporary directory, closed when t
// ends.
func tempDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// bothEvaluators compiles the default bundle over b twice: for the vm and
// for topdown.
func bothEvaluators(t testing.TB, b store.Backend) (vm, td *opa.Policy) {
	t.Helper()
	return compile(t, b, opa.WithEvaluator(opa.VM)), compile(t, b, opa.WithEvaluator(opa.Topdown))
}

func TestDefaultBundleCatalog(t *testing.T) {
	p := compile(t, nil)
	s, ok := p.Catalog["celonis-task-mining"]
	if !ok {
		t.Fatalf("catalog has no celonis-task-mining: %v", p.Catalog)
	}
	if s.Package != "celonis_task_mining" || s.Roles["admin"].Scopes[0] != "service" {
		t.Fatalf("unexpected catalog entry %+v", s)
	}
	if rev := p.BundleRevision(); len(rev) < 10 {
		t.Fatalf("bundle revision %q", rev)
	}
}

// TestDecisionsReadTheSnapshot: a decision reads data.store from the
// snapshot it is given, and reports that snapshot's revision.
func TestDecisionsReadTheSnapshot(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	p := compile(t, mem)
	check := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users",
		Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	before, _ := mem.View()
	defer before.Close()
	a := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	rev, err := store.Update(ctx, mem, func(tx *store.Tx) error { return tx.CreateAssignment(&a) })
	if err != nil {
		t.Fatal(err)
	}
	after, _ := mem.View()
	defer after.Close()
	d, err := p.Decide(ctx, before, check)
	if err != nil || d.Allow || d.Revision != 0 {
		t.Fatalf("before: %+v %v", d, err)
	}
	d, err = p.Decide(ctx, after, check)
	if err != nil || !d.Allow || d.Revision != rev || len(d.Reasons) != 1 || d.Reasons[0]["assignment"] != a.ID {
		t.Fatalf("after: %+v %v", d, err)
	}
}

// TestVerdictReadsAreTracked: what the write rules read while judging a
// write becomes the write's guards.
func TestVerdictReadsAreTracked(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	p := compile(t, mem)
	snap, _ := mem.View()
	defer snap.Close()
	tr := store.Track(snap)
	in := map[string]any{"op": "assign", "actor": "bob", "assignment": permatrix.Assignment{
		Subject: "user:alice", System: "uipath-task-mining-suite", Role: "user", Scope: permatrix.ServiceScope}.Value()}
	_, forbidden, err := p.Verdict(ctx, tr, in)
	if err != nil || len(forbidden) == 0 {
		t.Fatalf("bob, holding nothing, assigns: forbidden %v, %v", forbidden, err)
	}
	units := map[string]bool{}
	for _, u := range tr.Units() {
		units[string(u)] = true
	}
	// bob's grants in the system written (read by direct lookup: no other
	// system's), and bob's groups.
	for _, want := range []string{
		string(store.UnitOf(store.Key("d", "grants", "user:bob", "uipath-task-mining-suite"))),
		string(store.UnitOf(store.Key("d", "memberships", "bob"))),
	} {
		if !units[want] {
			t.Errorf("the verdict's reads lack %q", store.Segments([]byte(want)))
		}
	}
}

func roundTripAny(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// A bundle compiles while its store cannot be read (a fleet's replica still
// loading from etcd at start, here a closed bbolt file): preparing the
// queries reads nothing of data.store, and only decisions need it.
func TestCompileReadsNoStore(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "closed.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(); err == nil {
		t.Fatal("a closed store can still be read: the test proves nothing")
	}
	p := compile(t, db)
	if _, err := p.Decide(context.Background(), store.Empty(0), permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users"}); err != nil {
		t.Fatalf("deciding over a snapshot of its own: %v", err)
	}
}
