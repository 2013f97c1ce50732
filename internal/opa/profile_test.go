package opa

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestProfileDecision prints where one decision's time goes, rule by rule
// (OPA's profiler), when PERMATRIX_PROFILE names a system action, e.g.
// PERMATRIX_PROFILE=celonis-task-mining/view_project.
func TestProfileDecision(t *testing.T) {
	what := os.Getenv("PERMATRIX_PROFILE")
	if what == "" {
		t.Skip("set PERMATRIX_PROFILE=system/action")
	}
	var sys, action string
	fmt.Sscanf(what, "%s", &sys)
	for i := range what {
		if what[i] == '/' {
			sys, action = what[:i], what[i+1:]
		}
	}
	ctx := context.Background()
	mem := store.NewMemory()
	_, err := store.Update(ctx, mem, func(tx *store.Tx) error {
		for i := range 2000 {
			u := fmt.Sprintf("user:u%d", i)
			for _, a := range []permatrix.Assignment{
				{Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
				{Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}},
			} {
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
			}
			if i%10 == 0 {
				tx.AddMember(permatrix.Membership{Group: "ops", User: fmt.Sprintf("u%d", i)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := compileDefault(t, mem, WithEvaluator(Topdown))
	snap, _ := mem.View()
	defer snap.Close()
	c := permatrix.Check{Subject: "u7", System: sys, Action: action, Resource: &permatrix.Scope{Type: "project", ID: "p7"}}
	in, _ := ast.InterfaceToValue(c.Input())
	prof := profiler.New()
	for range 200 {
		if _, err := p.decision.topdown.Eval(ctx, rego.EvalParsedInput(in), rego.EvalTransaction(p.data.Begin(snap)), rego.EvalQueryTracer(prof)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range prof.ReportTopNResults(25, []string{"total_time_ns"}) {
		t.Logf("%8.1fµs total %4d evals %s", float64(r.ExprTimeNs)/200/1000, r.NumEval/200, r.Location)
	}
}

// TestProfileVerdict prints where a write verdict's time goes when
// PERMATRIX_PROFILE_VERDICT is set.
func TestProfileVerdict(t *testing.T) {
	if os.Getenv("PERMATRIX_PROFILE_VERDICT") == "" {
		t.Skip("set PERMATRIX_PROFILE_VERDICT=1")
	}
	ctx := context.Background()
	mem := store.NewMemory()
	p := compileDefault(t, mem, WithEvaluator(Topdown))
	snap, _ := mem.View()
	defer snap.Close()
	prof := profiler.New()
	for i := range 200 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
		in, _ := ast.InterfaceToValue(map[string]any{"op": "assign", "assignment": a.Value()})
		if _, err := p.verdict.topdown.Eval(ctx, rego.EvalParsedInput(in), rego.EvalTransaction(p.data.Begin(snap)), rego.EvalQueryTracer(prof)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range prof.ReportTopNResults(25, []string{"total_time_ns"}) {
		t.Logf("%8.1fµs total %4d evals %s", float64(r.ExprTimeNs)/200/1000, r.NumEval/200, r.Location)
	}
}
