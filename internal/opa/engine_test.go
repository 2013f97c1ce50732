package opa_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

func load(t testing.TB, st *permatrix.State) *opa.Engine {
	t.Helper()
	b, err := opa.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	e := opa.New()
	if _, err := e.Load(context.Background(), b, func() (*permatrix.State, error) { return st, nil }); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDefaultBundleCatalog(t *testing.T) {
	e := load(t, &permatrix.State{})
	c := e.Current().Catalog
	s, ok := c["celonis-task-mining"]
	if !ok {
		t.Fatalf("catalog has no celonis-task-mining: %v", c)
	}
	if s.Package != "celonis_task_mining" || s.Roles["admin"].Scopes[0] != "service" {
		t.Fatalf("unexpected catalog entry %+v", s)
	}
	if rev := e.Current().Revision(); len(rev) < 10 {
		t.Fatalf("bundle revision %q", rev)
	}
}

func TestApplyPatchesChangeDecisions(t *testing.T) {
	ctx := context.Background()
	e := load(t, &permatrix.State{Revision: 1})
	check := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users",
		Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	d, err := e.Current().Decide(ctx, check.Input())
	if err != nil || d.Allow || d.Revision != 1 {
		t.Fatalf("before: %+v %v", d, err)
	}
	a := permatrix.Assignment{ID: "a1", Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	if err := e.Apply(ctx, []permatrix.Patch{{Path: permatrix.AssignmentPath(a), Value: a.Value()}, {Path: []string{"revision"}, Value: uint64(2)}}); err != nil {
		t.Fatal(err)
	}
	d, err = e.Current().Decide(ctx, check.Input())
	if err != nil || !d.Allow || d.Revision != 2 || len(d.Reasons) != 1 || d.Reasons[0]["assignment"] != "a1" {
		t.Fatalf("after assign: %+v %v", d, err)
	}
	if err := e.Apply(ctx, []permatrix.Patch{{Path: permatrix.AssignmentPath(a)}, {Path: []string{"revision"}, Value: uint64(3)}}); err != nil {
		t.Fatal(err)
	}
	d, err = e.Current().Decide(ctx, check.Input())
	if err != nil || d.Allow || d.Revision != 3 || len(d.Missing) != 1 {
		t.Fatalf("after unassign: %+v %v", d, err)
	}
}

func roundTrip(t testing.TB, v map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func roundTripAny(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
