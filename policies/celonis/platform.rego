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

# platform_roles are the subject's Celonis roles.
# celonis-task-mining-permissions.txt, overview table: "User and team role |
# Overarching and apply across the Celonis Platform."
platform_roles contains g if {
	some g in lib.grants
	g.system == "celonis-task-mining"
	g.role
}

# admin_reasons: the admin role holds every permission of every Celonis system.
# celonis-task-mining-permissions-older.txt: "Admins have always all permissions."
admin_reasons contains lib.reason(g) if {
	some g in platform_roles
	g.role == "admin"
}

is_admin if count(admin_reasons) > 0

# member_only: the subject's only Celonis role is member.
# celonis-task-mining-permissions-older.txt, Member Role row: "-" in every column.
member_only(grants) if {
	roles := {g.role | some g in grants; g.system == "celonis-task-mining"; g.role}
	roles == {"member"}
}

# permission_grants are the subject's direct permission grants in every
# Celonis system; a member holds none, even through a group. A subject with
# no platform role at all is read as an analyst: only analysts are granted
# permissions (celonis-task-mining-permissions.txt: "Analyst users who have
# been assigned service and/or project permissions"). A rule, not a
# function, so that it is computed once per decision.
default permission_grants := set()

permission_grants := {g | some g in lib.grants; g.permission} if not member_only(lib.grants)

# granting is the reasons of the grants of perm in sys that cover target.
# celonis-task-mining-permissions.txt, "Important": "Where this occurs,
# service permissions take precedence over project permissions." So when a
# service-level grant exists, it alone is the reason.
granting(sys, perm, target) := service if {
	service := {lib.reason(g) |
		some g in permission_grants
		g.system == sys
		g.permission == perm
		g.scope.type == "service"
	}
	count(service) > 0
} else := {lib.reason(g) |
	some g in permission_grants
	g.system == sys
	g.permission == perm
	lib.covers(g.scope, target)
}

# permission_decision: admin, or a grant of the permission covering the scope.
permission_decision(sys, perm, target) := lib.verdict(admin_reasons, set()) if {
	is_admin
} else := lib.verdict(reasons, missing) if {
	reasons := granting(sys, perm, target)
	missing := {lib.missing_permission(sys, perm, target) | count(reasons) == 0}
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
	member_only(lib.grants_of(user, []))
	msg := sprintf("%s is a Celonis member: members can be granted no permission", [a.subject])
}
