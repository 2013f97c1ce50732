# METADATA
# title: UiPath Task Mining (cloud roles) tests
# description: |
#   End to end through data.permatrix (dispatch) and data.permatrix.admin.
#   Source: shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt.
#   One test per cell of both tables (test_cell_*), then the footnotes,
#   groups, creators, delegation and scope violations.
package permatrix.systems.uipath_task_mining_cloud_test

import data.permatrix

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
	"subjects": {a.subject: {b.id: b | some b in assignments; b.subject == a.subject} | some a in assignments},
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

check(user, action, resource, ctx) := {"subject": user, "system": sys, "action": action, "resource": resource, "context": ctx}

decide(st, in_) := d if {
	d := permatrix.decision with data.store as st with input as in_
}

# cell is the decision for alice holding role where its table puts it
# (service-level roles at service scope, project-level roles on p1, which
# alice created), checked on p1, or at service scope for the actions the
# catalog does not tie to a project (プロジェクトの作成, ダウンロード ページの表示).
cell(role, action) := decide(st, check("alice", action, resource, {"role": "business_analyst"})) if {
	scope := {"service": service, "project": p1}[data.systems[sys].roles[role].scopes[0]]
	st := store([role_at("a1", "user:alice", role, scope)], {}, projects)
	resource := {true: p1, false: service}["project" in data.systems[sys].actions[action].scopes]
}

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

verdict(st, in_) := v if {
	v := permatrix.admin.verdict with data.store as st with input as in_
}

grant_req(actor, subject, role, scope) := {
	"op": "assign",
	"actor": actor,
	"assignment": {"subject": subject, "system": sys, "role": role, "scope": scope},
}

revoke_req(actor, subject, role, scope) := {
	"op": "unassign",
	"actor": actor,
	"assignment": {"id": "x1", "subject": subject, "system": sys, "role": role, "scope": scope},
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

forbidden_with(v, text) if {
	some f in v.forbidden
	contains(f, text)
}

ok(v) if {
	v.violations == []
	v.forbidden == []
}

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

test_project_check_needs_id if {
	d := decide(team, check("alice", "read_project", {"type": "project"}, {}))
	denied(d)
	has_condition(d, "needs resource.id")
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
	d := decide(store([], {}, projects), object.union(check("dan", "contribute_data", p2, {}), {"groups": ["administrators"]}))
	denied(d)
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
# Delegation (data.permatrix.admin.verdict, input.actor)

test_delegation_project_admin_assigns if {
	ok(verdict(team, grant_req("alice", "user:zed", "recording_user", p2)))
	ok(verdict(team, grant_req("alice", "group:g", "project_admin", p2)))
}

test_delegation_business_analyst_assigns_only_business_analyst if {
	ok(verdict(team, grant_req("bea", "user:zed", "business_analyst", p2)))
	v := verdict(team, grant_req("bea", "user:zed", "recording_user", p2))
	v.violations == []
	count(v.forbidden) == 1
	forbidden_with(v, "\"bea\" may not assign role \"recording_user\" at project \"p2\"")
	forbidden_with(v, "ビジネス アナリストは、ビジネス アナリスト ロールのみを割り当てることができます")
}

test_delegation_recording_user_cannot_assign if {
	v := verdict(team, grant_req("rick", "user:zed", "recording_user", p2))
	forbidden_with(v, "assigning project-level roles needs ロールを割り当てる")
}

test_delegation_project_role_on_other_project if {
	forbidden_with(verdict(team, grant_req("alice", "user:zed", "recording_user", p1)), "uipath-task-mining-cloud-roles.ja.txt")
}

test_delegation_administrator if {
	ok(verdict(team, grant_req("ada", "user:zed", "project_admin", p1)))
	ok(verdict(team, grant_req("ada", "user:zed", "administrator", service)))
	ok(verdict(team, grant_req("ada", "group:g", "project_creator", service)))
}

test_delegation_project_creator_own_project_only if {
	ok(verdict(team, grant_req("carl", "user:zed", "project_admin", {"type": "project", "id": "c1"})))
	forbidden_with(verdict(team, grant_req("carl", "user:zed", "project_admin", p2)), "Project Creator on a project it created")
}

test_delegation_service_roles_need_administrator if {
	v := verdict(team, grant_req("carl", "user:zed", "project_creator", service))
	forbidden_with(v, "at scope \"service\": only an Administrator assigns or removes service-level roles")
	forbidden_with(verdict(team, grant_req("alice", "user:zed", "administrator", service)), "only an Administrator")
}

test_delegation_actor_asserted_administrators_group if {
	in_ := object.union(grant_req("dan", "user:zed", "administrator", service), {"groups": ["administrators"]})
	ok(verdict(team, in_))
}

test_delegation_unassign if {
	ok(verdict(team, revoke_req("alice", "user:rick", "recording_user", p2)))
	ok(verdict(team, revoke_req("ada", "user:carl", "project_creator", service)))
	ok(verdict(team, revoke_req("carl", "user:zed", "business_analyst", {"type": "project", "id": "c1"})))
	v := verdict(team, revoke_req("bea", "user:rick", "recording_user", p2))
	forbidden_with(v, "\"bea\" may not unassign role \"recording_user\" at project \"p2\": removing role assignments needs ロールの割り当ての削除")
	forbidden_with(verdict(team, revoke_req("alice", "user:carl", "project_creator", service)), "only an Administrator")
}

test_delegation_unassisted if {
	v := verdict(team, grant_req("ada", "user:zed", "recording_user", u1))
	forbidden_with(v, "on an Unassisted Task Mining project only project_admin")
	ok(verdict(team, grant_req("alice", "user:zed", "project_admin", u1)))
	ok(verdict(team, grant_req("bea", "user:zed", "business_analyst", u1)))
	forbidden_with(verdict(team, grant_req("bea", "user:zed", "recording_user", u1)), "Unassisted")
}

test_delegation_unassisted_unassign_follows_table if {
	ok(verdict(team, revoke_req("ada", "user:bea", "business_analyst", u1)))
}

test_no_actor_no_delegation_rules if {
	in_ := {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "role": "administrator", "scope": service}}
	ok(verdict(team, in_))
}

# Registering a project: "既定では、新しい Task Mining プロジェクトを作成できるのは組織管理者のみです。"
register(actor) := {"op": "register_project", "actor": actor, "project": {"system": sys, "id": "n1", "created_by": actor, "kind": "assisted"}}

test_register_project_needs_create_project if {
	ok(verdict(team, register("carl")))
	ok(verdict(team, register("ada")))
	forbidden_with(verdict(team, register("alice")), "\"alice\" may not create project \"n1\": creating projects needs administrator or project_creator")
}

# ---------------------------------------------------------------------------
# Scope violations (generic, permatrix.admin) and nothing but roles assignable.

test_violation_project_role_at_service if {
	v := verdict(team, {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "role": "project_admin", "scope": service}})
	v.violations == ["\"project_admin\" cannot be assigned at scope \"service\" in system \"uipath-task-mining-cloud\" (allowed: project)"]
}

test_violation_service_role_on_project if {
	v := verdict(team, {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "role": "administrator", "scope": p1}})
	v.violations == ["\"administrator\" cannot be assigned at scope \"project\" in system \"uipath-task-mining-cloud\" (allowed: service)"]
}

test_violation_actions_not_assignable if {
	v := verdict(team, {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "permission": "read_project", "scope": p1}})
	count(v.violations) > 0
	v2 := verdict(team, {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "permission": "view_access", "scope": p1}})
	some m in v2.violations
	contains(m, "view_access is derived")
}

test_violation_unknown_role if {
	v := verdict(team, {"op": "assign", "assignment": {"subject": "user:zed", "system": sys, "role": "owner", "scope": p1}})
	v.violations == ["unknown role \"owner\" for system \"uipath-task-mining-cloud\""]
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

# ---------------------------------------------------------------------------
# One test per cell of both tables (generated from the document's tables).

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの作成 (create_project), column Administrator: はい
test_cell_service_administrator_create_project if allowed_by(cell("administrator", "create_project"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの読み込み (read_project), column Administrator: はい
test_cell_service_administrator_read_project if allowed_by(cell("administrator", "read_project"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの更新 (update_project), column Administrator: はい
test_cell_service_administrator_update_project if allowed_by(cell("administrator", "update_project"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトのアーカイブ (archive_project), column Administrator: はい
test_cell_service_administrator_archive_project if allowed_by(cell("administrator", "archive_project"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row TM プロジェクトの削除 (delete_project), column Administrator: はい
test_cell_service_administrator_delete_project if allowed_by(cell("administrator", "delete_project"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ロールを割り当てる (assign_roles), column Administrator: はい
test_cell_service_administrator_assign_roles if allowed_by(cell("administrator", "assign_roles"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ロールの割り当ての削除 (remove_role_assignments), column Administrator: はい
test_cell_service_administrator_remove_role_assignments if allowed_by(cell("administrator", "remove_role_assignments"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column Administrator: はい
test_cell_service_administrator_view_project_status if allowed_by(cell("administrator", "view_project_status"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの [チーム] タブの表示 (view_team_tab), column Administrator: はい
test_cell_service_administrator_view_team_tab if allowed_by(cell("administrator", "view_team_tab"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクト設定の表示 (view_project_settings), column Administrator: はい
test_cell_service_administrator_view_project_settings if allowed_by(cell("administrator", "view_project_settings"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクト設定の更新 (update_project_settings), column Administrator: はい
test_cell_service_administrator_update_project_settings if allowed_by(cell("administrator", "update_project_settings"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトへのデータの貢献 (contribute_data), column Administrator: いいえ
test_cell_service_administrator_contribute_data if denied(cell("administrator", "contribute_data"))

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column Administrator: はい
test_cell_service_administrator_start_stop_pause_recording_users if allowed_by(cell("administrator", "start_stop_pause_recording_users"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 分析の開始 (start_analysis), column Administrator: はい
test_cell_service_administrator_start_analysis if allowed_by(cell("administrator", "start_analysis"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の表示 (view_discovery_results), column Administrator: はい
test_cell_service_administrator_view_discovery_results if allowed_by(cell("administrator", "view_discovery_results"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の更新 (update_discovery_results), column Administrator: はい
test_cell_service_administrator_update_discovery_results if allowed_by(cell("administrator", "update_discovery_results"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の削除 (delete_discovery_results), column Administrator: はい
test_cell_service_administrator_delete_discovery_results if allowed_by(cell("administrator", "delete_discovery_results"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row アクセス権を管理する (manage_access), column Administrator: はい
test_cell_service_administrator_manage_access if allowed_by(cell("administrator", "manage_access"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ダウンロード ページの表示 (view_download_page), column Administrator: はい
test_cell_service_administrator_view_download_page if allowed_by(cell("administrator", "view_download_page"), "administrator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの作成 (create_project), column Project Creator: はい
test_cell_service_project_creator_create_project if allowed_by(cell("project_creator", "create_project"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの読み込み (read_project), column Project Creator: はい*
test_cell_service_project_creator_read_project if allowed_by(cell("project_creator", "read_project"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの更新 (update_project), column Project Creator: はい*
test_cell_service_project_creator_update_project if allowed_by(cell("project_creator", "update_project"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトのアーカイブ (archive_project), column Project Creator: はい*
test_cell_service_project_creator_archive_project if allowed_by(cell("project_creator", "archive_project"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row TM プロジェクトの削除 (delete_project), column Project Creator: はい*
test_cell_service_project_creator_delete_project if allowed_by(cell("project_creator", "delete_project"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ロールを割り当てる (assign_roles), column Project Creator: はい*
test_cell_service_project_creator_assign_roles if allowed_by(cell("project_creator", "assign_roles"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ロールの割り当ての削除 (remove_role_assignments), column Project Creator: はい*
test_cell_service_project_creator_remove_role_assignments if allowed_by(cell("project_creator", "remove_role_assignments"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column Project Creator: はい*
test_cell_service_project_creator_view_project_status if allowed_by(cell("project_creator", "view_project_status"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトの [チーム] タブの表示 (view_team_tab), column Project Creator: はい*
test_cell_service_project_creator_view_team_tab if allowed_by(cell("project_creator", "view_team_tab"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクト設定の表示 (view_project_settings), column Project Creator: はい*
test_cell_service_project_creator_view_project_settings if allowed_by(cell("project_creator", "view_project_settings"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクト設定の更新 (update_project_settings), column Project Creator: はい*
test_cell_service_project_creator_update_project_settings if allowed_by(cell("project_creator", "update_project_settings"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row プロジェクトへのデータの貢献 (contribute_data), column Project Creator: いいえ
test_cell_service_project_creator_contribute_data if denied(cell("project_creator", "contribute_data"))

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column Project Creator: はい*
test_cell_service_project_creator_start_stop_pause_recording_users if allowed_by(cell("project_creator", "start_stop_pause_recording_users"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 分析の開始 (start_analysis), column Project Creator: はい*
test_cell_service_project_creator_start_analysis if allowed_by(cell("project_creator", "start_analysis"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の表示 (view_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_view_discovery_results if allowed_by(cell("project_creator", "view_discovery_results"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の更新 (update_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_update_discovery_results if allowed_by(cell("project_creator", "update_discovery_results"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row 検出結果の削除 (delete_discovery_results), column Project Creator: はい*
test_cell_service_project_creator_delete_discovery_results if allowed_by(cell("project_creator", "delete_discovery_results"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row アクセス権を管理する (manage_access), column Project Creator: はい*
test_cell_service_project_creator_manage_access if allowed_by(cell("project_creator", "manage_access"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, サービス レベルのロール table, row ダウンロード ページの表示 (view_download_page), column Project Creator: はい
test_cell_service_project_creator_view_download_page if allowed_by(cell("project_creator", "view_download_page"), "project_creator")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの作成 (create_project), column プロジェクト管理者: いいえ
test_cell_project_project_admin_create_project if denied(cell("project_admin", "create_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの読み込み (read_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_read_project if allowed_by(cell("project_admin", "read_project"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの更新 (update_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_project if allowed_by(cell("project_admin", "update_project"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのアーカイブ (archive_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_archive_project if allowed_by(cell("project_admin", "archive_project"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row TM プロジェクトの削除 (delete_project), column プロジェクト管理者: はい*
test_cell_project_project_admin_delete_project if allowed_by(cell("project_admin", "delete_project"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールを割り当てる (assign_roles), column プロジェクト管理者: はい
test_cell_project_project_admin_assign_roles if allowed_by(cell("project_admin", "assign_roles"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールの割り当ての削除 (remove_role_assignments), column プロジェクト管理者: はい
test_cell_project_project_admin_remove_role_assignments if allowed_by(cell("project_admin", "remove_role_assignments"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_project_status if allowed_by(cell("project_admin", "view_project_status"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの [チーム] タブの表示 (view_team_tab), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_team_tab if allowed_by(cell("project_admin", "view_team_tab"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の表示 (view_project_settings), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_project_settings if allowed_by(cell("project_admin", "view_project_settings"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の更新 (update_project_settings), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_project_settings if allowed_by(cell("project_admin", "update_project_settings"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトへのデータの貢献 (contribute_data), column プロジェクト管理者: いいえ
test_cell_project_project_admin_contribute_data if denied(cell("project_admin", "contribute_data"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column プロジェクト管理者: はい
test_cell_project_project_admin_start_stop_pause_recording_users if allowed_by(cell("project_admin", "start_stop_pause_recording_users"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 分析の開始 (start_analysis), column プロジェクト管理者: はい*
test_cell_project_project_admin_start_analysis if allowed_by(cell("project_admin", "start_analysis"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の表示 (view_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_view_discovery_results if allowed_by(cell("project_admin", "view_discovery_results"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の更新 (update_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_update_discovery_results if allowed_by(cell("project_admin", "update_discovery_results"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の削除 (delete_discovery_results), column プロジェクト管理者: はい*
test_cell_project_project_admin_delete_discovery_results if allowed_by(cell("project_admin", "delete_discovery_results"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row アクセス権を管理する (manage_access), column プロジェクト管理者: はい***
test_cell_project_project_admin_manage_access if {
	denied(cell("project_admin", "manage_access"))
	allowed_by(cell("project_admin", "view_access"), "project_admin")
}

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ダウンロード ページの表示 (view_download_page), column プロジェクト管理者: はい
test_cell_project_project_admin_view_download_page if allowed_by(cell("project_admin", "view_download_page"), "project_admin")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの作成 (create_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_create_project if denied(cell("business_analyst", "create_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの読み込み (read_project), column ビジネス アナリスト: はい
test_cell_project_business_analyst_read_project if allowed_by(cell("business_analyst", "read_project"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの更新 (update_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_update_project if denied(cell("business_analyst", "update_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのアーカイブ (archive_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_archive_project if denied(cell("business_analyst", "archive_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row TM プロジェクトの削除 (delete_project), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_delete_project if denied(cell("business_analyst", "delete_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールを割り当てる (assign_roles), column ビジネス アナリスト: はい**
test_cell_project_business_analyst_assign_roles if allowed_by(cell("business_analyst", "assign_roles"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールの割り当ての削除 (remove_role_assignments), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_remove_role_assignments if denied(cell("business_analyst", "remove_role_assignments"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_project_status if allowed_by(cell("business_analyst", "view_project_status"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの [チーム] タブの表示 (view_team_tab), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_team_tab if allowed_by(cell("business_analyst", "view_team_tab"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の表示 (view_project_settings), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_project_settings if allowed_by(cell("business_analyst", "view_project_settings"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の更新 (update_project_settings), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_update_project_settings if denied(cell("business_analyst", "update_project_settings"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトへのデータの貢献 (contribute_data), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_contribute_data if denied(cell("business_analyst", "contribute_data"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_start_stop_pause_recording_users if denied(cell("business_analyst", "start_stop_pause_recording_users"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 分析の開始 (start_analysis), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_start_analysis if denied(cell("business_analyst", "start_analysis"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の表示 (view_discovery_results), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_discovery_results if allowed_by(cell("business_analyst", "view_discovery_results"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の更新 (update_discovery_results), column ビジネス アナリスト: はい
test_cell_project_business_analyst_update_discovery_results if allowed_by(cell("business_analyst", "update_discovery_results"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の削除 (delete_discovery_results), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_delete_discovery_results if denied(cell("business_analyst", "delete_discovery_results"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row アクセス権を管理する (manage_access), column ビジネス アナリスト: いいえ
test_cell_project_business_analyst_manage_access if denied(cell("business_analyst", "manage_access"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ダウンロード ページの表示 (view_download_page), column ビジネス アナリスト: はい
test_cell_project_business_analyst_view_download_page if allowed_by(cell("business_analyst", "view_download_page"), "business_analyst")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの作成 (create_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_create_project if denied(cell("recording_user", "create_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの読み込み (read_project), column 記録ユーザー: はい*
test_cell_project_recording_user_read_project if allowed_by(cell("recording_user", "read_project"), "recording_user")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの更新 (update_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_project if denied(cell("recording_user", "update_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのアーカイブ (archive_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_archive_project if denied(cell("recording_user", "archive_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row TM プロジェクトの削除 (delete_project), column 記録ユーザー: いいえ
test_cell_project_recording_user_delete_project if denied(cell("recording_user", "delete_project"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールを割り当てる (assign_roles), column 記録ユーザー: いいえ
test_cell_project_recording_user_assign_roles if denied(cell("recording_user", "assign_roles"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ロールの割り当ての削除 (remove_role_assignments), column 記録ユーザー: いいえ
test_cell_project_recording_user_remove_role_assignments if denied(cell("recording_user", "remove_role_assignments"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトのステータスの表示 ([プロジェクト インサイト] ページ) (view_project_status), column 記録ユーザー: はい*
test_cell_project_recording_user_view_project_status if allowed_by(cell("recording_user", "view_project_status"), "recording_user")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトの [チーム] タブの表示 (view_team_tab), column 記録ユーザー: はい*
test_cell_project_recording_user_view_team_tab if allowed_by(cell("recording_user", "view_team_tab"), "recording_user")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の表示 (view_project_settings), column 記録ユーザー: はい*
test_cell_project_recording_user_view_project_settings if allowed_by(cell("recording_user", "view_project_settings"), "recording_user")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクト設定の更新 (update_project_settings), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_project_settings if denied(cell("recording_user", "update_project_settings"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row プロジェクトへのデータの貢献 (contribute_data), column 記録ユーザー: はい
test_cell_project_recording_user_contribute_data if allowed_by(cell("recording_user", "contribute_data"), "recording_user")

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 記録ユーザーの開始/停止/一時停止 (start_stop_pause_recording_users), column 記録ユーザー: いいえ
test_cell_project_recording_user_start_stop_pause_recording_users if denied(cell("recording_user", "start_stop_pause_recording_users"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 分析の開始 (start_analysis), column 記録ユーザー: いいえ
test_cell_project_recording_user_start_analysis if denied(cell("recording_user", "start_analysis"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の表示 (view_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_view_discovery_results if denied(cell("recording_user", "view_discovery_results"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の更新 (update_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_update_discovery_results if denied(cell("recording_user", "update_discovery_results"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row 検出結果の削除 (delete_discovery_results), column 記録ユーザー: いいえ
test_cell_project_recording_user_delete_discovery_results if denied(cell("recording_user", "delete_discovery_results"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row アクセス権を管理する (manage_access), column 記録ユーザー: いいえ
test_cell_project_recording_user_manage_access if denied(cell("recording_user", "manage_access"))

# uipath-task-mining-cloud-roles.ja.txt, プロジェクト レベルのロール table, row ダウンロード ページの表示 (view_download_page), column 記録ユーザー: はい
test_cell_project_recording_user_view_download_page if allowed_by(cell("recording_user", "view_download_page"), "recording_user")
