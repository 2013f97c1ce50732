# uipath-task-mining-suite write tests: registering projects, end to end
# through data.permatrix.admin.verdict. Source:
# shared/vendor-docs/uipath-task-mining-automation-suite.txt (with the line);
# helpers in task_mining_suite_test.rego.
package uipath_task_mining_suite_test

import data.permatrix
import data.testing.layout

# Registering a project is creating it: Admin "Can access Task Mining to
# create projects" (line 32), with the AI Center permissions of the admin set
# (lines 47-51); a project registered by another needs the Admin role.
register_store := {
	"grants": layout.grants({
		"user:root": object.union({"a": role_grant("a", "user:root", "admin", tenant)}, ml_grants("user:root", admin_set)),
		"user:ida": {"i": role_grant("i", "user:ida", "admin", tenant)},
		"user:sme": {"b": role_grant("b", "user:sme", "process_sme", tenant)},
	}),
	"scopes": layout.scopes({
		"user:root": object.union({"a": role_grant("a", "user:root", "admin", tenant)}, ml_grants("user:root", admin_set)),
		"user:ida": {"i": role_grant("i", "user:ida", "admin", tenant)},
		"user:sme": {"b": role_grant("b", "user:sme", "process_sme", tenant)},
	}),
	"projects": {sys: {"p1": {"created_by": "sme", "kind": ""}}},
}

register_as(actor, id) := register_by(actor, id, actor)

register_by(actor, id, created_by) := v if {
	in_ := {
		"op": "register_project", "actor": actor,
		"project": {"system": "uipath-task-mining-suite", "id": id, "created_by": created_by, "kind": ""},
	}

	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with data.store as register_store with input as in_
}

test_register_project_needs_admin_with_ai_center if {
	register_as("root", "n1") == {"violations": [], "forbidden": []}
	every actor in ["ida", "sme", "nobody"] {
		refused_create(register_as(actor, "n1"))
	}
}

test_reregister_needs_admin_role if {
	register_by("root", "p1", "sme").forbidden == []
	some f in register_as("nobody", "p1").forbidden
	f == concat("", [
		`"nobody" may not re-register project "p1" of uipath-task-mining-suite: `,
		`it was registered as created by "sme"; changing another's project needs `,
		`an administrator of uipath-task-mining-suite (role "admin")`,
	])
}

# refused_create: v refuses the registration for lack of create_project.
refused_create(v) if {
	some f in v.forbidden
	contains(f, "creating Task Mining projects needs the Admin role and its AI Center permissions")
}
