# METADATA
# title: UiPath Task Mining (cloud roles) tests
# description: |
#   End to end through data.permatrix (dispatch) and data.permatrix.admin.
#   Source: shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt.
#   The helpers, then the footnotes, groups, creators and Unassisted
#   projects. One test per cell of both tables (test_cell_*):
#   task_mining_cloud_service_cells_test.rego and
#   task_mining_cloud_project_cells_test.rego; delegation, registering and
#   scope violations: task_mining_cloud_writes_test.rego.
package uipath_task_mining_cloud_test

import data.permatrix
import data.testing.layout

sys := "uipath-task-mining-cloud"

p1 := {"type": "project", "id": "p1"}

p2 := {"type": "project", "id": "p2"}

service := {"type": "service"}

# ---------------------------------------------------------------------------
# Helpers

role_at(id, subject, role, scope) := {"id": id, "subject": subject, "system": sys, "role": role, "scope": scope}

# store builds data.store from assignments, memberships and this system's projects.
store(assignments, memberships, projects) := {
	"revision": 7,
	"grants": layout.grants_of(assignments),
	"memberships": memberships,
	"groups": {},
	"projects": {sys: projects},
}

# p1 was created by alice, p2 by zoe; u1 is an Unassisted project created by zoe.
projects := {
	"p1": {"created_by": "alice", "kind": "assisted"},
	"p2": {"created_by": "zoe", "kind": "assisted"},
	"u1": {"created_by": "zoe", "kind": "unassisted"},
}

check(user, action, resource, ctx) := {
	"subject": user,
	"system": sys,
	"action": action,
	"resource": resource,
	"context": ctx,
}

# decide is the decision for in_ over store st. A test helper: Regal counts
# only test_ rules as test context, but with is what it is for.
decide(st, in_) := d if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as st with input as in_
}

catalog := data.systems[sys]

# cell_store[role] is alice holding role where its table puts it
# (service-level roles at service scope, project-level roles on p1, which
# alice created).
cell_store[role] := store([role_at("a1", "user:alice", role, scope)], {}, projects) if {
	some role, r in catalog.roles
	scope := {"service": service, "project": p1}[r.scopes[0]]
}

# cell_resource[action] is p1, or service for the actions the catalog does
# not tie to a project (プロジェクトの作成, ダウンロード ページの表示).
cell_resource[action] := {true: p1, false: service}["project" in a.scopes] if some action, a in catalog.actions

# cell is the decision for alice holding role where its table puts it,
# checked on cell_resource[action].
cell(role, action) := decide(
	cell_store[role],
	check("alice", action, cell_resource[action], {"role": "business_analyst"}),
)

# cell_allows: the cell is はい for role (allowed by role); cell_denies: いいえ.
cell_allows(role, action) if allowed_by(cell(role, action), role)

cell_denies(role, action) if denied(cell(role, action))

allowed_by(d, role) if {
	d.allow == true
	d.missing == []
	some r in d.reasons
	r.role == role
}

denied(d) if {
	d.allow == false
	d.reasons == []
	count(d.missing) > 0
}

has_condition(d, text) if {
	some m in d.missing
	m.kind == "condition"
	contains(m.message, text)
}

has_missing_role(d, role, scope) if {
	some m in d.missing
	m.kind == "role"
	m.role == role
	m.scope == scope
}

# team: alice project_admin on p2 and u1, bea business_analyst on p2 and u1,
# rick recording_user on p2, carl project_creator, ada administrator.
team := store(
	[
		role_at("a1", "user:alice", "project_admin", p2),
		role_at("a2", "user:alice", "project_admin", {"type": "project", "id": "u1"}),
		role_at("a3", "user:bea", "business_analyst", p2),
		role_at("a4", "user:bea", "business_analyst", {"type": "project", "id": "u1"}),
		role_at("a5", "user:rick", "recording_user", p2),
		role_at("a6", "user:carl", "project_creator", service),
		role_at("a7", "user:ada", "administrator", service),
	],
	{},
	object.union(projects, {"c1": {"created_by": "carl", "kind": "assisted"}}),
)

# ---------------------------------------------------------------------------
# Service-level footnote *: "*) この権限は、プロジェクト作成者が作成したプロジェクトにのみ適用されます。"

test_project_creator_denied_on_project_of_another if {
	d := decide(team, check("carl", "read_project", p2, {}))
	denied(d)
	has_condition(d, "apply only to projects the user created")
	has_missing_role(d, "administrator", service)
	has_missing_role(d, "project_admin", p2)
}

test_project_creator_allowed_on_own_project if {
	d := decide(team, check("carl", "delete_project", {"type": "project", "id": "c1"}, {}))
	allowed_by(d, "project_creator")
	some r in d.reasons
	r == {"kind": "role", "role": "project_creator", "scope": service, "via": "user:carl", "assignment": "a6"}
}

test_project_creator_denied_on_unregistered_project if {
	d := decide(team, check("carl", "read_project", {"type": "project", "id": "nope"}, {}))
	denied(d)
	has_condition(d, "\"nope\" was not created by \"carl\"")
}

test_project_creator_starred_rights_not_at_service_scope if {
	d := decide(team, check("carl", "read_project", service, {}))
	denied(d)
	has_missing_role(d, "administrator", service)
}

test_project_creator_unstarred_rights_at_service_scope if {
	allowed_by(decide(team, check("carl", "create_project", service, {})), "project_creator")
	allowed_by(decide(team, check("carl", "view_download_page", service, {})), "project_creator")
}

# Creator rights come from created_by: the creator without project_creator
# holds no はい* right (the project_admin the server gives is a stored assignment).
test_creator_without_project_creator_role if {
	d := decide(store([], {}, projects), check("alice", "read_project", p1, {}))
	denied(d)
	has_missing_role(d, "project_creator", service)
}

# "新しい Task Mining プロジェクトを作成する管理者またはプロジェクト作成者には、作成される
# プロジェクトに対するプロジェクト レベルのプロジェクト管理者ロールが自動的に割り当てられます。"
test_catalog_creator_role if data.systems[sys].creator_role == "project_admin"

test_creator_with_server_given_project_admin if {
	st := store([role_at("c1", "user:alice", "project_admin", p1)], {}, projects)
	allowed_by(decide(st, check("alice", "update_project", p1, {})), "project_admin")
}

# ---------------------------------------------------------------------------
# Project-level footnote * and the definition of a project-level role.

test_project_role_only_on_its_project if {
	d := decide(team, check("alice", "read_project", p1, {}))
	denied(d)
	has_missing_role(d, "project_admin", p1)
	has_missing_role(d, "business_analyst", p1)
}

test_project_role_not_at_service_scope if {
	d := decide(team, check("alice", "read_project", service, {}))
	denied(d)
	has_missing_role(d, "administrator", service)
	not has_missing_role(d, "project_admin", service)
}

# A project check without an id is an input error of the entrypoint (as
# POST /v1/check's 400); the system's package, asked directly, denies it
# too, with a condition.
test_project_check_needs_id if {
	no_id := check("alice", "read_project", {"type": "project"}, {})
	d := decide(team, no_id)
	not d.allow
	d.errors == [`resource.id is required for resource.type "project": 1 to 256 bytes without control characters`]

	# regal ignore:with-outside-test-context
	own := permatrix.systems.uipath_task_mining_cloud.decision with data.store as team with input as no_id
	denied(own)
	has_condition(own, "needs resource.id")
}

# ダウンロード ページの表示 is not tied to a project: a project role on any project counts.
test_download_page_with_project_role_anywhere if {
	d := decide(team, check("rick", "view_download_page", service, {}))
	allowed_by(d, "recording_user")
}

test_download_page_denied_without_role if {
	d := decide(team, check("nobody", "view_download_page", service, {}))
	denied(d)
	has_missing_role(d, "recording_user", {"type": "project"})
	has_missing_role(d, "administrator", service)
}

test_download_page_not_at_project_scope if {
	d := decide(team, check("rick", "view_download_page", p2, {}))
	denied(d)
	has_condition(d, "applies at scope types service")
}

test_no_role_contributes_at_service_scope if {
	d := decide(team, check("rick", "contribute_data", service, {}))
	denied(d)
	has_condition(d, "no role allows contribute_data")
}

# ---------------------------------------------------------------------------
# Footnote **: "**) ビジネス アナリストは、ビジネス アナリスト ロールのみを割り当てることができます。"

test_business_analyst_assigns_business_analyst if {
	allowed_by(decide(team, check("bea", "assign_roles", p2, {"role": "business_analyst"})), "business_analyst")
}

test_business_analyst_may_not_assign_recording_user if {
	d := decide(team, check("bea", "assign_roles", p2, {"role": "recording_user"}))
	denied(d)
	has_condition(d, "may assign only business_analyst")
	has_missing_role(d, "project_admin", p2)
	not has_missing_role(d, "business_analyst", p2)
}

test_business_analyst_needs_context_role if {
	d := decide(team, check("bea", "assign_roles", p2, {}))
	denied(d)
	has_condition(d, "context.role must name the role being assigned (got none)")
}

test_project_admin_assigns_any_project_role if {
	every r in ["project_admin", "business_analyst", "recording_user"] {
		allowed_by(decide(team, check("alice", "assign_roles", p2, {"role": r})), "project_admin")
	}
	allowed_by(decide(team, check("alice", "assign_roles", p2, {})), "project_admin")
}

test_assign_roles_role_must_fit_scope if {
	d := decide(team, check("alice", "assign_roles", p2, {"role": "administrator"}))
	denied(d)
	has_condition(d, "not a role of uipath-task-mining-cloud assignable at scope type \"project\"")
	denied(decide(team, check("ada", "assign_roles", service, {"role": "project_admin"})))
	denied(decide(team, check("ada", "assign_roles", p2, {"role": "owner"})))
	allowed_by(decide(team, check("ada", "assign_roles", service, {"role": "administrator"})), "administrator")
}

# ---------------------------------------------------------------------------
# Footnote ***: "***) 読み取り専用です。" (プロジェクト管理者, アクセス権を管理する)

test_project_admin_access_is_read_only if {
	d := decide(team, check("alice", "manage_access", p2, {}))
	denied(d)
	has_condition(d, "read-only")
	allowed_by(decide(team, check("alice", "view_access", p2, {})), "project_admin")
}

test_view_access_follows_manage_access if {
	allowed_by(decide(team, check("ada", "view_access", service, {})), "administrator")
	allowed_by(decide(team, check("carl", "view_access", {"type": "project", "id": "c1"}, {})), "project_creator")
	denied(decide(team, check("carl", "view_access", p2, {})))
	denied(decide(team, check("bea", "view_access", p2, {})))
	denied(decide(team, check("alice", "view_access", service, {})))
}

# ---------------------------------------------------------------------------
# Groups: "ロールをグループに割り当てると、グループ内のすべてのユーザーがロールを継承します。"

group_store := store([role_at("g1", "group:analysts", "business_analyst", p1)], {"alice": {"analysts": true}}, projects)

test_group_role_stored_membership if {
	d := decide(group_store, check("alice", "view_discovery_results", p1, {}))
	allowed_by(d, "business_analyst")
	some r in d.reasons
	r.via == "group:analysts"
}

test_group_role_asserted_membership if {
	in_ := object.union(check("bob", "view_discovery_results", p1, {}), {"groups": ["analysts"]})
	d := decide(group_store, in_)
	allowed_by(d, "business_analyst")
	some r in d.reasons
	r.via == "group:analysts"
}

test_group_role_not_for_non_members if {
	denied(decide(group_store, check("bob", "view_discovery_results", p1, {})))
}

# "既定では、Administrators グループのユーザーには、管理者ロールが割り当てられます。"
test_administrators_group_stored if {
	st := store([], {"dan": {"administrators": true}}, projects)
	d := decide(st, check("dan", "delete_project", p2, {}))
	allowed_by(d, "administrator")
	some r in d.reasons
	r.role == "administrator"
	r.via == "group:administrators"
	r.scope == service
	r["default"]
	not r.assignment
}

test_administrators_group_asserted if {
	in_ := object.union(check("dan", "create_project", service, {}), {"groups": ["administrators"]})
	allowed_by(decide(store([], {}, projects), in_), "administrator")
	in2 := object.union(check("dan", "contribute_data", p2, {}), {"groups": ["administrators"]})
	denied(decide(store([], {}, projects), in2))
}

test_other_group_not_administrator if {
	in_ := object.union(check("dan", "create_project", service, {}), {"groups": ["admins"]})
	denied(decide(store([], {}, projects), in_))
}

# "Administrator ロールには、既定でプロジェクト作成者ロールが含まれています。"
test_administrator_includes_project_creator if {
	st := store([role_at("a1", "user:alice", "administrator", service)], {}, projects)
	d := decide(st, check("alice", "read_project", p1, {}))
	allowed_by(d, "administrator")
	some r in d.reasons
	r.role == "project_creator"
	r.implied_by == "administrator"
	r.assignment == "a1"
}

# ---------------------------------------------------------------------------
# Unassisted projects (decision): "Unassisted Task Mining プロジェクトにプロジェクト レベルの
# ロールを割り当てるには、プロジェクト管理者またはビジネス アナリストのロールが割り当てられている必要があります。"

u1 := {"type": "project", "id": "u1"}

test_unassisted_administrator_cannot_assign if {
	d := decide(team, check("ada", "assign_roles", u1, {"role": "recording_user"}))
	denied(d)
	has_condition(d, "Unassisted Task Mining project")
	has_missing_role(d, "project_admin", u1)
	allowed_by(decide(team, check("ada", "read_project", u1, {})), "administrator")
}

test_unassisted_project_admin_and_analyst if {
	allowed_by(decide(team, check("alice", "assign_roles", u1, {"role": "recording_user"})), "project_admin")
	allowed_by(decide(team, check("bea", "assign_roles", u1, {"role": "business_analyst"})), "business_analyst")
	denied(decide(team, check("bea", "assign_roles", u1, {"role": "project_admin"})))
}

# ---------------------------------------------------------------------------
# The catalog: every cell of both tables is transcribed.

test_catalog_complete if {
	cat := data.systems[sys]
	count(cat.rows) == 19
	every table, roles in cat.matrix {
		every role, cells in roles {
			cat.roles[role].scopes == [table]
			count(cells) == 19
			every r in cat.rows {
				cells[r.action] in {"yes", "yes*", "yes**", "yes***", "no"}
			}
		}
	}
	count(object.keys(cat.matrix.service)) + count(object.keys(cat.matrix.project)) == 5
}
