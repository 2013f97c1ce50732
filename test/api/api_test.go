// Package api_test drives the real server over HTTP through the contract
// (shared/contract.md sections 3 to 5), with Celonis Task Mining as the
// system under test. Requests a client would send go through the Go client
// (package client), so that its every call is held to the contract too;
// hostile bodies, which it cannot send, go raw (harness.Server.Do).
package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
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

var ctx = context.Background()

// tmCheck is a typed check in Celonis Task Mining; resource nil is the
// service scope.
func tmCheck(user, action string, resource *permatrix.Scope) permatrix.Check {
	return permatrix.Check{Subject: user, System: tm, Action: action, Resource: resource}
}

func onProject(id string) *permatrix.Scope { return &permatrix.Scope{Type: "project", ID: id} }

// decide asks the check through the Go client and fails unless it is
// answered.
func decide(t *testing.T, c *client.Client, ch permatrix.Check) *permatrix.Decision {
	t.Helper()
	d, err := c.Check(ctx, ch)
	if err != nil {
		t.Fatalf("check %+v: %v", ch, err)
	}
	return d
}

// wantError asserts that err is the server's answer with this status and
// code, its message holding msg.
func wantError(t *testing.T, err error, status int, code, msg string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != status || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("want %d %s %q, got %v", status, code, msg, err)
	}
}

// exportOf is GET /v1/export through the client.
func exportOf(t *testing.T, c *client.Client) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := c.Export(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// anyItem reports whether an item of a decision's reasons or missing has
// every key of want with that value.
func anyItem(items []map[string]any, want map[string]any) bool {
	return slices.ContainsFunc(items, func(m map[string]any) bool {
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	})
}

func TestCheckAllowDenyReasonsMissing(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	s.Assign(map[string]any{"subject": "user:alice", "system": tm, "role": "analyst", "scope": service})
	pid := s.Assign(map[string]any{"subject": "user:alice", "system": tm, "permission": "edit_users", "scope": project("p1")})

	d := decide(t, c, tmCheck("alice", "edit_users", onProject("p1")))
	if !d.Allow || len(d.Reasons) != 1 || d.Reasons[0]["assignment"] != pid || d.Reasons[0]["via"] != "user:alice" {
		t.Fatalf("want allow by %s: %+v", pid, d)
	}
	if d.DecisionID == "" || d.Revision != s.Svc.Revision() {
		t.Fatalf("decision_id/revision: %+v", d)
	}

	d = decide(t, c, tmCheck("alice", "edit_users", onProject("p2")))
	if d.Allow || len(d.Reasons) != 0 {
		t.Fatalf("want deny on p2: %+v", d)
	}
	if len(d.Missing) != 1 || !anyItem(d.Missing, map[string]any{"permission": "edit_users", "system": tm}) ||
		d.Missing[0]["scope"].(map[string]any)["id"] != "p2" {
		t.Fatalf("missing: %+v", d.Missing)
	}
	// The same answer, raw: the wire form the contract names.
	if r := s.Check(check("alice", "edit_users", project("p2"))); r.Status != 200 || r.Body["allow"] != false || r.Body["missing"] == nil || r.Body["reasons"] == nil {
		t.Fatalf("raw deny: %d %s", r.Status, r.Raw)
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
	d := decide(t, s.API(), tmCheck("bob", "edit_client_settings", onProject("p1")))
	if !d.Allow || len(d.Reasons) != 1 || d.Reasons[0]["assignment"] != svc {
		t.Fatalf("service grant should take precedence: %+v", d)
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
	d := decide(t, s.API(), tmCheck("ann", "delete_project", onProject("p1")))
	if d.Allow || !anyItem(d.Missing, map[string]any{"role": "admin"}) {
		t.Fatalf("delete_project is admin-only: %+v", d)
	}
}

func TestCustomProjectNeedsCreatePackage(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "create_project", "scope": service})
	custom := check("ann", "create_project", nil)
	custom["context"] = map[string]any{"custom_project": true, "space": "s1"}
	typed := tmCheck("ann", "create_project", nil)
	typed.Context = map[string]any{"custom_project": true, "space": "s1"}
	d := decide(t, s.API(), typed)
	if d.Allow || !anyItem(d.Missing, map[string]any{"system": "celonis-studio"}) {
		t.Fatalf("custom project without create_package: %+v", d)
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
		{`{"subject":"a","system":"celonis-task-mining","action":"edit_users","groups":["g` + strings.Repeat(`","g`, 256) + `"]}`, 400, "groups holds 257 group ids, over the limit of 256"},
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
	res, err := s.NewClient().CheckBatch(ctx, []permatrix.Check{
		tmCheck("ann", "edit_users", nil), tmCheck("ann", "fly", nil), tmCheck("bob", "edit_users", nil),
	})
	if err != nil || len(res) != 3 || res[0].Decision == nil || !res[0].Decision.Allow || res[2].Decision == nil || res[2].Decision.Allow {
		t.Fatalf("results: %+v %v", res, err)
	}
	if res[1].Decision != nil || permatrix.ErrorCode(res[1].Err) != permatrix.EINVALID || !strings.Contains(permatrix.ErrorMessage(res[1].Err), "unknown action") {
		t.Fatalf("item 1 should carry its own error: %+v", res[1])
	}
	// An item that is not even an object fails alone too.
	r := s.Do(http.MethodPost, "/v1/check/batch", map[string]any{"checks": []any{"not an object", check("ann", "edit_users", nil)}}, false)
	if res := r.Body["results"].([]any); r.Status != 200 || len(res) != 2 || res[0].(map[string]any)["error"] == nil || res[1].(map[string]any)["allow"] != true {
		t.Fatalf("batch with a non-object item: %d %s", r.Status, r.Raw)
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = check("ann", "edit_users", nil)
	}
	if r := s.Do(http.MethodPost, "/v1/check/batch", map[string]any{"checks": many}, false); r.Status != 400 || r.Body["error"].(map[string]any)["code"] != "invalid" {
		t.Fatalf("1001 checks: %d %s", r.Status, r.Raw)
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
	a := permatrix.Assignment{Subject: "user:ann", System: tm, Role: "admin", Scope: permatrix.ServiceScope}
	_, _, err := s.NewClient().CreateAssignment(ctx, a)
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "admin token")
	_, _, err = s.NewClient(client.WithToken("wrong")).CreateAssignment(ctx, a)
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "")
	_, err = s.NewClient().Export(ctx, &bytes.Buffer{})
	wantError(t, err, 401, permatrix.EUNAUTHORIZED, "")
	if r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": "user:ann", "system": tm, "role": "admin", "scope": service}, false); r.Status != 401 {
		t.Fatalf("no token, raw: %d", r.Status)
	}
	if s.Allowed(check("ann", "delete_project", nil)) {
		t.Fatal("a refused write changed decisions")
	}
}

func TestRefusedWritesChangeNothing(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:mem", "system": tm, "role": "member", "scope": service})
	s.Assign(map[string]any{"subject": "user:holder", "system": tm, "permission": "edit_users", "scope": service})
	svcScope, p1 := permatrix.ServiceScope, *onProject("p1")
	cases := []struct {
		a    permatrix.Assignment
		want int
		msg  string
	}{
		{permatrix.Assignment{Subject: "user:mem", System: tm, Permission: "edit_users", Scope: svcScope}, 422, "member"},
		{permatrix.Assignment{Subject: "user:holder", System: tm, Role: "member", Scope: svcScope}, 422, "holds Celonis permissions (edit_users): a member holds none"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Permission: "create_project", Scope: p1}, 422, "scope"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Role: "superuser", Scope: svcScope}, 422, "unknown role"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Role: "analyst", Scope: p1}, 422, "scope"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Permission: "delete_project", Scope: svcScope}, 422, "admins only"},
		{permatrix.Assignment{Subject: "user:ann", System: "nope", Role: "admin", Scope: svcScope}, 422, "unknown system"},
		{permatrix.Assignment{Subject: "ann", System: tm, Role: "admin", Scope: svcScope}, 400, "user:<id>"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Scope: svcScope}, 400, "role and permission"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Role: "admin", Permission: "edit_users", Scope: svcScope}, 400, "exactly one"},
		{permatrix.Assignment{Subject: "user:ann", System: tm, Role: "admin"}, 400, "scope.type"},
	}
	c := s.API()
	before := exportOf(t, c)
	for _, tc := range cases {
		_, _, err := c.CreateAssignment(ctx, tc.a)
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != tc.want || !strings.Contains(e.Message, tc.msg) ||
			e.Code != map[int]string{400: permatrix.EINVALID, 422: permatrix.EUNPROCESSABLE}[tc.want] {
			t.Errorf("%+v: got %v, want %d with %q", tc.a, err, tc.want, tc.msg)
		}
	}
	// Without a scope at all (the client always sends one).
	if r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": "user:ann", "system": tm, "role": "admin"}, true); r.Status != 400 || !strings.Contains(string(r.Raw), "scope") {
		t.Errorf("no scope: %d %s", r.Status, r.Raw)
	}
	if after := exportOf(t, c); string(after) != string(before) {
		t.Fatalf("refused writes changed the store:\n%s\n%s", before, after)
	}
	// The member holds nothing even through a group grant.
	s.Assign(map[string]any{"subject": "group:all", "system": tm, "permission": "edit_users", "scope": service})
	if _, err := c.AddMember(ctx, "all", "mem"); err != nil {
		t.Fatal(err)
	}
	if s.Allowed(check("mem", "edit_users", nil)) {
		t.Fatal("a member was granted a permission through a group")
	}
}

func TestAssignmentsCRUDAndPagination(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	var ids []string
	for i := range 25 {
		a, rev, err := c.CreateAssignment(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:u%02d", i), System: tm, Permission: "edit_users", Scope: *onProject(fmt.Sprintf("p%d", i%3))})
		if err != nil || a.ID == "" || rev == 0 {
			t.Fatalf("create %d: %+v %d %v", i, a, rev, err)
		}
		ids = append(ids, a.ID)
	}
	seen, f := map[string]bool{}, permatrix.AssignmentFilter{Limit: 10}
	for pages := 0; ; pages++ {
		p, err := c.Assignments(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Assignments {
			if seen[a.ID] {
				t.Fatalf("duplicate %s", a.ID)
			}
			seen[a.ID] = true
		}
		if f.Cursor = p.NextCursor; f.Cursor == "" {
			if pages != 2 {
				t.Fatalf("25 assignments in pages of 10: %d pages", pages+1)
			}
			break
		}
	}
	if len(seen) != 25 {
		t.Fatalf("listed %d of 25", len(seen))
	}
	count := func(f permatrix.AssignmentFilter) int {
		n := 0
		for _, err := range c.AllAssignments(ctx, f) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if n := count(permatrix.AssignmentFilter{ScopeType: "project", ScopeID: "p1"}); n != 8 {
		t.Fatalf("filter p1: %d", n)
	}
	if n := count(permatrix.AssignmentFilter{Subject: "user:u03"}); n != 1 {
		t.Fatalf("filter subject: %d", n)
	}
	if n := count(permatrix.AssignmentFilter{Limit: 7}); n != 25 {
		t.Fatalf("every page of 7: %d", n)
	}
	if r := s.Do(http.MethodGet, "/v1/assignments?limit=0", nil, true); r.Status != 400 {
		t.Fatalf("limit=0: %d", r.Status)
	}
	// A subject filter is written as assignments write it: a bare user id
	// matches no assignment, so it is a 400 that says so, not [].
	if r := s.Do(http.MethodGet, "/v1/assignments?subject=u03", nil, true); r.Status != 400 || !strings.Contains(string(r.Raw), "user:<id>") {
		t.Fatalf("subject=u03: %d %s", r.Status, r.Raw)
	}
	// A filter the server does not read lists everything: a misspelt one
	// (subjects=, scope=), or one given twice (the first was taken), is a
	// 400 naming it — a caller deleting what a listing names would have
	// deleted every assignment.
	for q, msg := range map[string]string{
		"subjects=user:u03":                      `unknown query parameter "subjects"`,
		"Subject=user:u03":                       `unknown query parameter "Subject"`,
		"scope=project&limit=2":                  `unknown query parameter "scope"`,
		"subject=user:u03&subject=user:u04":      `subject is given 2 times`,
		"limit=1&limit=1000":                     `limit is given 2 times`,
		"system=" + tm + "&system=blueprism":     `system is given 2 times`,
		"cursor=" + ids[1] + "&cursor=" + ids[0]: `cursor is given 2 times`,
	} {
		if r := s.Do(http.MethodGet, "/v1/assignments?"+q, nil, true); r.Status != 400 || !strings.Contains(fmt.Sprint(r.Body["error"]), msg) {
			t.Errorf("?%s: %d %s, want 400 with %q", q, r.Status, r.Raw, msg)
		}
	}
	if a, err := c.Assignment(ctx, ids[3]); err != nil || a.Subject != "user:u03" || a.Scope != *onProject("p0") {
		t.Fatalf("get: %+v %v", a, err)
	}
	before := s.Svc.Revision()
	rev, err := c.DeleteAssignment(ctx, ids[0])
	if err != nil || rev <= before || rev != s.Svc.Revision() {
		t.Fatalf("delete: %d %v", rev, err)
	}
	_, err = c.DeleteAssignment(ctx, ids[0])
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	_, err = c.Assignment(ctx, ids[0])
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	if s.Allowed(check("u00", "edit_users", project("p0"))) {
		t.Fatal("deleted assignment still grants")
	}
}

func TestGroups(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	s.Assign(map[string]any{"subject": "group:ops", "system": tm, "permission": "edit_users", "scope": service})
	if s.Allowed(check("gus", "edit_users", nil)) {
		t.Fatal("not a member yet")
	}
	rev, err := c.AddMember(ctx, "ops", "gus")
	if err != nil || rev == 0 {
		t.Fatalf("put member: %d %v", rev, err)
	}
	d := decide(t, c, tmCheck("gus", "edit_users", nil))
	if !d.Allow || !anyItem(d.Reasons, map[string]any{"via": "group:ops"}) || d.Revision < rev {
		t.Fatalf("member should hold the group grant: %+v", d)
	}
	if m, _, err := c.Members(ctx, "ops"); err != nil || fmt.Sprint(m) != "[gus]" {
		t.Fatalf("members: %v %v", m, err)
	}
	if _, err := c.RemoveMember(ctx, "ops", "gus"); err != nil {
		t.Fatal(err)
	}
	if s.Allowed(check("gus", "edit_users", nil)) {
		t.Fatal("left the group but still holds its grant")
	}
	_, err = c.RemoveMember(ctx, "ops", "gus")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
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
	c := s.API()
	_, err := c.Import(ctx, strings.NewReader(bad))
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "line 2: user:mem is a Celonis member")
	if s.Allowed(check("a", "edit_users", nil)) {
		t.Fatal("a refused import stored its first line")
	}
	_, err = c.Import(ctx, strings.NewReader("{\"subject\":\"user:a\"\n"))
	wantError(t, err, 400, permatrix.EINVALID, "line 1")
	good := `{"subject":"user:a","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}

{"subject":"group:g","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}
`
	before := s.Svc.Revision()
	res, err := c.Import(ctx, strings.NewReader(good))
	if err != nil || res.Imported != 2 || res.Revision <= before {
		t.Fatalf("import: %+v %v", res, err)
	}
	if !s.Allowed(check("a", "edit_users", nil)) {
		t.Fatal("imported grant not effective")
	}
	var exp struct {
		Store struct {
			Revision uint64         `json:"revision"`
			Grants   map[string]any `json:"grants"`
		} `json:"store"`
	}
	raw := exportOf(t, c)
	if err := json.Unmarshal(raw, &exp); err != nil || exp.Store.Revision != res.Revision || len(exp.Store.Grants) != 3 {
		t.Fatalf("export (%v): %s", err, raw)
	}
}

func TestRolesAndProjectsOnCelonis(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	_, err := c.PutRole(ctx, permatrix.Role{System: tm, Name: "custom", Permissions: []string{"edit_users"}})
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "")
	_, err = c.PutRole(ctx, permatrix.Role{System: "nope", Name: "x"})
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
	w, err := c.PutProject(ctx, permatrix.Project{System: tm, ID: "p1", CreatedBy: "ann", Kind: "assisted"})
	if err != nil || w.Revision != s.Svc.Revision() || w.CreatorAssignment != nil || w.Project.CreatedBy != "ann" {
		t.Fatalf("register project: %+v %v", w, err)
	}
	_, err = c.PutProject(ctx, permatrix.Project{System: tm, ID: "p2", Kind: "weird"})
	wantError(t, err, 400, permatrix.EINVALID, "")
	if p, err := c.Project(ctx, tm, "p1"); err != nil || p.CreatedBy != "ann" || p.Kind != "assisted" {
		t.Fatalf("get project: %+v %v", p, err)
	}
	_, err = c.Project(ctx, tm, "p2")
	wantError(t, err, 404, permatrix.ENOTFOUND, "")
}

func TestIntrospection(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	systems, err := s.NewClient().Systems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*permatrix.System{}
	for _, sys := range systems {
		ids[sys.ID] = sys
	}
	for _, id := range []string{tm, "celonis-studio", "celonis-storage-manager"} {
		if ids[id] == nil {
			t.Fatalf("/v1/systems lacks %s", id)
		}
	}
	if _, ok := ids[tm].Actions["view_project"]; !ok {
		t.Fatal("actions lack view_project")
	}
	if one, err := s.NewClient().System(ctx, "blueprism"); err != nil || !one.CustomRoles.Enabled {
		t.Fatalf("GET /v1/systems/blueprism: %+v %v", one, err)
	}
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": project("p1")})
	r := s.Do(http.MethodGet, "/v1/subjects/ann/permissions?system="+tm+"&resource_type=project&resource_id=p1", nil, false)
	got := map[string]bool{}
	for _, p := range r.Body["permissions"].([]any) {
		got[p.(map[string]any)["action"].(string)] = true
	}
	if len(got) != 2 || !got["edit_users"] || !got["view_project"] {
		t.Fatalf("effective permissions: %s", r.Raw)
	}
	// A resource id without its type is a mistake (the permissions at
	// service scope, where ann has none, would be a wrong answer), as a type
	// without its id is.
	if r := s.Do(http.MethodGet, "/v1/subjects/ann/permissions?system="+tm+"&resource_id=p1", nil, false); r.Status != 400 || !strings.Contains(string(r.Raw), "resource_type") {
		t.Fatalf("resource_id without resource_type: %d %s", r.Status, r.Raw)
	}
	for _, path := range []string{"/health", "/health/live", "/health/ready"} {
		if r := s.Do(http.MethodGet, path, nil, false); r.Status != 200 {
			t.Fatalf("%s: %d", path, r.Status)
		}
	}
	if h, err := s.NewClient().Ready(ctx); err != nil || h.Status != "ok" || !h.BundleLoaded || !h.DBOpen {
		t.Fatalf("ready: %+v %v", h, err)
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
	c := s.API()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				user := fmt.Sprintf("w%d-%d", w, i)
				_, rev, err := c.CreateAssignment(ctx, permatrix.Assignment{Subject: "user:" + user, System: tm, Permission: "edit_users", Scope: permatrix.ServiceScope})
				if err != nil {
					t.Error(err)
					return
				}
				d, err := c.Check(ctx, tmCheck(user, "edit_users", nil))
				if err != nil || !d.Allow || d.Revision < rev {
					t.Errorf("write at %v, then check: %+v %v", rev, d, err)
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

// An id in a path is held to what the store keeps (1 to 256 bytes, no
// control characters), as the writes that take a body are: the reads and
// the deletes by id looked a 257-byte or NUL-holding id up and answered
// 404, or 200 with no members and the id echoed (NUL and all).
func TestPathIDsAreValidated(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	long := strings.Repeat("x", permatrix.MaxIDBytes+1)
	for _, id := range []string{long, "a%00b", "a%7Fb"} {
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, "/v1/assignments/" + id},
			{http.MethodDelete, "/v1/assignments/" + id},
			{http.MethodGet, "/v1/groups/" + id + "/members"},
			{http.MethodGet, "/v1/systems/blueprism/roles/" + id},
			{http.MethodDelete, "/v1/systems/blueprism/roles/" + id},
			{http.MethodGet, "/v1/systems/uipath-task-mining-cloud/projects/" + id},
		} {
			r := s.Do(c.method, c.path, nil, true)
			if code, msg := errorOf(r); r.Status != http.StatusBadRequest || code != permatrix.EINVALID || !strings.Contains(msg, "1 to 256 bytes") {
				t.Errorf("%s %.60s: %d %.200s, want 400 naming the id's bounds", c.method, c.path, r.Status, r.Raw)
			}
		}
	}
	// At the bound: an id like any other.
	at := strings.Repeat("y", permatrix.MaxIDBytes)
	if r := s.Do(http.MethodGet, "/v1/assignments/"+at, nil, true); r.Status != http.StatusNotFound {
		t.Fatalf("a 256-byte id: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodGet, "/v1/groups/"+at+"/members", nil, true); r.Status != http.StatusOK {
		t.Fatalf("a 256-byte group: %d %s", r.Status, r.Raw)
	}
}
