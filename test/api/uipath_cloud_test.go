package api_test

// UiPath Task Mining (cloud roles), uipath-task-mining-cloud, over HTTP:
// readings in docs/systems/uipath-task-mining-cloud.md.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/test/harness"
)

const (
	tmc  = "uipath-task-mining-cloud"
	tms  = "uipath-task-mining-suite"
	orch = "uipath-orchestrator"
)

// sysCheck is a check object in system sys; resource and ctx may be nil.
func sysCheck(sys, user, action string, resource, ctx map[string]any) map[string]any {
	c := map[string]any{"subject": user, "system": sys, "action": action}
	if resource != nil {
		c["resource"] = resource
	}
	if ctx != nil {
		c["context"] = ctx
	}
	return c
}

func cloud(user, action string, resource map[string]any) map[string]any {
	return sysCheck(tmc, user, action, resource, nil)
}

// roleAt is an assignment of a role.
func roleAt(sys, subject, role string, scope map[string]any) map[string]any {
	return map[string]any{"subject": subject, "system": sys, "role": role, "scope": scope}
}

// withActor copies an assignment body adding "actor".
func withActor(a map[string]any, actor string) map[string]any {
	b := map[string]any{"actor": actor}
	for k, v := range a {
		b[k] = v
	}
	return b
}

func items(r harness.Response, key string) []map[string]any {
	var out []map[string]any
	list, _ := r.Body[key].([]any)
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// findReason returns the first reason naming role (or permission) via principal.
func findReason(r harness.Response, roleOrPerm, via string) map[string]any {
	for _, m := range items(r, "reasons") {
		if (m["role"] == roleOrPerm || m["permission"] == roleOrPerm) && m["via"] == via {
			return m
		}
	}
	return nil
}

func hasCondition(r harness.Response, text string) bool {
	for _, m := range items(r, "missing") {
		if m["kind"] == "condition" && strings.Contains(fmt.Sprint(m["message"]), text) {
			return true
		}
	}
	return false
}

func errorOf(r harness.Response) (code, msg string) {
	e, _ := r.Body["error"].(map[string]any)
	return fmt.Sprint(e["code"]), fmt.Sprint(e["message"])
}

func revisionOf(t *testing.T, r harness.Response) float64 {
	t.Helper()
	rev, ok := r.Body["revision"].(float64)
	if !ok {
		t.Fatalf("no revision in %s", r.Raw)
	}
	return rev
}

// export is the whole store (GET /v1/export through the Go client).
func export(s *harness.Server) string {
	var b strings.Builder
	if _, err := s.API().Export(ctx, &b); err != nil {
		return "export failed: " + err.Error() // never equal to a store's export
	}
	return b.String()
}

// registerProject registers a project of sys through the Go client as the
// operator and fails unless it is accepted.
func registerProject(t *testing.T, s *harness.Server, sys, id, createdBy, kind string) client.ProjectWrite {
	t.Helper()
	w, err := s.API().PutProject(ctx, permatrix.Project{System: sys, ID: id, CreatedBy: createdBy, Kind: kind})
	if err != nil {
		t.Fatalf("register %s/%s: %v", sys, id, err)
	}
	return w
}

func TestUiPathCloudCreatorGetsProjectAdmin(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "user:alice", "project_creator", service))
	before := s.Do(http.MethodGet, "/v1/export", nil, true).Body["store"].(map[string]any)["revision"].(float64)

	w := registerProject(t, s, tmc, "p1", "alice", "assisted")
	rev := float64(w.Revision)
	if rev != before+1 {
		t.Fatalf("project and creator assignment should be one write (revision %v after %v): %+v", rev, before, w)
	}
	ca := w.CreatorAssignment
	if ca == nil || ca.Subject != "user:alice" || ca.System != tmc || ca.Role != "project_admin" ||
		ca.Scope != (permatrix.Scope{Type: "project", ID: "p1"}) || ca.ID == "" {
		t.Fatalf("creator_assignment: %+v", ca)
	}
	id := ca.ID
	if g, err := s.API().Assignment(ctx, id); err != nil || g.Role != "project_admin" {
		t.Fatalf("creator assignment not stored: %+v %v", g, err)
	}
	if p, err := s.API().Project(ctx, tmc, "p1"); err != nil || p.CreatedBy != "alice" || p.Kind != "assisted" {
		t.Fatalf("project: %+v %v", p, err)
	}

	// The creator may update p1, through project_admin on it (and project_creator's はい*).
	c := s.Check(cloud("alice", "update_project", project("p1")))
	if c.Body["allow"] != true || c.Body["revision"].(float64) < rev {
		t.Fatalf("creator update_project p1: %s", c.Raw)
	}
	if pa := findReason(c, "project_admin", "user:alice"); pa == nil || pa["assignment"] != id {
		t.Fatalf("reason should name the creator assignment %s: %s", id, c.Raw)
	}
	// ... but not another project, registered by someone else or not at all.
	registerProject(t, s, tmc, "p2", "bob", "assisted")
	for _, p := range []string{"p2", "p3"} {
		if s.Allowed(cloud("alice", "update_project", project(p))) {
			t.Fatalf("alice may not update %s", p)
		}
	}
	if s.Allowed(cloud("alice", "update_project", nil)) {
		t.Fatal("a project creator may not update every project (service scope)")
	}

	// Without project_admin, the project_creator's はい* rights still reach the
	// projects it created, and only those.
	if _, err := s.API().DeleteAssignment(ctx, id); err != nil {
		t.Fatalf("delete creator assignment: %v", err)
	}
	for _, a := range []string{"update_project", "delete_project", "start_analysis", "manage_access", "assign_roles", "remove_role_assignments"} {
		c := s.Check(cloud("alice", a, project("p1")))
		if c.Body["allow"] != true || findReason(c, "project_creator", "user:alice") == nil {
			t.Errorf("project_creator on its own p1, %s: %s", a, c.Raw)
		}
		c = s.Check(cloud("alice", a, project("p2")))
		if c.Body["allow"] != false || !hasCondition(c, "created") {
			t.Errorf("project_creator on bob's p2, %s: %s", a, c.Raw)
		}
	}
	if s.Allowed(cloud("alice", "read_project", project("p3"))) {
		t.Fatal("はい* does not reach an unregistered project")
	}
	for _, a := range []string{"create_project", "view_download_page"} {
		if !s.Allowed(cloud("alice", a, nil)) {
			t.Errorf("project_creator %s (はい) at service scope denied", a)
		}
	}
	if s.Allowed(cloud("alice", "contribute_data", project("p1"))) {
		t.Fatal("contribute_data is いいえ for project_creator")
	}
	// A creator without project_creator keeps only the project_admin it was given.
	registerProject(t, s, tmc, "p4", "dan", "assisted")
	if !s.Allowed(cloud("dan", "update_project", project("p4"))) || s.Allowed(cloud("dan", "update_project", project("p1"))) {
		t.Fatal("dan's project_admin on p4 only")
	}
	// No created_by: no creator assignment.
	if w := registerProject(t, s, tmc, "p5", "", "assisted"); w.CreatorAssignment != nil {
		t.Fatalf("no creator, no assignment: %+v", w)
	}
}

func TestUiPathCloudRegisterProjectActor(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "user:alice", "project_creator", service))
	s.Assign(roleAt(tmc, "user:pa", "project_admin", project("p0")))
	before := export(s)
	for _, actor := range []string{"pa", "nobody"} {
		r := s.Do(http.MethodPut, "/v1/systems/"+tmc+"/projects/p1", map[string]any{"created_by": actor, "kind": "assisted", "actor": actor}, true)
		if code, msg := errorOf(r); r.Status != 403 || code != "forbidden" || !strings.Contains(msg, "create") {
			t.Fatalf("%s registering a project: %d %s", actor, r.Status, r.Raw)
		}
	}
	if after := export(s); after != before {
		t.Fatalf("refused project registration changed the store:\n%s\n%s", before, after)
	}
	w, err := s.API().PutProject(ctx, permatrix.Project{System: tmc, ID: "p1", CreatedBy: "alice", Kind: "assisted"}, client.Actor("alice"))
	if err != nil || w.CreatorAssignment == nil {
		t.Fatalf("project_creator registering a project: %+v %v", w, err)
	}
}

func TestUiPathCloudGroups(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "group:g", "business_analyst", project("p1")))
	if s.Allowed(cloud("u", "read_project", project("p1"))) {
		t.Fatal("u is not in g yet")
	}
	if r := s.Do(http.MethodPut, "/v1/groups/g/members/u", nil, true); r.Status != 200 {
		t.Fatalf("put member: %d %s", r.Status, r.Raw)
	}
	for _, a := range []string{"read_project", "view_discovery_results", "update_discovery_results"} {
		r := s.Check(cloud("u", a, project("p1")))
		if ba := findReason(r, "business_analyst", "group:g"); r.Body["allow"] != true || ba == nil {
			t.Fatalf("member of g, %s: %s", a, r.Raw)
		}
	}
	if s.Allowed(cloud("u", "read_project", project("p2"))) || s.Allowed(cloud("u", "delete_discovery_results", project("p1"))) {
		t.Fatal("the group grant is business_analyst on p1 only")
	}
	// Asserted membership.
	asserted := cloud("v", "read_project", project("p1"))
	asserted["groups"] = []string{"g"}
	r := s.Check(asserted)
	if r.Body["allow"] != true || findReason(r, "business_analyst", "group:g") == nil {
		t.Fatalf("asserted group g: %s", r.Raw)
	}
	if s.Allowed(cloud("v", "read_project", project("p1"))) {
		t.Fatal("v is not a stored member")
	}
	// Leaving the group.
	if r := s.Do(http.MethodDelete, "/v1/groups/g/members/u", nil, true); r.Status != 200 {
		t.Fatalf("delete member: %d %s", r.Status, r.Raw)
	}
	r = s.Check(cloud("u", "read_project", project("p1")))
	if r.Body["allow"] != false || len(items(r, "reasons")) != 0 {
		t.Fatalf("left g but still holds its role: %s", r.Raw)
	}
}

func TestUiPathCloudAdministratorsGroup(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	registerProject(t, s, tmc, "p1", "zoe", "assisted")
	if s.Allowed(cloud("root", "delete_project", project("p1"))) {
		t.Fatal("root holds nothing yet")
	}
	s.Do(http.MethodPut, "/v1/groups/administrators/members/root", nil, true)
	for _, c := range []map[string]any{
		cloud("root", "delete_project", project("p1")),
		cloud("root", "update_project_settings", project("anything")),
		cloud("root", "manage_access", nil),
		cloud("root", "create_project", nil),
		sysCheck(tmc, "root", "assign_roles", nil, map[string]any{"role": "administrator"}),
	} {
		r := s.Check(c)
		adm := findReason(r, "administrator", "group:administrators")
		if r.Body["allow"] != true || adm == nil {
			t.Fatalf("administrators member, %v: %s", c, r.Raw)
		}
		if _, ok := adm["assignment"]; ok || adm["default"] == nil {
			t.Fatalf("a default role has no assignment and says it is a default: %s", r.Raw)
		}
	}
	// Administrator includes project_creator.
	r := s.Check(cloud("root", "create_project", nil))
	if pc := findReason(r, "project_creator", "group:administrators"); pc == nil || pc["implied_by"] != "administrator" {
		t.Fatalf("administrator implies project_creator: %s", r.Raw)
	}
	if s.Allowed(cloud("root", "contribute_data", project("p1"))) {
		t.Fatal("contribute_data is いいえ for administrator")
	}
	asserted := cloud("ida", "delete_project", project("p1"))
	asserted["groups"] = []string{"administrators"}
	if !s.Allowed(asserted) {
		t.Fatal("asserted administrators membership should hold administrator")
	}
	s.Do(http.MethodDelete, "/v1/groups/administrators/members/root", nil, true)
	if s.Allowed(cloud("root", "delete_project", project("p1"))) {
		t.Fatal("left administrators but still administrator")
	}
}

// cloudDelegationFixture: p1 created by pa (project_admin on p1), ba
// business_analyst on p1, ru recording_user on p1, pc project_creator who
// created p2, root administrator, p9 Unassisted created by pa9.
func cloudDelegationFixture(t *testing.T) *harness.Server {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "user:root", "administrator", service))
	s.Assign(roleAt(tmc, "user:pc", "project_creator", service))
	registerProject(t, s, tmc, "p1", "pa", "assisted")
	registerProject(t, s, tmc, "p2", "pc", "assisted")
	registerProject(t, s, tmc, "p9", "pa9", "unassisted")
	s.Assign(roleAt(tmc, "user:ba", "business_analyst", project("p1")))
	s.Assign(roleAt(tmc, "user:ru", "recording_user", project("p1")))
	s.Assign(roleAt(tmc, "user:ba9", "business_analyst", project("p9")))
	return s
}

func assignAs(s *harness.Server, a map[string]any, actor string) harness.Response {
	return s.Do(http.MethodPost, "/v1/assignments", withActor(a, actor), true)
}

func TestUiPathCloudDelegationAssign(t *testing.T) {
	s := cloudDelegationFixture(t)
	cases := []struct {
		actor, role string
		scope       map[string]any
		want        int
		msg         string // in the error message
	}{
		// footnote **: a business analyst assigns only business_analyst.
		{"ba", "recording_user", project("p1"), 403, "business_analyst"},
		{"ba", "project_admin", project("p1"), 403, "business_analyst"},
		{"ba", "business_analyst", project("p1"), 201, ""},
		{"ba", "business_analyst", project("p2"), 403, `"ba" may not assign`},
		// project_admin: all three project roles, on its project only.
		{"pa", "project_admin", project("p1"), 201, ""},
		{"pa", "business_analyst", project("p1"), 201, ""},
		{"pa", "recording_user", project("p1"), 201, ""},
		{"pa", "recording_user", project("p2"), 403, `"pa" may not assign`},
		// project_creator: on projects it created (はい*) only.
		{"pc", "recording_user", project("p2"), 201, ""},
		{"pc", "recording_user", project("p1"), 403, `"pc" may not assign`},
		// Actors without assign_roles.
		{"ru", "recording_user", project("p1"), 403, "ロールを割り当てる"},
		{"nobody", "business_analyst", project("p1"), 403, "ロールを割り当てる"},
		// Administrator: every project role on every (assisted) project.
		{"root", "project_admin", project("p1"), 201, ""},
		{"root", "recording_user", project("p7"), 201, ""},
		// Service-level roles: only an administrator.
		{"root", "project_creator", service, 201, ""},
		{"root", "administrator", service, 201, ""},
		{"pa", "project_creator", service, 403, "only an Administrator"},
		{"pc", "project_creator", service, 403, "only an Administrator"},
		{"pc", "administrator", service, 403, "only an Administrator"},
		{"ba", "administrator", service, 403, "only an Administrator"},
	}
	for i, c := range cases {
		a := roleAt(tmc, fmt.Sprintf("user:target%d", i), c.role, c.scope)
		before := export(s)
		r := assignAs(s, a, c.actor)
		if r.Status != c.want {
			t.Errorf("%s assigning %s at %v: got %d %s, want %d", c.actor, c.role, c.scope, r.Status, r.Raw, c.want)
			continue
		}
		if c.want == 201 {
			if r.Body["id"] == "" || r.Body["revision"] == nil {
				t.Errorf("%s assigning %s: %s", c.actor, c.role, r.Raw)
			}
			continue
		}
		if code, msg := errorOf(r); code != "forbidden" || !strings.Contains(msg, c.msg) {
			t.Errorf("%s assigning %s at %v: %s, want a reason with %q", c.actor, c.role, c.scope, r.Raw, c.msg)
		}
		if after := export(s); after != before {
			t.Errorf("a refused assignment changed the store")
		}
	}
	// The header names the actor too.
	a := roleAt(tmc, "user:h1", "recording_user", project("p1"))
	if r := s.Do(http.MethodPost, "/v1/assignments", a, true, "X-Permatrix-Actor", "ba"); r.Status != 403 {
		t.Fatalf("header actor ba assigning recording_user: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPost, "/v1/assignments", a, true, "X-Permatrix-Actor", "pa"); r.Status != 201 {
		t.Fatalf("header actor pa assigning recording_user: %d %s", r.Status, r.Raw)
	}
	// The delegated grant works: target2 became business_analyst on p1 by ba.
	if !s.Allowed(cloud("target2", "view_discovery_results", project("p1"))) {
		t.Fatal("business_analyst assigned by ba does not grant")
	}
}

func TestUiPathCloudDelegationAssignGroupActor(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "group:leads", "project_admin", project("p1")))
	s.Do(http.MethodPut, "/v1/groups/leads/members/lee", nil, true)
	if r := assignAs(s, roleAt(tmc, "user:x", "recording_user", project("p1")), "lee"); r.Status != 201 {
		t.Fatalf("project_admin through a group assigning: %d %s", r.Status, r.Raw)
	}
	s.Do(http.MethodPut, "/v1/groups/administrators/members/boss", nil, true)
	if r := assignAs(s, roleAt(tmc, "user:y", "project_creator", service), "boss"); r.Status != 201 {
		t.Fatalf("administrators member assigning a service role: %d %s", r.Status, r.Raw)
	}
}

func TestUiPathCloudDelegationRemove(t *testing.T) {
	s := cloudDelegationFixture(t)
	del := func(id, actor string) harness.Response {
		return s.Do(http.MethodDelete, "/v1/assignments/"+id, nil, true, "X-Permatrix-Actor", actor)
	}
	ids := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		ids[n] = s.Assign(roleAt(tmc, "user:t"+n, "recording_user", project("p1")))
	}
	ids["p2"] = s.Assign(roleAt(tmc, "user:tp2", "recording_user", project("p2")))
	ids["svc"] = s.Assign(roleAt(tmc, "user:tsvc", "project_creator", service))
	ids["p9"] = s.Assign(roleAt(tmc, "user:tp9", "recording_user", project("p9")))

	refused := []struct{ id, actor, msg string }{
		{ids["a"], "ba", "ロールの割り当ての削除"}, // business_analyst: いいえ
		{ids["a"], "ru", "ロールの割り当ての削除"}, // recording_user: いいえ
		{ids["a"], "nobody", "ロールの割り当ての削除"},
		{ids["a"], "pc", `"pc" may not unassign`}, // p1 was not created by pc
		{ids["p2"], "pa", `"pa" may not unassign`},
		{ids["svc"], "pa", "only an Administrator"},
		{ids["svc"], "pc", "only an Administrator"},
	}
	for _, c := range refused {
		before := export(s)
		r := del(c.id, c.actor)
		if code, msg := errorOf(r); r.Status != 403 || code != "forbidden" || !strings.Contains(msg, c.msg) {
			t.Errorf("%s removing %s: %d %s, want 403 with %q", c.actor, c.id, r.Status, r.Raw, c.msg)
		}
		if after := export(s); after != before {
			t.Errorf("a refused removal changed the store")
		}
	}
	allowed := []struct{ id, actor string }{
		{ids["a"], "pa"},     // project_admin on p1
		{ids["b"], "root"},   // administrator
		{ids["p2"], "pc"},    // project_creator on the project it created
		{ids["svc"], "root"}, // service-level: administrator
		{ids["p9"], "root"},  // removal on an Unassisted project follows the table
	}
	for _, c := range allowed {
		if r := del(c.id, c.actor); r.Status != 200 || r.Body["revision"] == nil {
			t.Errorf("%s removing %s: %d %s", c.actor, c.id, r.Status, r.Raw)
		}
		if r := s.Do(http.MethodGet, "/v1/assignments/"+c.id, nil, true); r.Status != 404 {
			t.Errorf("%s still stored after removal: %d", c.id, r.Status)
		}
	}
	if s.Allowed(cloud("ta", "contribute_data", project("p1"))) {
		t.Fatal("removed recording_user still grants")
	}
	if !s.Allowed(cloud("tc", "contribute_data", project("p1"))) {
		t.Fatal("untouched recording_user lost its grant")
	}
}

func TestUiPathCloudUnassisted(t *testing.T) {
	s := cloudDelegationFixture(t)
	// p9 is Unassisted: pa9 (its creator, project_admin), ba9 (business_analyst).
	cases := []struct {
		actor, role string
		want        int
	}{
		{"pa9", "recording_user", 201},
		{"pa9", "project_admin", 201},
		{"pa9", "business_analyst", 201},
		{"ba9", "business_analyst", 201},
		{"ba9", "recording_user", 403},
		{"root", "recording_user", 403}, // administrator does not assign there
		{"root", "business_analyst", 403},
		{"pc", "recording_user", 403},
		{"pa", "recording_user", 403},
	}
	for i, c := range cases {
		before := export(s)
		r := assignAs(s, roleAt(tmc, fmt.Sprintf("user:u%d", i), c.role, project("p9")), c.actor)
		if r.Status != c.want {
			t.Errorf("%s assigning %s on Unassisted p9: %d %s, want %d", c.actor, c.role, r.Status, r.Raw, c.want)
			continue
		}
		if c.want == 403 {
			if _, msg := errorOf(r); !strings.Contains(msg, "Unassisted") {
				t.Errorf("%s assigning %s on p9: reason should cite the Unassisted rule: %s", c.actor, c.role, r.Raw)
			}
			if after := export(s); after != before {
				t.Errorf("a refused assignment changed the store")
			}
		}
	}
	// The check agrees with the write.
	ctx := map[string]any{"role": "recording_user"}
	r := s.Check(sysCheck(tmc, "root", "assign_roles", project("p9"), ctx))
	if r.Body["allow"] != false || !hasCondition(r, "Unassisted") {
		t.Fatalf("administrator assign_roles on Unassisted p9: %s", r.Raw)
	}
	if !s.Allowed(sysCheck(tmc, "root", "assign_roles", project("p1"), ctx)) {
		t.Fatal("administrator assign_roles on assisted p1")
	}
	if !s.Allowed(sysCheck(tmc, "pa9", "assign_roles", project("p9"), ctx)) {
		t.Fatal("project_admin assign_roles on its Unassisted p9")
	}
	// The rest of the table is unchanged on an Unassisted project.
	if !s.Allowed(cloud("root", "delete_project", project("p9"))) || !s.Allowed(cloud("root", "remove_role_assignments", project("p9"))) {
		t.Fatal("administrator's other rights hold on Unassisted p9")
	}
}

func TestUiPathCloudScopeViolations(t *testing.T) {
	s := cloudDelegationFixture(t)
	cases := []refusal{
		{roleAt(tmc, "user:x", "project_admin", service), `"project_admin" cannot be assigned at scope "service" in system "uipath-task-mining-cloud" (allowed: project)`},
		{roleAt(tmc, "user:x", "business_analyst", service), `"business_analyst" cannot be assigned at scope "service"`},
		{roleAt(tmc, "user:x", "recording_user", service), `"recording_user" cannot be assigned at scope "service"`},
		{roleAt(tmc, "user:x", "administrator", project("p1")), `"administrator" cannot be assigned at scope "project" in system "uipath-task-mining-cloud" (allowed: service)`},
		{roleAt(tmc, "user:x", "project_creator", project("p1")), `"project_creator" cannot be assigned at scope "project"`},
		{roleAt(tmc, "group:g", "administrator", project("p1")), `"administrator" cannot be assigned at scope "project"`},
		{roleAt(tmc, "user:x", "org_admin", service), "unknown role"},
		{map[string]any{"subject": "user:x", "system": tmc, "permission": "update_project", "scope": project("p1")}, "not an assignable permission"},
		{map[string]any{"subject": "user:x", "system": tmc, "permission": "view_access", "scope": project("p1")}, "view_access is derived"},
	}
	before := export(s)
	wantAssignmentsRefused(t, s, cases, "", "root")
	// Refused imports too.
	line := `{"subject":"user:x","system":"uipath-task-mining-cloud","role":"project_admin","scope":{"type":"service"}}`
	if r := s.Do(http.MethodPost, "/v1/import", line+"\n", true); r.Status != 422 {
		t.Errorf("import of project_admin at service: %d %s", r.Status, r.Raw)
	}
	if after := export(s); after != before {
		t.Fatalf("refused writes changed the store:\n%s\n%s", before, after)
	}
}

func TestUiPathCloudFootnotes(t *testing.T) {
	s := cloudDelegationFixture(t)
	// **: the business analyst's assign_roles needs context.role business_analyst.
	r := s.Check(cloud("ba", "assign_roles", project("p1")))
	if r.Body["allow"] != false || !hasCondition(r, "context.role") {
		t.Fatalf("ba assign_roles without context.role: %s", r.Raw)
	}
	r = s.Check(sysCheck(tmc, "ba", "assign_roles", project("p1"), map[string]any{"role": "business_analyst"}))
	if r.Body["allow"] != true || findReason(r, "business_analyst", "user:ba") == nil {
		t.Fatalf("ba assign_roles business_analyst: %s", r.Raw)
	}
	for _, role := range []string{"recording_user", "project_admin"} {
		r = s.Check(sysCheck(tmc, "ba", "assign_roles", project("p1"), map[string]any{"role": role}))
		if r.Body["allow"] != false || !hasCondition(r, "business_analyst") {
			t.Fatalf("ba assign_roles %s: %s", role, r.Raw)
		}
	}
	// project_admin needs no context.role, and may name any project role.
	if !s.Allowed(cloud("pa", "assign_roles", project("p1"))) {
		t.Fatal("pa assign_roles without context.role")
	}
	for _, role := range []string{"recording_user", "project_admin", "business_analyst"} {
		if !s.Allowed(sysCheck(tmc, "pa", "assign_roles", project("p1"), map[string]any{"role": role})) {
			t.Fatalf("pa assign_roles %s", role)
		}
	}
	// A role not assignable at the checked scope.
	r = s.Check(sysCheck(tmc, "pa", "assign_roles", project("p1"), map[string]any{"role": "administrator"}))
	if r.Body["allow"] != false || !hasCondition(r, "context.role") {
		t.Fatalf("pa assign_roles administrator on p1: %s", r.Raw)
	}
	r = s.Check(sysCheck(tmc, "root", "assign_roles", nil, map[string]any{"role": "project_admin"}))
	if r.Body["allow"] != false {
		t.Fatalf("assign_roles project_admin at service scope: %s", r.Raw)
	}

	// ***: project_admin's manage_access is read-only.
	r = s.Check(cloud("pa", "manage_access", project("p1")))
	if r.Body["allow"] != false || !hasCondition(r, "read-only") {
		t.Fatalf("pa manage_access: %s", r.Raw)
	}
	r = s.Check(cloud("pa", "view_access", project("p1")))
	if r.Body["allow"] != true || findReason(r, "project_admin", "user:pa") == nil {
		t.Fatalf("pa view_access: %s", r.Raw)
	}
	if s.Allowed(cloud("pa", "view_access", project("p2"))) {
		t.Fatal("pa view_access on p2")
	}
	for _, u := range []string{"ba", "ru"} {
		if s.Allowed(cloud(u, "view_access", project("p1"))) || s.Allowed(cloud(u, "manage_access", project("p1"))) {
			t.Fatalf("%s: manage_access いいえ", u)
		}
	}
	if !s.Allowed(cloud("root", "manage_access", project("p1"))) || !s.Allowed(cloud("root", "view_access", project("p1"))) {
		t.Fatal("administrator manage_access/view_access")
	}
	if !s.Allowed(cloud("pc", "manage_access", project("p2"))) {
		t.Fatal("project_creator manage_access on its p2 (はい*)")
	}

	// Download page: not tied to a project, any project role counts.
	for _, u := range []string{"pa", "ba", "ru"} {
		if !s.Allowed(cloud(u, "view_download_page", nil)) {
			t.Errorf("%s view_download_page", u)
		}
	}
	if s.Allowed(cloud("nobody", "view_download_page", nil)) {
		t.Fatal("nobody view_download_page")
	}
	// Project roles allow nothing else at service scope.
	if s.Allowed(cloud("pa", "read_project", nil)) || s.Allowed(cloud("ba", "read_project", nil)) {
		t.Fatal("project roles at service scope")
	}
	if !s.Allowed(cloud("ru", "contribute_data", project("p1"))) || s.Allowed(cloud("ru", "contribute_data", project("p2"))) {
		t.Fatal("recording_user contribute_data on p1 only")
	}
}

// Registering an existing project again: the same registration is
// idempotent; on behalf of an actor, it is not a way to become the creator
// (and project_admin) of someone else's project.
func TestUiPathCloudReRegisterProject(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tmc, "user:alice", "project_creator", service))
	s.Assign(roleAt(tmc, "user:bob", "project_creator", service))
	first := registerProject(t, s, tmc, "p1", "alice", "assisted")
	again := registerProject(t, s, tmc, "p1", "alice", "assisted")
	if first.CreatorAssignment == nil || again.CreatorAssignment == nil || again.CreatorAssignment.ID != first.CreatorAssignment.ID {
		t.Fatalf("re-registering made another creator assignment: %+v then %+v", first, again)
	}
	if p, err := s.API().Assignments(ctx, permatrix.AssignmentFilter{System: tmc, ScopeType: "project", ScopeID: "p1"}); err != nil || len(p.Assignments) != 1 {
		t.Fatalf("assignments on p1: %+v %v", p, err)
	}

	// bob may not make himself project_admin on alice's p1 ...
	if r := assignAs(s, roleAt(tmc, "user:bob", "project_admin", project("p1")), "bob"); r.Status != 403 {
		t.Fatalf("bob assigning himself project_admin on p1: %d %s", r.Status, r.Raw)
	}
	// ... nor by registering p1 again as its creator.
	before := export(s)
	r := s.Do(http.MethodPut, "/v1/systems/"+tmc+"/projects/p1", map[string]any{"created_by": "bob", "kind": "unassisted", "actor": "bob"}, true)
	if code, msg := errorOf(r); r.Status != http.StatusForbidden || code != "forbidden" || !strings.Contains(msg, `"bob" may not re-register project "p1"`) {
		t.Fatalf("bob re-registering alice's p1: %d %s", r.Status, r.Raw)
	}
	// The operator cannot change the creator either (a fact, not a field).
	_, err := s.API().PutProject(ctx, permatrix.Project{System: tmc, ID: "p1", CreatedBy: "bob", Kind: "assisted"})
	wantError(t, err, http.StatusConflict, permatrix.ECONFLICT, "created_by cannot change")
	if after := export(s); after != before {
		t.Fatalf("a refused re-registration changed the store:\n%s\n%s", before, after)
	}
	if s.Allowed(cloud("bob", "update_project", project("p1"))) {
		t.Fatal("bob may not update alice's p1")
	}
}

// refusal is an assignment the vendor rules refuse (422), and a part of
// the reason the answer must give.
type refusal struct {
	body map[string]any
	msg  string
}

// wantAssignmentsRefused creates each refused assignment through the Go
// client once per actor ("" is the operator) and fails unless every answer
// is a 422 with its reason.
func wantAssignmentsRefused(t *testing.T, s *harness.Server, cases []refusal, actors ...string) {
	t.Helper()
	c := s.API()
	for _, rc := range cases {
		var a permatrix.Assignment
		raw, _ := json.Marshal(rc.body)
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		for _, actor := range actors {
			var opts []client.WriteOption
			if actor != "" {
				opts = append(opts, client.Actor(actor))
			}
			_, _, err := c.CreateAssignment(ctx, a, opts...)
			var e *client.Error
			if !errors.As(err, &e) || e.StatusCode != 422 || e.Code != permatrix.EUNPROCESSABLE || !strings.Contains(e.Message, rc.msg) {
				t.Errorf("%v (actor %q): %v, want 422 with %q", rc.body, actor, err, rc.msg)
			}
		}
	}
}
