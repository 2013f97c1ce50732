# METADATA
# title: Celonis platform roles
# description: |
#   What the three Celonis systems share: the platform-wide user roles
#   (admin, analyst, member), assigned in celonis-task-mining at service
#   scope, and how a permission grant is read. Source:
#   shared/vendor-docs/celonis-task-mining-permissions.txt (newer, wins) and
#   celonis-task-mining-permissions-older.txt.
package permatrix.celonis

import data.permatrix.lib

# The Celonis platform roles (admin, analyst, member) are held in
# celonis-task-mining. celonis-task-mining-permissions.txt, overview table:
# "User and team role | Overarching and apply across the Celonis Platform."
tm := "celonis-task-mining"

# admin_reasons: the admin role holds every permission of every Celonis system.
# celonis-task-mining-permissions-older.txt: "Admins have always all permissions."
admin_reasons contains r if {
	some p in lib.principals
	some r in data.store.grants[p][tm].role.admin
}

is_admin if count(admin_reasons) > 0

# member_only: the subject's only Celonis role is member.
# celonis-task-mining-permissions-older.txt, Member Role row: "-" in every column.
member_only if lib.roles_in(tm) == {"member"}

# granting is the reasons of the subject's grants of perm in sys that cover
# the scope key: a member holds none, even through a group; a subject with
# no platform role at all is read as an analyst: only analysts are granted
# permissions (celonis-task-mining-permissions.txt: "Analyst users who have
# been assigned service and/or project permissions").
# celonis-task-mining-permissions.txt, "Important": "Where this occurs,
# service permissions take precedence over project permissions." So when a
# service-level grant exists, it alone is the reason.
granting(sys, perm, key) := service if {
	not member_only
	service := lib.permission_reasons(sys, perm, "service")
	count(service) > 0
} else := lib.permission_reasons(sys, perm, key) if {
	not member_only
} else := set()

# permission_decision: admin, or a grant of the permission covering the scope.
permission_decision(sys, perm, target) := lib.verdict(admin_reasons, set()) if {
	is_admin
} else := grant_decision(sys, perm, target)

# key is a scope as a grant key (document.go).
key(target) := "service" if target.type == "service"

else := concat(":", [target.type, object.get(target, "id", "")])

# grant_decision: a grant of the permission covering the scope, whoever asks.
# Storage Manager permissions are decided so, for admins too:
# celonis-task-mining-permissions.txt (line 38): "anyone who wants to view
# these screenshots must be granted permissions for that storage bucket and
# the File Storage Manager service." "Anyone" includes admins: "Admins have
# always all permissions" (older document, line 4) is about Task Mining's
# own permissions, not the Storage Manager's (reading in
# shared/vendor-docs/README.md).
grant_decision(sys, perm, target) := lib.verdict(reasons, missing) if {
	reasons := granting(sys, perm, key(target))
	missing := {lib.missing_permission(sys, perm, target) | count(reasons) == 0} | member_missing(sys)
}

# member_violations: why an assignment may not be stored for a member.
# shared/vendor-docs/README.md: "Members can be granted nothing (such an
# assignment is refused)." Read from the store as it is before the write.
member_violations contains msg if {
	input.op == "assign"
	a := input.assignment
	a.permission
	user := trim_prefix(a.subject, "user:")
	a.subject != user
	holds_member_role(a.subject, user)
	lib.roles_of(user, [], tm) == {"member"}
	msg := sprintf("%s is a Celonis member: members can be granted no permission", [a.subject])
}

# Nor is a user who holds permissions made a member: the store would hold a
# member's grants, which no decision reads (granting). The user holds no
# other Celonis role itself or through a group (member_only after the
# write); grants held through a group are the group's, not refused.
member_violations contains msg if {
	input.op == "assign"
	a := input.assignment
	a.system == tm
	a.role == "member"
	user := trim_prefix(a.subject, "user:")
	a.subject != user
	lib.roles_of(user, [], tm) - {"member"} == set()
	held := {name | some sys in systems; some name, _ in data.store.grants[a.subject][sys].permission}
	count(held) > 0
	msg := sprintf("%s holds Celonis permissions (%s): %s (%s); unassign them first", [
		a.subject,
		concat(", ", sort(held)),
		"a member holds none",
		`celonis-task-mining-permissions-older.txt, line 9: "Member Role | - | - | - | - | - | -"`,
	])
}

# holds_member_role: the user (its subject "user:<user>") holds the member
# role, itself or through a stored group, which its roles being {"member"}
# needs: read first, without building its principals and roles (a user
# granted a permission seldom is a member; most import lines grant one to a
# user the store does not know).
holds_member_role(subject, _) if data.store.grants[subject][tm].role.member

holds_member_role(_, user) if {
	some g, member in data.store.memberships[user]
	member
	data.store.grants[concat("", ["group:", g])][tm].role.member
}

# systems are the three Celonis systems: a member's grants in each are
# passed over (granting), and member_violations refuses them in each.
systems := {tm, "celonis-studio", "celonis-storage-manager"}

# member_missing is what a member-only subject lacks besides a permission:
# another role (older document, line 8: analysts are granted permissions;
# line 9: members none), since no write grants a member one.
member_missing(sys) := {lib.missing_condition(sys, msg) |
	member_only
	msg := concat("", [
		"a Celonis member holds no permission and is granted none (celonis-task-mining-permissions-older.txt, ",
		"line 9); an analyst is granted permissions (line 8), an admin holds them all",
	])
}

# --- Who may grant (writes on behalf of input.actor)

# actor_is_admin: the writing actor holds the Celonis admin role, assigned
# to it or to one of its groups (stored or asserted).
actor_is_admin if "admin" in lib.roles_of(input.actor, lib.asserted_groups, tm)

# Permissions are granted by admins only. celonis-task-mining-permissions.txt
# says where they are granted, "Go to Admin & Settings > Permissions." (line
# 31) and "On the Permissions screen, use the check boxes to select the level
# of edit permissions you want to grant to the Analyst user" (line 27), and
# no document gives that to analysts or members (EDIT USERS, line 16, is
# about "users of the Task Mining Client software"). Reading
# (shared/vendor-docs/README.md): an actor writing any celonis-* assignment,
# in any of the three systems, must hold the Celonis admin role.
grant_forbidden contains msg if {
	input.op in {"assign", "unassign"}
	not actor_is_admin
	msg := sprintf("%q may not %s %s %q in %s: %s (%s)", [
		input.actor,
		input.op,
		input.assignment.subject,
		object.get(input.assignment, "role", object.get(input.assignment, "permission", "")),
		input.assignment.system,
		"Celonis roles and permissions are granted by a Celonis admin only",
		concat("", [
			"celonis-task-mining-permissions.txt: granted in \"Admin & Settings > Permissions\" ",
			"and a project's \"Permissions screen\"",
		]),
	])
}
