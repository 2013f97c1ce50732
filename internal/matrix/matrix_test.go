package matrix_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/internal/opa"
)

func policy(t *testing.T) (*opa.Bundle, *opa.Policy) {
	t.Helper()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, err := opa.Compile(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

// TestOfIsBuild: the matrix of a compiled policy (the server's) is the
// matrix of its bundle (the CLI's).
func TestOfIsBuild(t *testing.T) {
	b, p := policy(t)
	for _, system := range []string{"celonis-task-mining", "uipath-task-mining-cloud", "uipath-orchestrator"} {
		want, err := matrix.Build(context.Background(), b, system, matrix.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := matrix.Of(context.Background(), p, system, matrix.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Of and Build differ", system)
		}
	}
	if _, err := matrix.Of(context.Background(), p, "no-such-system", matrix.Options{}); err == nil {
		t.Error("an unknown system has a matrix")
	}
}

// TestExplainIsTheCell: explaining any cell decides it as the matrix did;
// a cell the matrix does not have is not explained.
func TestExplainIsTheCell(t *testing.T) {
	ctx := context.Background()
	_, p := policy(t)
	for _, system := range []string{"celonis-task-mining", "uipath-task-mining-cloud", "uipath-task-mining-suite"} {
		m, err := matrix.Of(ctx, p, system, matrix.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range m.Cells {
			got, rules, ok, err := matrix.Explain(ctx, p, system, want.Role, want.Action, want.Scope, matrix.Options{})
			if err != nil || !ok {
				t.Fatalf("%s %+v: %v %v", system, want, ok, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: explained %+v, the matrix has %+v", system, got, want)
			}
			if len(rules) == 0 {
				t.Errorf("%s %s × %s: no rule held", system, want.Role, want.Action)
			}
			for _, r := range rules {
				if r.Package == "data.permatrix" || r.Package == "data.permatrix.lib" {
					t.Errorf("%s: a generic rule is reported: %+v", system, r)
				}
			}
		}
	}
	for _, c := range [][3]string{{"no-role", "edit_users", "service"}, {"admin", "no-action", "service"}, {"admin", "edit_users", "no-scope"},
		{"admin", "create_project", "project"}} { // create_project is checked at service scope only
		if _, _, ok, err := matrix.Explain(ctx, p, "celonis-task-mining", c[0], c[1], c[2], matrix.Options{}); ok || err != nil {
			t.Errorf("%v: explained (%v, %v)", c, ok, err)
		}
	}
}

// TestCompare: cells decided otherwise, cells in one matrix only, and the
// holders and actions added and removed.
func TestCompare(t *testing.T) {
	_, p := policy(t)
	base, err := matrix.Of(context.Background(), p, "celonis-task-mining", matrix.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := matrix.Compare(base, base); len(d.Changes) != 0 || d.Cells != len(base.Cells) {
		t.Errorf("a matrix against itself: %+v", d)
	}
	// The candidate: analyst's first cell flipped, member's cells gone, a
	// new role with one cell.
	raw, _ := json.Marshal(base)
	var cand matrix.Matrix
	json.Unmarshal(raw, &cand)
	cand.BundleRevision = "candidate"
	var kept []matrix.Cell
	flipped := -1
	for _, c := range cand.Cells {
		if c.Role == "member" {
			continue
		}
		if c.Role == "analyst" && flipped < 0 {
			c.Allow = !c.Allow
			flipped = len(kept)
		}
		kept = append(kept, c)
	}
	kept = append(kept, matrix.Cell{Role: "auditor", Action: "view_project", Scope: "service", Allow: true})
	cand.Cells = kept
	cand.Holders = append(cand.Holders[:2], matrix.Holder{ID: "auditor"})
	cand.Actions = append(cand.Actions, "audit")

	d := matrix.Compare(base, &cand)
	members := 0
	for _, c := range base.Cells {
		if c.Role == "member" {
			members++
		}
	}
	if len(d.Changes) != 1+1+members {
		t.Fatalf("%d changes, want %d: %+v", len(d.Changes), 2+members, d.Changes)
	}
	f := d.Changes[0]
	if f.Role != "analyst" || f.Was == nil || f.Now == nil || *f.Was == *f.Now {
		t.Errorf("the flipped cell: %+v", f)
	}
	if n := d.Changes[1]; n.Role != "auditor" || n.Was != nil || n.Now == nil || !*n.Now {
		t.Errorf("the new cell: %+v", n)
	}
	for _, c := range d.Changes[2:] {
		if c.Role != "member" || c.Was == nil || c.Now != nil {
			t.Errorf("a removed cell: %+v", c)
		}
	}
	if d.Cells != len(cand.Cells)+members {
		t.Errorf("cells %d, want %d", d.Cells, len(cand.Cells)+members)
	}
	if !reflect.DeepEqual(d.AddedHolders, []string{"auditor"}) || !reflect.DeepEqual(d.RemovedHolders, []string{"member"}) ||
		!reflect.DeepEqual(d.AddedActions, []string{"audit"}) || len(d.RemovedActions) != 0 {
		t.Errorf("holders/actions: %+v", d)
	}
}
