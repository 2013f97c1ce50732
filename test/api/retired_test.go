package api_test

import (
	"context"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/test/harness"
)

// withoutBluePrism is the embedded bundle without the blueprism system: a
// bundle that dropped it.
func withoutBluePrism(t *testing.T) *opa.Bundle {
	t.Helper()
	tree := fstest.MapFS{}
	err := fs.WalkDir(permatrix.DefaultBundle, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "blueprism") {
			return err
		}
		raw, err := fs.ReadFile(permatrix.DefaultBundle, path)
		tree[path] = &fstest.MapFile{Data: raw}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := opa.ReadLayout(tree)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A group holding an assignment of a system the bundle dropped took any
// actor as a member (adding was judged as assigning the holding, and no
// rule refused an assign in no system): nobody, holding nothing, joined
// group:legacy, and held its Blue Prism user and role administration once
// a bundle brought blueprism back. Only the operator changes its members.
func TestRetiredSystemGroupTakesNoActorMembers(t *testing.T) {
	ctx := context.Background()
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "strong", "security_users", "security_user_roles")
	s.Assign(roleAt(bp, "group:legacy", "strong", service))
	if _, err := s.Svc.Activate(ctx, withoutBluePrism(t)); err != nil {
		t.Fatal(err)
	}
	before := export(s)
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		r := s.Do(method, "/v1/groups/legacy/members/nobody", nil, true, "X-Permatrix-Actor", "nobody")
		wantRefused(t, s, "nobody "+method+" group:legacy", r, http.StatusForbidden, "forbidden",
			`in blueprism: the bundle has no such system, so no rule says who may`, before)
	}
	def, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Svc.Activate(ctx, def); err != nil {
		t.Fatal(err)
	}
	if s.Allowed(map[string]any{"subject": "nobody", "system": bp, "action": "security_users"}) {
		t.Fatal("nobody holds security_users through group:legacy")
	}
	// The operator manages the group as ever.
	if r := s.Do(http.MethodPut, "/v1/groups/legacy/members/zed", nil, true); r.Status != http.StatusOK {
		t.Fatalf("the operator adding zed: %d %s", r.Status, r.Raw)
	}
}
