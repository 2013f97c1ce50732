# METADATA
# title: uipath-task-mining-suite tests
# description: |
#   Every role x action cell, every AI Center prerequisite, the add_members
#   condition, group-held grants, scopes and write rules, end to end through
#   data.permatrix.decision / data.permatrix.admin.verdict.
package uipath_task_mining_suite_test

import data.permatrix
import data.testing.layout

sys := "uipath-task-mining-suite"

orch := "uipath-orchestrator"

tenant := {"type": "service"}

p1 := {"type": "project", "id": "p1"}

# The AI Center sets of the document (written out here, not read from the catalog).
admin_set := {
	"ml_logs_view", "ml_packages_view", "ml_packages_edit",
	"ml_packages_create", "ml_packages_delete", "ml_skills_view",
}

sme_set := {"ml_logs_view", "ml_packages_view", "ml_skills_view"}

recording_set := {"ml_packages_view"}

# ---- helpers ----

role_grant(id, subject, role, scope) := {"id": id, "subject": subject, "system": sys, "role": role, "scope": scope}

ml_grants(subject, perms) := {id: a |
	some p in perms
	id := concat("", ["ml-", p])
	a := {"id": id, "subject": subject, "system": orch, "permission": p, "scope": tenant}
}

# store where alice holds role at scope and the given AI Center permissions.
store_of(role, scope, perms) := {
	"revision": 7, "grants": layout.grants({"user:alice": object.union(
		{"r1": role_grant("r1", "user:alice", role, scope)},
		ml_grants("user:alice", perms),
	)}),
}

check(action, resource, ctx) := {
	"subject": "alice",
	"system": sys,
	"action": action,
	"resource": resource,
	"context": ctx,
}

accepted := {"member_accepted_invite": true}

# decide is the decision for check_in over store. A test helper: Regal
# counts only test_ rules as test context, but with is what it is for.
decide(store, check_in) := d if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as store with input as check_in
}

# cell: alice holds role at service scope plus every AI Center permission,
# and the add_members condition is met: only the role decides.
cell(role, action) := decide(store_of(role, tenant, admin_set), check(action, tenant, accepted))

allowed(role, action) if {
	d := cell(role, action)
	d.allow
	d.missing == []
	d.reasons == [{"kind": "role", "role": role, "scope": tenant, "via": "user:alice", "assignment": "r1"}]
}

denied(role, action, want) if {
	d := cell(role, action)
	not d.allow
	d.reasons == []
	d.missing == [want]
}

missing_role(role) := {"kind": "role", "system": sys, "role": role, "scope": tenant}

# The missing items of the cells: the one role that has the action, or for
# access_task_mining the first of the two that have it.
needs_user := missing_role("user")

needs_sme := missing_role("process_sme")

needs_admin := missing_role("admin")

user_or_admin := object.union(needs_user, {"any_of": ["user", "admin"]})

nobody(action) := {
	"kind": "condition",
	"system": sys,
	"message": sprintf("%s is granted to no role of the document", [action]),
}

missing_perm(p) := {"kind": "permission", "system": orch, "permission": p, "scope": tenant}

missing_perms(ps) := sort([missing_perm(p) | some p in ps])

invite_condition := {
	"kind": "condition", "system": sys,
	"message": concat("", [
		"add_members needs context.member_accepted_invite: true (the member must have been previously ",
		"invited to the cloud platform as Automation User and have accepted the invite)",
	]),
}

# ---- the role x action matrix: 3 x 17 cells ----

# user, uipath-task-mining-automation-suite.txt: "A Task Mining User has access
# only to Task Mining service on the left rail ... Can install desktop app and record."
test_cell_user_access_task_mining_allowed if allowed("user", "access_task_mining")
test_cell_user_install_desktop_app_allowed if allowed("user", "install_desktop_app")
test_cell_user_record_allowed if allowed("user", "record")
test_cell_user_view_projects_denied if denied("user", "view_projects", needs_sme)
test_cell_user_rename_project_denied if denied("user", "rename_project", nobody("rename_project"))
test_cell_user_archive_project_denied if denied("user", "archive_project", nobody("archive_project"))
test_cell_user_edit_project_denied if denied("user", "edit_project", nobody("edit_project"))
test_cell_user_view_discovery_results_denied if denied("user", "view_discovery_results", needs_sme)
test_cell_user_edit_visualizer_denied if denied("user", "edit_visualizer", needs_sme)
test_cell_user_manage_users_denied if denied("user", "manage_users", needs_admin)
test_cell_user_create_project_denied if denied("user", "create_project", needs_admin)
test_cell_user_configure_settings_denied if denied("user", "configure_settings", needs_admin)
test_cell_user_invite_users_denied if denied("user", "invite_users", needs_admin)
test_cell_user_monitor_recording_status_denied if denied("user", "monitor_recording_status", needs_admin)
test_cell_user_trigger_ml_pipeline_denied if denied("user", "trigger_ml_pipeline", needs_admin)
test_cell_user_review_analysis_results_denied if denied("user", "review_analysis_results", needs_admin)
test_cell_user_add_members_denied if denied("user", "add_members", needs_admin)

# process_sme, uipath-task-mining-automation-suite.txt: "Can view the project tab,
# but have no edit right to rename/archive/edit any project. Can select any project
# and will have access only to the Discovery results tab ... Has full edit right in
# visualizer ... Does not have access User Management tab"
test_cell_process_sme_access_task_mining_denied if denied("process_sme", "access_task_mining", user_or_admin)
test_cell_process_sme_install_desktop_app_denied if denied("process_sme", "install_desktop_app", needs_user)
test_cell_process_sme_record_denied if denied("process_sme", "record", needs_user)
test_cell_process_sme_view_projects_allowed if allowed("process_sme", "view_projects")
test_cell_process_sme_rename_project_denied if denied("process_sme", "rename_project", nobody("rename_project"))
test_cell_process_sme_archive_project_denied if denied("process_sme", "archive_project", nobody("archive_project"))
test_cell_process_sme_edit_project_denied if denied("process_sme", "edit_project", nobody("edit_project"))
test_cell_process_sme_view_discovery_results_allowed if allowed("process_sme", "view_discovery_results")
test_cell_process_sme_edit_visualizer_allowed if allowed("process_sme", "edit_visualizer")
test_cell_process_sme_manage_users_denied if denied("process_sme", "manage_users", needs_admin)
test_cell_process_sme_create_project_denied if denied("process_sme", "create_project", needs_admin)
test_cell_process_sme_configure_settings_denied if denied("process_sme", "configure_settings", needs_admin)
test_cell_process_sme_invite_users_denied if denied("process_sme", "invite_users", needs_admin)
test_cell_process_sme_monitor_recording_status_denied if denied("process_sme", "monitor_recording_status", needs_admin)
test_cell_process_sme_trigger_ml_pipeline_denied if denied("process_sme", "trigger_ml_pipeline", needs_admin)
test_cell_process_sme_review_analysis_results_denied if denied("process_sme", "review_analysis_results", needs_admin)
test_cell_process_sme_add_members_denied if denied("process_sme", "add_members", needs_admin)

# admin, uipath-task-mining-automation-suite.txt: "Can access Task Mining to create
# projects, configure settings, and invites Task Mining users to different projects.
# Can monitor the recording status ... can trigger a machine learning pipeline ...
# Can review the analysis results. Can add any missing members"
test_cell_admin_access_task_mining_allowed if allowed("admin", "access_task_mining")
test_cell_admin_install_desktop_app_denied if denied("admin", "install_desktop_app", needs_user)
test_cell_admin_record_denied if denied("admin", "record", needs_user)
test_cell_admin_view_projects_denied if denied("admin", "view_projects", needs_sme)
test_cell_admin_rename_project_denied if denied("admin", "rename_project", nobody("rename_project"))
test_cell_admin_archive_project_denied if denied("admin", "archive_project", nobody("archive_project"))
test_cell_admin_edit_project_denied if denied("admin", "edit_project", nobody("edit_project"))
test_cell_admin_view_discovery_results_denied if denied("admin", "view_discovery_results", needs_sme)
test_cell_admin_edit_visualizer_denied if denied("admin", "edit_visualizer", needs_sme)
test_cell_admin_manage_users_allowed if allowed("admin", "manage_users")
test_cell_admin_create_project_allowed if allowed("admin", "create_project")
test_cell_admin_configure_settings_allowed if allowed("admin", "configure_settings")
test_cell_admin_invite_users_allowed if allowed("admin", "invite_users")
test_cell_admin_monitor_recording_status_allowed if allowed("admin", "monitor_recording_status")
test_cell_admin_trigger_ml_pipeline_allowed if allowed("admin", "trigger_ml_pipeline")
test_cell_admin_review_analysis_results_allowed if allowed("admin", "review_analysis_results")
test_cell_admin_add_members_allowed if allowed("admin", "add_members")

# The catalog's actions are exactly the 17 of the vendor README.
test_catalog_actions if {
	object.keys(data.systems[sys].actions) == {
		"access_task_mining", "install_desktop_app", "record", "view_projects",
		"rename_project", "archive_project", "edit_project", "view_discovery_results",
		"edit_visualizer", "manage_users", "create_project", "configure_settings",
		"invite_users", "monitor_recording_status", "trigger_ml_pipeline",
		"review_analysis_results", "add_members",
	}
}

# Roles do not nest: holding all three gives the union, nothing more.
test_all_roles_union_only if {
	store := {
		"grants": layout.grants({"user:alice": object.union(
			{
				"r1": role_grant("r1", "user:alice", "user", tenant),
				"r2": role_grant("r2", "user:alice", "process_sme", tenant),
				"r3": role_grant("r3", "user:alice", "admin", tenant),
			},
			ml_grants("user:alice", admin_set),
		)}),
	}
	every a in {"rename_project", "archive_project", "edit_project"} {
		not decide(store, check(a, tenant, accepted)).allow
	}
	d := decide(store, check("access_task_mining", tenant, {}))
	d.allow
	{r.role | some r in d.reasons} == {"user", "admin"}
}

# ---- AI Center prerequisites ----

# Each prerequisite missing in turn: missing lists exactly the lacking one.
prereq_missing_in_turn(role, action, set) if {
	every p in set {
		d := decide(store_of(role, tenant, admin_set - {p}), check(action, tenant, {}))
		not d.allow
		d.reasons == []
		d.missing == [missing_perm(p)]
	}
}

# "This grants Task Mining administrators the ability to create and manage the
# lifecycle of AICenter projects and run ML pipelines."
test_prereq_trigger_ml_pipeline_each if prereq_missing_in_turn("admin", "trigger_ml_pipeline", admin_set)

test_prereq_create_project_each if prereq_missing_in_turn("admin", "create_project", admin_set)

# "This grants Task Mining subject matter experts the ability to review discovery results"
test_prereq_view_discovery_results_each if prereq_missing_in_turn("process_sme", "view_discovery_results", sme_set)

# "This grants Task Mining users the ability to upload recorded data to AICenter."
test_prereq_record_each if prereq_missing_in_turn("user", "record", recording_set)

# Exactly the documented set suffices.
test_prereq_sets_suffice if {
	decide(store_of("admin", tenant, admin_set), check("trigger_ml_pipeline", tenant, {})).allow
	decide(store_of("admin", tenant, admin_set), check("create_project", tenant, {})).allow
	decide(store_of("process_sme", tenant, sme_set), check("view_discovery_results", tenant, {})).allow
	decide(store_of("user", tenant, recording_set), check("record", tenant, {})).allow
}

# All missing: all listed.
test_prereq_all_missing if {
	d := decide(store_of("admin", tenant, set()), check("trigger_ml_pipeline", tenant, {}))
	not d.allow
	d.missing == missing_perms(admin_set)
	d2 := decide(store_of("process_sme", tenant, set()), check("view_discovery_results", p1, {}))
	d2.missing == missing_perms(sme_set)
}

# Actions without prerequisites need no AI Center permission.
test_no_prereq_actions_need_none if {
	decide(store_of("user", tenant, set()), check("install_desktop_app", tenant, {})).allow
	decide(store_of("process_sme", tenant, set()), check("edit_visualizer", tenant, {})).allow
	decide(store_of("admin", tenant, set()), check("configure_settings", tenant, {})).allow
}

# Prerequisites alone grant nothing: missing names the role only.
test_prereqs_alone_grant_nothing if {
	store := {"grants": layout.grants({"user:alice": ml_grants("user:alice", admin_set)})}
	needing := {
		"trigger_ml_pipeline": "admin",
		"create_project": "admin",
		"view_discovery_results": "process_sme",
		"record": "user",
	}
	every a, role in needing {
		d := decide(store, check(a, tenant, {}))
		not d.allow
		d.missing == [missing_role(role)]
	}
}

# Neither role nor prerequisites: both listed.
test_role_and_prereq_missing if {
	d := decide({"grants": layout.grants({})}, check("record", tenant, {}))
	d.missing == [missing_perm("ml_packages_view"), missing_role("user")]
}

# An AI Center permission of another user does not count.
test_prereq_of_other_user if {
	store := {
		"grants": layout.grants({
			"user:alice": {"r1": role_grant("r1", "user:alice", "user", tenant)},
			"user:bob": ml_grants("user:bob", recording_set),
		}),
	}
	decide(store, check("record", tenant, {})).missing == [missing_perm("ml_packages_view")]
}

# ---- add_members: "only if the member has been previously invited to the
# cloud platform as Automation User and has accepted the invite" ----

test_add_members_without_context if {
	d := decide(store_of("admin", tenant, set()), check("add_members", tenant, {}))
	not d.allow
	d.missing == [invite_condition]
}

test_add_members_context_false if {
	d := decide(store_of("admin", tenant, set()), check("add_members", tenant, {"member_accepted_invite": false}))
	d.missing == [invite_condition]
}

test_add_members_context_not_boolean if {
	not decide(store_of("admin", tenant, set()), check("add_members", tenant, {"member_accepted_invite": "true"})).allow
}

test_add_members_no_context_object if {
	d := decide(store_of("admin", tenant, set()), {"subject": "alice", "system": sys, "action": "add_members"})
	d.missing == [invite_condition]
}

test_add_members_accepted if {
	d := decide(store_of("admin", tenant, set()), check("add_members", tenant, accepted))
	d.allow
}

test_add_members_sme_with_context if {
	d := decide(store_of("process_sme", tenant, set()), check("add_members", tenant, {}))
	d.missing == [invite_condition, missing_role("admin")]
}

# ---- group-held grants ----

test_group_role_and_group_prereqs_stored if {
	store := {
		"grants": layout.grants({
			"group:admins": {"g1": role_grant("g1", "group:admins", "admin", tenant)},
			"group:ai": ml_grants("group:ai", admin_set),
		}),
		"memberships": {"alice": {"admins": true, "ai": true}},
		"groups": {"admins": {"alice": true}, "ai": {"alice": true}},
	}
	d := decide(store, check("trigger_ml_pipeline", tenant, {}))
	d.allow
	d.reasons == [{"kind": "role", "role": "admin", "scope": tenant, "via": "group:admins", "assignment": "g1"}]
}

test_group_role_asserted_prereq_direct if {
	store := {
		"grants": layout.grants({
			"group:sme": {"g1": role_grant("g1", "group:sme", "process_sme", tenant)},
			"user:alice": ml_grants("user:alice", sme_set),
		}),
	}
	d := decide(store, object.union(check("view_discovery_results", p1, {}), {"groups": ["sme"]}))
	d.allow
	d.reasons[0].via == "group:sme"
}

test_group_prereq_asserted_role_direct if {
	store := {
		"grants": layout.grants({
			"user:alice": {"r1": role_grant("r1", "user:alice", "user", tenant)},
			"group:rec": ml_grants("group:rec", recording_set),
		}),
	}
	decide(store, object.union(check("record", tenant, {}), {"groups": ["rec"]})).allow
	decide(store, check("record", tenant, {})).missing == [missing_perm("ml_packages_view")]
}

test_group_not_member if {
	store := {"grants": layout.grants({"group:admins": {"g1": role_grant("g1", "group:admins", "admin", tenant)}})}
	decide(store, check("configure_settings", tenant, {})).missing == [missing_role("admin")]
}

# ---- scopes ----

# A User at project scope holds the User capabilities on that project only.
test_project_user if {
	store := store_of("user", p1, recording_set)
	decide(store, check("record", p1, {})).allow
	decide(store, check("access_task_mining", p1, {})).allow
	d2 := decide(store, check("record", {"type": "project", "id": "p2"}, {}))
	d2.missing == [object.union(missing_role("user"), {"scope": {"type": "project", "id": "p2"}})]
	decide(store, check("record", tenant, {})).missing == [missing_role("user")]
}

# Service-level roles reach every project ("Can select any project").
test_service_role_covers_projects if {
	decide(store_of("process_sme", tenant, sme_set), check("view_discovery_results", p1, {})).allow
	decide(store_of("admin", tenant, admin_set), check("trigger_ml_pipeline", p1, {})).allow
}

# Process SME and Admin are missing at service scope even for a project check.
test_missing_role_scope_for_service_only_role if {
	d := decide({"grants": layout.grants({})}, check("edit_visualizer", p1, {}))
	d.missing == [missing_role("process_sme")]
}

# Service-only actions are denied at a project.
test_create_project_at_project_denied if {
	d := decide(store_of("admin", tenant, admin_set), check("create_project", p1, {}))
	not d.allow
	d.missing[0].kind == "condition"
}

test_unknown_action_error if {
	d := decide(store_of("admin", tenant, admin_set), check("delete_project", tenant, {}))
	not d.allow
	d.errors == [`unknown action "delete_project" for system "uipath-task-mining-suite"`]
}

# ---- writes ----

# write_store: root and the group tm-admins hold admin, sme holds process_sme.
write_store := {
	"grants": layout.grants({
		"user:root": {"a": role_grant("a", "user:root", "admin", tenant)},
		"user:sme": {"b": role_grant("b", "user:sme", "process_sme", tenant)},
		"group:tm-admins": {"c": role_grant("c", "group:tm-admins", "admin", tenant)},
	}),
}

# write is the verdict on w over write_store (a test helper, as decide).
write(w) := v if {
	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with input as w with data.store as write_store
}

assign_role(role, scope) := {
	"op": "assign",
	"assignment": {"subject": "user:bob", "system": sys, "role": role, "scope": scope},
}

test_write_roles_at_service if {
	every r in {"user", "process_sme", "admin"} {
		write(assign_role(r, tenant)) == {"violations": [], "forbidden": []}
	}
}

test_write_user_at_project if {
	write(assign_role("user", p1)) == {"violations": [], "forbidden": []}
}

# Process SME and Admin are service-wide only. (The generic write rule in
# policies/permatrix/admin refusing them at a project is currently never
# produced for roles, see the report; the decision ignores such a grant.)
test_sme_admin_service_only if {
	data.systems[sys].roles.process_sme.scopes == ["service"]
	data.systems[sys].roles.admin.scopes == ["service"]
	every r in {"process_sme", "admin"} {
		d := decide(store_of(r, p1, admin_set), check("configure_settings", p1, {}))
		not d.allow
		d2 := decide(store_of(r, p1, admin_set), check("view_projects", p1, {}))
		not d2.allow
	}
}

test_write_permission_refused if {
	v := write({
		"op": "assign",
		"assignment": {"subject": "user:bob", "system": sys, "permission": "record", "scope": tenant},
	})
	count(v.violations) > 0
}

# Delegation: "Does not have access User Management tab to add any users to
# Task Mining service." / Admin "Can add any missing members".
test_write_by_admin_actor if {
	write(object.union(assign_role("process_sme", tenant), {"actor": "root"})).forbidden == []
}

test_write_by_group_admin_actor if {
	write(object.union(assign_role("admin", tenant), {"actor": "carol", "groups": ["tm-admins"]})).forbidden == []
}

# not_admin is the refusal of a role change by actor, not a Task Mining Admin.
not_admin(actor) := concat("", [actor, " may not change Task Mining roles: only a Task Mining Admin manages users"])

test_write_by_sme_actor_forbidden if {
	write(object.union(assign_role("user", tenant), {"actor": "sme"})).forbidden == [not_admin("sme")]
}

test_unassign_by_non_admin_forbidden if {
	w := {"op": "unassign", "actor": "bob", "assignment": role_grant("b", "user:sme", "process_sme", tenant)}
	write(w).forbidden == [not_admin("bob")]
}
