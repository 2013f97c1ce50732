package pdp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestDecisionRevisionIsTheSnapshots: a decision's revision is the store
// revision it was made at (contract section 3), whichever query decided
// it — the system's own decision (the fast path) or
// data.permatrix.decision — and whatever a bundle's decision says its
// revision is: the server read the snapshot, the policy only copies it.
func TestDecisionRevisionIsTheSnapshots(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(path, src string) string
	}{
		{"a decision without a revision", func(p, src string) string {
			if strings.HasSuffix(p, "policies/permatrix/permatrix.rego") {
				return strings.Replace(src, `decision := object.union(system_verdict, {"revision": lib.revision}) if {`, `decision := system_verdict if {`, 1)
			}
			return src
		}},
		{"a decision naming another revision", func(p, src string) string {
			if strings.HasSuffix(p, "policies/permatrix/permatrix.rego") {
				return strings.Replace(src, `{"revision": lib.revision}`, `{"revision": lib.revision + 100}`, 1)
			}
			return src
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t)
			if _, err := svc.Activate(ctx, pdp.DefaultBundleWith(t, tc.edit, nil)); err != nil {
				t.Fatal(err)
			}
			a := permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
			if _, _, err := svc.Assign(ctx, a, ""); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []permatrix.Check{
				{Subject: "ann", System: a.System, Action: "edit_users"}, // the system's decision
				// create_project applies at the service only: data.permatrix.decision
				{Subject: "ann", System: a.System, Action: "create_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
			} {
				for range 3 { // made, kept, answered from the cache
					d, err := svc.Check(ctx, ch)
					if err != nil {
						t.Fatal(err)
					}
					if d.Revision != svc.Revision() {
						t.Errorf("%s: decided at revision %d, the store is at %d", ch.Action, d.Revision, svc.Revision())
					}
				}
			}
		})
	}
}
