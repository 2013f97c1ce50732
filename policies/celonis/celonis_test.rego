# METADATA
# title: Celonis tests
# description: |
#   Every cell of both Celonis tables, end to end through data.permatrix.decision.
#   "new" = celonis-task-mining-permissions.txt, "old" = celonis-task-mining-permissions-older.txt,
#   with the line of the cell.
package celonis_test

import data.permatrix
import data.testing.layout

tm := "celonis-task-mining"

service := {"type": "service"}

p1 := {"type": "project", "id": "p1"}

p2 := {"type": "project", "id": "p2"}

edits := ["edit_client_settings", "edit_users", "edit_data_configuration", "edit_project_connection"]

role(id, user, r) := {"id": id, "subject": concat("", ["user:", user]), "system": tm, "role": r, "scope": service}

grant(id, subject, sys, perm, scope) := {
	"id": id,
	"subject": subject,
	"system": sys,
	"permission": perm,
	"scope": scope,
}

store(assignments, memberships) := {
	"revision": 7,
	"grants": layout.grants_of(assignments), "scopes": layout.scopes_of(assignments),
	"memberships": memberships,
	"groups": {},
	"roles": {},
	"projects": {},
}

check(sys, action, resource, ctx) := {
	"subject": "u",
	"system": sys,
	"action": action,
	"resource": resource,
	"context": ctx,
}

# decide is the decision for request over a store of assignments. A test
# helper: Regal counts only test_ rules as test context, but with is what
# this file is for.
decide(assignments, request) := d if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as store(assignments, {}) with input as request
}

allowed(assignments, action, resource) if decide(assignments, check(tm, action, resource, {})).allow

admin := [role("r", "u", "admin")]

# creator holds create_project for all projects.
creator := [grant("g", "user:u", tm, "create_project", service)]

# package_grant is celonis-studio create_package on a space.
package_grant(space_id) := grant("s", "user:u", "celonis-studio", "create_package", {"type": "space", "id": space_id})

# missing_package is the missing item naming create_package on a space.
missing_package(space_id) := {
	"kind": "permission",
	"system": "celonis-studio",
	"permission": "create_package",
	"scope": {"type": "space", "id": space_id},
}

analyst := [role("r", "u", "analyst")]

member := [role("r", "u", "member")]

# --- old line 7: Admin Role | x | x | x | x | x | x (and line 4: "Admins have always all permissions.")

test_admin_view_project if allowed(admin, "view_project", p1)

test_admin_edit_client_settings if allowed(admin, "edit_client_settings", p1)

test_admin_edit_users if allowed(admin, "edit_users", p1)

test_admin_edit_project_connection if allowed(admin, "edit_project_connection", p1)

test_admin_create_project if allowed(admin, "create_project", service)

test_admin_delete_project if allowed(admin, "delete_project", p1)

test_admin_edit_data_configuration if allowed(admin, "edit_data_configuration", service)

test_admin_reason_names_the_role if {
	d := decide(admin, check(tm, "edit_users", p1, {}))
	d.reasons == [{"kind": "role", "role": "admin", "scope": service, "via": "user:u", "assignment": "r"}]
}

test_admin_custom_project_needs_nothing_else if {
	decide(admin, check(tm, "create_project", service, {"custom_project": true, "space": "s1"})).allow
}

# "Overarching and apply across the Celonis Platform" (new line 5): admin in Studio too.
test_admin_holds_studio if {
	decide(admin, check("celonis-studio", "create_package", {"type": "space", "id": "s"}, {})).allow
}

# New line 38: "anyone who wants to view these screenshots must be granted
# permissions for that storage bucket and the File Storage Manager service."
# Anyone includes admins (vendor-docs/README.md): "Admins have always all
# permissions" (old line 4) is Task Mining's, not the Storage Manager's.
test_admin_needs_bucket_grants_for_screenshots if {
	b := {"type": "bucket", "id": "b"}
	every action in ["view_screenshots", "delete_screenshots"] {
		d := decide(admin, check(tm, action, b, {}))
		not d.allow
		d.reasons == []
	}
	d := decide(admin, check(tm, "delete_screenshots", b, {}))
	{m.permission | some m in d.missing} == {"get", "list", "delete", "use_file_storage_manager"}
	{m.system | some m in d.missing} == {sm}
	not decide(admin, check(sm, "delete", b, {})).allow
}

test_admin_with_bucket_grants_views_screenshots if {
	b := {"type": "bucket", "id": "b"}
	grants := array.concat(admin, [
		grant("g1", "user:u", sm, "get", b),
		grant("g2", "user:u", sm, "list", b),
		grant("g3", "user:u", sm, "use_file_storage_manager", service),
	])
	d := decide(grants, check(tm, "view_screenshots", b, {}))
	d.allow
	{r.permission | some r in d.reasons} == {"get", "list", "use_file_storage_manager"}
	not decide(grants, check(tm, "delete_screenshots", b, {})).allow
}

# --- old line 8: Analyst Role | "Cannot be granted separately" | Grant permissions | Grant permissions | - | - | -
# The role alone holds nothing; a grant holds what it grants.

test_analyst_alone_holds_nothing if {
	every a in array.concat(edits, ["view_project", "delete_project"]) {
		not allowed(analyst, a, p1)
	}
	not allowed(analyst, "create_project", service)
}

test_analyst_edit_client_settings_granted if {
	allowed(array.concat(analyst, [grant("g", "user:u", tm, "edit_client_settings", p1)]), "edit_client_settings", p1)
}

test_analyst_edit_users_granted if {
	allowed(array.concat(analyst, [grant("g", "user:u", tm, "edit_users", p1)]), "edit_users", p1)
}

# old line 8 says "-" for Delete Project: no grant exists for it (the catalog refuses it).
test_analyst_never_deletes_projects if {
	assignments := array.concat(analyst, [grant("g", "user:u", tm, "edit_users", service)])
	d := decide(assignments, check(tm, "delete_project", p1, {}))
	not d.allow
	d.missing == [{"kind": "role", "system": tm, "role": "admin", "scope": service}]
}

# --- old line 9: Member Role | - | - | - | - | - | -

test_member_holds_nothing if {
	every a in array.concat(edits, ["view_project", "delete_project"]) {
		not allowed(member, a, p1)
	}
}

test_member_grant_is_ignored if {
	not allowed(array.concat(member, [grant("g", "user:u", tm, "edit_users", service)]), "edit_users", p1)
}

test_member_group_grant_is_ignored if {
	assignments := array.concat(member, [grant("g", "group:ops", tm, "edit_users", service)])
	not permatrix.decision.allow with data.store as store(assignments, {"u": {"ops": true}})
		with input as check(tm, "edit_users", p1, {})
}

# --- new lines 15-18: EDIT CLIENT SETTINGS, EDIT USERS, EDIT DATA CONFIGURATION,
# EDIT PROJECT CONNECTION | Service permission Yes | Project permission Yes

test_edit_permissions_at_service_scope_reach_every_project if {
	every p in edits {
		allowed([grant("g", "user:u", tm, p, service)], p, p1)
		allowed([grant("g", "user:u", tm, p, service)], p, p2)
		allowed([grant("g", "user:u", tm, p, service)], p, service)
	}
}

test_edit_permissions_at_project_scope_hold_on_that_project_only if {
	every p in edits {
		allowed([grant("g", "user:u", tm, p, p1)], p, p1)
		not allowed([grant("g", "user:u", tm, p, p1)], p, p2)
		not allowed([grant("g", "user:u", tm, p, p1)], p, service)
	}
}

test_edit_permissions_are_independent if {
	every p in edits {
		every q in [x | some x in edits; x != p] {
			not allowed([grant("g", "user:u", tm, p, service)], q, p1)
		}
	}
}

test_deny_names_the_missing_permission if {
	d := decide([], check(tm, "edit_users", p1, {}))
	not d.allow
	d.reasons == []
	d.missing == [{"kind": "permission", "system": tm, "permission": "edit_users", "scope": p1}]
	d.revision == 7
}

# --- new line 21/22: CREATE PROJECT | Service: yes ("Analyst user also requires:") | Project: No

test_create_project_service_grant if allowed(creator, "create_project", service)

test_create_project_is_not_checked_on_a_project if {
	d := decide([grant("g", "user:u", tm, "create_project", service)], check(tm, "create_project", p1, {}))
	not d.allow
	d.missing[0].kind == "condition"
}

# new line 22: "Analyst users creating custom projects also require the Studio Space permission CREATE PACKAGE."
test_custom_project_needs_create_package if {
	custom := check(tm, "create_project", service, {"custom_project": true, "space": "s1"})
	d := decide(creator, custom)
	not d.allow
	d.missing == [missing_package("s1")]
	decide(array.concat(creator, [package_grant("s1")]), custom).allow
	not decide(array.concat(creator, [package_grant("s2")]), custom).allow
}

test_custom_project_needs_a_space if {
	d := decide(creator, check(tm, "create_project", service, {"custom_project": true}))
	not d.allow
	d.missing[0].kind == "condition"
}

# An empty space is no space: missing named create_package on space "",
# which no assignment can hold (an id is 1 to 256 bytes). It is the
# condition of an absent space.
test_custom_project_with_an_empty_space if {
	d := decide(creator, check(tm, "create_project", service, {"custom_project": true, "space": ""}))
	not d.allow
	d.missing == [{
		"kind": "condition",
		"system": tm,
		"message": "a custom project needs context.space: the Studio space of its package",
	}]
}

# new line 22: "Analyst users creating custom projects also require the
# Studio Space permission CREATE PACKAGE." A custom_project that is not a
# boolean is never read as "not a custom project" (which needs no package).
test_custom_project_not_a_boolean_is_denied if {
	every flag in ["true", 1, {}, null] {
		d := decide(creator, check(tm, "create_project", service, {"custom_project": flag, "space": "s1"}))
		not d.allow
		d.missing[0].kind == "condition"
	}
}

test_non_custom_project_needs_no_package if {
	allowed(creator, "create_project", service)
	decide(creator, check(tm, "create_project", service, {"custom_project": false})).allow
}

# new lines 18 and 21: the cut-off lists of further permissions are data (empty by default).
test_prerequisites_from_data if {
	conn := {"system": "celonis-studio", "permission": "create_package", "scope": {"type": "space", "id": "conn"}}
	prereq := {"edit_project_connection": [conn], "create_project": []}
	assignments := [grant("g", "user:u", tm, "edit_project_connection", p1)]
	d := permatrix.decision with data.store as store(assignments, {})
		with data.systems["celonis-task-mining"].prerequisites as prereq
		with input as check(tm, "edit_project_connection", p1, {})
	not d.allow
	d.missing == [missing_package("conn")]
	allowed(assignments, "edit_project_connection", p1)
}

# --- new line 12: "service permissions take precedence over project permissions"

test_service_grant_takes_precedence if {
	both := [grant("proj", "user:u", tm, "edit_users", p1), grant("svc", "user:u", tm, "edit_users", service)]
	d := decide(both, check(tm, "edit_users", p1, {}))
	d.allow
	[r.assignment | some r in d.reasons] == ["svc"]
}

# --- old line 6: View Project "No separate view permissions ... Users can view if the edit permission is granted."

test_view_project_from_any_edit_permission if {
	every p in edits {
		allowed([grant("g", "user:u", tm, p, p1)], "view_project", p1)
		not allowed([grant("g", "user:u", tm, p, p1)], "view_project", p2)
	}
}

test_view_project_from_service_edit_reaches_every_project if {
	allowed([grant("g", "user:u", tm, "edit_users", service)], "view_project", p2)
	allowed([grant("g", "user:u", tm, "edit_users", service)], "view_project", service)
}

test_view_project_not_from_create_project if not allowed(creator, "view_project", p1)

test_view_project_deny_lists_any_of if {
	d := decide([], check(tm, "view_project", p1, {}))
	d.missing[0].any_of == edits
}

# --- new lines 48-49: GET and LIST view screenshots; GET, LIST and DELETE view and delete them;
# plus "permissions for that storage bucket and the File Storage Manager service".

bucket := {"type": "bucket", "id": "b1"}

sm := "celonis-storage-manager"

viewer := [
	grant("a", "user:u", sm, "get", bucket),
	grant("b", "user:u", sm, "list", bucket),
	grant("c", "user:u", sm, "use_file_storage_manager", service),
]

test_view_screenshots if {
	allowed(viewer, "view_screenshots", bucket)
	not allowed(viewer, "delete_screenshots", bucket)
	allowed(array.concat(viewer, [grant("d", "user:u", sm, "delete", bucket)]), "delete_screenshots", bucket)
}

test_view_screenshots_each_needed if {
	every i in numbers.range(0, 2) {
		not allowed([g | some j, g in viewer; j != i], "view_screenshots", bucket)
	}
}

test_screenshots_on_another_bucket if not allowed(viewer, "view_screenshots", {"type": "bucket", "id": "b2"})

test_screenshot_deny_names_each_missing if {
	d := decide([viewer[0]], check(tm, "view_screenshots", bucket, {}))
	{m.permission | some m in d.missing} == {"list", "use_file_storage_manager"}
}

# --- Studio and Storage Manager on their own.

test_studio_create_package_on_its_space if {
	space := {"type": "space", "id": "s1"}
	decide([package_grant("s1")], check("celonis-studio", "create_package", space, {})).allow
	not decide([package_grant("s1")], check("celonis-studio", "create_package", {"type": "space", "id": "s2"}, {})).allow
}

test_storage_permissions_per_bucket if {
	decide([grant("s", "user:u", sm, "get", bucket)], check(sm, "get", bucket, {})).allow
	not decide([grant("s", "user:u", sm, "get", bucket)], check(sm, "list", bucket, {})).allow
	not decide([grant("s", "user:u", sm, "get", bucket)], check(sm, "get", {"type": "bucket", "id": "b2"}, {})).allow
}

# --- Writes (data.permatrix.admin.verdict).

# verdict is the write verdict on assigning a over a store of assignments
# (a test helper, as decide).
verdict(assignments, a) := v if {
	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with data.store as store(assignments, {}) with input as {"op": "assign", "assignment": a}
}

test_member_cannot_be_granted if {
	v := verdict(member, grant("x", "user:u", tm, "edit_users", p1))
	count(v.violations) == 1
	contains(v.violations[0], "member")
}

test_member_cannot_be_granted_in_studio if {
	v := verdict(member, grant("x", "user:u", "celonis-studio", "create_package", {"type": "space", "id": "s"}))
	count(v.violations) == 1
}

test_analyst_can_be_granted if verdict(analyst, grant("x", "user:u", tm, "edit_users", p1)).violations == []

test_create_project_not_at_project_scope if {
	v := verdict([], grant("x", "user:u", tm, "create_project", p1))
	count(v.violations) == 1
	contains(v.violations[0], "scope")
}

test_delete_project_not_assignable if {
	v := verdict([], grant("x", "user:u", tm, "delete_project", service))
	count(v.violations) == 1
	contains(v.violations[0], "admins only")
}

test_roles_only_at_service_scope if {
	v := verdict([], {"id": "x", "subject": "user:u", "system": tm, "role": "analyst", "scope": p1})
	count(v.violations) == 1
}

test_unknown_role_refused if {
	v := verdict([], {"id": "x", "subject": "user:u", "system": tm, "role": "owner", "scope": service})
	contains(v.violations[0], "unknown role")
}

test_studio_has_no_roles if {
	v := verdict([], {"id": "x", "subject": "user:u", "system": "celonis-studio", "role": "admin", "scope": service})
	contains(v.violations[0], "unknown role")
}

# --- The entrypoint's own input errors (a stock opa user gets them as data).

test_input_errors if {
	empty := store([], {})
	d := permatrix.decision with data.store as empty with input as {"system": tm, "action": "edit_users"}
	d.errors == ["subject is required"]
	not d.allow
	e := permatrix.decision with data.store as empty with input as {"subject": "u", "system": "nope", "action": "x"}
	e.errors == [sprintf(`unknown system "nope": the systems are %s`, [concat(", ", sort(object.keys(data.systems)))])]
	f := permatrix.decision with data.store as empty with input as {"subject": "u", "system": tm, "action": "fly"}
	f.errors == ["unknown action \"fly\" for system \"celonis-task-mining\""]
	no_type := {"subject": "u", "system": tm, "action": "edit_users", "resource": {"id": "p"}}
	g := permatrix.decision with data.store as empty with input as no_type
	g.errors == ["resource.type is required"]
	groups := [sprintf("g%d", [i]) | some i in numbers.range(1, 257)]
	many := {"subject": "u", "system": tm, "action": "edit_users", "groups": groups}
	h := permatrix.decision with data.store as empty with input as many
	h.errors == ["groups holds 257 group ids, over the limit of 256"]
	not h.allow
	at_most := object.union(many, {"groups": array.slice(many.groups, 0, 256)})
	i := permatrix.decision with data.store as empty with input as at_most
	not i.errors
	service_id := {"subject": "u", "system": tm, "action": "edit_users", "resource": {"type": "service", "id": "p1"}}
	j := permatrix.decision with data.store as store(admin, {}) with input as service_id
	j.errors == ["resource.id is not allowed with resource.type \"service\" (the whole system has no id)"]
	not j.allow
}

test_allow_entrypoint if {
	permatrix.allow with data.store as store(admin, {}) with input as check(tm, "edit_users", p1, {})
	not permatrix.allow with data.store as store([], {}) with input as check(tm, "edit_users", p1, {})
}

test_member_cannot_be_granted_in_storage_manager if {
	v := verdict(member, grant("x", "user:u", sm, "get", bucket))
	count(v.violations) == 1
}

test_assignment_names_exactly_one_grant if {
	both := {"id": "x", "subject": "user:u", "system": tm, "role": "admin", "permission": "edit_users", "scope": service}
	v := verdict([], both)
	"an assignment names exactly one of role and permission" in v.violations
}

test_unknown_system_refused if {
	v := verdict([], {"id": "x", "subject": "user:u", "system": "nope", "role": "admin", "scope": service})
	v.violations == [sprintf(`unknown system "nope": the systems are %s`, [concat(", ", sort(object.keys(data.systems)))])]
}

test_unknown_permission_refused if {
	v := verdict([], grant("x", "user:u", tm, "fly", service))
	v.violations == ["unknown permission \"fly\" for system \"celonis-task-mining\""]
}

test_scope_needs_an_id if {
	v := verdict([], grant("x", "user:u", tm, "edit_users", {"type": "project"}))
	"a \"project\" scope needs an id" in v.violations
}

test_service_scope_has_no_id if {
	v := verdict([], grant("x", "user:u", tm, "edit_users", {"type": "service", "id": "p1"}))
	v.violations == ["a \"service\" scope has no id"]
}

# An empty id is no id, as Go reads one (permatrix.Scope: POST /v1/check
# decides {"type": "service", "id": ""} at the service scope): the Data API
# answered the same input with an error, /v1/check with a decision.
test_service_scope_empty_id_is_none if {
	v := verdict([], grant("x", "user:u", tm, "edit_users", {"type": "service", "id": ""}))
	not "a \"service\" scope has no id" in v.violations
	service_empty := {"subject": "u", "system": tm, "action": "edit_users", "resource": {"type": "service", "id": ""}}
	d := permatrix.decision with data.store as store(admin, {}) with input as service_empty
	not d.errors
	d.allow
}

test_no_custom_roles_in_celonis if {
	role_x := {"system": tm, "name": "x", "permissions": ["edit_users"]}
	v := permatrix.admin.verdict with input as {"op": "define_role", "role": role_x}
	v.violations == ["system \"celonis-task-mining\" has no custom roles"]
	w := permatrix.admin.verdict with input as {"op": "delete_role", "role": {"system": tm, "name": "admin"}}
	"\"admin\" is a built-in role of system \"celonis-task-mining\"" in w.violations
}

test_register_project_allowed if {
	project := {"system": tm, "id": "p1", "created_by": "u", "kind": ""}
	v := permatrix.admin.verdict with input as {"op": "register_project", "project": project}
	v == {"violations": [], "forbidden": []}
}
