# METADATA
# title: permatrix write rules
# description: |
#   Which changes to the assignment store the vendor rules allow. The server
#   asks data.permatrix.admin.verdict before every write, with input
#     {"op": "assign"|"unassign", "assignment": {...}, "actor": "<user>"?, "groups": [...]?}
#     {"op": "define_role", "role": {"system", "name", "permissions"}, "actor"?}
#     {"op": "delete_role", "role": {"system", "name"}, "actor"?}
#     {"op": "register_project"|"delete_project", "project": {"system", "id", "created_by", "kind"}, "actor"?}
#     {"op": "add_member"|"remove_member", "membership": {"group", "user"}, "actor"?}
#   violations (HTTP 422) are changes no one may make; forbidden (HTTP 403)
#   are changes this actor may not make. Systems add their own through rules
#   named violations and forbidden in their package. Without an actor the
#   operator (the admin token) writes and only violations apply.
package permatrix.admin

import data.permatrix.lib

# METADATA
# description: what the server reads before every write; both sets, sorted
# entrypoint: true
verdict := nothing_refused if {
	is_string(input.actor)
	count(violations) == 0
	count(forbidden) == 0
} else := {
	"violations": sort([v | some v in violations]),
	"forbidden": sort([f | some f in forbidden]),
} if {
	is_string(input.actor)
} else := nothing_refused if {
	count(violations) == 0
} else := {
	# Without an actor the operator writes: nothing is forbidden (every
	# forbidden rule is about input.actor), so its rules are not evaluated.
	"violations": sort([v | some v in violations]),
	"forbidden": [],
}

# nothing_refused is the verdict of almost every write: a constant, made
# once, not an object and two sorted lists made for every write.
nothing_refused := {"violations": [], "forbidden": []}

# system is the catalog entry of the system the write is about, named in
# the input's object of the op (system_holders): one lookup, not a test of
# the op for each kind of write.
system_id := input[system_holders[input.op]].system

system_holders := {
	"assign": "assignment",
	"unassign": "assignment",
	"define_role": "role",
	"delete_role": "role",
	"register_project": "project",
	"delete_project": "project",
}

system := data.systems[system_id]

# removals are the writes that take away what a system holds.
removals := {"unassign", "delete_role", "delete_project"}

# assignment is the assignment an assign write stores.
assignment := input.assignment if input.op == "assign"

# The system's own rules on what may be stored at all.
violations contains v if some v in data.permatrix.systems[system.package].violations

# An assignment, custom role or project of a system the bundle does not
# have is refused; one stored already (a bundle that dropped its system
# left it) may be removed. It is named with the systems there are, in a
# check's words (lib).
violations contains lib.unknown_system_error(system_id) if {
	not system
	not input.op in removals
}

# Assignments: exactly one of role and permission, known to the system, at a
# scope the catalog allows for it (contract section 4).
violations contains "an assignment names exactly one of role and permission" if {
	assignment
	not names_one_grant
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

# An empty id is none, as in permatrix.Scope (Scope.Validate).
violations contains `a "service" scope has no id` if {
	assignment.scope.type == "service"
	object.get(assignment.scope, "id", "") != ""
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

# names_one_grant: the assignment names a role or a permission, not both
# (the set of the names it holds, counted, was built for every write).
names_one_grant if {
	assignment.role
	not assignment.permission
}

names_one_grant if {
	assignment.permission
	not assignment.role
}

# grantable_role: a built-in role, or a custom role defined in the store
# where the system has custom roles.
grantable_role(r) if system.roles[r]

grantable_role(r) if {
	system.custom_roles
	data.store.roles[system_id][r]
}

# grant_scopes are the scope types the assigned role or permission may have:
# a built-in role's, else a custom role's, else a permission's. (The three
# hold for different assignments; in one chain a role's stops at its first.)
grant_scopes := system.roles[assignment.role].scopes if {
	not assignment.permission
} else := system.custom_roles.scopes if {
	not assignment.permission
	not system.roles[assignment.role]
	data.store.roles[system_id][assignment.role]
} else := system.permissions[assignment.permission].scopes if {
	not assignment.role
}

# ---------------------------------------------------------------------------
# Who may write: writes made on behalf of input.actor (HTTP 403)

forbidden contains f if some f in write_forbidden

# Group memberships. A member holds what its group holds: lib.grants_of
# expands groups, as the documents say (uipath-task-mining-cloud-roles.ja.txt:
# "ロールをグループに割り当てると、グループ内のすべてのユーザーがロールを継承します。";
# uipath-task-mining-automation-suite.txt: "Here, you can add permissions to
# a specific user or group."). So adding a user to a group is judged as
# assigning the user every holding of the group, and removing one as
# removing each of them from the user: an actor may add someone only if it
# may grant all the group holds.
forbidden contains msg if {
	is_string(input.actor)
	op := member_op[input.op]
	some a in group_holdings
	as_user := object.union(object.remove(a, ["default", "id"]), {"subject": concat("", ["user:", input.membership.user])})
	some reason in holding_forbidden(op, as_user, input.actor, lib.asserted_groups)
	msg := sprintf("%q may not %s: the group holds %s, which a member holds too; %s", [
		input.actor,
		member_change,
		holding(a),
		reason,
	])
}

# A group holding nothing gives no vendor rule to judge by, and a member
# added now would hold whatever the group is given later. Least privilege
# (shared/vendor-docs/README.md: "Where a document is ambiguous, take the
# least-privilege reading"): no actor has authority over its members; the
# operator manages them.
forbidden contains msg if {
	is_string(input.actor)
	member_op[input.op]
	count(group_holdings) == 0
	msg := sprintf("%q may not %s: %s", [
		input.actor,
		member_change,
		concat("", [
			"the group holds no role or permission, so no vendor rule gives an actor authority over its members; ",
			"only the operator (the admin token without an actor) changes them",
		]),
	])
}

# write_forbidden are the refusals of an assignment, custom-role or project
# write; a membership change is judged through them (above).

# The system's own rules on who may write, when a write names its actor.
write_forbidden contains f if {
	is_string(input.actor)
	some f in data.permatrix.systems[system.package].forbidden
}

# A system package that writes down no rule on who may write (defines no
# forbidden rule at all) refuses every actor write: delegation exists only
# where a vendor document gives it (shared/vendor-docs/README.md: "Where a
# document is ambiguous, take the least-privilege reading").
write_forbidden contains msg if {
	is_string(input.actor)
	system
	not data.permatrix.systems[system.package].forbidden
	msg := sprintf("%q may not write in %s: %s", [
		input.actor,
		system_id,
		"the system has no delegation rules, only the operator (the admin token without an actor) writes there",
	])
}

# A system the bundle no longer has has no rule on who may write: its
# stored assignments, custom roles and projects are removed by the
# operator only. Nothing is assigned there (violations), and a membership
# change is judged as assigning what the group holds: a group holding an
# assignment of such a system takes members from the operator only, or
# any actor joined it and held the assignment once a bundle brought the
# system back (shared/vendor-docs/README.md: "Where a document is
# ambiguous, take the least-privilege reading").
write_forbidden contains msg if {
	is_string(input.actor)
	not system
	msg := sprintf("%q may not %s in %s: %s; %s", [
		input.actor,
		input.op,
		system_id,
		"the bundle has no such system, so no rule says who may",
		retired_writer,
	])
}

# Deleting a project's registration: no vendor document says who may (the
# documents speak of creating projects, and of the creator's rights over
# them); least privilege (shared/vendor-docs/README.md), the operator only.
write_forbidden contains msg if {
	is_string(input.actor)
	input.op == "delete_project"
	system
	msg := sprintf("%q may not delete project %q of %s: %s; %s", [
		input.actor,
		input.project.id,
		system_id,
		"no vendor document says who may delete a project's registration",
		"only the operator (the admin token without an actor) deletes one",
	])
}

# Projects. An actor registers new projects as itself (the server fills in
# an absent created_by with the actor; the creator of a registered project
# never changes): the creator is whoever creates the project,
# uipath-task-mining-cloud-roles.ja.txt: "新しい Task Mining プロジェクトを作成する
# 管理者またはプロジェクト作成者には、…プロジェクト管理者ロールが自動的に割り当てられます。"
write_forbidden contains msg if {
	is_string(input.actor)
	project
	not registered
	project.created_by != input.actor
	msg := sprintf("%q may register projects only as itself: created_by %q names another user (%s)", [
		input.actor,
		project.created_by,
		"the creator of a project is who creates it",
	])
}

# Re-registering (or changing the kind of) a project someone else
# registered. Who created a project and its kind are facts the vendor rules
# build on (uipath-task-mining-cloud-roles.ja.txt, footnote "*) この権限は、
# プロジェクト作成者が作成したプロジェクトにのみ適用されます。", and the Unassisted
# rule), so only an administrator of the system changes them.
write_forbidden contains msg if {
	is_string(input.actor)
	registered.created_by != input.actor
	not actor_is_administrator
	msg := sprintf("%q may not re-register project %q of %s: it was registered as created by %q; %s needs %s", [
		input.actor,
		project.id,
		system_id,
		registered.created_by,
		"changing another's project",
		who_administers,
	])
}

# Registering a project that already has assignments: its creator would
# gain the footnote-* rights over the people already on it (the same
# footnote), so that needs an administrator of the system too.
write_forbidden contains msg if {
	is_string(input.actor)
	project
	not registered
	project_has_assignments
	not actor_is_administrator
	msg := sprintf("%q may not register project %q of %s: assignments on it exist already; registering it needs %s", [
		input.actor,
		project.id,
		system_id,
		who_administers,
	])
}

# project is the project a register_project write stores.
project := input.project if input.op == "register_project"

# registered is the project as the store has it, if it is registered.
registered := data.store.projects[system_id][project.id]

# project_has_assignments: data.store.scopes indexes the grants made on
# each project (document.go).
project_has_assignments if count(data.store.scopes[system_id][concat(":", ["project", project.id])]) > 0

# system_administrator_role is the system's role of an administrator, where
# the system's package names one (as administrator_role, citing its
# document).
system_administrator_role := data.permatrix.systems[system.package].administrator_role

# actor_is_administrator: the actor holds the administrator role at service
# scope, assigned to it or to one of its groups (stored or asserted), or as
# a group's default role (catalog default_group_roles).
actor_is_administrator if {
	some g in lib.system_grants_of(input.actor, lib.asserted_groups, system_id)
	g.role == system_administrator_role
	g.scope.type == "service"
}

actor_is_administrator if {
	some group, roles in object.get(system, "default_group_roles", {})
	system_administrator_role in roles
	group in lib.groups_of(input.actor, lib.asserted_groups)
}

# who_administers says who may change a project someone else registered.
who_administers := sprintf("an administrator of %s (role %q)", [system_id, system_administrator_role]) if {
	system_administrator_role
} else := sprintf("the operator (%s has no administrator role)", [system_id])

# retired_writer says who writes in a system the bundle does not have.
default retired_writer := "only the operator (the admin token without an actor) writes there"

retired_writer := concat("", [
	"only the operator (the admin token without an actor) ",
	"removes its assignments, custom roles and projects",
]) if {
	input.op in removals
}

# member_op is the assignment write a membership change is judged as.
member_op := {"add_member": "assign", "remove_member": "unassign"}

member_change := sprintf("add %q to group %q", [input.membership.user, input.membership.group]) if {
	input.op == "add_member"
} else := sprintf("remove %q from group %q", [input.membership.user, input.membership.group])

group_subject := concat("", ["group:", input.membership.group])

# group_holdings are the group's stored assignments ...
group_holdings contains a if some a in lib.assignments_of(group_subject)

# ... and the roles its members hold by default (catalog
# default_group_roles, e.g. uipath-task-mining-cloud-roles.ja.txt: "既定では、
# Administrators グループのユーザーには、管理者ロールが割り当てられます。").
group_holdings contains {
	"subject": group_subject,
	"system": id,
	"role": role,
	"scope": {"type": "service"},
	"default": true,
} if {
	some id, sys in data.systems
	some role in object.get(sys, ["default_group_roles", input.membership.group], [])
}

# holding_forbidden is what refuses actor (with its asserted groups) the
# assignment write op of a: a holding is judged as that write.
holding_forbidden(op, a, actor, groups) := fs if {
	# regal ignore:with-outside-test-context
	fs := write_forbidden with input as {"op": op, "assignment": a, "actor": actor, "groups": groups}
}

# holding names one holding of a group.
holding(a) := sprintf("role %q at %v in %s%s", [a.role, a.scope, a.system, default_note(a)]) if a.role

holding(a) := sprintf("permission %q at %v in %s", [a.permission, a.scope, a.system]) if a.permission

default_note(a) := " (by default)" if a["default"]

else := ""
