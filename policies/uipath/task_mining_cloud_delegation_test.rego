# UiPath Task Mining (cloud roles) tests of the generic write rules of
# data.permatrix.admin, with this system's catalog: projects registered on
# behalf of an actor, group memberships judged as assignments of what the
# group holds, and the refusal of actor writes in a system without
# delegation rules. End to end through data.permatrix.admin.verdict.
# (policies/permatrix holds no tests: it is the core copied into authoring
# layouts.) "cloud" = shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt,
# "suite" = uipath-task-mining-automation-suite.txt, with the line of the
# sentence; the Blue Prism cases are in policies/blueprism/writes_test.rego.
package uipath_task_mining_cloud_delegation_test

import data.testing.layout

tmc := "uipath-task-mining-cloud"

service := {"type": "service"}

project(id) := {"type": "project", "id": id}

role_at(id, subject, sys, role, scope) := {"id": id, "subject": subject, "system": sys, "role": role, "scope": scope}

perm_at(id, subject, sys, perm, scope) := {
	"id": id, "subject": subject, "system": sys,
	"permission": perm, "scope": scope,
}

store(assignments, memberships, projects) := {
	"revision": 7,
	"grants": layout.grants_of(assignments), "scopes": layout.scopes_of(assignments),
	"memberships": memberships,
	"groups": {},
	"roles": {"blueprism": {"dev": {"permissions": ["edit_process"]}}},
	"projects": projects,
}

# verdict is the write verdict on in_ over st (a test helper: Regal counts
# only test_ rules as test context, but with is what it is for).
verdict(st, in_) := v if {
	# regal ignore:with-outside-test-context,external-reference
	v := data.permatrix.admin.verdict with data.store as st with input as in_
}

forbidden_with(v, text) if {
	v.violations == []
	some f in v.forbidden
	contains(f, text)
}

ok(v) if v == {"violations": [], "forbidden": []}

# ---------------------------------------------------------------------------
# Projects

# ada administers the cloud service, carl is a project creator, alice created
# p1 and is project_admin on it; x9 is not registered but alice is
# project_admin on it; c1 was created by carl.
team := store(
	[
		role_at("a1", "user:ada", tmc, "administrator", service),
		role_at("a2", "user:carl", tmc, "project_creator", service),
		role_at("a3", "user:alice", tmc, "project_admin", project("p1")),
		role_at("a4", "user:alice", tmc, "project_admin", project("x9")),
	],
	{"root": {"administrators": true}},
	{tmc: {
		"p1": {"created_by": "alice", "kind": "assisted"},
		"c1": {"created_by": "carl", "kind": "assisted"},
	}},
)

register(actor, id, created_by, kind) := {
	"op": "register_project",
	"actor": actor,
	"project": {"system": tmc, "id": id, "created_by": created_by, "kind": kind},
}

# cloud: "新しい Task Mining プロジェクトを作成する管理者またはプロジェクト作成者には、…
# プロジェクト管理者ロールが自動的に割り当てられます。": the creator is who creates.
test_actor_registers_projects_as_itself if {
	ok(verdict(team, register("carl", "n1", "carl", "assisted")))
	v := verdict(team, register("carl", "n1", "alice", "assisted"))
	forbidden_with(v, `"carl" may register projects only as itself: created_by "alice" names another user`)
	forbidden_with(verdict(team, register("ada", "n1", "carl", "assisted")), "only as itself")
}

# cloud footnote *: "この権限は、プロジェクト作成者が作成したプロジェクトにのみ適用されます。"
test_reregistering_another_creators_project_needs_an_administrator if {
	v := verdict(team, register("carl", "p1", "carl", "unassisted"))
	forbidden_with(v, `"carl" may not re-register project "p1" of uipath-task-mining-cloud`)
	forbidden_with(v, `it was registered as created by "alice"`)
	forbidden_with(v, `needs an administrator of uipath-task-mining-cloud (role "administrator")`)
	ok(verdict(team, register("ada", "p1", "alice", "unassisted")))
}

test_creator_may_change_its_own_project if {
	ok(verdict(team, register("carl", "c1", "carl", "unassisted")))
}

# An administrator through the Administrators group's default role:
# "既定では、Administrators グループのユーザーには、管理者ロールが割り当てられます。"
test_default_group_administrator_may_reregister if {
	in_ := register("root", "c1", "root", "assisted")
	verdict(team, in_).forbidden == []
	asserted := object.union(register("dee", "c1", "dee", "assisted"), {"groups": ["administrators"]})
	verdict(team, asserted).forbidden == []
	forbidden_with(verdict(team, register("dee", "c1", "dee", "assisted")), "re-register")
}

test_registering_a_project_with_assignments_needs_an_administrator if {
	v := verdict(team, register("carl", "x9", "carl", "assisted"))
	forbidden_with(v, `"carl" may not register project "x9" of uipath-task-mining-cloud: assignments on it exist already`)
	ok(verdict(team, register("ada", "x9", "ada", "assisted")))
	ok(verdict(team, register("carl", "x8", "carl", "assisted")))
}

# cloud: "Unassisted Task Mining プロジェクトにプロジェクト レベルのロールを割り当てるには、
# プロジェクト管理者またはビジネス アナリストのロールが割り当てられている必要があります。"
# u1 is Unassisted, created by carl, whose project_admin on it was removed;
# ada administers the service; dan administers it and is project_admin on
# u1; bea is business_analyst on u1. Making u1 Assisted would let ada and
# carl assign roles on it: only project_admin on it changes that kind.
unassisted := store(
	[
		role_at("a1", "user:ada", tmc, "administrator", service),
		role_at("a2", "user:carl", tmc, "project_creator", service),
		role_at("a3", "user:dan", tmc, "administrator", service),
		role_at("a4", "user:dan", tmc, "project_admin", project("u1")),
		role_at("a5", "user:bea", tmc, "business_analyst", project("u1")),
	],
	{},
	{tmc: {"u1": {"created_by": "carl", "kind": "unassisted"}}},
)

test_only_a_project_admin_makes_an_unassisted_project_assisted if {
	v := verdict(unassisted, register("ada", "u1", "carl", "assisted"))
	forbidden_with(v, `"ada" may not change the kind of Unassisted project "u1" to "assisted"`)
	forbidden_with(verdict(unassisted, register("carl", "u1", "carl", "assisted")), `"carl" may not change the kind`)
	forbidden_with(verdict(unassisted, register("carl", "u1", "carl", "")), `"carl" may not change the kind`)
	ok(verdict(unassisted, register("dan", "u1", "carl", "assisted")))
	ok(verdict(unassisted, register("carl", "u1", "carl", "unassisted")))
	ok(verdict(unassisted, object.remove(register("", "u1", "carl", "assisted"), ["actor"])))
}

test_operator_registers_anything if {
	ok(verdict(team, {"op": "register_project", "project": {"system": tmc, "id": "p1", "created_by": "zed", "kind": ""}}))
}

# ---------------------------------------------------------------------------
# A system whose package has no forbidden rule refuses every actor write.

assigning(a) := {"op": "assign", "assignment": a}

test_system_without_delegation_rules_refuses_actors if {
	systems := object.union(data.systems, {"nodelegation": {
		"package": "no_such_package",
		"roles": {"r": {"scopes": ["service"]}},
		"permissions": {},
		"actions": {},
		"custom_roles": false,
	}})
	a := role_at("n", "user:bob", "nodelegation", "r", service)

	# regal ignore:external-reference
	v := data.permatrix.admin.verdict with data.systems as systems
		with data.store as team
		with input as object.union(assigning(a), {"actor": "ada"})
	v.forbidden == [concat("", [
		`"ada" may not write in nodelegation: the system has no delegation rules, `,
		"only the operator (the admin token without an actor) writes there",
	])]

	# regal ignore:external-reference
	w := data.permatrix.admin.verdict with data.systems as systems
		with data.store as team
		with input as assigning(a)
	w.forbidden == []
}

# ---------------------------------------------------------------------------
# Group memberships: a member holds what its group holds (cloud:
# "ロールをグループに割り当てると、グループ内のすべてのユーザーがロールを継承します。"; suite
# line 22: "Here, you can add permissions to a specific user or group.").

# tm-admins holds administrator; analysts holds business_analyst on p1; ba
# is business_analyst on p1; mixed holds project_admin on p1 and an
# orchestrator permission; devs holds the Blue Prism role dev.
groups := store(
	[
		role_at("a1", "user:ada", tmc, "administrator", service),
		role_at("a2", "user:carl", tmc, "project_creator", service),
		role_at("a3", "user:ba", tmc, "business_analyst", project("p1")),
		role_at("g1", "group:tm-admins", tmc, "administrator", service),
		role_at("g2", "group:analysts", tmc, "business_analyst", project("p1")),
		role_at("g3", "group:mixed", tmc, "project_admin", project("p1")),
		perm_at("g4", "group:mixed", "uipath-orchestrator", "ml_logs_view", service),
		role_at("g5", "group:carls", tmc, "project_admin", project("c1")),
		role_at("b2", "group:devs", "blueprism", "dev", service),
	],
	{},
	{tmc: {
		"p1": {"created_by": "alice", "kind": "assisted"},
		"c1": {"created_by": "carl", "kind": "assisted"},
	}},
)

add(actor, group, user) := {"op": "add_member", "actor": actor, "membership": {"group": group, "user": user}}

remove(actor, group, user) := {"op": "remove_member", "actor": actor, "membership": {"group": group, "user": user}}

# issue 9: an actor added itself to tm-admins (which holds administrator).
# cloud service-level table, row ロールを割り当てる: only Administrator はい.
test_actor_cannot_add_itself_to_an_administrators_group if {
	v := verdict(groups, add("ba", "tm-admins", "ba"))
	forbidden_with(v, `"ba" may not add "ba" to group "tm-admins": the group holds role "administrator"`)
	forbidden_with(v, "only an Administrator assigns or removes service-level roles")
	ok(verdict(groups, add("ada", "tm-admins", "ba")))
}

# footnote **: a business analyst assigns only business_analyst.
test_member_of_a_group_whose_holdings_the_actor_may_grant if {
	ok(verdict(groups, add("ba", "analysts", "zed")))
	forbidden_with(verdict(groups, add("ba", "mixed", "zed")), `the group holds role "project_admin"`)
}

# Every holding is judged: one the actor may not grant refuses the change
# (uipath-orchestrator has no delegation at all).
test_every_holding_must_be_grantable if {
	v := verdict(groups, add("ada", "mixed", "zed"))
	count(v.forbidden) == 1
	forbidden_with(v, `the group holds permission "ml_logs_view"`)
	forbidden_with(v, "only the operator")
}

# A group's default role counts as a holding: "既定では、Administrators グループの
# ユーザーには、管理者ロールが割り当てられます。"
test_default_group_role_is_a_holding if {
	v := verdict(groups, add("ba", "administrators", "ba"))
	forbidden_with(v, `role "administrator" at {"type": "service"} in uipath-task-mining-cloud (by default)`)
	ok(verdict(groups, add("ada", "administrators", "zed")))
}

# Least privilege: a group holding nothing gives no rule to judge by.
test_empty_group_only_the_operator if {
	forbidden_with(verdict(groups, add("ada", "nothing", "zed")), "the group holds no role or permission")
	forbidden_with(verdict(groups, remove("ada", "nothing", "zed")), "the group holds no role or permission")
	ok(verdict(groups, {"op": "add_member", "membership": {"group": "nothing", "user": "zed"}}))
}

# Removing is judged as ロールの割り当ての削除 of each holding: project_creator on
# a project it created (はい*), not a business analyst (いいえ).
test_removing_a_member if {
	ok(verdict(groups, remove("carl", "carls", "zed")))
	forbidden_with(verdict(groups, remove("ba", "analysts", "zed")), "removing role assignments needs ロールの割り当ての削除")
	v := verdict(groups, remove("carl", "tm-admins", "zed"))
	forbidden_with(v, `"carl" may not remove "zed" from group "tm-admins"`)
}

test_operator_changes_any_membership if {
	every g in ["tm-admins", "mixed", "administrators", "devs"] {
		ok(verdict(groups, {"op": "add_member", "membership": {"group": g, "user": "ba"}}))
		ok(verdict(groups, {"op": "remove_member", "membership": {"group": g, "user": "ba"}}))
	}
}

# A bundle that drops a system leaves its assignments stored: the operator
# removes them (nothing is granted by a removal, and no system is left to
# judge it); an actor may not, as no rule says who may; none is assigned.
test_retired_system_assignment_removed_by_the_operator_only if {
	a := role_at("old", "user:bob", "retired-system", "viewer", service)
	st := store([a], {}, {})
	ok(verdict(st, {"op": "unassign", "assignment": a}))
	v := verdict(st, {"op": "unassign", "assignment": a, "actor": "ada"})
	v.violations == []
	v.forbidden == [concat("", [
		`"ada" may not unassign in retired-system: the bundle has no such system, so no rule says who may; `,
		"only the operator (the admin token without an actor) removes its assignments, custom roles and projects",
	])]
	verdict(st, assigning(a)).violations == [retired_unknown]
}

# retired_unknown is the write rules' violation for retired-system: named
# with the systems there are, in a check's words.
retired_unknown := sprintf(
	`unknown system "retired-system": the systems are %s`,
	[concat(", ", sort(object.keys(data.systems)))],
)

# Its custom roles too: the operator deletes them (the server refuses one
# still assigned, as anywhere), an actor may not, none is defined.
test_retired_system_role_deleted_by_the_operator_only if {
	role := {"system": "retired-system", "name": "auditor", "permissions": ["read"]}
	st := store([], {}, {})
	ok(verdict(st, {"op": "delete_role", "role": role}))
	v := verdict(st, {"op": "delete_role", "role": role, "actor": "ada"})
	v.violations == []
	v.forbidden == [concat("", [
		`"ada" may not delete_role in retired-system: the bundle has no such system, so no rule says who may; `,
		"only the operator (the admin token without an actor) removes its assignments, custom roles and projects",
	])]
	verdict(st, {"op": "define_role", "role": role}).violations == [retired_unknown]
}

# A project's registration is deleted by the operator, in a system the
# bundle has or one it dropped; no actor may (no document says who may).
test_project_deleted_by_the_operator_only if {
	st := store([], {}, {"uipath-task-mining-cloud": {"p1": {"created_by": "carl", "kind": "assisted"}}})
	live := {"system": "uipath-task-mining-cloud", "id": "p1", "created_by": "carl", "kind": "assisted"}
	ok(verdict(st, {"op": "delete_project", "project": live}))
	retired := object.union(live, {"system": "retired-system"})
	ok(verdict(st, {"op": "delete_project", "project": retired}))
	v := verdict(st, {"op": "delete_project", "project": live, "actor": "carl"})
	v.violations == []
	concat("", [
		`"carl" may not delete project "p1" of uipath-task-mining-cloud: `,
		"no vendor document says who may delete a project's registration; ",
		"only the operator (the admin token without an actor) deletes one",
	]) in v.forbidden
	w := verdict(st, {"op": "delete_project", "project": retired, "actor": "carl"})
	w.violations == []
	count(w.forbidden) == 1
}

# A group holding an assignment of a system the bundle dropped: adding a
# member was judged as assigning it, and an assign in no system met no
# forbidden rule, so any actor (one holding nothing) added itself, and
# held the assignment once a bundle brought the system back. No rule says
# who may grant in a system the bundle does not have: the operator only.
test_retired_system_holding_refuses_membership_changes if {
	a := role_at("old", "group:legacy", "retired-system", "viewer", service)
	st := store([a], {}, {})
	ok(verdict(st, {"op": "add_member", "membership": {"group": "legacy", "user": "nobody"}}))
	every op in [add("nobody", "legacy", "nobody"), remove("ada", "legacy", "zed")] {
		forbidden_with(verdict(st, op), "the bundle has no such system, so no rule says who may")
	}
}
