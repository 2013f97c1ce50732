# METADATA
# title: UiPath Task Mining (Automation Suite)
# description: |
#   System uipath-task-mining-suite: the roles User, Process SME and Admin of
#   Task Mining User Management, and the AI Center permissions in
#   Orchestrator that Task Mining needs (system uipath-orchestrator).
#   Source: shared/vendor-docs/uipath-task-mining-automation-suite.txt.
#   Readings: docs/systems/uipath-task-mining-suite.md.
package permatrix.systems.uipath_task_mining_suite

import data.permatrix.lib
import data.permatrix.systems.uipath_orchestrator as orchestrator

system_id := "uipath-task-mining-suite"

catalog := data.systems[system_id]

tenant := {"type": "service"}

decision := lib.verdict(reasons, missing)

# Roles: catalog.matrix lists, per role, exactly the capabilities the
# document lists for it ("The following Permissions can be added: User ...
# Process SME ... Admin ..."; the sentence per role is quoted in
# docs/systems/uipath-task-mining-suite.md). Admin holds access_task_mining
# ("Can access Task Mining to create projects") and manage_users ("Can add
# any missing members ... to the same service", the act the Process SME is
# denied: "Does not have access User Management tab to add any users to Task
# Mining service"). Roles do not include one another (least
# privilege: the document lists each role's capabilities separately and
# recommends "assign only User rights from Automation Suite, and if needed,
# add Process SME and Admin rights from the Task Mining User management").
# A role at service scope reaches every project ("Can select any project");
# a User at project scope holds it on that project only ("invites Task
# Mining users to different projects"). A grant stored at a scope type the
# catalog does not allow for its role (e.g. an imported process_sme on a
# project) grants nothing. The grants are looked up by role and scope (a
# grant's stored value is its reason, document.go), not found by building
# every grant the subject holds here: a role at service scope ...
reasons contains r if {
	some role in granting_roles
	"service" in catalog.roles[role].scopes
	some r in lib.role_reasons(system_id, role, "service")
}

# ... and a role on the checked scope itself (lib.covers).
reasons contains r if {
	lib.scope.type != "service"
	some role in granting_roles
	lib.scope.type in catalog.roles[role].scopes
	some r in lib.role_reasons(system_id, role, lib.scope_key)
}

# granting_roles are the roles whose row in the matrix has the action.
granting_roles := [r | some r in catalog.role_order; catalog.matrix[r][input.action]]

default alternatives := {}

# alternatives lists the granting roles where there are several.
alternatives := {"any_of": granting_roles} if count(granting_roles) > 1

# role_scope is the scope a missing role is named at: the checked scope
# where the role may be assigned there, else the tenant.
role_scope(role, scope) := scope if {
	scope.type in catalog.roles[role].scopes
} else := tenant

# Without a granting role, missing names the first role (in the order User,
# Process SME, Admin) that has the action, at the checked scope where the
# role may be assigned there, else at service; where several roles have it,
# any_of lists them all (any one suffices).
missing contains object.union(lib.missing_role(system_id, role, role_scope(role, lib.scope)), alternatives) if {
	count(reasons) == 0
	role := granting_roles[0]
}

# rename_project, archive_project, edit_project: the document grants them to
# no role. uipath-task-mining-automation-suite.txt, Process SME: "have no
# edit right to rename/archive/edit any project"; the Admin's list does not
# name them either (least privilege: nobody holds them).
missing contains lib.missing_condition(system_id, msg) if {
	count(granting_roles) == 0
	msg := sprintf("%s is granted to no role of the document", [input.action])
}

# AI Center prerequisites, checked in uipath-orchestrator at the tenant.
# uipath-task-mining-automation-suite.txt: "To operate Task Mining projects
# successfully, the following permissions need to be applied in Orchestrator
# at the tenant level." Sets (catalog.prerequisite_sets): Admin "ML Logs:
# View / ML Packages: View, Edit, Create, Delete / ML Skills: View" ("create
# and manage the lifecycle of AICenter projects and run ML pipelines");
# Process SME "ML Logs: View / ML Packages: View / ML Skills: View" ("review
# discovery results"); Recording User "ML Packages: View" ("upload recorded
# data to AICenter"). Which action needs which set: catalog.prerequisites.
# A prerequisite is uipath-orchestrator's decision for the same subject and
# groups; only whether it allows matters here, which its holds answers
# without the decision's reasons and verdict (docs/policies.md).
missing contains lib.missing_permission("uipath-orchestrator", perm, tenant) if {
	some perm in catalog.prerequisite_sets[catalog.prerequisites[input.action]]
	not orchestrator.holds(perm)
}

# Context conditions (catalog.conditions). uipath-task-mining-automation-suite.txt,
# Admin: "Can add any missing members ... to the same service (only if the
# member has been previously invited to the cloud platform as Automation User
# and has accepted the invite)."
missing contains lib.missing_condition(system_id, c.message) if {
	some c in catalog.conditions[input.action]
	object.get(lib.context, c.key, false) != true
}

# Delegation: only who may use the User Management tab (manage_users: the
# Admin) may add or remove Task Mining roles. uipath-task-mining-automation-suite.txt,
# Process SME: "Does not have access User Management tab to add any users to
# Task Mining service."; Admin: "Can add any missing members (Task Mining
# Admin, Process SME, and Task Mining Users) to the same service".
forbidden contains msg if {
	input.op in {"assign", "unassign"}
	not actor_manages_users
	msg := sprintf("%s may not change Task Mining roles: only a Task Mining Admin manages users", [input.actor])
}

# Registering a project is creating it: Admin "Can access Task Mining to
# create projects" (and the AI Center prerequisites of create_project). The
# actor's own create_project decision.
forbidden contains msg if {
	input.op == "register_project"
	not create_decision.allow
	msg := sprintf("%q may not create project %q: %s (%s)", [
		input.actor,
		input.project.id,
		"creating Task Mining projects needs the Admin role and its AI Center permissions",
		"uipath-task-mining-automation-suite.txt: Admin \"Can access Task Mining to create projects\"",
	])
}

create_decision := d if {
	# Registering is judged as the actor's own create_project decision in
	# this system: this package's decision asked with that check as input.
	# regal ignore:with-outside-test-context
	d := decision with input as {
		"subject": input.actor,
		"groups": lib.asserted_groups,
		"system": system_id,
		"action": "create_project",
		"context": {},
	}
}

actor_manages_users if {
	some g in lib.system_grants_of(input.actor, lib.asserted_groups, system_id)
	catalog.matrix[g.role].manage_users
	g.scope.type == tenant.type
}

# administrator_role administers Task Mining (Admin: "Can access Task Mining
# to create projects, configure settings, and invites Task Mining users to
# different projects."): it may change projects others registered
# (data.permatrix.admin).
administrator_role := "admin"
