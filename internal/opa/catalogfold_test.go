package opa

import (
	"context"
	"testing"
)

// TestCatalogKeysMatchedExactly: the server's view of a catalog (its
// validation, GET /v1/systems) is the policies' view. encoding/json (v1)
// matched a member to a field case-insensitively, with Unicode folding:
// "actionſ" (a long s) is "actions" to it, and sorting after "actions" it
// replaced the catalog's actions the policies read — the server's catalog
// and the policies' disagreed.
func TestCatalogKeysMatchedExactly(t *testing.T) {
	b := withSystems(t, func(s map[string]map[string]any) {
		s["celonis-task-mining"]["actionſ"] = map[string]any{}
		s["celonis-task-mining"]["ſcope_types"] = []any{"service"}
		s["celonis-task-mining"]["pacKage"] = "no_such_package" // a Kelvin sign
	})
	p, err := Compile(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys := p.Catalog["celonis-task-mining"]
	if len(sys.Actions) == 0 {
		t.Fatal(`"actionſ" replaced the catalog's actions`)
	}
	if len(sys.ScopeTypes) < 2 {
		t.Fatalf(`"ſcope_types" replaced the catalog's scope types: %v`, sys.ScopeTypes)
	}
	if sys.Package == "no_such_package" {
		t.Fatal(`"pacKage" replaced the catalog's package`)
	}
}
