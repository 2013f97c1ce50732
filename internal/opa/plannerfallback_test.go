package opa

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A bundle whose Rego OPA's planner cannot plan (a rule body reading the
// path prefix its own rules share, which topdown and `opa test` evaluate)
// is evaluated by topdown, as a plan the vm cannot run is: the vm
// evaluator refused to activate it, though `--evaluator topdown` served
// it.
func TestActivatesWhatThePlannerCannotPlan(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	b := withModule(t, def, "policies/celonis/storage_manager.rego", func(s string) string {
		s = strings.Replace(s, "decision := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)",
			"decision := d if {\n\tcount(needs.admin) == 2\n\td := celonis.grant_decision(\"celonis-storage-manager\", input.action, lib.scope)\n}", 1)
		return s + "\nneeds[r] := ps if some r, ps in {\"viewer\": {\"read\"}}\n\nneeds.admin := needs.viewer | {\"delete\"}\n"
	})
	check := permatrix.Check{Subject: "alice", System: "celonis-storage-manager", Action: "get", Resource: &permatrix.Scope{Type: "bucket", ID: "b1"}}
	var decisions []*permatrix.Decision
	for _, ev := range []Evaluator{VM, Topdown} {
		p, err := NewEngine(nil, WithEvaluator(ev)).Activate(ctx, b)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		d, err := p.Decide(ctx, store.Empty(0), check)
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		decisions = append(decisions, d)
	}
	if !reflect.DeepEqual(decisions[0], decisions[1]) {
		t.Fatalf("the evaluators decide differently:\nvm      %+v\ntopdown %+v", decisions[0], decisions[1])
	}
	if decisions[0].Allow || len(decisions[0].Missing) == 0 {
		t.Fatalf("a check nothing grants: %+v", decisions[0])
	}
}
