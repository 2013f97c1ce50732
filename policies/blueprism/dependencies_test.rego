# Tests of the Blue Prism dependencies, exceptions and derived actions
# (helpers in blueprism_test.rego), end to end through data.permatrix.decision.
package permatrix.systems.blueprism_test

# --- dependencies ----------------------------------------------------------------

# Edit Process: "Users with Create Process permission can create and edit processes".
test_create_process_allows_edit_process if {
	allowed(holding(["create_process"]), "edit_process", pg("g1"), {})
	not allowed(holding(["edit_process"]), "create_process", service, {})
}

test_create_business_object_allows_edit_business_object if {
	allowed(holding(["create_business_object"]), "edit_business_object", og("o1"), {})
	not allowed(holding(["edit_business_object"]), "create_business_object", service, {})
}

# Execute: "Execute does not automatically grant permission to view definitions".
test_execute_is_not_view if {
	not allowed(holding(["execute_process"]), "view_process_definition", service, {})
	not allowed(holding(["execute_business_object"]), "view_business_object_definition", service, {})
}

# View Definition: "Users can view a process but cannot run or edit it."
test_view_definition_is_not_run_or_edit if {
	every a in ["execute_process", "edit_process", "step_into_process"] {
		not allowed(holding(["view_process_definition"]), a, service, {})
	}
	every a in ["execute_business_object", "edit_business_object", "step_into_business_object"] {
		not allowed(holding(["view_business_object_definition"]), a, service, {})
	}
}

test_step_into_process if {
	d := decide(holding(["execute_process"]), "step_into_process", service, {})
	not d.allow
	d.missing == [{
		"kind": "permission", "system": "blueprism", "permission": "view_process_definition",
		"scope": service, "any_of": ["view_process_definition", "edit_process"],
	}]
	allowed(holding(["execute_process", "view_process_definition"]), "step_into_process", service, {})
	allowed(holding(["execute_process", "edit_process"]), "step_into_process", service, {})
	allowed(holding(["execute_process", "create_process"]), "step_into_process", service, {})
	not allowed(holding(["view_process_definition", "edit_process"]), "step_into_process", service, {})
}

test_step_into_business_object if {
	not allowed(holding(["execute_business_object"]), "step_into_business_object", og("o1"), {})
	ps := ["execute_business_object", "view_business_object_definition"]
	allowed(holding(ps), "step_into_business_object", og("o1"), {})
	allowed(holding(["execute_business_object", "edit_business_object"]), "step_into_business_object", service, {})
}

test_view_dashboard_tab if {
	every p in [
		"view_dashboards", "design_global_dashboards",
		"design_personal_dashboards", "design_published_dashboards",
	] {
		allowed(holding([p]), "view_dashboard_tab", service, {})
	}
	d := decide(holding(["create_edit_delete_tiles"]), "view_dashboard_tab", service, {})
	not d.allow
	count(d.missing[0].any_of) == 4
}

test_queue_read_vs_full if {
	allowed(holding(["full_access_to_queue_management"]), "read_access_to_queue_management", service, {})
	not allowed(holding(["read_access_to_queue_management"]), "full_access_to_queue_management", service, {})
}

test_web_connection_settings_needs_web_api_services if {
	a := "business_objects_web_connection_settings"
	d := decide(holding([a]), a, service, {})
	not d.allow
	d.missing == [lacking("business_objects_web_api_services", service)]
	allowed(holding([a, "business_objects_web_api_services"]), a, service, {})
}

test_encryption_schemes_view_vs_manage if {
	manage := "security_manage_encryption_schemes"
	view := "security_view_encryption_scheme_configuration"
	not allowed(holding([view]), manage, service, {})
	not allowed(holding([manage]), manage, service, {})
	allowed(holding([manage, view]), manage, service, {})
	allowed(holding([view]), view, service, {})
}

test_environment_variables if {
	configure := "business_objects_configure_environment_variables"
	view := "business_objects_view_environment_variables"
	allowed(holding([configure]), view, service, {})
	not allowed(holding([view]), configure, service, {})
	processes := holding(["processes_configure_environment_variables"])
	not allowed(processes, "processes_view_environment_variables", service, {})
}

test_unused_permissions_allow_nothing if {
	unused := ["audit_view_design_control", "processes_grouping", "processes_view_environment_variables"]
	st := holding(unused)
	every a, _ in catalog.actions {
		not allowed(st, a, service, {})
	}
	d := decide(st, "processes_grouping", service, {})
	d.missing[0].kind == "condition"
	contains(d.missing[0].message, "superseded by the Edit Process Groups")
}

test_unused_even_with_everything_else if {
	st := holding([p | some p, _ in catalog.permissions])
	every p in ["audit_view_design_control", "processes_grouping", "processes_view_environment_variables"] {
		not allowed(st, p, service, {})
	}
	allowed(st, "audit_configure_design_controls", service, {})
}

test_data_gateways_advanced_includes_configuration if {
	allowed(holding(["data_gateways_advanced_configuration"]), "data_gateways_configuration", service, {})
	not allowed(holding(["data_gateways_configuration"]), "data_gateways_advanced_configuration", service, {})
}

test_skill_view_vs_manage if {
	allowed(holding(["manage_skill"]), "view_skill", service, {})
	not allowed(holding(["view_skill"]), "manage_skill", service, {})
}

# --- imports -------------------------------------------------------------------

test_import_kind_permissions_need_import_release if {
	every p in ["import_global_dashboard", "import_published_dashboard", "import_tile", "import_skill"] {
		d := decide(holding([p]), p, service, {})
		d.missing == [lacking("import_release", service)]
		allowed(holding([p, "import_release"]), p, service, {})
	}
}

test_import_release_alone if {
	allowed(holding(["import_release"]), "import_release", service, {})
	allowed(holding(["import_release"]), "import_release", service, {"release_contains": [], "overwrite_existing": []})
}

test_import_release_needs_each_kind if {
	every k, perm in {
		"process": "import_process", "business_object": "import_business_object",
		"global_dashboard": "import_global_dashboard", "published_dashboard": "import_published_dashboard",
		"tile": "import_tile", "skill": "import_skill",
	} {
		d := decide(holding(["import_release"]), "import_release", service, {"release_contains": [k]})
		d.missing == [{"kind": "permission", "system": "blueprism", "permission": perm, "scope": service}]
		allowed(holding(["import_release", perm]), "import_release", service, {"release_contains": [k]})
	}
}

test_import_release_all_kinds if {
	kinds := ["process", "business_object", "global_dashboard", "published_dashboard", "tile", "skill"]
	ps := [
		"import_release", "import_process", "import_business_object", "import_global_dashboard",
		"import_published_dashboard", "import_tile", "import_skill",
	]
	allowed(holding(ps), "import_release", service, {"release_contains": kinds})
	d := decide(holding(["import_release", "import_tile"]), "import_release", service, {"release_contains": kinds})
	count(d.missing) == 5
}

test_import_release_overwrite_needs_edit if {
	ctx := {"release_contains": ["process", "business_object"], "overwrite_existing": ["process", "business_object"]}
	base := ["import_release", "import_process", "import_business_object"]
	d := decide(holding(base), "import_release", service, ctx)
	{m.permission | some m in d.missing} == {"edit_process", "edit_business_object"}
	allowed(holding(array.concat(base, ["edit_process", "edit_business_object"])), "import_release", service, ctx)
	allowed(holding(array.concat(base, ["create_process", "create_business_object"])), "import_release", service, ctx)
}

test_import_release_overwrite_implies_contained if {
	ctx := {"overwrite_existing": ["process"]}
	d := decide(holding(["import_release", "edit_process"]), "import_release", service, ctx)
	{m.permission | some m in d.missing} == {"import_process"}
}

test_import_release_overwrite_true if {
	ctx := {"overwrite_existing": true, "release_contains": ["process"]}
	d := decide(holding(["import_release", "import_process", "import_business_object"]), "import_release", service, ctx)
	{m.permission | some m in d.missing} == {"edit_process"}
}

test_import_process_overwrite if {
	allowed(holding(["import_process"]), "import_process", pg("g1"), {})
	every ctx in [{"overwrite_existing": true}, {"overwrite_existing": ["process"]}] {
		d := decide(holding(["import_process"]), "import_process", service, ctx)
		d.missing == [lacking("edit_process", service)]
		allowed(holding(["import_process", "edit_process"]), "import_process", service, ctx)
	}
	allowed(holding(["import_process"]), "import_process", service, {"overwrite_existing": ["business_object"]})
}

# An unknown kind in overwrite_existing is malformed, for import_process and
# import_business_object as for import_release: ["proces"] (meant "process")
# was read as "overwrites nothing", so the import was allowed without Edit
# Process, which Import Process requires "to overwrite that process during
# import" (line 190).
test_import_process_unknown_overwrite_kind if {
	every a in ["import_process", "import_business_object"] {
		d := decide(holding([a]), a, service, {"overwrite_existing": ["proces"]})
		not d.allow
		count(d.missing) == 1
		d.missing[0].kind == "condition"
		startswith(d.missing[0].message, "unknown kind proces in context.overwrite_existing (known: process, ")
	}
}

test_import_business_object_overwrite if {
	not allowed(holding(["import_business_object"]), "import_business_object", service, {"overwrite_existing": true})
	ps := ["import_business_object", "create_business_object"]
	allowed(holding(ps), "import_business_object", og("o1"), {"overwrite_existing": true})
}

test_import_release_bad_context if {
	st := holding(["import_release"])
	every ctx in [
		{"release_contains": "process"},
		{"release_contains": ["robot"]},
		{"overwrite_existing": "process"},
		{"overwrite_existing": ["robot"]},
	] {
		d := decide(st, "import_release", service, ctx)
		not d.allow
		d.missing[0].kind == "condition"
	}
	not allowed(holding(["import_process"]), "import_process", service, {"overwrite_existing": 1})
}

# --- groups, retire, move ----------------------------------------------------------

test_retire_and_unretire_process if {
	every a in ["retire_process", "unretire_process"] {
		d := decide(holding(["edit_process_groups"]), a, pg("g1"), {})
		d.missing == [lacking("manage_process_access_rights", pg("g1"))]
		not allowed(holding(["manage_process_access_rights"]), a, service, {})
		allowed(holding(["edit_process_groups", "manage_process_access_rights"]), a, pg("g1"), {})
	}
}

test_retire_and_unretire_business_object if {
	every a in ["retire_business_object", "unretire_business_object"] {
		not allowed(holding(["edit_object_groups"]), a, og("o1"), {})
		not allowed(holding(["manage_business_object_access_rights"]), a, og("o1"), {})
		allowed(holding(["edit_object_groups", "manage_business_object_access_rights"]), a, og("o1"), {})
	}
}

test_move_group_needs_rights_on_target if {
	st := store(
		{"dev": ["edit_process_groups", "edit_object_groups"], "ro": ["execute_process"]},
		[role("a1", "user:alice", "dev", service), role("a2", "user:alice", "ro", pg("locked"))],
		{},
	)
	allowed(st, "move_process_group", pg("g1"), {"target_group": "g2"})
	d := decide(st, "move_process_group", pg("g1"), {"target_group": "locked"})
	d.missing == [lacking("edit_process_groups", pg("locked"))]
	allowed(st, "move_object_group", og("o1"), {"target_group": "locked"})
	m := decide(st, "move_process_group", pg("g1"), {})
	m.missing[0].kind == "condition"
}

# The target group is a group: "if they have the appropriate access rights
# to the target folder" (line 174). An empty target_group names no group
# whose rights could be read; it was read as one without group rights, so a
# user narrowed on every group was allowed to move into it.
test_move_needs_a_named_target_group if {
	st := store(
		{"dev": ["edit_process_groups"], "none": []},
		[role("a1", "user:alice", "dev", service), role("a2", "user:alice", "none", pg("g2"))],
		{},
	)
	d := decide(st, "move_process_group", pg("g1"), {"target_group": ""})
	not d.allow
	d.missing == [{
		"kind": "condition",
		"system": "blueprism",
		"message": "move_process_group needs context.target_group: the id of the process_group it is moved into",
	}]
}

# A move's two clauses (the group moved and the target group) are judged
# each on its own scope: group-level rights narrow only the scope they are
# on, and a reason is a grant covering a clause's scope that holds a
# permission meeting it (Edit Process Groups: "the appropriate access
# rights to the target folder"; Manage Process Access Rights: group rights
# narrow the role's).
test_move_judges_each_clause_on_its_own_scope if {
	st := store(
		{"dev": ["edit_process_groups"], "none": []},
		[
			role("a1", "user:alice", "dev", service),
			role("a2", "group:team", "dev", pg("g1")),
			role("a3", "user:alice", "none", pg("g2")),
			role("a4", "user:alice", "dev", pg("g3")),
		],
		{"alice": {"team": true}},
	)
	denied := decide(st, "move_process_group", pg("g1"), {"target_group": "g2"})
	not denied.allow
	denied.missing == [lacking("edit_process_groups", pg("g2"))]
	same := decide(st, "move_process_group", pg("g1"), {"target_group": "g1"})
	same.allow
	{r.assignment | some r in same.reasons} == {"a1", "a2"}
	other := decide(st, "move_process_group", pg("g1"), {"target_group": "g3"})
	other.allow
	{[r.assignment, r.via] | some r in other.reasons} == {["a1", "user:alice"], ["a2", "group:team"], ["a4", "user:alice"]}
}

# --- scheduler, alerts, roles screen, screen captures ---------------------------------

test_retire_schedule_needs_shortcut_menu if {
	d := decide(holding(["retire_schedule"]), "retire_schedule", service, {})
	d.missing == [lacking("edit_schedule", service)]
	allowed(holding(["retire_schedule", "edit_schedule"]), "retire_schedule", service, {})
	allowed(holding(["retire_schedule"]), "unretire_schedule", service, {})
	allowed(holding(["create_schedule"]), "unretire_schedule", service, {})
	not allowed(holding(["edit_schedule"]), "unretire_schedule", service, {})
}

test_schedule_shortcut_menu if {
	every a in ["schedule_shortcut_menu", "run_schedule_now", "clone_schedule"] {
		allowed(holding(["edit_schedule"]), a, service, {})
		not allowed(holding(["create_schedule", "retire_schedule", "delete_schedule", "view_schedule"]), a, service, {})
	}
	allowed(holding(["delete_schedule"]), "delete_schedule", service, {})
	not allowed(holding(["delete_schedule"]), "delete_schedule_from_shortcut_menu", service, {})
	allowed(holding(["delete_schedule", "edit_schedule"]), "delete_schedule_from_shortcut_menu", service, {})
}

test_process_alerts_from_users_screen_need_security_users if {
	every p, a in {
		"configure_process_alerts": "configure_process_alerts_from_users_screen",
		"subscribe_to_process_alerts": "subscribe_to_process_alerts_from_users_screen",
	} {
		allowed(holding([p]), p, service, {})
		d := decide(holding([p]), a, service, {})
		d.missing == [lacking("security_users", service)]
		allowed(holding([p, "security_users"]), a, service, {})
	}
}

test_manage_roles_from_users_screen if {
	not allowed(holding(["security_user_roles"]), "manage_roles_from_users_screen", service, {})
	allowed(holding(["security_user_roles", "security_users"]), "manage_roles_from_users_screen", service, {})
}

test_screen_captures_need_the_setting if {
	st := holding(["view_resource_screen_captures"])
	d := decide(st, "view_resource_screen_captures", rg("r1"), {})
	not d.allow
	d.missing[0].kind == "condition"
	not allowed(st, "view_resource_screen_captures", service, {"latest_screen_capture_allowed": false})
	allowed(st, "view_resource_screen_captures", rg("r1"), {"latest_screen_capture_allowed": true})
}
