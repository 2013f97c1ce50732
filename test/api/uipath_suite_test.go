package api_test

// UiPath Task Mining (Automation Suite), uipath-task-mining-suite, and the AI
// Center permissions it needs in uipath-orchestrator, over HTTP: readings in
// docs/systems/uipath-task-mining-suite.md.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

func suite(user, action string, resource map[string]any) map[string]any {
	return sysCheck(tms, user, action, resource, nil)
}

// AI Center permission sets (catalog prerequisite_sets).
var (
	adminSet = []string{"ml_logs_view", "ml_packages_view", "ml_packages_edit", "ml_packages_create", "ml_packages_delete", "ml_skills_view"}
	smeSet   = []string{"ml_logs_view", "ml_packages_view", "ml_skills_view"}
)

// grantOrch assigns orchestrator permissions at the tenant and returns their ids.
func grantOrch(s *harness.Server, subject string, perms ...string) map[string]string {
	ids := map[string]string{}
	for _, p := range perms {
		ids[p] = s.Assign(map[string]any{"subject": subject, "system": orch, "permission": p, "scope": service})
	}
	return ids
}

// onlyMissingPermission fails unless missing is exactly the orchestrator
// permission perm at the tenant.
func onlyMissingPermission(t *testing.T, r harness.Response, perm string) {
	t.Helper()
	m := items(r, "missing")
	if r.Body["allow"] != false || len(items(r, "reasons")) != 0 || len(m) != 1 {
		t.Fatalf("want a deny missing only %s: %s", perm, r.Raw)
	}
	want := map[string]any{"kind": "permission", "system": orch, "permission": perm, "scope": map[string]any{"type": "service"}}
	if fmt.Sprint(m[0]) != fmt.Sprint(want) {
		t.Fatalf("missing %v, want %v", m[0], want)
	}
}

func missingRole(r harness.Response, role string) map[string]any {
	for _, m := range items(r, "missing") {
		if m["kind"] == "role" && m["role"] == role && m["system"] == tms {
			return m
		}
	}
	return nil
}

func TestUiPathSuiteUserCapabilities(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:uma", "user", service))
	s.Assign(roleAt(tms, "user:pete", "user", project("p1")))
	grantOrch(s, "user:uma", "ml_packages_view")
	grantOrch(s, "user:pete", "ml_packages_view")

	for _, a := range []string{"access_task_mining", "install_desktop_app", "record"} {
		for _, res := range []map[string]any{nil, project("p1"), project("p2")} {
			r := s.Check(suite("uma", a, res))
			if r.Body["allow"] != true || findReason(r, "user", "user:uma") == nil {
				t.Errorf("service-wide user %s at %v: %s", a, res, r.Raw)
			}
		}
		if !s.Allowed(suite("pete", a, project("p1"))) {
			t.Errorf("project user %s on p1", a)
		}
		if s.Allowed(suite("pete", a, project("p2"))) || s.Allowed(suite("pete", a, nil)) {
			t.Errorf("project user %s beyond p1", a)
		}
	}
	for _, a := range []string{"view_projects", "view_discovery_results", "edit_visualizer", "manage_users", "create_project", "configure_settings", "invite_users", "trigger_ml_pipeline", "add_members"} {
		if s.Allowed(sysCheck(tms, "uma", a, nil, map[string]any{"member_accepted_invite": true})) {
			t.Errorf("a User may not %s", a)
		}
	}
	// A project user missing on p2 is told the role at p2.
	r := s.Check(suite("pete", "install_desktop_app", project("p2")))
	if m := missingRole(r, "user"); m == nil || fmt.Sprint(m["scope"]) != fmt.Sprint(project("p2")) {
		t.Fatalf("missing role user at p2: %s", r.Raw)
	}
}

func TestUiPathSuiteProcessSMECapabilities(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:sam", "process_sme", service))
	grantOrch(s, "user:sam", smeSet...)
	for _, a := range []string{"view_projects", "view_discovery_results", "edit_visualizer"} {
		for _, res := range []map[string]any{nil, project("p1"), project("any")} {
			r := s.Check(suite("sam", a, res))
			if r.Body["allow"] != true || findReason(r, "process_sme", "user:sam") == nil {
				t.Errorf("process_sme %s at %v: %s", a, res, r.Raw)
			}
		}
	}
	// No edit right to rename/archive/edit any project: granted to no role.
	for _, a := range []string{"rename_project", "archive_project", "edit_project"} {
		r := s.Check(suite("sam", a, project("p1")))
		if r.Body["allow"] != false || !hasCondition(r, "granted to no role") {
			t.Errorf("process_sme %s: %s", a, r.Raw)
		}
	}
	// No User Management tab; no Admin or User capabilities.
	for _, a := range []string{"manage_users", "invite_users", "configure_settings", "create_project", "trigger_ml_pipeline", "review_analysis_results", "monitor_recording_status", "install_desktop_app", "record"} {
		r := s.Check(sysCheck(tms, "sam", a, nil, map[string]any{"member_accepted_invite": true}))
		if r.Body["allow"] != false {
			t.Errorf("process_sme may not %s: %s", a, r.Raw)
		}
	}
	r := s.Check(sysCheck(tms, "sam", "add_members", nil, map[string]any{"member_accepted_invite": true}))
	if r.Body["allow"] != false || missingRole(r, "admin") == nil {
		t.Fatalf("process_sme add_members: %s", r.Raw)
	}
	// access_task_mining is not the SME's: missing says user or admin.
	r = s.Check(suite("sam", "access_task_mining", nil))
	m := missingRole(r, "user")
	if r.Body["allow"] != false || m == nil || fmt.Sprint(m["any_of"]) != "[user admin]" {
		t.Fatalf("process_sme access_task_mining: %s", r.Raw)
	}
}

func TestUiPathSuiteAdminCapabilities(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:ada", "admin", service))
	grantOrch(s, "user:ada", adminSet...)
	for _, a := range []string{"access_task_mining", "manage_users", "create_project", "configure_settings", "invite_users", "monitor_recording_status", "trigger_ml_pipeline", "review_analysis_results"} {
		r := s.Check(suite("ada", a, nil))
		if r.Body["allow"] != true || findReason(r, "admin", "user:ada") == nil {
			t.Errorf("admin %s: %s", a, r.Raw)
		}
	}
	for _, a := range []string{"configure_settings", "invite_users", "monitor_recording_status", "trigger_ml_pipeline", "review_analysis_results"} {
		if !s.Allowed(suite("ada", a, project("p1"))) {
			t.Errorf("admin %s on p1", a)
		}
	}
	// No nesting: not the User's nor the SME's capabilities.
	for _, a := range []string{"install_desktop_app", "record", "view_projects", "view_discovery_results", "edit_visualizer", "rename_project", "archive_project", "edit_project"} {
		if s.Allowed(suite("ada", a, project("p1"))) {
			t.Errorf("admin may not %s", a)
		}
	}
	// Admin + User (the recommended setup) records.
	s.Assign(roleAt(tms, "user:ada", "user", service))
	if !s.Allowed(suite("ada", "record", project("p1"))) {
		t.Fatal("admin who also holds user should record")
	}
}

func TestUiPathSuiteAddMembersNeedsAcceptedInvite(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:ada", "admin", service))
	for _, ctx := range []map[string]any{nil, {}, {"member_accepted_invite": false}, {"member_accepted_invite": "true"}, {"member_accepted_invite": 1}} {
		r := s.Check(sysCheck(tms, "ada", "add_members", nil, ctx))
		if r.Body["allow"] != false || !hasCondition(r, "member_accepted_invite") {
			t.Errorf("add_members with context %v: %s", ctx, r.Raw)
		}
	}
	r := s.Check(sysCheck(tms, "ada", "add_members", nil, map[string]any{"member_accepted_invite": true}))
	if r.Body["allow"] != true || findReason(r, "admin", "user:ada") == nil {
		t.Fatalf("add_members with an accepted invite: %s", r.Raw)
	}
	// The context does not stand in for the role.
	r = s.Check(sysCheck(tms, "nobody", "add_members", nil, map[string]any{"member_accepted_invite": true}))
	if r.Body["allow"] != false || missingRole(r, "admin") == nil {
		t.Fatalf("add_members without admin: %s", r.Raw)
	}
}

func TestUiPathSuiteAICenterPrerequisites(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:ada", "admin", service))
	ids := grantOrch(s, "user:ada", adminSet...)
	for _, a := range []string{"trigger_ml_pipeline", "create_project"} {
		if !s.Allowed(suite("ada", a, nil)) {
			t.Fatalf("admin with the Admin set: %s", a)
		}
	}
	// Each permission of the Admin set, withheld alone, is named alone.
	for _, p := range adminSet {
		if r := s.Do(http.MethodDelete, "/v1/assignments/"+ids[p], nil, true); r.Status != 200 {
			t.Fatalf("delete %s: %d %s", p, r.Status, r.Raw)
		}
		onlyMissingPermission(t, s.Check(suite("ada", "trigger_ml_pipeline", project("p1"))), p)
		onlyMissingPermission(t, s.Check(suite("ada", "create_project", nil)), p)
		ids[p] = grantOrch(s, "user:ada", p)[p]
		r := s.Check(suite("ada", "trigger_ml_pipeline", project("p1")))
		if r.Body["allow"] != true || len(items(r, "missing")) != 0 {
			t.Fatalf("granting %s back: %s", p, r.Raw)
		}
		// Reasons name the suite role.
		if findReason(r, "admin", "user:ada") == nil {
			t.Fatalf("reasons: %s", r.Raw)
		}
	}
	// A prerequisite through a group counts.
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ids["ml_skills_view"], nil, true); r.Status != 200 {
		t.Fatal(r.Status)
	}
	onlyMissingPermission(t, s.Check(suite("ada", "trigger_ml_pipeline", nil)), "ml_skills_view")
	grantOrch(s, "group:aic", "ml_skills_view")
	s.Do(http.MethodPut, "/v1/groups/aic/members/ada", nil, true)
	if !s.Allowed(suite("ada", "trigger_ml_pipeline", nil)) {
		t.Fatal("ml_skills_view through group aic")
	}

	// record needs ml_packages_view.
	s.Assign(roleAt(tms, "user:uma", "user", project("p1")))
	onlyMissingPermission(t, s.Check(suite("uma", "record", project("p1"))), "ml_packages_view")
	if !s.Allowed(suite("uma", "install_desktop_app", project("p1"))) {
		t.Fatal("install_desktop_app has no prerequisite")
	}
	grantOrch(s, "user:uma", "ml_packages_view")
	if !s.Allowed(suite("uma", "record", project("p1"))) {
		t.Fatal("record with ml_packages_view")
	}
	if s.Allowed(suite("uma", "trigger_ml_pipeline", project("p1"))) {
		t.Fatal("ml_packages_view does not make a user an admin")
	}

	// view_discovery_results needs the Process SME set.
	s.Assign(roleAt(tms, "user:sam", "process_sme", service))
	sme := grantOrch(s, "user:sam", smeSet...)
	for _, p := range smeSet {
		s.Do(http.MethodDelete, "/v1/assignments/"+sme[p], nil, true)
		onlyMissingPermission(t, s.Check(suite("sam", "view_discovery_results", project("p1"))), p)
		sme[p] = grantOrch(s, "user:sam", p)[p]
	}
	if !s.Allowed(suite("sam", "view_discovery_results", project("p1"))) {
		t.Fatal("process_sme with the SME set")
	}

	// The prerequisites alone grant nothing.
	grantOrch(s, "user:olga", adminSet...)
	for _, c := range []struct{ action, role string }{
		{"trigger_ml_pipeline", "admin"}, {"create_project", "admin"}, {"record", "user"}, {"view_discovery_results", "process_sme"},
	} {
		r := s.Check(suite("olga", c.action, project("p1")))
		if c.action == "create_project" {
			r = s.Check(suite("olga", c.action, nil))
		}
		if r.Body["allow"] != false || len(items(r, "reasons")) != 0 || missingRole(r, c.role) == nil {
			t.Errorf("orchestrator permissions alone, %s: %s", c.action, r.Raw)
		}
		for _, m := range items(r, "missing") {
			if m["system"] == orch {
				t.Errorf("olga holds every AI Center permission, none should be missing: %s", r.Raw)
			}
		}
	}
	// The orchestrator permissions themselves are checked in their own system.
	r := s.Check(sysCheck(orch, "olga", "ml_packages_delete", nil, nil))
	if r.Body["allow"] != true || findReason(r, "ml_packages_delete", "user:olga") == nil {
		t.Fatalf("orchestrator check: %s", r.Raw)
	}
	if s.Allowed(sysCheck(orch, "uma", "ml_packages_delete", nil, nil)) {
		t.Fatal("uma holds only ml_packages_view")
	}
}

func TestUiPathSuiteScopeViolations(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:ada", "admin", service))
	cases := []refusal{
		{roleAt(tms, "user:x", "process_sme", project("p1")), `"process_sme" cannot be assigned at scope "project" in system "uipath-task-mining-suite" (allowed: service)`},
		{roleAt(tms, "user:x", "admin", project("p1")), `"admin" cannot be assigned at scope "project"`},
		{roleAt(tms, "group:g", "process_sme", project("p1")), `"process_sme" cannot be assigned at scope "project"`},
		{roleAt(tms, "user:x", "recording_user", service), "unknown role"},
		{map[string]any{"subject": "user:x", "system": tms, "permission": "record", "scope": service}, "not an assignable permission"},
		{map[string]any{"subject": "user:x", "system": orch, "permission": "ml_logs_view", "scope": project("p1")}, `"ml_logs_view" cannot be assigned at scope "project"`},
		{roleAt(orch, "user:x", "admin", service), "unknown role"},
	}
	before := export(s)
	wantAssignmentsRefused(t, s, cases, "", "ada")
	if after := export(s); after != before {
		t.Fatalf("refused writes changed the store:\n%s\n%s", before, after)
	}
	// user at a project is fine.
	if r := s.Do(http.MethodPost, "/v1/assignments", roleAt(tms, "user:x", "user", project("p1")), true); r.Status != 201 {
		t.Fatalf("user at project: %d %s", r.Status, r.Raw)
	}
}

func TestUiPathSuiteDelegation(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(roleAt(tms, "user:ada", "admin", service))
	s.Assign(roleAt(tms, "user:sam", "process_sme", service))
	s.Assign(roleAt(tms, "user:uma", "user", service))
	s.Assign(roleAt(tms, "group:leads", "admin", service))
	s.Do(http.MethodPut, "/v1/groups/leads/members/lee", nil, true)

	before := export(s)
	for _, actor := range []string{"sam", "uma", "nobody"} {
		r := assignAs(s, roleAt(tms, "user:x", "user", project("p1")), actor)
		if code, msg := errorOf(r); r.Status != 403 || code != "forbidden" || !strings.Contains(msg, "Admin") {
			t.Errorf("%s assigning user: %d %s", actor, r.Status, r.Raw)
		}
	}
	if after := export(s); after != before {
		t.Fatal("refused delegated writes changed the store")
	}
	var ids []string
	for _, actor := range []string{"ada", "lee"} {
		for _, role := range []string{"user", "process_sme", "admin"} {
			r := assignAs(s, roleAt(tms, "user:"+actor+"-"+role, role, service), actor)
			if r.Status != 201 {
				t.Fatalf("%s assigning %s: %d %s", actor, role, r.Status, r.Raw)
			}
			ids = append(ids, r.Body["id"].(string))
		}
	}
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ids[0], nil, true, "X-Permatrix-Actor", "sam"); r.Status != 403 {
		t.Fatalf("process_sme removing: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodDelete, "/v1/assignments/"+ids[0], nil, true, "X-Permatrix-Actor", "ada"); r.Status != 200 {
		t.Fatalf("admin removing: %d %s", r.Status, r.Raw)
	}
}
