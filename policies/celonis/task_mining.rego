# METADATA
# title: Celonis Task Mining
# description: |
#   System celonis-task-mining. Sources:
#   shared/vendor-docs/celonis-task-mining-permissions.txt (newer, wins on
#   conflict) and celonis-task-mining-permissions-older.txt.
package permatrix.systems.celonis_task_mining

import data.permatrix.celonis
import data.permatrix.lib

system_id := "celonis-task-mining"

catalog := data.systems[system_id]

service := {"type": "service"}

# Admins hold everything, always (older document: "Admins have always all
# permissions."), except the screenshots, which need the Storage Manager
# grants whoever asks (below).
decision := lib.verdict(celonis.admin_reasons, set()) if {
	celonis.is_admin
	not screenshot_needs[input.action]
} else := lib.verdict(reasons, missing)

# The four edit permissions and create_project are held through a grant.
# newer document, table "Task Mining service and project permissions".
granted_actions := {a | some a in catalog.edit_permissions} | {"create_project"}

# Screenshots, newer document: "anyone who wants to view these screenshots
# must be granted permissions for that storage bucket and the File Storage
# Manager service. GET and LIST: The user can view screenshots. GET, LIST,
# and DELETE: The user can view and delete screenshots." "Anyone" includes
# admins (celonis.grant_decision).
screenshot_needs := {
	"view_screenshots": ["get", "list"],
	"delete_screenshots": ["get", "list", "delete"],
}

screenshot_checks contains celonis.grant_decision("celonis-storage-manager", p, lib.scope) if {
	some p in screenshot_needs[input.action]
}

screenshot_checks contains celonis.grant_decision(
	"celonis-storage-manager",
	"use_file_storage_manager",
	service,
) if {
	screenshot_needs[input.action]
}

# --- reasons: the grants that give the action, one definition per kind of action.

reasons := celonis.granting(system_id, input.action, lib.scope_key) if input.action in granted_actions

# Delete Project is "not shown in UI" in the older document's table, where
# only the Admin Role row has it: admins only (they are decided above).
reasons := set() if input.action == "delete_project"

# View Project, older document: "No separate view permissions are provided.
# Users can view if the edit permission is granted." Service-level edits
# reach every project.
reasons := {r | some p in catalog.edit_permissions; some r in celonis.granting(system_id, p, lib.scope_key)} if {
	input.action == "view_project"
}

# Screenshots: the storage manager grants that give them.
reasons := {r | some d in screenshot_checks; some r in d.reasons} if screenshot_needs[input.action]

# --- missing: what is lacking, in the same order.

missing contains lib.missing_permission(system_id, input.action, lib.scope) if {
	input.action in granted_actions
	count(reasons) == 0
}

# A member lacks another role, not only the permission (celonis.member_missing).
missing contains m if {
	input.action in (granted_actions | {"view_project"})
	some m in celonis.member_missing(system_id)
}

# Prerequisites outside Task Mining (Celonis services: grant-based). The newer document says "Analyst user
# must also also be assigned:" for EDIT PROJECT CONNECTION and "Analyst user
# also requires:" for CREATE PROJECT, and then cuts the list off; it is
# data (catalog.prerequisites), empty by default, for operators to fill in.
missing contains lib.missing_permission(p.system, p.permission, scope) if {
	some p in catalog.prerequisites[input.action]
	scope := object.get(p, "scope", lib.scope)
	not celonis.permission_decision(p.system, p.permission, scope).allow
}

# newer document, CREATE PROJECT: "Analyst users creating custom projects
# also require the Studio Space permission CREATE PACKAGE."
missing contains lib.missing_permission("celonis-studio", "create_package", space) if {
	input.action == "create_project"
	lib.context.custom_project == true
	lib.valid_id(lib.context.space)
	space := {"type": "space", "id": lib.context.space}
	not celonis.permission_decision("celonis-studio", "create_package", space).allow
}

missing contains lib.missing_condition(system_id, msg) if {
	input.action == "create_project"
	lib.context.custom_project == true

	# A space id is an id (lib.valid_id): an empty or ill-formed one names no space, whose
	# create_package no assignment could hold.
	not lib.valid_id(object.get(lib.context, "space", null))
	msg := "a custom project needs context.space: the Studio space of its package"
}

# The same sentence (newer document, line 22): whether the project is a
# custom one decides whether CREATE PACKAGE is needed, so a custom_project
# that is not a boolean is never read as "not a custom project".
missing contains lib.missing_condition(system_id, msg) if {
	input.action == "create_project"
	not is_boolean(object.get(lib.context, "custom_project", false))
	msg := concat("", [
		"context.custom_project must be true or false: ",
		"a custom project also needs the Studio Space permission CREATE PACKAGE",
	])
}

missing contains lib.missing_role(system_id, "admin", service) if input.action == "delete_project"

missing contains m if {
	input.action == "view_project"
	count(reasons) == 0
	m := object.union(
		lib.missing_permission(system_id, "edit_client_settings", lib.scope),
		{"permission": "any edit permission", "any_of": catalog.edit_permissions},
	)
}

missing contains m if {
	some d in screenshot_checks
	some m in d.missing
}

# Writes: a member can be granted nothing.
violations contains v if some v in celonis.member_violations

# --- Who may write (on behalf of input.actor)

# Assignments: a Celonis admin only (celonis.grant_forbidden).
forbidden contains f if some f in celonis.grant_forbidden

# Registering a project is creating it: newer document, line 21: "CREATE
# PROJECT | Allows user to create Task Mining projects." The actor's own
# create_project decision (admins hold it; analysts through the grant).
forbidden contains msg if {
	input.op == "register_project"
	not create_decision.allow
	msg := sprintf("%q may not create project %q: %s (%s)", [
		input.actor,
		input.project.id,
		"creating Task Mining projects needs CREATE PROJECT or the admin role",
		"celonis-task-mining-permissions.txt, line 21",
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

# administrator_role administers Celonis (older document, line 4: "Admins
# have always all permissions."): it may change projects others registered
# (data.permatrix.admin).
administrator_role := "admin"
