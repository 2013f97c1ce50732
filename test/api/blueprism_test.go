package api_test

// Blue Prism, blueprism, over HTTP: custom roles (PUT/GET/DELETE
// /v1/systems/blueprism/roles/{role}), group-level access rights, the
// document's dependencies, and the write rules with an actor. Readings in
// docs/systems/blueprism.md.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/test/harness"
)

const bp = "blueprism"

func bpGroup(typ, id string) map[string]any { return map[string]any{"type": typ, "id": id} }

func bpPG(id string) map[string]any { return bpGroup("process_group", id) }

// bpCheck is a Blue Prism check; resource and ctx may be nil.
func bpCheck(user, action string, resource, ctx map[string]any) map[string]any {
	return sysCheck(bp, user, action, resource, ctx)
}

func bpRolePath(role string) string { return "/v1/systems/" + bp + "/roles/" + role }

// bpPutRole defines (or replaces) a custom role as the operator and fails
// unless it is accepted; it returns the new revision.
func bpPutRole(t *testing.T, s *harness.Server, role string, perms ...string) float64 {
	t.Helper()
	rev, err := s.API().PutRole(ctx, permatrix.Role{System: bp, Name: role, Permissions: perms})
	if err != nil || rev == 0 {
		t.Fatalf("PUT role %s %v: %d %v", role, perms, rev, err)
	}
	return float64(rev)
}

// bpPutRoleAs is a PUT of a role on behalf of actor (body "actor").
func bpPutRoleAs(s *harness.Server, role, actor string, perms ...string) harness.Response {
	if perms == nil {
		perms = []string{}
	}
	return s.Do(http.MethodPut, bpRolePath(role), map[string]any{"permissions": perms, "actor": actor}, true)
}

// bpRolePermissions GETs a role and returns its permissions, sorted, or nil
// with the status when it is not 200.
func bpRolePermissions(t *testing.T, s *harness.Server, role string) ([]string, int) {
	t.Helper()
	r, err := s.API().Role(ctx, bp, role)
	var e *client.Error
	if errors.As(err, &e) {
		return nil, e.StatusCode
	} else if err != nil {
		t.Fatalf("GET role %s: %v", role, err)
	}
	if r.Name != role || r.System != bp {
		t.Fatalf("GET role %s: %+v", role, r)
	}
	out := slices.Clone(r.Permissions)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out, http.StatusOK
}

func sortedCopy(ps ...string) []string {
	out := append([]string{}, ps...)
	slices.Sort(out)
	return out
}

// hasMissing reports whether the decision misses permission perm of
// blueprism at scope scp.
func hasMissing(r harness.Response, perm string, scp map[string]any) bool {
	for _, m := range items(r, "missing") {
		if m["kind"] == "permission" && m["system"] == bp && m["permission"] == perm && fmt.Sprint(m["scope"]) == fmt.Sprint(scp) {
			return true
		}
	}
	return false
}

// reasonAssignments are the assignment ids a decision's reasons name.
func reasonAssignments(r harness.Response) []string {
	var ids []string
	for _, m := range items(r, "reasons") {
		ids = append(ids, fmt.Sprint(m["assignment"]))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func wantAllow(t *testing.T, s *harness.Server, c map[string]any) harness.Response {
	t.Helper()
	r := s.Check(c)
	if r.Status != http.StatusOK || r.Body["allow"] != true || len(items(r, "reasons")) == 0 {
		t.Errorf("want allow for %v: %d %s", c, r.Status, r.Raw)
	}
	return r
}

func wantDeny(t *testing.T, s *harness.Server, c map[string]any) harness.Response {
	t.Helper()
	r := s.Check(c)
	if r.Status != http.StatusOK || r.Body["allow"] != false || len(items(r, "reasons")) != 0 || len(items(r, "missing")) == 0 {
		t.Errorf("want deny with missing for %v: %d %s", c, r.Status, r.Raw)
	}
	return r
}

// wantRefused fails unless r has status and error code, with msg in the
// message, and the store (export) is as before.
func wantRefused(t *testing.T, s *harness.Server, what string, r harness.Response, status int, errCode, msg, before string) {
	t.Helper()
	code, m := errorOf(r)
	if r.Status != status || code != errCode || !strings.Contains(m, msg) {
		t.Errorf("%s: got %d %s, want %d %s with %q", what, r.Status, r.Raw, status, errCode, msg)
	}
	if after := export(s); after != before {
		t.Errorf("%s: a refused write changed the store:\n%s\n%s", what, before, after)
	}
}

func TestBluePrismCatalogue(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	r := s.Do(http.MethodGet, "/v1/systems", nil, false)
	var sys map[string]any
	for _, x := range r.Body["systems"].([]any) {
		if m := x.(map[string]any); m["id"] == bp {
			sys = m
		}
	}
	if sys == nil {
		t.Fatalf("/v1/systems lacks %s: %s", bp, r.Raw)
	}
	perms := sys["permissions"].(map[string]any)
	if len(perms) != 95 {
		t.Fatalf("%d permissions, want 95", len(perms))
	}
	schedulers := 0
	for id, x := range perms {
		p := x.(map[string]any)
		if s, _ := p["category"].(string); s == "" {
			t.Errorf("%s has no category", id)
		}
		if s, _ := p["description"].(string); s == "" {
			t.Errorf("%s has no description", id)
		}
		if p["name"] == "System – Scheduler" {
			schedulers++
		}
	}
	sch, _ := perms["system_scheduler"].(map[string]any)
	if schedulers != 1 || sch == nil || sch["category"] != "Scheduler" || sch["name"] != "System – Scheduler" {
		t.Errorf("System – Scheduler should be the one permission system_scheduler in category Scheduler: %d %v", schedulers, sch)
	}
	for _, id := range []string{"create_edit_delete_tiles", "data_gateways_control_room", "audit_audit_logs", "business_objects_web_api_services", "security_user_roles"} {
		if perms[id] == nil {
			t.Errorf("permission %s missing", id)
		}
	}
	if roles, _ := sys["roles"].(map[string]any); len(roles) != 0 {
		t.Errorf("Blue Prism has no fixed roles: %v", sys["roles"])
	}
	if fmt.Sprint(sys["scope_types"]) != "[service process_group object_group resource_group]" {
		t.Errorf("scope_types: %v", sys["scope_types"])
	}
	if cr, _ := sys["custom_roles"].(map[string]any); cr == nil || len(cr["scopes"].([]any)) != 4 {
		t.Errorf("custom_roles: %v", sys["custom_roles"])
	}
	actions := sys["actions"].(map[string]any)
	if tab, _ := actions["view_dashboard_tab"].(map[string]any); tab == nil || tab["derived"] != true {
		t.Errorf("view_dashboard_tab should be a derived action: %v", actions["view_dashboard_tab"])
	}
}

// A role's permissions are a set: stored sorted, without repeats. The PUT
// answered the permissions as sent (repeats, the order given) under "role",
// which GET then contradicted; it answers the role as stored.
func TestBluePrismRolePutAnswersTheStoredRole(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	r := s.Do(http.MethodPut, bpRolePath("dev"), map[string]any{"permissions": []string{"execute_process", "edit_process", "execute_process"}}, true)
	if r.Status != http.StatusOK {
		t.Fatalf("PUT role: %d %s", r.Status, r.Raw)
	}
	g := s.Do(http.MethodGet, bpRolePath("dev"), nil, true)
	if g.Status != http.StatusOK {
		t.Fatalf("GET role: %d %s", g.Status, g.Raw)
	}
	if put, got := fmt.Sprint(r.Body["role"]), fmt.Sprint(g.Body); put != got {
		t.Fatalf("PUT answered role %s, GET reads %s", put, got)
	}
	if got, _ := bpRolePermissions(t, s, "dev"); !slices.Equal(got, []string{"edit_process", "execute_process"}) {
		t.Fatalf("stored: %v", got)
	}
	r = s.Do(http.MethodPut, bpRolePath("none"), map[string]any{"permissions": []string{}}, true)
	if ps, ok := r.Body["role"].(map[string]any)["permissions"].([]any); r.Status != http.StatusOK || !ok || len(ps) != 0 {
		t.Fatalf("PUT an empty role: %d %s", r.Status, r.Raw)
	}
}

func TestBluePrismRoleCRUD(t *testing.T) {
	s := harness.Start(t, harness.Options{})

	// Defining a role.
	body := map[string]any{"permissions": []string{"edit_process", "execute_process"}}
	if r := s.Do(http.MethodPut, bpRolePath("dev"), body, false); r.Status != 401 {
		t.Fatalf("PUT role without token: %d %s", r.Status, r.Raw)
	}
	r := s.Do(http.MethodPut, bpRolePath("dev"), body, true)
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("PUT role: %d %s", r.Status, r.Raw)
	}
	rev1 := revisionOf(t, r)
	if rev1 < 1 {
		t.Fatalf("revision after the first write: %v", rev1)
	}
	if got, st := bpRolePermissions(t, s, "dev"); st != 200 || !slices.Equal(got, sortedCopy("edit_process", "execute_process")) {
		t.Fatalf("GET role: %d %v", st, got)
	}

	// A user holding it.
	ann := s.Assign(roleAt(bp, "user:ann", "dev", service))
	d := wantAllow(t, s, bpCheck("ann", "edit_process", nil, nil))
	if findReason(d, "dev", "user:ann") == nil || fmt.Sprint(reasonAssignments(d)) != "["+ann+"]" {
		t.Fatalf("reasons should name the dev assignment: %s", d.Raw)
	}
	wantAllow(t, s, bpCheck("ann", "execute_process", bpPG("g1"), nil))
	wantDeny(t, s, bpCheck("ann", "delete_process", nil, nil))

	// Replacing the permission set: a new revision, decisions change at once.
	rev2 := bpPutRole(t, s, "dev", "execute_process", "delete_process")
	if rev2 <= rev1+1 { // rev1+1 was the assignment
		t.Fatalf("replacing a role: revision %v after %v", rev2, rev1+1)
	}
	d = wantDeny(t, s, bpCheck("ann", "edit_process", nil, nil))
	if d.Body["revision"].(float64) < rev2 || !hasMissing(d, "edit_process", service) {
		t.Fatalf("right after the PUT at %v edit_process should be missing: %s", rev2, d.Raw)
	}
	wantAllow(t, s, bpCheck("ann", "delete_process", nil, nil))
	wantAllow(t, s, bpCheck("ann", "execute_process", nil, nil))
	if got, _ := bpRolePermissions(t, s, "dev"); !slices.Equal(got, sortedCopy("execute_process", "delete_process")) {
		t.Fatalf("GET after replace: %v", got)
	}

	// Unknown permission ids, derived actions, printed names: 422, nothing stored.
	before := export(s)
	for _, perms := range [][]string{
		{"execute_process", "fly"},
		{"view_dashboard_tab"},
		{"Edit Process"},
		{"step_into_process", "edit_process"},
	} {
		r := s.Do(http.MethodPut, bpRolePath("dev"), map[string]any{"permissions": perms}, true)
		wantRefused(t, s, fmt.Sprintf("replace dev with %v", perms), r, 422, "unprocessable", "", before)
		r = s.Do(http.MethodPut, bpRolePath("ghost"), map[string]any{"permissions": perms}, true)
		wantRefused(t, s, fmt.Sprintf("define ghost with %v", perms), r, 422, "unprocessable", "", before)
	}
	if r := s.Do(http.MethodPut, bpRolePath("dev"), map[string]any{"permissions": []string{"fly"}}, true); !strings.Contains(string(r.Raw), "fly") {
		t.Errorf("the 422 should name the unknown id: %s", r.Raw)
	}
	if got, _ := bpRolePermissions(t, s, "dev"); !slices.Equal(got, sortedCopy("execute_process", "delete_process")) {
		t.Fatalf("a refused replace changed the role: %v", got)
	}
	if _, st := bpRolePermissions(t, s, "ghost"); st != 404 {
		t.Fatalf("a refused definition was stored: GET ghost %d", st)
	}
	wantAllow(t, s, bpCheck("ann", "delete_process", nil, nil))
	if r := s.Do(http.MethodPut, bpRolePath("dev"), map[string]any{}, true); r.Status != 400 {
		t.Errorf("PUT without permissions: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPut, bpRolePath("dev"), `{"permissions": "edit_process"}`, true); r.Status != 400 {
		t.Errorf("PUT with a string for permissions: %d %s", r.Status, r.Raw)
	}
	if export(s) != before {
		t.Fatal("malformed PUTs changed the store")
	}

	// Deleting: 409 while assigned (to a user or a group, at any scope).
	grp := s.Assign(roleAt(bp, "group:ops", "dev", bpPG("g1")))
	before = export(s)
	wantRefused(t, s, "delete an assigned role", s.Do(http.MethodDelete, bpRolePath("dev"), nil, true), 409, "conflict", "dev", before)
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ann, nil, true); r.Status != 200 {
		t.Fatalf("unassign: %d %s", r.Status, r.Raw)
	}
	before = export(s)
	wantRefused(t, s, "delete a role still assigned to a group", s.Do(http.MethodDelete, bpRolePath("dev"), nil, true), 409, "conflict", "dev", before)
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+grp, nil, true); r.Status != 200 {
		t.Fatalf("unassign group: %d %s", r.Status, r.Raw)
	}
	r = s.Do(http.MethodDelete, bpRolePath("dev"), nil, true)
	if r.Status != 200 {
		t.Fatalf("delete an unused role: %d %s", r.Status, r.Raw)
	}
	rev3 := revisionOf(t, r)
	if _, st := bpRolePermissions(t, s, "dev"); st != 404 {
		t.Fatalf("GET after delete: %d", st)
	}
	if r := s.Do(http.MethodDelete, bpRolePath("dev"), nil, true); r.Status != 404 {
		t.Fatalf("second delete: %d %s", r.Status, r.Raw)
	}
	before = export(s)
	wantRefused(t, s, "assign a deleted role", s.Do(http.MethodPost, "/v1/assignments", roleAt(bp, "user:ann", "dev", service), true), 422, "unprocessable", "unknown role", before)
	d = wantDeny(t, s, bpCheck("ann", "execute_process", nil, nil))
	if d.Body["revision"].(float64) < rev3 {
		t.Fatalf("decision revision %v before the delete at %v", d.Body["revision"], rev3)
	}

	// An empty role is a role that holds nothing.
	bpPutRole(t, s, "empty")
	if got, st := bpRolePermissions(t, s, "empty"); st != 200 || len(got) != 0 {
		t.Fatalf("GET empty role: %d %v", st, got)
	}
	s.Assign(roleAt(bp, "user:eve", "empty", service))
	wantDeny(t, s, bpCheck("eve", "execute_process", nil, nil))
}

func TestBluePrismUnusedPermissionsAllowNothing(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	unused := []string{"audit_view_design_control", "processes_grouping", "processes_view_environment_variables"}
	bpPutRole(t, s, "legacy", unused...) // they remain assignable
	s.Assign(roleAt(bp, "user:ann", "legacy", service))
	r := s.Do(http.MethodGet, "/v1/subjects/ann/permissions?system="+bp, nil, false)
	if r.Status != 200 || len(items(r, "permissions")) != 0 {
		t.Fatalf("a role of unused permissions allows nothing: %d %s", r.Status, r.Raw)
	}
	for _, p := range unused {
		if d := wantDeny(t, s, bpCheck("ann", p, nil, nil)); !hasCondition(d, "allows nothing") {
			t.Errorf("%s: want a condition quoting the document: %s", p, d.Raw)
		}
	}

	// Even with every other permission.
	cat := s.Do(http.MethodGet, "/v1/systems/"+bp, nil, false)
	var all []string
	for id := range cat.Body["permissions"].(map[string]any) {
		all = append(all, id)
	}
	bpPutRole(t, s, "everything", all...)
	s.Assign(roleAt(bp, "user:root", "everything", service))
	for _, p := range unused {
		wantDeny(t, s, bpCheck("root", p, nil, nil))
	}
	wantAllow(t, s, bpCheck("root", "create_process", nil, nil))
	r = s.Do(http.MethodGet, "/v1/subjects/root/permissions?system="+bp, nil, false)
	got := map[string]bool{}
	for _, p := range items(r, "permissions") {
		got[p["action"].(string)] = true
	}
	for _, p := range unused {
		if got[p] {
			t.Errorf("effective permissions list unused %s", p)
		}
	}
	if !got["create_process"] || !got["step_into_process"] || !got["manage_roles_from_users_screen"] {
		t.Errorf("effective permissions of everything: %s", r.Raw)
	}
}

func TestBluePrismUsersAndGroups(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "viewer", "view_process_definition")
	gid := s.Assign(roleAt(bp, "group:analysts", "viewer", service))
	uid := s.Assign(roleAt(bp, "user:dora", "viewer", service))

	c := bpCheck("ann", "view_process_definition", nil, nil)
	wantDeny(t, s, c)
	if r := s.Do(http.MethodPut, "/v1/groups/analysts/members/ann", nil, true); r.Status != 200 {
		t.Fatalf("put member: %d %s", r.Status, r.Raw)
	}
	d := wantAllow(t, s, c)
	if findReason(d, "viewer", "group:analysts") == nil || fmt.Sprint(reasonAssignments(d)) != "["+gid+"]" {
		t.Fatalf("reason should be the group's assignment: %s", d.Raw)
	}
	d = wantAllow(t, s, bpCheck("dora", "view_process_definition", bpPG("g1"), nil))
	if findReason(d, "viewer", "user:dora") == nil || fmt.Sprint(reasonAssignments(d)) != "["+uid+"]" {
		t.Fatalf("reason should be dora's assignment: %s", d.Raw)
	}
	wantDeny(t, s, bpCheck("bob", "view_process_definition", nil, nil))

	// An asserted group counts like a stored one.
	asserted := bpCheck("carl", "view_process_definition", nil, nil)
	asserted["groups"] = []string{"analysts"}
	wantAllow(t, s, asserted)

	// Leaving the group removes its role.
	if r := s.Do(http.MethodDelete, "/v1/groups/analysts/members/ann", nil, true); r.Status != 200 {
		t.Fatalf("delete member: %d %s", r.Status, r.Raw)
	}
	wantDeny(t, s, c)
	wantAllow(t, s, bpCheck("dora", "view_process_definition", nil, nil))

	// A direct permission assignment works at service scope only.
	s.Assign(map[string]any{"subject": "user:pat", "system": bp, "permission": "export_process", "scope": service})
	wantAllow(t, s, bpCheck("pat", "export_process", nil, nil))
	wantAllow(t, s, bpCheck("pat", "export_process", bpPG("g1"), nil))
	before := export(s)
	for _, scp := range []map[string]any{bpPG("g1"), bpGroup("object_group", "o1"), bpGroup("resource_group", "r1")} {
		r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": "user:pat", "system": bp, "permission": "export_process", "scope": scp}, true)
		wantRefused(t, s, fmt.Sprintf("direct permission at %v", scp), r, 422, "unprocessable", "scope", before)
		if !strings.Contains(string(r.Raw), "service scope only") {
			t.Errorf("direct permission at %v: the reason should say service scope only: %s", scp, r.Raw)
		}
	}
	r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": "user:pat", "system": bp, "permission": "view_dashboard_tab", "scope": service}, true)
	wantRefused(t, s, "assign a derived action", r, 422, "unprocessable", "", before)
	r = s.Do(http.MethodPost, "/v1/assignments", roleAt(bp, "user:pat", "nope", service), true)
	wantRefused(t, s, "assign an undefined role", r, 422, "unprocessable", "unknown role", before)
}

func TestBluePrismDependencies(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "creator", "create_process")
	bpPutRole(t, s, "editor", "edit_process")
	s.Assign(roleAt(bp, "user:cre", "creator", service))
	s.Assign(roleAt(bp, "user:edi", "editor", service))

	// Create Process ⇒ Edit Process, not the other way round.
	for _, scp := range []map[string]any{nil, bpPG("g1")} {
		d := wantAllow(t, s, bpCheck("cre", "edit_process", scp, nil))
		if findReason(d, "creator", "user:cre") == nil {
			t.Errorf("edit_process through create_process: %s", d.Raw)
		}
	}
	if d := wantDeny(t, s, bpCheck("edi", "create_process", nil, nil)); !hasMissing(d, "create_process", service) {
		t.Errorf("edit does not imply create: %s", d.Raw)
	}
	wantDeny(t, s, bpCheck("cre", "delete_process", nil, nil))
	wantDeny(t, s, bpCheck("cre", "view_process_definition", nil, nil))

	// Web Connection Settings needs Web API Services.
	bpPutRole(t, s, "web", "business_objects_web_connection_settings")
	s.Assign(roleAt(bp, "user:web", "web", service))
	d := wantDeny(t, s, bpCheck("web", "business_objects_web_connection_settings", nil, nil))
	if len(items(d, "missing")) != 1 || !hasMissing(d, "business_objects_web_api_services", service) {
		t.Fatalf("want only business_objects_web_api_services missing: %s", d.Raw)
	}
	bpPutRole(t, s, "web", "business_objects_web_connection_settings", "business_objects_web_api_services")
	wantAllow(t, s, bpCheck("web", "business_objects_web_connection_settings", nil, nil))

	// Import Release with the release's context.
	bpPutRole(t, s, "imp", "import_release")
	s.Assign(roleAt(bp, "user:imp", "imp", service))
	rel := func(ctx map[string]any) map[string]any { return bpCheck("imp", "import_release", nil, ctx) }
	contains := map[string]any{"release_contains": []string{"process"}}
	overwrite := map[string]any{"release_contains": []string{"process"}, "overwrite_existing": []string{"process"}}
	wantAllow(t, s, rel(nil)) // an empty release
	if d := wantDeny(t, s, rel(contains)); !hasMissing(d, "import_process", service) || hasMissing(d, "import_release", service) {
		t.Errorf("a release with a process needs import_process: %s", d.Raw)
	}
	bpPutRole(t, s, "imp", "import_release", "import_process")
	wantAllow(t, s, rel(contains))
	if d := wantDeny(t, s, rel(overwrite)); !hasMissing(d, "edit_process", service) {
		t.Errorf("overwriting a process needs edit_process: %s", d.Raw)
	}
	if d := wantDeny(t, s, rel(map[string]any{"release_contains": []string{"process"}, "overwrite_existing": true})); !hasMissing(d, "edit_process", service) {
		t.Errorf("overwrite_existing true with a process needs edit_process: %s", d.Raw)
	}
	if d := wantDeny(t, s, rel(map[string]any{"release_contains": []string{"process", "tile"}})); !hasMissing(d, "import_tile", service) {
		t.Errorf("a release with a tile needs import_tile: %s", d.Raw)
	}
	bpPutRole(t, s, "imp", "import_release", "import_process", "create_process") // create ⇒ edit
	wantAllow(t, s, rel(overwrite))
	wantAllow(t, s, rel(map[string]any{"release_contains": []string{"process"}, "overwrite_existing": true}))
	for _, bad := range []map[string]any{
		{"release_contains": "process"},
		{"release_contains": []string{"spaceship"}},
		{"overwrite_existing": "yes"},
	} {
		d := wantDeny(t, s, rel(bad))
		found := false
		for _, m := range items(d, "missing") {
			found = found || m["kind"] == "condition"
		}
		if !found {
			t.Errorf("malformed context %v should be denied with a condition: %s", bad, d.Raw)
		}
	}

	// The dashboard tab: View Dashboards or one of the design permissions.
	d = wantDeny(t, s, bpCheck("nobody", "view_dashboard_tab", nil, nil))
	anyOf := ""
	for _, m := range items(d, "missing") {
		anyOf += fmt.Sprint(m["any_of"])
	}
	for _, p := range []string{"view_dashboards", "design_global_dashboards", "design_personal_dashboards", "design_published_dashboards"} {
		if !strings.Contains(anyOf, p) {
			t.Errorf("view_dashboard_tab missing should offer %s: %s", p, d.Raw)
		}
	}
	bpPutRole(t, s, "designer", "design_personal_dashboards")
	s.Assign(roleAt(bp, "user:des", "designer", service))
	wantAllow(t, s, bpCheck("des", "view_dashboard_tab", nil, nil))
	wantAllow(t, s, bpCheck("des", "view_dashboards", nil, nil))
	wantDeny(t, s, bpCheck("des", "design_global_dashboards", nil, nil))
	bpPutRole(t, s, "designer", "view_dashboards")
	wantAllow(t, s, bpCheck("des", "view_dashboard_tab", nil, nil))
	wantDeny(t, s, bpCheck("des", "design_personal_dashboards", nil, nil))

	// A service-only permission checked on a group is denied with a condition.
	bpPutRole(t, s, "ua", "security_users")
	s.Assign(roleAt(bp, "user:ua", "ua", service))
	wantAllow(t, s, bpCheck("ua", "security_users", nil, nil))
	if d := wantDeny(t, s, bpCheck("ua", "security_users", bpPG("g1"), nil)); !hasCondition(d, "process_group") {
		t.Errorf("security_users on a process group: %s", d.Raw)
	}
}

func TestBluePrismGroupLevelAccessRights(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "dev", "create_process", "edit_process", "delete_process", "view_process_definition", "execute_process", "edit_business_object")
	bpPutRole(t, s, "g1_rights", "view_process_definition", "execute_process", "export_process")
	svc := s.Assign(roleAt(bp, "user:ann", "dev", service))
	grp := s.Assign(roleAt(bp, "user:ann", "g1_rights", bpPG("g1")))

	// On g1 the service-level permissions are narrowed to g1_rights.
	d := wantAllow(t, s, bpCheck("ann", "view_process_definition", bpPG("g1"), nil))
	if got, want := reasonAssignments(d), sortedCopy(svc, grp); !slices.Equal(got, want) {
		t.Errorf("reasons should name the service-level and the group-level assignment %v: %s", want, d.Raw)
	}
	if findReason(d, "dev", "user:ann") == nil || findReason(d, "g1_rights", "user:ann") == nil {
		t.Errorf("reasons should name both roles: %s", d.Raw)
	}
	wantAllow(t, s, bpCheck("ann", "execute_process", bpPG("g1"), nil))
	for _, a := range []string{"edit_process", "delete_process", "create_process"} {
		if d := wantDeny(t, s, bpCheck("ann", a, bpPG("g1"), nil)); !hasMissing(d, a, bpPG("g1")) {
			t.Errorf("%s removed on g1 should be missing there: %s", a, d.Raw)
		}
	}
	// Never widened: export_process is in the group role but not the service role.
	wantDeny(t, s, bpCheck("ann", "export_process", bpPG("g1"), nil))
	wantDeny(t, s, bpCheck("ann", "export_process", nil, nil))

	// Other groups, another group type with the same id, and the service: unaffected.
	for _, a := range []string{"edit_process", "delete_process", "create_process"} {
		d := wantAllow(t, s, bpCheck("ann", a, bpPG("g2"), nil))
		if fmt.Sprint(reasonAssignments(d)) != "["+svc+"]" {
			t.Errorf("%s on g2: reasons should be the service assignment only: %s", a, d.Raw)
		}
		wantAllow(t, s, bpCheck("ann", a, nil, nil))
	}
	wantAllow(t, s, bpCheck("ann", "edit_business_object", bpGroup("object_group", "g1"), nil))

	// A group-level role alone grants nothing, there or at service.
	s.Assign(roleAt(bp, "user:bob", "g1_rights", bpPG("g1")))
	wantDeny(t, s, bpCheck("bob", "view_process_definition", bpPG("g1"), nil))
	wantDeny(t, s, bpCheck("bob", "view_process_definition", nil, nil))

	// Group-level rights held through a group narrow too.
	s.Assign(roleAt(bp, "group:team", "g1_rights", bpPG("g3")))
	s.Do(http.MethodPut, "/v1/groups/team/members/ann", nil, true)
	wantDeny(t, s, bpCheck("ann", "edit_process", bpPG("g3"), nil))
	d = wantAllow(t, s, bpCheck("ann", "view_process_definition", bpPG("g3"), nil))
	if findReason(d, "g1_rights", "group:team") == nil || findReason(d, "dev", "user:ann") == nil {
		t.Errorf("reasons on g3 should name the group's and ann's assignments: %s", d.Raw)
	}

	// Several grants on one group: their union (still within the service level).
	bpPutRole(t, s, "g1_edit", "edit_process")
	extra := s.Assign(roleAt(bp, "user:ann", "g1_edit", bpPG("g1")))
	wantAllow(t, s, bpCheck("ann", "edit_process", bpPG("g1"), nil))
	wantDeny(t, s, bpCheck("ann", "delete_process", bpPG("g1"), nil))

	// Removing the group-level rights restores the service level on g1.
	for _, id := range []string{grp, extra} {
		if r := s.Do(http.MethodDelete, "/v1/assignments/"+id, nil, true); r.Status != 200 {
			t.Fatalf("unassign %s: %d %s", id, r.Status, r.Raw)
		}
	}
	d = wantAllow(t, s, bpCheck("ann", "delete_process", bpPG("g1"), nil))
	if fmt.Sprint(reasonAssignments(d)) != "["+svc+"]" {
		t.Errorf("after removing g1 rights: %s", d.Raw)
	}

	// Narrowing a role changes the group at once.
	bpPutRole(t, s, "g1_rights", "view_process_definition")
	wantDeny(t, s, bpCheck("ann", "execute_process", bpPG("g3"), nil))
}

// bpDelegationFixture: roles and actors for the write rules.
//
//	ua   useradmin (security_users) at service
//	ra   roleadmin (security_user_roles) at service
//	pa   pgadmin (manage_process_access_rights) at service
//	fa   full at service, narrowed on process_group g1 to security_users
//	hal  useradmin through group helpdesk
func bpDelegationFixture(t *testing.T) *harness.Server {
	s := harness.Start(t, harness.Options{})
	bpPutRole(t, s, "useradmin", "security_users")
	bpPutRole(t, s, "roleadmin", "security_user_roles")
	bpPutRole(t, s, "pgadmin", "manage_process_access_rights")
	bpPutRole(t, s, "full", "security_users", "security_user_roles", "manage_process_access_rights", "manage_business_object_access_rights")
	bpPutRole(t, s, "narrow", "security_users")
	bpPutRole(t, s, "dev", "edit_process")
	s.Assign(roleAt(bp, "user:ua", "useradmin", service))
	s.Assign(roleAt(bp, "user:ra", "roleadmin", service))
	s.Assign(roleAt(bp, "user:pa", "pgadmin", service))
	s.Assign(roleAt(bp, "user:fa", "full", service))
	s.Assign(roleAt(bp, "user:fa", "narrow", bpPG("g1")))
	s.Assign(roleAt(bp, "group:helpdesk", "useradmin", service))
	s.Do(http.MethodPut, "/v1/groups/helpdesk/members/hal", nil, true)
	return s
}

func TestBluePrismDelegationAssign(t *testing.T) {
	s := bpDelegationFixture(t)
	og, rg := bpGroup("object_group", "o1"), bpGroup("resource_group", "r1")
	cases := []struct {
		actor string
		scope map[string]any
		want  int
		msg   string
	}{
		// Service scope: Security – Users.
		{"nobody", service, 403, "security_users"},
		{"ra", service, 403, "security_users"},
		{"pa", service, 403, "security_users"},
		{"ua", service, 201, ""},
		{"hal", service, 201, ""},
		{"fa", service, 201, ""},
		// Group scope: the access-rights permission in effect on that group.
		{"ua", bpPG("g2"), 403, "manage_process_access_rights"},
		{"nobody", bpPG("g2"), 403, "manage_process_access_rights"},
		{"pa", bpPG("g2"), 201, ""},
		{"fa", bpPG("g2"), 201, ""},
		{"fa", bpPG("g1"), 403, "manage_process_access_rights"}, // narrowed on g1
		{"pa", og, 403, "manage_business_object_access_rights"},
		{"fa", og, 201, ""},
		{"fa", rg, 403, "manage_resource_access_rights"},
	}
	for i, c := range cases {
		a := roleAt(bp, fmt.Sprintf("user:target%d", i), "dev", c.scope)
		before := export(s)
		r := assignAs(s, a, c.actor)
		if c.want == 201 {
			if r.Status != 201 || r.Body["id"] == "" || r.Body["revision"] == nil {
				t.Errorf("%s assigning dev at %v: %d %s, want 201", c.actor, c.scope, r.Status, r.Raw)
			}
			continue
		}
		wantRefused(t, s, fmt.Sprintf("%s assigning dev at %v", c.actor, c.scope), r, 403, "forbidden", c.msg, before)
	}
	// The header names the actor too.
	a := roleAt(bp, "user:h1", "dev", service)
	before := export(s)
	wantRefused(t, s, "header actor ra", s.Do(http.MethodPost, "/v1/assignments", a, true, "X-Permatrix-Actor", "ra"), 403, "forbidden", "security_users", before)
	if r := s.Do(http.MethodPost, "/v1/assignments", a, true, "X-Permatrix-Actor", "ua"); r.Status != 201 {
		t.Fatalf("header actor ua: %d %s", r.Status, r.Raw)
	}
	// A delegated grant works; a direct permission by an actor follows the same rule.
	wantAllow(t, s, bpCheck("target3", "edit_process", nil, nil))
	perm := map[string]any{"subject": "user:h2", "system": bp, "permission": "edit_process", "scope": service}
	before = export(s)
	wantRefused(t, s, "pa assigning a permission", assignAs(s, perm, "pa"), 403, "forbidden", "security_users", before)
	if r := assignAs(s, perm, "ua"); r.Status != 201 {
		t.Fatalf("ua assigning a permission: %d %s", r.Status, r.Raw)
	}
	// Without an actor the operator may make any valid change.
	s.Assign(roleAt(bp, "user:h3", "dev", rg))
}

func TestBluePrismDelegationUnassign(t *testing.T) {
	s := bpDelegationFixture(t)
	del := func(id, actor string) harness.Response {
		return s.Do(http.MethodDelete, "/v1/assignments/"+id, nil, true, "X-Permatrix-Actor", actor)
	}
	svc1 := s.Assign(roleAt(bp, "user:t1", "dev", service))
	svc2 := s.Assign(roleAt(bp, "user:t2", "dev", service))
	g2 := s.Assign(roleAt(bp, "user:t3", "dev", bpPG("g2")))
	g1 := s.Assign(roleAt(bp, "user:t4", "dev", bpPG("g1")))

	refused := []struct{ id, actor, msg string }{
		{svc1, "nobody", "security_users"},
		{svc1, "pa", "security_users"},
		{svc1, "ra", "security_users"},
		{g2, "ua", "manage_process_access_rights"},
		{g1, "fa", "manage_process_access_rights"},
	}
	for _, c := range refused {
		before := export(s)
		wantRefused(t, s, fmt.Sprintf("%s removing %s", c.actor, c.id), del(c.id, c.actor), 403, "forbidden", c.msg, before)
	}
	wantAllow(t, s, bpCheck("t1", "edit_process", nil, nil))
	for _, c := range []struct{ id, actor string }{{svc1, "ua"}, {svc2, "hal"}, {g2, "pa"}, {g1, "pa"}} {
		if r := del(c.id, c.actor); r.Status != 200 || r.Body["revision"] == nil {
			t.Errorf("%s removing %s: %d %s", c.actor, c.id, r.Status, r.Raw)
		}
		if r := s.Do(http.MethodGet, "/v1/assignments/"+c.id, nil, true); r.Status != 404 {
			t.Errorf("%s still stored after removal: %d", c.id, r.Status)
		}
	}
	wantDeny(t, s, bpCheck("t1", "edit_process", nil, nil))
}

func TestBluePrismDelegationRoles(t *testing.T) {
	s := bpDelegationFixture(t)
	// Defining and deleting roles needs Security – User Roles.
	for _, actor := range []string{"nobody", "ua", "pa"} {
		before := export(s)
		wantRefused(t, s, actor+" defining a role", bpPutRoleAs(s, "x", actor, "edit_process"), 403, "forbidden", "security_user_roles", before)
		r := s.Do(http.MethodPut, bpRolePath("x"), map[string]any{"permissions": []string{"edit_process"}}, true, "X-Permatrix-Actor", actor)
		wantRefused(t, s, actor+" defining a role (header)", r, 403, "forbidden", "security_user_roles", before)
	}
	if r := bpPutRoleAs(s, "x", "ra", "edit_process"); r.Status != 200 && r.Status != 201 {
		t.Fatalf("ra defining a role: %d %s", r.Status, r.Raw)
	}
	if r := bpPutRoleAs(s, "x", "fa", "edit_process", "delete_process"); r.Status != 200 {
		t.Fatalf("fa replacing a role: %d %s", r.Status, r.Raw)
	}
	// Actor rules never excuse a violation: 422 comes first.
	before := export(s)
	wantRefused(t, s, "ra defining a role with an unknown id", bpPutRoleAs(s, "x", "ra", "fly"), 422, "unprocessable", "fly", before)

	before = export(s)
	r := s.Do(http.MethodDelete, bpRolePath("x"), nil, true, "X-Permatrix-Actor", "ua")
	wantRefused(t, s, "ua deleting a role", r, 403, "forbidden", "security_user_roles", before)
	if r := s.Do(http.MethodDelete, bpRolePath("x"), nil, true, "X-Permatrix-Actor", "ra"); r.Status != 200 {
		t.Fatalf("ra deleting a role: %d %s", r.Status, r.Raw)
	}
	if _, st := bpRolePermissions(t, s, "x"); st != 404 {
		t.Fatalf("GET deleted role: %d", st)
	}
}

func TestBluePrismOwnRole(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	sysadmin := []string{"security_users", "security_user_roles", "manage_process_access_rights", "manage_resource_access_rights"}
	bpPutRole(t, s, "sysadmin", sysadmin...)
	bpPutRole(t, s, "useradmin", "security_user_roles")
	bpPutRole(t, s, "g_only", "manage_process_access_rights", "manage_business_object_access_rights")
	s.Assign(roleAt(bp, "group:admins", "sysadmin", service))
	s.Do(http.MethodPut, "/v1/groups/admins/members/sam", nil, true)
	s.Assign(roleAt(bp, "user:uma", "useradmin", service))
	s.Assign(roleAt(bp, "user:sam", "g_only", bpPG("g1")))
	without := []string{"security_users", "security_user_roles", "manage_resource_access_rights"}

	// sam holds sysadmin (through a group): may not remove or add the
	// access-rights permissions with the own-role sentence.
	refused := []struct {
		role  string
		perms []string
		msg   string
	}{
		{"sysadmin", without, "manage_process_access_rights"},
		{"sysadmin", append(slices.Clone(sysadmin), "manage_business_object_access_rights"), "manage_business_object_access_rights"},
		{"g_only", []string{"manage_business_object_access_rights"}, "manage_process_access_rights"}, // held at a group scope
		{"g_only", []string{"manage_process_access_rights"}, "manage_business_object_access_rights"},
	}
	for _, c := range refused {
		before := export(s)
		wantRefused(t, s, fmt.Sprintf("sam putting own role %s %v", c.role, c.perms), bpPutRoleAs(s, c.role, "sam", c.perms...), 403, "forbidden", c.msg, before)
		r := s.Do(http.MethodPut, bpRolePath(c.role), map[string]any{"permissions": c.perms}, true, "X-Permatrix-Actor", "sam")
		wantRefused(t, s, fmt.Sprintf("sam putting own role %s %v (header)", c.role, c.perms), r, 403, "forbidden", c.msg, before)
	}
	if got, _ := bpRolePermissions(t, s, "sysadmin"); !slices.Equal(got, sortedCopy(sysadmin...)) {
		t.Fatalf("a refused PUT changed sysadmin: %v", got)
	}
	wantAllow(t, s, bpCheck("sam", "manage_process_access_rights", nil, nil))

	// Deleting an own role that has one of them is refused (it is also still assigned).
	before := export(s)
	r := s.Do(http.MethodDelete, bpRolePath("sysadmin"), nil, true, "X-Permatrix-Actor", "sam")
	if r.Status != 403 && r.Status != 409 {
		t.Errorf("sam deleting own role: %d %s", r.Status, r.Raw)
	}
	if export(s) != before {
		t.Error("a refused role delete changed the store")
	}

	// Other changes to the own role are allowed: Manage Resource Access
	// Rights carries no own-role sentence.
	changed := []string{"security_users", "security_user_roles", "manage_process_access_rights", "create_process"}
	if r := bpPutRoleAs(s, "sysadmin", "sam", changed...); r.Status != 200 {
		t.Fatalf("sam changing other permissions of own role: %d %s", r.Status, r.Raw)
	}
	wantAllow(t, s, bpCheck("sam", "create_process", nil, nil))
	wantDeny(t, s, bpCheck("sam", "manage_resource_access_rights", nil, nil))

	// Another actor with Security – User Roles may change them.
	r = bpPutRoleAs(s, "sysadmin", "uma", "security_users", "security_user_roles", "create_process")
	if r.Status != 200 {
		t.Fatalf("uma removing manage_process_access_rights from sysadmin: %d %s", r.Status, r.Raw)
	}
	wantDeny(t, s, bpCheck("sam", "manage_process_access_rights", nil, nil))
	if r := bpPutRoleAs(s, "sysadmin", "uma", changed...); r.Status != 200 {
		t.Fatalf("uma adding it back: %d %s", r.Status, r.Raw)
	}
	wantAllow(t, s, bpCheck("sam", "manage_process_access_rights", nil, nil))

	// sam may change them in roles sam does not hold.
	if r := bpPutRoleAs(s, "other", "sam", "manage_process_access_rights"); r.Status != 200 && r.Status != 201 {
		t.Fatalf("sam defining another role: %d %s", r.Status, r.Raw)
	}
	if r := bpPutRoleAs(s, "other", "sam"); r.Status != 200 {
		t.Fatalf("sam removing it from another role: %d %s", r.Status, r.Raw)
	}

	// Once sam leaves the group, sysadmin is no longer sam's own role; but
	// sam then lacks Security – User Roles at all.
	s.Do(http.MethodDelete, "/v1/groups/admins/members/sam", nil, true)
	before = export(s)
	wantRefused(t, s, "sam after leaving admins", bpPutRoleAs(s, "sysadmin", "sam", without...), 403, "forbidden", "security_user_roles", before)
}

// A DELETE carrying the actor in a JSON body must not be made with the
// operator's authority: the actor is honoured (403 here) or the request is
// refused, never silently ignored.
func TestBluePrismDeleteWithBodyActor(t *testing.T) {
	s := bpDelegationFixture(t)
	bpPutRole(t, s, "tmp", "edit_process")
	id := s.Assign(roleAt(bp, "user:z", "dev", service))
	before := export(s)
	rRole := s.Do(http.MethodDelete, bpRolePath("tmp"), map[string]any{"actor": "nobody"}, true)
	rAssign := s.Do(http.MethodDelete, "/v1/assignments/"+id, map[string]any{"actor": "nobody"}, true)
	for what, r := range map[string]harness.Response{"role": rRole, "assignment": rAssign} {
		if r.Status != 403 {
			t.Errorf("DELETE %s with body actor nobody: %d %s, want 403", what, r.Status, r.Raw)
		}
	}
	if export(s) != before {
		t.Error("a refused DELETE changed the store")
	}
}

// A role name is a path segment: one containing "/" (sent as %2F) must
// round-trip as itself or be refused, never be stored under its escaped form.
func TestBluePrismRoleNameWithSlash(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	const name = "Dev/Test x"
	path := bpRolePath("Dev%2FTest%20x")
	before := export(s)
	r := s.Do(http.MethodPut, path, map[string]any{"permissions": []string{"edit_process"}}, true)
	if r.Status == 400 {
		if export(s) != before {
			t.Fatal("a refused PUT changed the store")
		}
		return
	}
	got := ""
	if role, ok := r.Body["role"].(map[string]any); ok {
		got = fmt.Sprint(role["name"])
	}
	if (r.Status != 200 && r.Status != 201) || got != name {
		t.Fatalf("PUT %s: %d %s, want the role %q", path, r.Status, r.Raw, name)
	}
	s.Assign(roleAt(bp, "user:q", name, service))
	wantAllow(t, s, bpCheck("q", "edit_process", nil, nil))
	if g := s.Do(http.MethodGet, path, nil, true); g.Status != 200 || g.Body["name"] != name {
		t.Fatalf("GET %s: %d %s", path, g.Status, g.Raw)
	}
}
