# METADATA
# title: permatrix write rules
# description: |
#   Which changes to the assignment store the vendor rules allow. The server
#   asks data.permatrix.admin.verdict before every write, with input
#     {"op": "assign"|"unassign", "assignment": {...}, "actor": "<user>"?, "groups": [...]?}
#     {"op": "define_role", "role": {"system", "name", "permissions"}, "actor"?}
#     {"op": "delete_role", "role": {"system", "name"}, "actor"?}
#     {"op": "register_project", "project": {"system", "id", "created_by", "kind"}, "actor"?}
#   violations (HTTP 422) are changes no one may make; forbidden (HTTP 403)
#   are changes this actor may not make. Systems add their own through rules
#   named violations and forbidden in their package.
package permatrix.admin

# METADATA
# description: what the server reads before every write; both sets, sorted
# entrypoint: true
verdict := {
	"violations": sort([v | some v in violations]),
	"forbidden": sort([f | some f in forbidden]),
}

# system is the catalog entry of the system the write is about.
system_id := input.assignment.system if input.op in {"assign", "unassign"}

system_id := input.role.system if input.op in {"define_role", "delete_role"}

system_id := input.project.system if input.op == "register_project"

system := data.systems[system_id]

# assignment is the assignment an assign write stores.
assignment := input.assignment if input.op == "assign"

# The system's own rules on what may be stored at all.
violations contains v if some v in data.permatrix.systems[system.package].violations

violations contains sprintf("unknown system %q", [system_id]) if not system

# Assignments: exactly one of role and permission, known to the system, at a
# scope the catalog allows for it (contract section 4).
violations contains "an assignment names exactly one of role and permission" if {
	assignment
	count({k | some k in ["role", "permission"]; assignment[k]}) != 1
}

violations contains sprintf("unknown role %q for system %q", [assignment.role, system_id]) if {
	system
	not grantable_role(assignment.role)
}

violations contains sprintf("unknown permission %q for system %q", [assignment.permission, system_id]) if {
	system
	not system.actions[assignment.permission]
	not system.permissions[assignment.permission]
}

violations contains sprintf("%q cannot be assigned: %s", [assignment.permission, why]) if {
	action := system.actions[assignment.permission]
	not system.permissions[assignment.permission]
	why := object.get(action, "not_assignable", "it is an action, not an assignable permission")
}

violations contains msg if {
	not assignment.scope.type in grant_scopes
	msg := sprintf("%q cannot be assigned at scope %q in system %q (allowed: %s)", [
		object.get(assignment, "role", object.get(assignment, "permission", "")),
		assignment.scope.type,
		system_id,
		concat(", ", grant_scopes),
	])
}

violations contains sprintf("a %q scope needs an id", [assignment.scope.type]) if {
	assignment.scope.type != "service"
	not assignment.scope.id
}

# Custom roles: only where the system has them, only of known permissions.
violations contains sprintf("system %q has no custom roles", [system_id]) if {
	input.op in {"define_role", "delete_role"}
	system
	not system.custom_roles
}

violations contains sprintf("%q is a built-in role of system %q", [input.role.name, system_id]) if {
	input.op in {"define_role", "delete_role"}
	system.roles[input.role.name]
}

violations contains sprintf("unknown permission %q for system %q", [p, system_id]) if {
	input.op == "define_role"
	system.custom_roles
	some p in input.role.permissions
	not system.permissions[p]
}

# The system's own rules on who may write, when a write names its actor.
forbidden contains f if {
	is_string(input.actor)
	some f in data.permatrix.systems[system.package].forbidden
}

# grantable_role: a built-in role, or a custom role defined in the store
# where the system has custom roles.
grantable_role(r) if system.roles[r]

grantable_role(r) if {
	system.custom_roles
	data.store.roles[system_id][r]
}

# grant_scopes are the scope types the assigned role or permission may have.
grant_scopes := system.roles[assignment.role].scopes if not assignment.permission

grant_scopes := system.custom_roles.scopes if {
	not assignment.permission
	not system.roles[assignment.role]
	data.store.roles[system_id][assignment.role]
}

grant_scopes := system.permissions[assignment.permission].scopes if not assignment.role
