package opa

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// inputValue, the check's input built as AST for the evaluators, is
// Check.Input (the input the decision log records and stock opa is given)
// converted: for every shape of check, with the policy's shared terms and
// without.
func TestInputValueIsCheckInput(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	checks := []permatrix.Check{
		{Subject: "alice", System: "celonis-task-mining", Action: "view_project"},
		{Subject: "alice", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "alice", System: "blueprism", Action: "view_resource", Resource: &permatrix.Scope{Type: "service"}},
		{Subject: "alice", System: "blueprism", Action: "view_resource", Resource: &permatrix.Scope{Type: "resource_group"}},
		{Subject: "ü\u00a0x", System: "not a system", Action: "", Groups: []string{"g1", "g1", "ops"}},
		{Subject: "bob", System: "celonis-task-mining", Action: "create_project",
			Context:     map[string]any{"custom_project": true, "space": "s1", "n": 1.5, "list": []any{"a", nil, map[string]any{}}},
			MinRevision: 7},
		{Subject: "bob", System: "celonis-task-mining", Action: "create_project", Context: map[string]any{}, Groups: []string{}},
	}
	for _, c := range checks {
		want, err := ast.InterfaceToValue(c.Input())
		if err != nil {
			t.Fatal(err)
		}
		for name, ts := range map[string]terms{"shared terms": p.data.terms, "no shared terms": nil} {
			got, err := inputValue(c, ts)
			if err != nil {
				t.Fatalf("%+v, %s: %v", c, name, err)
			}
			if got.Compare(want) != 0 {
				t.Errorf("%+v, %s:\n inputValue  %v\n Check.Input %v", c, name, got, want)
			}
		}
	}
}
