# Tests of the blueprism write rules (policies/blueprism/writes.rego and
# the generic ones in data.permatrix.admin), end to end through
# data.permatrix.admin.verdict.
package permatrix.systems.blueprism_test

# admin is the write verdict on w against store st.
admin(st, w) := v if {
	# regal ignore:external-reference,with-outside-test-context
	v := data.permatrix.admin.verdict with input as w with data.store as st
}

# --- writes ------------------------------------------------------------------------------

writers := store(
	{
		"sysadmin": [
			"security_users", "security_user_roles",
			"manage_process_access_rights", "manage_business_object_access_rights",
		],
		"g1_rights": ["security_users"],
		"dev": ["edit_process"],
	},
	[
		role("w1", "user:sam", "sysadmin", service),
		role("w2", "user:sam", "g1_rights", pg("g1")),
		role("w3", "group:devs", "dev", service),
	],
	{"dan": {"devs": true}},
)

assigning(a, actor) := {"op": "assign", "assignment": a, "actor": actor}

test_permission_assignment_at_group_scope_is_a_violation if {
	v := admin(writers, {"op": "assign", "assignment": perm("n", "user:bob", "edit_process", pg("g1"))})
	count(v.violations) == 1
	contains(v.violations[0], "service scope only")
	admin(writers, {"op": "assign", "assignment": perm("n", "user:bob", "edit_process", service)}).violations == []
}

test_custom_role_at_every_scope if {
	every scp in [service, pg("g1"), og("o1"), rg("r1")] {
		admin(writers, {"op": "assign", "assignment": role("n", "user:bob", "dev", scp)}).violations == []
	}
	v := admin(writers, {"op": "assign", "assignment": role("n", "user:bob", "nope", service)})
	v.violations == [`unknown role "nope" for system "blueprism"`]
}

test_derived_action_cannot_be_assigned if {
	v := admin(writers, {"op": "assign", "assignment": perm("n", "user:bob", "step_into_process", service)})
	count(v.violations) > 0
}

test_define_role_with_unknown_permission if {
	v := admin(writers, {"op": "define_role", "role": role_def("x", ["edit_process", "fly"])})
	v.violations == [`unknown permission "fly" for system "blueprism"`]
	ok := admin(writers, {"op": "define_role", "role": role_def("x", ["edit_process"])})
	ok == {"violations": [], "forbidden": []}
}

test_define_role_with_derived_action_is_a_violation if {
	v := admin(writers, {"op": "define_role", "role": role_def("x", ["view_dashboard_tab"])})
	count(v.violations) == 1
}

test_assigning_needs_security_users if {
	a := role("n", "user:bob", "dev", service)
	admin(writers, assigning(a, "sam")).forbidden == []
	f := admin(writers, assigning(a, "dan")).forbidden
	count(f) == 1
	contains(f[0], "security_users")
	count(admin(writers, {"op": "unassign", "assignment": a, "actor": "dan"}).forbidden) == 1
}

test_no_actor_no_forbidden if {
	admin(writers, {"op": "assign", "assignment": role("n", "user:bob", "dev", service)}).forbidden == []
}

test_group_assignment_needs_access_rights_on_the_group if {
	admin(writers, assigning(role("n", "user:bob", "dev", pg("g2")), "sam")).forbidden == []
	admin(writers, assigning(role("n", "user:bob", "dev", og("o1")), "sam")).forbidden == []

	# sam's rights on g1 are narrowed to security_users: no manage_process_access_rights there
	f := admin(writers, assigning(role("n", "user:bob", "dev", pg("g1")), "sam")).forbidden
	contains(f[0], "manage_process_access_rights")

	# sysadmin lacks manage_resource_access_rights
	g := admin(writers, assigning(role("n", "user:bob", "dev", rg("r1")), "sam")).forbidden
	contains(g[0], "manage_resource_access_rights")
}

test_defining_roles_needs_security_user_roles if {
	r := {"system": "blueprism", "name": "x", "permissions": ["edit_process"]}
	admin(writers, {"op": "define_role", "role": r, "actor": "sam"}).forbidden == []
	count(admin(writers, {"op": "define_role", "role": r, "actor": "dan"}).forbidden) == 1
	count(admin(writers, {"op": "delete_role", "role": r, "actor": "dan"}).forbidden) == 1
}

own_role_admins := store(
	{
		"sysadmin": [
			"security_users", "security_user_roles",
			"manage_process_access_rights", "manage_resource_access_rights",
		],
		"other": ["manage_process_access_rights"],
	},
	[role("w1", "group:admins", "sysadmin", service)],
	{"sam": {"admins": true}},
)

role_def(name, ps) := {"system": "blueprism", "name": name, "permissions": ps}

define(name, ps) := {"op": "define_role", "role": role_def(name, ps), "actor": "sam"}

test_own_role_cannot_lose_access_rights_permission if {
	f := admin(own_role_admins, define("sysadmin", ["security_users", "security_user_roles"])).forbidden
	count(f) == 1
	contains(f[0], "manage_process_access_rights")
}

test_own_role_cannot_gain_access_rights_permission if {
	ps := [
		"security_users", "security_user_roles", "manage_process_access_rights",
		"manage_resource_access_rights", "manage_business_object_access_rights",
	]
	f := admin(own_role_admins, define("sysadmin", ps)).forbidden
	count(f) == 1
	contains(f[0], "manage_business_object_access_rights")
}

test_own_role_other_changes_allowed if {
	ps := ["security_users", "security_user_roles", "manage_process_access_rights", "edit_process"]

	# dropping manage_resource_access_rights: its description has no own-role sentence
	admin(own_role_admins, define("sysadmin", ps)).forbidden == []
}

test_other_role_access_rights_change_allowed if {
	admin(own_role_admins, define("other", [])).forbidden == []
	admin(own_role_admins, define("new", ["manage_process_access_rights"])).forbidden == []
}

test_own_role_cannot_be_deleted_with_access_rights_permission if {
	w := {"op": "delete_role", "role": {"system": "blueprism", "name": "sysadmin", "permissions": []}, "actor": "sam"}
	count(admin(own_role_admins, w).forbidden) == 1
	other := {"op": "delete_role", "role": {"system": "blueprism", "name": "other", "permissions": []}, "actor": "sam"}
	admin(own_role_admins, other).forbidden == []
}

test_import_release_overwrite_true_with_everything if {
	ps := ["import_release", "import_process", "import_business_object", "edit_process", "edit_business_object"]
	allowed(holding(ps), "import_release", service, {"overwrite_existing": true})
	not allowed(holding(ps), "import_release", service, {"overwrite_existing": true, "release_contains": ["tile"]})
}

# Security - Users: "A user with permission to access System Manager may set
# the roles and permissions of another user from the Security - Users
# screen." Never of itself (issue 9: eve, holding security_users, gave
# itself a role with security_user_roles and system_settings), nor of a
# group it belongs to (ops, which holds su too).
self_granters := store(
	{"su": ["security_users"], "boss": ["security_user_roles", "system_settings"]},
	[role("e1", "user:eve", "su", service), role("o1", "group:ops", "su", service)],
	{"eve": {"ops": true}},
)

test_actor_never_assigns_itself if {
	f := admin(self_granters, assigning(role("n", "user:eve", "boss", service), "eve")).forbidden
	count(f) == 1
	contains(f[0], `actor "eve" may not assign roles or permissions of user:eve`)
	contains(f[0], "of another user")
	g := admin(self_granters, assigning(perm("n", "user:eve", "system_settings", service), "eve")).forbidden
	count(g) == 1
	admin(self_granters, assigning(role("n", "user:bob", "boss", service), "eve")) == {"violations": [], "forbidden": []}
}

test_actor_never_removes_its_own_roles if {
	unassign := {"op": "unassign", "assignment": role("e1", "user:eve", "su", service), "actor": "eve"}
	f := admin(self_granters, unassign).forbidden
	count(f) == 1
	contains(f[0], "unassign")
}

test_actor_never_assigns_its_groups if {
	stored := admin(self_granters, assigning(role("n", "group:ops", "boss", service), "eve")).forbidden
	count(stored) == 1
	asserted := object.union(assigning(role("n", "group:qa", "boss", service), "eve"), {"groups": ["qa"]})
	count(admin(self_granters, asserted).forbidden) == 1
	admin(self_granters, assigning(role("n", "group:qa", "boss", service), "eve")).forbidden == []
}

# Group memberships are judged as assigning (removing) what the group holds:
# eve (security_users) may add bob to ops (which holds su), never itself;
# bob, without security_users, nobody.
membership(actor, op, user) := {"op": op, "actor": actor, "membership": {"group": "ops", "user": user}}

test_group_membership_never_to_itself if {
	admin(self_granters, membership("eve", "add_member", "bob")) == {"violations": [], "forbidden": []}
	some f in admin(self_granters, membership("eve", "add_member", "eve")).forbidden
	contains(f, "another user only")
	some g in admin(self_granters, membership("eve", "remove_member", "eve")).forbidden
	contains(g, "another user only")
	some h in admin(self_granters, membership("bob", "add_member", "bob")).forbidden
	contains(h, "security_users")
}

# No administrator role in Blue Prism: a project someone else registered
# (permatrix.admin's generic rule; Blue Prism has no projects of its own, so
# only the verdict is asked) is changed by the operator only.
test_no_administrator_role_means_the_operator if {
	st := object.union(self_granters, {"projects": {"blueprism": {"q1": {"created_by": "zed", "kind": ""}}}})
	in_ := {
		"op": "register_project", "actor": "eve",
		"project": {"system": "blueprism", "id": "q1", "created_by": "eve", "kind": ""},
	}
	some f in admin(st, in_).forbidden
	contains(f, "needs the operator (blueprism has no administrator role)")
}
