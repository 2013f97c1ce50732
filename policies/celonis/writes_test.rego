# Celonis write tests: who may grant, who may register projects, end to end
# through data.permatrix.admin.verdict. "new" =
# celonis-task-mining-permissions.txt, "old" =
# celonis-task-mining-permissions-older.txt, with the line; helpers (store,
# role, grant, admin, ...) in celonis_test.rego.
package celonis_test

import data.permatrix

# --- Who may grant (writes on behalf of input.actor). New lines 27 and 31:
# permissions are granted "On the Permissions screen" and in "Admin &
# Settings > Permissions"; no document gives that to analysts or members
# (vendor-docs/README.md): only a Celonis admin writes Celonis assignments.

# written_by is the verdict on op of a by actor over the store of actors
# (boss a stored member of admins).
written_by(op, a, actor) := v if {
	in_ := {"op": op, "assignment": a, "actor": actor}

	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with data.store as actors_store with input as in_
}

actors_store := store(actors, {"boss": {"admins": true}})

# the admins group holds admin; u is the admin itself; ann an analyst with
# EDIT USERS and CREATE PROJECT at service scope.
actors := array.concat(admin, [
	{"id": "ga", "subject": "group:admins", "system": tm, "role": "admin", "scope": service},
	role("an", "ann", "analyst"),
	grant("ae", "user:ann", tm, "edit_users", service),
	grant("ac", "user:ann", tm, "create_project", service),
])

# issue 9: an actor with no role gave itself Celonis admin.
test_actor_without_role_cannot_grant_itself_admin if {
	v := written_by("assign", role("x", "nobody", "admin"), "nobody")
	v.violations == []
	count(v.forbidden) == 1
	contains(v.forbidden[0], "Celonis roles and permissions are granted by a Celonis admin only")
}

# EDIT USERS (new line 16) is about "users of the Task Mining Client software", not permissions.
# one assignment in each of the three systems
each_system := [
	grant("x", "user:zed", tm, "edit_users", p1),
	role("x", "zed", "admin"),
	grant("x", "user:zed", "celonis-studio", "create_package", {"type": "space", "id": "s"}),
	grant("x", "user:zed", sm, "delete", bucket),
]

# admin_only: v refuses the write for lack of the Celonis admin role.
admin_only(v) if {
	some f in v.forbidden
	contains(f, "a Celonis admin only")
}

test_analyst_with_edit_users_cannot_grant if {
	every a in each_system {
		admin_only(written_by("assign", a, "ann"))
	}
	count(written_by("unassign", grant("x", "user:zed", tm, "edit_users", p1), "ann").forbidden) == 1
}

test_admin_grants_in_all_three_systems if {
	every a in each_system {
		written_by("assign", a, "u") == {"violations": [], "forbidden": []}
		written_by("unassign", a, "u").forbidden == []
		written_by("assign", a, "boss").forbidden == []
	}
}

# Registering a project is creating it (new line 21: "CREATE PROJECT | Allows
# user to create Task Mining projects."); changing another's project needs
# the admin role (old line 4: "Admins have always all permissions.").
registered_by(actor, id, created_by) := v if {
	in_ := {
		"op": "register_project", "actor": actor,
		"project": {"system": "celonis-task-mining", "id": id, "created_by": created_by, "kind": ""},
	}

	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with data.store as projects_store with input as in_
}

# p1 was registered by ann.
projects_store := object.union(actors_store, {"projects": {tm: {"p1": {"created_by": "ann", "kind": ""}}}})

test_register_project_needs_create_project if {
	registered_by("ann", "n1", "ann").forbidden == []
	registered_by("u", "n1", "u").forbidden == []
	f := registered_by("zed", "n1", "zed").forbidden
	count(f) == 1
	contains(f[0], "creating Task Mining projects needs CREATE PROJECT or the admin role")
}

test_reregister_another_analysts_project_needs_admin if {
	registered_by("ann", "p1", "ann").forbidden == []
	registered_by("u", "p1", "ann").forbidden == []
	some f in registered_by("zed", "p1", "ann").forbidden
	contains(f, `needs an administrator of celonis-task-mining (role "admin")`)
}
