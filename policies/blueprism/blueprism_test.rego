# Tests of system blueprism: catalog, dependencies, derived actions,
# group-level access rights and the write rules, evaluated end to end
# through data.permatrix.decision and data.permatrix.admin.verdict.
package permatrix.systems.blueprism_test

import data.testing.layout

catalog := data.systems.blueprism

service := {"type": "service"}

pg(id) := {"type": "process_group", "id": id}

og(id) := {"type": "object_group", "id": id}

rg(id) := {"type": "resource_group", "id": id}

# --- store builders ----------------------------------------------------------

role(id, subject, name, scope) := {"id": id, "subject": subject, "system": "blueprism", "role": name, "scope": scope}

perm(id, subject, name, scope) := {
	"id": id, "subject": subject, "system": "blueprism",
	"permission": name, "scope": scope,
}

# lacking is a missing permission as a decision names it.
lacking(p, scp) := {"kind": "permission", "system": "blueprism", "permission": p, "scope": scp}

store(roles, assignments, memberships) := {
	"revision": 7,
	"roles": {"blueprism": {name: {"permissions": ps} | some name, ps in roles}},
	"grants": layout.grants_of(assignments),
	"memberships": memberships,
}

# holding: alice holds one role with permissions ps at service scope.
holding(ps) := store({"r": ps}, [role("a1", "user:alice", "r", service)], {})

# decide is the decision on alice's check against store st.
decide(st, action, resource, ctx) := d if {
	check := {"subject": "alice", "system": "blueprism", "action": action, "resource": resource, "context": ctx}

	# regal ignore:external-reference,with-outside-test-context
	d := data.permatrix.decision with input as check with data.store as st
}

allowed(st, action, resource, ctx) if decide(st, action, resource, ctx).allow

# allowed_alone is every action a custom role holding only p allows at
# service scope (the screen-capture setting on): permissions_test.rego.
# The store is replaced once for the 112 decisions, not once a decision
# (decide's `with data.store` each time): the same decisions, in a little
# over half of the time `opa test` spent on them.
allowed_alone(p) := s if {
	# regal ignore:external-reference,with-outside-test-context
	s := allowed_in_store with data.store as holding([p])
}

# allowed_in_store is every action alice's check allows at service scope
# under the data.store allowed_alone puts in place: this package's decision,
# which data.permatrix.decision is for these checks (valid inputs, and every
# Blue Prism action applies at service scope:
# test_alone_reads_as_the_decision). Its input checks and scope gate are
# tested in policies/testing; left out of these 10 640 decisions they cost
# `opa test --verbose` and `--coverage`, which trace every step, 99 → 37 s.
allowed_in_store contains a if {
	some a, _ in catalog.actions

	# regal ignore:external-reference,with-outside-test-context
	d := data.permatrix.systems.blueprism.decision with input as alone_check(a)
	d.allow
}

# allowed_in_store_by_permatrix is allowed_in_store by data.permatrix.decision.
allowed_in_store_by_permatrix contains a if {
	some a, _ in catalog.actions

	# regal ignore:external-reference,with-outside-test-context
	d := data.permatrix.decision with input as alone_check(a)
	d.allow
}

alone_check(a) := {
	"subject": "alice", "system": "blueprism", "action": a,
	"resource": service, "context": {"latest_screen_capture_allowed": true},
}

test_alone_reads_as_the_decision if {
	every p in ["edit_process", "create_process", "manage_process_access_rights"] {
		# regal ignore:external-reference,with-outside-test-context
		by_permatrix := allowed_in_store_by_permatrix with data.store as holding([p])
		count(by_permatrix) > 0
		by_permatrix == allowed_alone(p)
	}
}

# --- catalog -----------------------------------------------------------------

test_catalog_has_95_permissions if count(catalog.permissions) == 95

test_permission_ids_are_slugs_of_printed_names if {
	every id, p in catalog.permissions {
		id == trim(regex.replace(lower(p.name), `[^a-z0-9]+`, "_"), "_")
	}
}

test_examples_of_ids if {
	every id in [
		"create_edit_delete_tiles", "data_gateways_control_room", "audit_audit_logs",
		"business_objects_web_api_services", "system_scheduler", "security_user_roles",
	] {
		catalog.permissions[id]
	}
}

test_system_scheduler_is_one_permission_in_two_categories if {
	catalog.permissions.system_scheduler.categories == ["Scheduler", "System Manager"]
	count({id | some id, p in catalog.permissions; p.name == "System – Scheduler"}) == 1
}

test_every_permission_is_an_action_with_its_scopes if {
	every id, p in catalog.permissions {
		catalog.actions[id].scopes == p.scopes
		not catalog.actions[id].derived
	}
}

test_group_scopes_only_for_studios_and_resources if {
	{p.category | some p in catalog.permissions; count(p.scopes) > 1} == {"Process Studio", "Object Studio", "Resources"}
}

test_catalog_references_are_known_actions if {
	every _, cs in catalog.requires {
		every c in cs {
			every a in c {
				catalog.actions[a]
			}
		}
	}
	every _, implied in catalog.implies {
		every a in implied {
			catalog.permissions[a]
		}
	}
}

test_derived_actions if {
	every a in [
		"view_dashboard_tab", "step_into_process", "step_into_business_object",
		"retire_process", "retire_business_object", "unretire_process", "unretire_business_object",
	] {
		catalog.actions[a].derived
	}
	catalog.permissions.import_release
}

# --- grants, reasons, missing --------------------------------------------------

test_reason_names_role_scope_and_via if {
	d := decide(holding(["edit_process"]), "edit_process", service, {})
	d.allow
	d.reasons == [{"kind": "role", "role": "r", "scope": service, "via": "user:alice", "assignment": "a1"}]
	d.revision == 7
}

test_nothing_held_denies_with_missing_permission if {
	d := decide(store({}, [], {}), "edit_process", pg("g1"), {})
	not d.allow
	d.missing == [lacking("edit_process", pg("g1"))]
}

test_role_through_a_group if {
	st := store({"devs": ["execute_process"]}, [role("a1", "group:devs", "devs", service)], {"alice": {"devs": true}})
	d := decide(st, "execute_process", service, {})
	d.allow
	d.reasons[0].via == "group:devs"
}

test_asserted_group if {
	st := store({"devs": ["execute_process"]}, [role("a1", "group:idp", "devs", service)], {})
	check := {"subject": "alice", "system": "blueprism", "action": "execute_process", "groups": ["idp"]}
	d := data.permatrix.decision with input as check
		with data.store as st
	d.allow
}

test_direct_permission_at_service if {
	st := store({}, [perm("p1", "user:alice", "security_users", service)], {})
	d := decide(st, "security_users", service, {})
	d.allow
	d.reasons == [{
		"kind": "permission", "permission": "security_users", "scope": service,
		"via": "user:alice", "assignment": "p1",
	}]
}

test_undefined_role_holds_nothing if {
	st := store({}, [role("a1", "user:alice", "gone", service)], {})
	not allowed(st, "edit_process", service, {})
}

test_service_only_action_at_group_scope_is_denied if {
	d := decide(holding(["security_users"]), "security_users", pg("g1"), {})
	not d.allow
	d.missing[0].kind == "condition"
}

# --- group-level access rights narrow, never widen ------------------------------------

narrowed := store(
	{
		"developer": ["edit_process", "delete_process", "view_process_definition", "edit_business_object"],
		"g1_rights": ["edit_process", "execute_process", "view_process_definition"],
		"empty": [],
	},
	[
		role("a1", "user:alice", "developer", service),
		role("a2", "group:team", "g1_rights", pg("g1")),
		role("a3", "user:alice", "empty", og("o1")),
	],
	{"alice": {"team": true}},
)

test_group_rights_narrow if {
	not allowed(narrowed, "delete_process", pg("g1"), {})
	allowed(narrowed, "delete_process", pg("g2"), {})
	allowed(narrowed, "delete_process", service, {})
	not allowed(narrowed, "edit_business_object", og("o1"), {})
	allowed(narrowed, "edit_business_object", og("o2"), {})
}

test_group_rights_never_widen if {
	d := decide(narrowed, "execute_process", pg("g1"), {})
	not d.allow
	d.missing == [lacking("execute_process", pg("g1"))]
}

test_group_rights_reasons_name_both_grants if {
	d := decide(narrowed, "edit_process", pg("g1"), {})
	d.allow
	{[r.assignment, r.via] | some r in d.reasons} == {["a1", "user:alice"], ["a2", "group:team"]}
}

test_group_rights_of_another_type_or_group_do_not_apply if {
	st := store(
		{"dev": ["edit_process"], "none": []},
		[role("a1", "user:alice", "dev", service), role("a2", "user:alice", "none", og("g1"))],
		{},
	)
	allowed(st, "edit_process", pg("g1"), {})
}

test_group_role_alone_grants_nothing if {
	st := store({"dev": ["edit_process"]}, [role("a1", "user:alice", "dev", pg("g1"))], {})
	not allowed(st, "edit_process", pg("g1"), {})
	not allowed(st, "edit_process", service, {})
}

# Narrowing is of what the role allows, implications included. Edit Process:
# "Users with Create Process permission can create and edit processes, even
# if they don't have the Edit Process permission." (line 170); Manage
# Process Access Rights: "if a role allows a user to edit processes, that
# permission can be removed for a group" (line 194). A role holding Create
# Process allows editing; group rights on g1 that keep editing (Edit
# Process) leave it allowed there, and take creating away.
implied_narrowed := store(
	{"creator": ["create_process"], "g1_edit": ["edit_process"]},
	[role("a1", "user:alice", "creator", service), role("a2", "user:alice", "g1_edit", pg("g1"))],
	{},
)

test_group_rights_narrow_what_the_role_allows_implications_included if {
	d := decide(implied_narrowed, "edit_process", pg("g1"), {})
	d.allow
	{r.assignment | some r in d.reasons} == {"a1", "a2"}
	not allowed(implied_narrowed, "create_process", pg("g1"), {})
	allowed(implied_narrowed, "create_process", pg("g2"), {})
}

# The other way round: "If the role does not allow a user to delete
# processes, that permission cannot be granted for that role at group
# level." (line 194). A role allowing only editing cannot have Create
# Process granted on g1, so that group right gives nothing there, editing
# included (it is Create Process that would allow it).
ungrantable_on_group := store(
	{"editor": ["edit_process"], "g1_create": ["create_process"]},
	[role("a1", "user:alice", "editor", service), role("a2", "user:alice", "g1_create", pg("g1"))],
	{},
)

test_group_right_the_role_does_not_allow_gives_nothing if {
	not allowed(ungrantable_on_group, "edit_process", pg("g1"), {})
	not allowed(ungrantable_on_group, "create_process", pg("g1"), {})
	allowed(ungrantable_on_group, "edit_process", pg("g2"), {})
}

# A check on a group names the group. Group rights narrow what the role
# allows on one group ("if a role allows a user to edit processes, that
# permission can be removed for a group", line 194): on a group named by no
# id (absent, empty, not a string: the Data API takes any input) the rights
# in effect are unknown, and reading it as service scope allowed what every
# narrowed group denies. The entrypoint refuses such a check as an input
# error (as POST /v1/check's 400); the system's package, asked directly,
# denies it with a condition, as a project check without an id is in
# uipath-task-mining-cloud.
test_group_check_needs_resource_id if {
	unnamed := [{"type": "process_group"}, {"type": "process_group", "id": ""}, {"type": "process_group", "id": 7}]
	every resource in unnamed {
		d := decide(narrowed, "delete_process", resource, {})
		not d.allow
		count(d.errors) == 1
		own := decide_here(narrowed, "delete_process", resource)
		not own.allow
		own.missing == [unnamed_group("process_group")]
	}
	d := decide_here(narrowed, "edit_business_object", {"type": "object_group"})
	d.missing == [unnamed_group("object_group")]
}

# decide_here is this package's own decision of alice's check (decide asks
# the entrypoint, data.permatrix.decision).
decide_here(st, action, resource) := d if {
	check := {"subject": "alice", "system": "blueprism", "action": action, "resource": resource, "context": {}}

	# regal ignore:external-reference,with-outside-test-context
	d := data.permatrix.systems.blueprism.decision with input as check with data.store as st
}

# unnamed_group is the condition a check on a group of no id is denied with.
unnamed_group(t) := {
	"kind": "condition",
	"system": "blueprism",
	"message": sprintf("a check at scope type %q needs resource.id: the group whose access rights apply", [t]),
}
