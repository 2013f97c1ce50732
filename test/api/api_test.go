// Package api_test drives the real server over HTTP through the contract
// (shared/contract.md sections 3 to 5), with Celonis Task Mining as the
// system under test.
package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

const tm = "celonis-task-mining"

func project(id string) map[string]any { return map[string]any{"type": "project", "id": id} }

var service = map[string]any{"type": "service"}

func check(user, action string, resource map[string]any) map[string]any {
	c := map[string]any{"subject": user, "system": tm, "action": action}
	if resource != nil {
		c["resource"] = resource
	}
	return c
}

func TestCheckAllowDenyReasonsMissing(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	id := s.Assign(map[string]any{"subject": "user:alice", "system": tm, "role": "analyst", "scope": service})
	pid := s.Assign(map[string]any{"subject": "user:alice", "system": tm, "permission": "edit_users", "scope": project("p1")})

	r := s.Check(check("alice", "edit_users", project("p1")))
	if r.Status != 200 || r.Body["allow"] != true {
		t.Fatalf("want allow: %s", r.Raw)
	}
	reasons := r.Body["reasons"].([]any)
	if len(reasons) != 1 || reasons[0].(map[string]any)["assignment"] != pid || reasons[0].(map[string]any)["via"] != "user:alice" {
		t.Fatalf("reasons: %s", r.Raw)
	}
	if r.Body["decision_id"] == "" || uint64(r.Body["revision"].(float64)) != s.Svc.Revision() {
		t.Fatalf("decision_id/revision: %s", r.Raw)
	}
	_ = id

	r = s.Check(check("alice", "edit_users", project("p2")))
	if r.Body["allow"] != false || len(r.Body["reasons"].([]any)) != 0 {
		t.Fatalf("want deny on p2: %s", r.Raw)
	}
	missing := r.Body["missing"].([]any)
	m := missing[0].(map[string]any)
	if len(missing) != 1 || m["permission"] != "edit_users" || m["system"] != tm || m["scope"].(map[string]any)["id"] != "p2" {
		t.Fatalf("missing: %s", r.Raw)
	}
	// Without resource the check is at service scope: a project grant is not enough.
	if s.Allowed(check("alice", "edit_users", nil)) {
		t.Fatal("project grant allowed at service scope")
	}
}

func TestServicePrecedenceAndViewProject(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:bob", "system": tm, "permission": "edit_client_settings", "scope": project("p1")})
	svc := s.Assign(map[string]any{"subject": "user:bob", "system": tm, "permission": "edit_client_settings", "scope": service})
	r := s.Check(check("bob", "edit_client_settings", project("p1")))
	reasons := r.Body["reasons"].([]any)
	if r.Body["allow"] != true || len(reasons) != 1 || reasons[0].(map[string]any)["assignment"] != svc {
		t.Fatalf("service grant should take precedence: %s", r.Raw)
	}
	for _, p := range []string{"p1", "p9"} {
		if !s.Allowed(check("bob", "view_project", project(p))) {
			t.Fatalf("service-level edit should allow view_project on %s", p)
		}
	}
	if s.Allowed(check("carol", "view_project", project("p1"))) {
		t.Fatal("carol holds nothing")
	}
}

func TestAdminHoldsEverythingAndDeleteProject(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:root", "system": tm, "role": "admin", "scope": service})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "role": "analyst", "scope": service})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	for _, a := range []string{"edit_client_settings", "edit_users", "edit_data_configuration", "edit_project_connection", "create_project", "delete_project", "view_project"} {
		if !s.Allowed(check("root", a, project("p1"))) && a != "create_project" {
			t.Errorf("admin denied %s", a)
		}
	}
	if !s.Allowed(check("root", "create_project", nil)) {
		t.Error("admin denied create_project")
	}
	r := s.Check(check("ann", "delete_project", project("p1")))
	if r.Body["allow"] != false || !strings.Contains(string(r.Raw), `"role":"admin"`) {
		t.Fatalf("delete_project is admin-only: %s", r.Raw)
	}
}

func TestCustomProjectNeedsCreatePackage(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "create_project", "scope": service})
	custom := check("ann", "create_project", nil)
	custom["context"] = map[string]any{"custom_project": true, "space": "s1"}
	r := s.Check(custom)
	if r.Body["allow"] != false || !strings.Contains(string(r.Raw), `"system":"celonis-studio"`) {
		t.Fatalf("custom project without create_package: %s", r.Raw)
	}
	if !s.Allowed(check("ann", "create_project", nil)) {
		t.Fatal("plain create_project should be allowed")
	}
	s.Assign(map[string]any{"subject": "user:ann", "system": "celonis-studio", "permission": "create_package", "scope": map[string]any{"type": "space", "id": "s1"}})
	if !s.Allowed(custom) {
		t.Fatal("custom project with create_package on s1 should be allowed")
	}
	custom["context"] = map[string]any{"custom_project": true, "space": "s2"}
	if s.Allowed(custom) {
		t.Fatal("create_package on s1 does not cover s2")
	}
}

func TestScreenshotsNeedBucketAndService(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	bucket := map[string]any{"type": "bucket", "id": "b1"}
	c := map[string]any{"subject": "vic", "system": tm, "action": "view_screenshots", "resource": bucket}
	for _, p := range []string{"get", "list"} {
		s.Assign(map[string]any{"subject": "user:vic", "system": "celonis-storage-manager", "permission": p, "scope": bucket})
	}
	if s.Allowed(c) {
		t.Fatal("needs use_file_storage_manager too")
	}
	s.Assign(map[string]any{"subject": "user:vic", "system": "celonis-storage-manager", "permission": "use_file_storage_manager", "scope": service})
	if !s.Allowed(c) {
		t.Fatal("get+list+service should view screenshots")
	}
	c["action"] = "delete_screenshots"
	if s.Allowed(c) {
		t.Fatal("delete_screenshots needs delete")
	}
}

func TestCheckInputErrors(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	cases := []struct {
		body string
		want int
		msg  string
	}{
		{`{"subject":"a","system":"nope","action":"edit_users"}`, 400, "unknown system"},
		{`{"subject":"a","system":"celonis-task-mining","action":"fly"}`, 400, "unknown action"},
		{`{"system":"celonis-task-mining","action":"edit_users"}`, 400, "subject is required"},
		{`{"subject":"a","action":"edit_users"}`, 400, "system is required"},
		{`{"subject":"a","system":"celonis-task-mining"}`, 400, "action is required"},
		{`{"subject":1,"system":"celonis-task-mining","action":"edit_users"}`, 400, "subject"},
		{`{"subject":"a","system":"celonis-task-mining","action":"edit_users","resource":"p1"}`, 400, "resource"},
		{`{"subject":"a","system":"celonis-task-mining","action":"edit_users","resource":{"type":"galaxy","id":"x"}}`, 400, "resource type"},
		{`{"subject":"a","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project"}}`, 400, "resource.id"},
		{`{"subject":"` + strings.Repeat("x", 257) + `","system":"celonis-task-mining","action":"edit_users"}`, 400, "256 bytes"},
		{`{"subject":"a",`, 400, "malformed JSON"},
		{``, 400, "empty"},
		{`{"subject":"a","system":"celonis-task-mining","action":"edit_users"} {}`, 400, "after the JSON"},
	}
	for _, c := range cases {
		r := s.Do(http.MethodPost, "/v1/check", c.body, false)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != c.want || e == nil || !strings.Contains(fmt.Sprint(e["message"]), c.msg) || e["code"] != "invalid" {
			t.Errorf("%s: got %d %s, want %d with %q", c.body, r.Status, r.Raw, c.want, c.msg)
		}
	}
	big := `{"subject":"` + strings.Repeat("x", 1<<20) + `"}`
	if r := s.Do(http.MethodPost, "/v1/check", big, false); r.Status != 413 || r.Body["error"].(map[string]any)["code"] != "too_large" {
		t.Errorf("oversized body: %d %s", r.Status, r.Raw)
	}
}

func TestBatch(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	r := s.Do(http.MethodPost, "/v1/check/batch", map[string]any{"checks": []any{
		check("ann", "edit_users", nil), check("ann", "fly", nil), "not an object", check("bob", "edit_users", nil),
	}}, false)
	if r.Status != 200 {
		t.Fatalf("batch: %d %s", r.Status, r.Raw)
	}
	res := r.Body["results"].([]any)
	if len(res) != 4 || res[0].(map[string]any)["allow"] != true || res[3].(map[string]any)["allow"] != false {
		t.Fatalf("results: %s", r.Raw)
	}
	for _, i := range []int{1, 2} {
		if _, ok := res[i].(map[string]any)["error"]; !ok {
			t.Fatalf("item %d should carry its own error: %s", i, r.Raw)
		}
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = check("ann", "edit_users", nil)
	}
	if r := s.Do(http.MethodPost, "/v1/check/batch", map[string]any{"checks": many}, false); r.Status != 400 {
		t.Fatalf("1001 checks: %d", r.Status)
	}
}

func TestDataAPI(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": service})
	r := s.Do(http.MethodPost, "/v1/data/permatrix/allow", map[string]any{"input": check("ann", "edit_users", project("p1"))}, false)
	if r.Status != 200 || r.Body["result"] != true {
		t.Fatalf("allow: %s", r.Raw)
	}
	r = s.Do(http.MethodPost, "/v1/data/permatrix/decision", map[string]any{"input": check("bob", "edit_users", nil)}, false)
	d, _ := r.Body["result"].(map[string]any)
	if d == nil || d["allow"] != false || len(d["missing"].([]any)) != 1 {
		t.Fatalf("decision: %s", r.Raw)
	}
	// Anything but an entrypoint needs the admin token; with it an
	// undefined document is OPA's {"decision_id"} without a result.
	r = s.Do(http.MethodPost, "/v1/data/permatrix/no_such_rule", map[string]any{"input": map[string]any{}}, false)
	if r.Status != 401 {
		t.Fatalf("undefined document without the token: %d %s", r.Status, r.Raw)
	}
	r = s.Do(http.MethodPost, "/v1/data/permatrix/no_such_rule", map[string]any{"input": map[string]any{}}, true)
	if r.Status != 200 || r.Body["result"] != nil || len(r.Body) != 1 || r.Body["decision_id"] == "" {
		t.Fatalf("undefined document: %s", r.Raw)
	}
	for _, path := range []string{"/v1/data", "/v1/data/store", "/v1/data/store/grants", "/v1/data/store/memberships",
		"/v1/data/store/projects", "/v1/data/systems", "/v1/data/permatrix", "/v1/data/permatrix/lib/grants", "/v1/data/%00"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			// OPA's envelope on OPA's paths.
			if r := s.Do(method, path, nil, false); r.Status != 401 || r.Body["code"] != "unauthorized" || r.Body["error"] != nil {
				t.Errorf("%s %s without the token: %d %s", method, path, r.Status, r.Raw)
			}
			if r := s.Do(method, path, nil, false, "Authorization", "Bearer wrong"); r.Status != 401 {
				t.Errorf("%s %s with a wrong token: %d", method, path, r.Status)
			}
		}
	}
	if r := s.Do(http.MethodGet, "/v1/data/store/grants", nil, true); r.Status != 200 || r.Body["result"] == nil {
		t.Fatalf("store with the token: %d %s", r.Status, r.Raw)
	}
	// Stock opa's answers to a non-object input: a decision, not a fault.
	r = s.Do(http.MethodPost, "/v1/data/permatrix/decision", `{"input":"alice"}`, false)
	if d, _ := r.Body["result"].(map[string]any); r.Status != 200 || d["allow"] != false {
		t.Fatalf("string input: %d %s", r.Status, r.Raw)
	}
}

func TestAdminAuth(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	body := map[string]any{"subject": "user:ann", "system": tm, "role": "admin", "scope": service}
	if r := s.Do(http.MethodPost, "/v1/assignments", body, false); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	if r := s.Do(http.MethodPost, "/v1/assignments", body, false, "Authorization", "Bearer wrong"); r.Status != 401 {
		t.Fatalf("wrong token: %d", r.Status)
	}
	if r := s.Do(http.MethodGet, "/v1/export", nil, false); r.Status != 401 {
		t.Fatalf("export without token: %d", r.Status)
	}
	if s.Allowed(check("ann", "delete_project", nil)) {
		t.Fatal("a refused write changed decisions")
	}
}

func TestRefusedWritesChangeNothing(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:mem", "system": tm, "role": "member", "scope": service})
	cases := []struct {
		body map[string]any
		want int
		msg  string
	}{
		{map[string]any{"subject": "user:mem", "system": tm, "permission": "edit_users", "scope": service}, 422, "member"},
		{map[string]any{"subject": "user:ann", "system": tm, "permission": "create_project", "scope": project("p1")}, 422, "scope"},
		{map[string]any{"subject": "user:ann", "system": tm, "role": "superuser", "scope": service}, 422, "unknown role"},
		{map[string]any{"subject": "user:ann", "system": tm, "role": "analyst", "scope": project("p1")}, 422, "scope"},
		{map[string]any{"subject": "user:ann", "system": tm, "permission": "delete_project", "scope": service}, 422, "admins only"},
		{map[string]any{"subject": "user:ann", "system": "nope", "role": "admin", "scope": service}, 422, "unknown system"},
		{map[string]any{"subject": "ann", "system": tm, "role": "admin", "scope": service}, 400, "user:<id>"},
		{map[string]any{"subject": "user:ann", "system": tm, "scope": service}, 400, "role and permission"},
		{map[string]any{"subject": "user:ann", "system": tm, "role": "admin", "permission": "edit_users", "scope": service}, 400, "exactly one"},
		{map[string]any{"subject": "user:ann", "system": tm, "role": "admin"}, 400, "scope.type"},
	}
	before := s.Do(http.MethodGet, "/v1/export", nil, true).Raw
	for _, c := range cases {
		r := s.Do(http.MethodPost, "/v1/assignments", c.body, true)
		if r.Status != c.want || !strings.Contains(string(r.Raw), c.msg) {
			t.Errorf("%v: got %d %s, want %d with %q", c.body, r.Status, r.Raw, c.want, c.msg)
		}
	}
	if after := s.Do(http.MethodGet, "/v1/export", nil, true).Raw; string(after) != string(before) {
		t.Fatalf("refused writes changed the store:\n%s\n%s", before, after)
	}
	// The member holds nothing even through a group grant.
	s.Assign(map[string]any{"subject": "group:all", "system": tm, "permission": "edit_users", "scope": service})
	s.Do(http.MethodPut, "/v1/groups/all/members/mem", nil, true)
	if s.Allowed(check("mem", "edit_users", nil)) {
		t.Fatal("a member was granted a permission through a group")
	}
}

func TestAssignmentsCRUDAndPagination(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	var ids []string
	for i := range 25 {
		ids = append(ids, s.Assign(map[string]any{"subject": fmt.Sprintf("user:u%02d", i), "system": tm, "permission": "edit_users", "scope": project(fmt.Sprintf("p%d", i%3))}))
	}
	seen, cursor := map[string]bool{}, ""
	for pages := 0; ; pages++ {
		r := s.Do(http.MethodGet, "/v1/assignments?limit=10&cursor="+cursor, nil, true)
		for _, a := range r.Body["assignments"].([]any) {
			id := a.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
		}
		cursor, _ = r.Body["next_cursor"].(string)
		if cursor == "" {
			if pages != 2 {
				t.Fatalf("25 assignments in pages of 10: %d pages", pages+1)
			}
			break
		}
	}
	if len(seen) != 25 {
		t.Fatalf("listed %d of 25", len(seen))
	}
	r := s.Do(http.MethodGet, "/v1/assignments?scope_type=project&scope_id=p1", nil, true)
	if n := len(r.Body["assignments"].([]any)); n != 8 {
		t.Fatalf("filter p1: %d", n)
	}
	r = s.Do(http.MethodGet, "/v1/assignments?subject=user:u03", nil, true)
	if n := len(r.Body["assignments"].([]any)); n != 1 {
		t.Fatalf("filter subject: %d", n)
	}
	if r := s.Do(http.MethodGet, "/v1/assignments?limit=0", nil, true); r.Status != 400 {
		t.Fatalf("limit=0: %d", r.Status)
	}
	before := s.Svc.Revision()
	r = s.Do(http.MethodDelete, "/v1/assignments/"+ids[0], nil, true)
	if rev := uint64(r.Body["revision"].(float64)); r.Status != 200 || rev <= before || rev != s.Svc.Revision() {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ids[0], nil, true); r.Status != 404 {
		t.Fatalf("second delete: %d", r.Status)
	}
	if s.Allowed(check("u00", "edit_users", project("p0"))) {
		t.Fatal("deleted assignment still grants")
	}
}

func TestGroups(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "group:ops", "system": tm, "permission": "edit_users", "scope": service})
	if s.Allowed(check("gus", "edit_users", nil)) {
		t.Fatal("not a member yet")
	}
	if r := s.Do(http.MethodPut, "/v1/groups/ops/members/gus", nil, true); r.Status != 200 {
		t.Fatalf("put member: %d %s", r.Status, r.Raw)
	}
	r := s.Check(check("gus", "edit_users", nil))
	if r.Body["allow"] != true || !strings.Contains(string(r.Raw), `"via":"group:ops"`) {
		t.Fatalf("member should hold the group grant: %s", r.Raw)
	}
	if r := s.Do(http.MethodGet, "/v1/groups/ops/members", nil, true); fmt.Sprint(r.Body["members"]) != "[gus]" {
		t.Fatalf("members: %s", r.Raw)
	}
	s.Do(http.MethodDelete, "/v1/groups/ops/members/gus", nil, true)
	if s.Allowed(check("gus", "edit_users", nil)) {
		t.Fatal("left the group but still holds its grant")
	}
	if r := s.Do(http.MethodDelete, "/v1/groups/ops/members/gus", nil, true); r.Status != 404 {
		t.Fatalf("removing a non-member: %d", r.Status)
	}
	asserted := check("ida", "edit_users", nil)
	asserted["groups"] = []string{"ops"}
	if !s.Allowed(asserted) {
		t.Fatal("asserted group membership should grant")
	}
}

func TestImportAllOrNothingAndExport(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:mem", "system": tm, "role": "member", "scope": service})
	bad := `{"subject":"user:a","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}
{"subject":"user:mem","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}
`
	r := s.Do(http.MethodPost, "/v1/import", bad, true)
	if r.Status != 422 || !strings.Contains(string(r.Raw), "line 2: user:mem is a Celonis member") {
		t.Fatalf("import with a forbidden line: %d %s", r.Status, r.Raw)
	}
	if s.Allowed(check("a", "edit_users", nil)) {
		t.Fatal("a refused import stored its first line")
	}
	if r := s.Do(http.MethodPost, "/v1/import", "{\"subject\":\"user:a\"\n", true); r.Status != 400 || !strings.Contains(string(r.Raw), "line 1") {
		t.Fatalf("malformed NDJSON: %d %s", r.Status, r.Raw)
	}
	good := `{"subject":"user:a","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}

{"subject":"group:g","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}
`
	before := s.Svc.Revision()
	r = s.Do(http.MethodPost, "/v1/import", good, true)
	if r.Status != 200 || r.Body["imported"].(float64) != 2 || uint64(r.Body["revision"].(float64)) <= before {
		t.Fatalf("import: %d %s", r.Status, r.Raw)
	}
	if !s.Allowed(check("a", "edit_users", nil)) {
		t.Fatal("imported grant not effective")
	}
	exp := s.Do(http.MethodGet, "/v1/export", nil, true)
	st := exp.Body["store"].(map[string]any)
	if st["revision"].(float64) != r.Body["revision"].(float64) || len(st["grants"].(map[string]any)) != 3 {
		t.Fatalf("export: %s", exp.Raw)
	}
}

func TestRolesAndProjectsOnCelonis(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	if r := s.Do(http.MethodPut, "/v1/systems/"+tm+"/roles/custom", map[string]any{"permissions": []string{"edit_users"}}, true); r.Status != 422 {
		t.Fatalf("celonis has no custom roles: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPut, "/v1/systems/nope/roles/x", map[string]any{"permissions": []string{}}, true); r.Status != 404 {
		t.Fatalf("unknown system: %d %s", r.Status, r.Raw)
	}
	r := s.Do(http.MethodPut, "/v1/systems/"+tm+"/projects/p1", map[string]any{"created_by": "ann", "kind": "assisted"}, true)
	if r.Status != 200 || uint64(r.Body["revision"].(float64)) != s.Svc.Revision() || r.Body["creator_assignment"] != nil {
		t.Fatalf("register project: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPut, "/v1/systems/"+tm+"/projects/p2", map[string]any{"kind": "weird"}, true); r.Status != 400 {
		t.Fatalf("bad kind: %d", r.Status)
	}
	if r := s.Do(http.MethodGet, "/v1/systems/"+tm+"/projects/p1", nil, true); r.Body["created_by"] != "ann" {
		t.Fatalf("get project: %s", r.Raw)
	}
}

func TestIntrospection(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	r := s.Do(http.MethodGet, "/v1/systems", nil, false)
	ids := map[string]map[string]any{}
	for _, x := range r.Body["systems"].([]any) {
		m := x.(map[string]any)
		ids[m["id"].(string)] = m
	}
	for _, id := range []string{tm, "celonis-studio", "celonis-storage-manager"} {
		if ids[id] == nil {
			t.Fatalf("/v1/systems lacks %s: %s", id, r.Raw)
		}
	}
	if _, ok := ids[tm]["actions"].(map[string]any)["view_project"]; !ok {
		t.Fatal("actions lack view_project")
	}
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	r = s.Do(http.MethodGet, "/v1/subjects/ann/permissions?system="+tm+"&resource_type=project&resource_id=p1", nil, false)
	got := map[string]bool{}
	for _, p := range r.Body["permissions"].([]any) {
		got[p.(map[string]any)["action"].(string)] = true
	}
	if len(got) != 2 || !got["edit_users"] || !got["view_project"] {
		t.Fatalf("effective permissions: %s", r.Raw)
	}
	for _, path := range []string{"/health", "/health/live", "/health/ready"} {
		if r := s.Do(http.MethodGet, path, nil, false); r.Status != 200 {
			t.Fatalf("%s: %d", path, r.Status)
		}
	}
	if r := s.Do(http.MethodGet, "/health?bundles", nil, false); !strings.Contains(string(r.Raw), `"revision":"sha256:`) {
		t.Fatalf("health?bundles: %s", r.Raw)
	}
	s.Check(check("ann", "edit_users", project("p1")))
	s.Check(check("ann", "edit_users", project("p2")))
	s.Do(http.MethodPost, "/v1/check", "{", false)
	m := string(s.Do(http.MethodGet, "/metrics", nil, false).Raw)
	for _, want := range []string{
		`permatrix_decisions_total{allow="true",system="celonis-task-mining"} 1`,
		`permatrix_decisions_total{allow="false",system="celonis-task-mining"} 1`,
		`permatrix_decision_duration_seconds_count{system="celonis-task-mining"} 2`,
		`permatrix_http_requests_total{code="400"`,
		fmt.Sprintf("\npermatrix_store_revision %d\n", s.Svc.Revision()),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A check made after a write that returned revision N is decided at N or later.
func TestReadYourWrites(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				user := fmt.Sprintf("w%d-%d", w, i)
				r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": "user:" + user, "system": tm, "permission": "edit_users", "scope": service}, true)
				rev := r.Body["revision"].(float64)
				c := s.Check(check(user, "edit_users", nil))
				if c.Body["allow"] != true || c.Body["revision"].(float64) < rev {
					t.Errorf("write at %v, then check: %s", rev, c.Raw)
				}
			}
		}()
	}
	wg.Wait()
}

func TestUnknownPathIs404(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	for _, path := range []string{"/nope", "/v1/nope", "/v1/assignmentz"} {
		if r := s.Do(http.MethodGet, path, nil, false); r.Status != 404 || r.Body["error"].(map[string]any)["code"] != "not_found" {
			t.Errorf("GET %s: %d %s", path, r.Status, r.Raw)
		}
	}
	if r := s.Do(http.MethodPatch, "/v1/check", nil, false); r.Status != 405 {
		t.Errorf("PATCH /v1/check: %d %s", r.Status, r.Raw)
	}
}
