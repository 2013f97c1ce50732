package pdp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// probeCatalog is a system of two actions, one at service scope and one
// at project scope, decided by the policy a probe test gives.
const probeCatalog = `{
  "name": "Probe", "vendor": "test", "package": "probe", "documents": [],
  "scope_types": ["service", "project"], "context_keys": {},
  "roles": {}, "permissions": {},
  "actions": {"read": {"scopes": ["service"]}, "write": {"scopes": ["service", "project"]}},
  "custom_roles": false
}`

// probeBundle is the repository's entrypoints and library with a system
// whose decision is policy (a Rego body for package probe).
func probeBundle(t *testing.T, policy string) *opa.Bundle {
	return systemBundle(t, "probe", probeCatalog, "import data.permatrix.lib\n\n"+policy, nil)
}

// TestActivateRefusesAPolicyThatCannotDecide: a bundle that compiles but
// cannot decide a check its catalog names — the decision undefined for
// one action, two values in conflict, a builtin's error at one scope type
// — is not activated, and says which check; the last good policy keeps
// deciding. Probing one check only (the full query, on no system) let
// each of these replace the good policy, after which every such check
// answered 500.
func TestActivateRefusesAPolicyThatCannotDecide(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	good := svc.Policy()
	for _, tc := range []struct{ name, policy, want string }{
		{"undefined for one action", `decision := lib.verdict(set(), set()) if input.action == "read"`,
			"probe decision of probe's write at scope type service"},
		{"a conflict", "decision := lib.verdict(set(), set())\n\ndecision := lib.verdict({{\"kind\": \"x\"}}, set()) if input.action == \"write\"",
			"probe decision of probe's write"},
		{"a builtin's error at one scope type", `decision := lib.verdict(set(), {lib.missing_condition("probe", sprintf("%d", [to_number(input.resource.id)]))}) if {
	input.resource.type == "project"
} else := lib.verdict(set(), set())`,
			"probe decision of probe's write at scope type project"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Activate(ctx, probeBundle(t, tc.policy))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("activated, or refused for another reason: %v (want %q)", err, tc.want)
			}
			if svc.Policy() != good {
				t.Fatal("the refused policy is active")
			}
			d, err := svc.Check(ctx, permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "edit_users"})
			if err != nil || d.Allow || len(d.Missing) == 0 {
				t.Fatalf("the last good policy does not decide: %+v %v", d, err)
			}
		})
	}
	// A policy that decides every check it names is activated.
	p, err := svc.Activate(ctx, probeBundle(t, "decision := lib.verdict(set(), set())"))
	if err != nil || svc.Policy() != p {
		t.Fatalf("a policy that decides was refused: %v", err)
	}
	d, err := svc.Check(ctx, permatrix.Check{Subject: "alice", System: "probe", Action: "write", Resource: &permatrix.Scope{Type: "project", ID: "p1"}})
	if err != nil || d.Allow {
		t.Fatalf("%+v %v", d, err)
	}
}
