# UiPath Task Mining (cloud roles) tests, writes: delegation (input.actor),
# registering projects and scope violations, end to end through
# data.permatrix.admin.verdict. Source:
# shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt; the store team and
# the other helpers in task_mining_cloud_test.rego.
package uipath_task_mining_cloud_test

import data.permatrix

# verdict is the write verdict on in_ over store st (a test helper: Regal
# counts only test_ rules as test context, but with is what it is for).
verdict(st, in_) := v if {
	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with data.store as st with input as in_
}

grant_req(actor, subject, role, scope) := {
	"op": "assign",
	"actor": actor,
	"assignment": {"subject": subject, "system": sys, "role": role, "scope": scope},
}

revoke_req(actor, subject, role, scope) := {
	"op": "unassign",
	"actor": actor,
	"assignment": {"id": "x1", "subject": subject, "system": sys, "role": role, "scope": scope},
}

# plain_req assigns zed the role or permission (kind) name at scope, without an actor.
plain_req(kind, name, scope) := {
	"op": "assign",
	"assignment": {"subject": "user:zed", "system": sys, kind: name, "scope": scope},
}

# c1 is the project carl created (team).
c1 := {"type": "project", "id": "c1"}

forbidden_with(v, text) if {
	some f in v.forbidden
	contains(f, text)
}

ok(v) if {
	v.violations == []
	v.forbidden == []
}

# ---------------------------------------------------------------------------
# Delegation (data.permatrix.admin.verdict, input.actor)

test_delegation_project_admin_assigns if {
	ok(verdict(team, grant_req("alice", "user:zed", "recording_user", p2)))
	ok(verdict(team, grant_req("alice", "group:g", "project_admin", p2)))
}

test_delegation_business_analyst_assigns_only_business_analyst if {
	ok(verdict(team, grant_req("bea", "user:zed", "business_analyst", p2)))
	v := verdict(team, grant_req("bea", "user:zed", "recording_user", p2))
	v.violations == []
	count(v.forbidden) == 1
	forbidden_with(v, "\"bea\" may not assign role \"recording_user\" at project \"p2\"")
	forbidden_with(v, "ビジネス アナリストは、ビジネス アナリスト ロールのみを割り当てることができます")
}

test_delegation_recording_user_cannot_assign if {
	v := verdict(team, grant_req("rick", "user:zed", "recording_user", p2))
	forbidden_with(v, "assigning project-level roles needs ロールを割り当てる")
}

test_delegation_project_role_on_other_project if {
	v := verdict(team, grant_req("alice", "user:zed", "recording_user", p1))
	forbidden_with(v, "uipath-task-mining-cloud-roles.ja.txt")
}

test_delegation_administrator if {
	ok(verdict(team, grant_req("ada", "user:zed", "project_admin", p1)))
	ok(verdict(team, grant_req("ada", "user:zed", "administrator", service)))
	ok(verdict(team, grant_req("ada", "group:g", "project_creator", service)))
}

test_delegation_project_creator_own_project_only if {
	ok(verdict(team, grant_req("carl", "user:zed", "project_admin", c1)))
	v := verdict(team, grant_req("carl", "user:zed", "project_admin", p2))
	forbidden_with(v, "Project Creator on a project it created")
}

test_delegation_service_roles_need_administrator if {
	v := verdict(team, grant_req("carl", "user:zed", "project_creator", service))
	forbidden_with(v, "at scope \"service\": only an Administrator assigns or removes service-level roles")
	forbidden_with(verdict(team, grant_req("alice", "user:zed", "administrator", service)), "only an Administrator")
}

test_delegation_actor_asserted_administrators_group if {
	in_ := object.union(grant_req("dan", "user:zed", "administrator", service), {"groups": ["administrators"]})
	ok(verdict(team, in_))
}

test_delegation_unassign if {
	ok(verdict(team, revoke_req("alice", "user:rick", "recording_user", p2)))
	ok(verdict(team, revoke_req("ada", "user:carl", "project_creator", service)))
	ok(verdict(team, revoke_req("carl", "user:zed", "business_analyst", c1)))
	v := verdict(team, revoke_req("bea", "user:rick", "recording_user", p2))
	forbidden_with(v, concat("", [
		"\"bea\" may not unassign role \"recording_user\" at project \"p2\": ",
		"removing role assignments needs ロールの割り当ての削除",
	]))
	forbidden_with(verdict(team, revoke_req("alice", "user:carl", "project_creator", service)), "only an Administrator")
}

test_delegation_unassisted if {
	v := verdict(team, grant_req("ada", "user:zed", "recording_user", u1))
	forbidden_with(v, "on an Unassisted Task Mining project only project_admin")
	ok(verdict(team, grant_req("alice", "user:zed", "project_admin", u1)))
	ok(verdict(team, grant_req("bea", "user:zed", "business_analyst", u1)))
	forbidden_with(verdict(team, grant_req("bea", "user:zed", "recording_user", u1)), "Unassisted")
}

test_delegation_unassisted_unassign_follows_table if {
	ok(verdict(team, revoke_req("ada", "user:bea", "business_analyst", u1)))
}

test_no_actor_no_delegation_rules if {
	ok(verdict(team, plain_req("role", "administrator", service)))
}

# Registering a project: "既定では、新しい Task Mining プロジェクトを作成できるのは組織管理者のみです。"
register(actor) := {
	"op": "register_project",
	"actor": actor,
	"project": {"system": sys, "id": "n1", "created_by": actor, "kind": "assisted"},
}

test_register_project_needs_create_project if {
	ok(verdict(team, register("carl")))
	ok(verdict(team, register("ada")))
	v := verdict(team, register("alice"))
	forbidden_with(v, "\"alice\" may not create project \"n1\": creating projects needs administrator or project_creator")
}

# ---------------------------------------------------------------------------
# Scope violations (generic, permatrix.admin) and nothing but roles assignable.

test_violation_project_role_at_service if {
	v := verdict(team, plain_req("role", "project_admin", service))
	v.violations == [concat("", [
		"\"project_admin\" cannot be assigned at scope \"service\" ",
		"in system \"uipath-task-mining-cloud\" (allowed: project)",
	])]
}

test_violation_service_role_on_project if {
	v := verdict(team, plain_req("role", "administrator", p1))
	v.violations == [concat("", [
		"\"administrator\" cannot be assigned at scope \"project\" ",
		"in system \"uipath-task-mining-cloud\" (allowed: service)",
	])]
}

test_violation_actions_not_assignable if {
	v := verdict(team, plain_req("permission", "read_project", p1))
	count(v.violations) > 0
	v2 := verdict(team, plain_req("permission", "view_access", p1))
	some m in v2.violations
	contains(m, "view_access is derived")
}

test_violation_unknown_role if {
	v := verdict(team, plain_req("role", "owner", p1))
	v.violations == ["unknown role \"owner\" for system \"uipath-task-mining-cloud\""]
}
