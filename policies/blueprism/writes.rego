# Blue Prism write rules.
#   Which assignment and custom-role writes the Blue Prism rules allow, and
#   which of them an actor may make (input of data.permatrix.admin).
#   Source: shared/vendor-docs/blueprism-user-permissions.txt.
#   Readings: docs/systems/blueprism.md ("Writes").
package permatrix.systems.blueprism

import data.permatrix.lib

# A permission assigned directly (not through a role) applies service-wide:
# "Set a user's permissions ... select/deselect the required permissions"
# in the User Settings dialog is per user, not per group; group-level access
# rights are set per role ("that permission cannot be granted for that role
# at group level", Manage Process Access Rights).
violations contains msg if {
	input.op == "assign"
	input.assignment.permission
	input.assignment.scope.type != "service"
	msg := sprintf("%q: a Blue Prism permission is assigned directly at service scope only; %s", [
		input.assignment.permission,
		sprintf("on a %s assign a role (group-level access rights)", [input.assignment.scope.type]),
	])
}

# delegated is the permission the actor needs for a write, and where.
# "A user with permission to access System Manager may set the roles and
# permissions of another user from the Security - Users screen."
delegated := {"permission": catalog.delegation.assignments, "scope": service} if {
	input.op in {"assign", "unassign"}
	input.assignment.scope.type == "service"
}

# Manage Process Access Rights: "Users can edit the access rights for
# process groups." (likewise Manage Business Object Access Rights for
# business object groups, Manage Resource Access Rights: "Users can edit
# access rights relating to a resource or resource group."). A group-level
# assignment is such an access right; the actor needs the permission in
# effect on that group.
delegated := {"permission": catalog.access_rights[scp.type], "scope": scp} if {
	input.op in {"assign", "unassign"}
	scp := {"type": input.assignment.scope.type, "id": input.assignment.scope.id}
}

# Security – User Roles: "Users can access the System > Security – User
# Roles screen. This permission also allows users to manage Blue Prism Roles".
delegated := {"permission": catalog.delegation.roles, "scope": service} if {
	input.op in {"define_role", "delete_role"}
}

forbidden contains msg if {
	not delegated.permission in effective(actor_grants, delegated.scope)
	msg := sprintf("actor %q lacks %s on %v, needed to %s", [input.actor, delegated.permission, delegated.scope, input.op])
}

# Manage Process Access Rights / Manage Business Object Access Rights:
# "Users cannot update this permission for their own user role." The actor
# holds the role (directly or through a group, at any scope) and the write
# adds or removes one of those permissions (catalog "own_role_locked").
forbidden contains msg if {
	input.op in {"define_role", "delete_role"}
	actor_holds_role
	some p in locked_changes
	msg := sprintf("actor %q holds role %q and cannot change its %s permission (%s)", [
		input.actor,
		input.role.name,
		p,
		"\"Users cannot update this permission for their own user role.\"",
	])
}

# Never to itself: "A user with permission to access System Manager may set
# the roles and permissions of another user from the Security - Users
# screen." (Security - Users). So an actor never assigns or removes a role
# or permission to or from itself, whatever it holds; nor to or from a group
# it belongs to (stored or asserted), through which it would hold it (least
# privilege).
forbidden contains msg if {
	input.op in {"assign", "unassign"}
	input.assignment.subject in lib.principals_of(input.actor, lib.asserted_groups)
	msg := sprintf("actor %q may not %s roles or permissions of %s: %s (%s)", [
		input.actor,
		input.op,
		input.assignment.subject,
		"a user sets the roles and permissions of another user only",
		"\"may set the roles and permissions of another user from the Security - Users screen\"",
	])
}

actor_holds_role if {
	some g in actor_grants
	g.role == input.role.name
}

# locked_changes are the own-role-locked permissions the write adds or removes.
locked_changes := ((old - new_role_permissions) | (new_role_permissions - old)) & locked if {
	old := role_permissions(input.role.name)
	locked := {p | some p in catalog.own_role_locked}
}

# new_role_permissions: the role's permissions after the write.
new_role_permissions := {p | some p in input.role.permissions} if input.op == "define_role"

new_role_permissions := set() if input.op == "delete_role"
