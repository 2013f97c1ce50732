# METADATA
# title: UiPath Task Mining (cloud roles)
# description: |
#   System uipath-task-mining-cloud. Source:
#   shared/vendor-docs/uipath-task-mining-cloud-roles.ja.txt ("アクセスとロールを管理する").
#   Both permission tables of the document are data, transcribed with their
#   marks (data.systems["uipath-task-mining-cloud"].matrix: "yes", "yes*",
#   "yes**", "yes***", "no"); this package gives the marks and footnotes
#   their meaning. Readings: docs/systems/uipath-task-mining-cloud.md.
package permatrix.systems.uipath_task_mining_cloud

import data.permatrix.lib

system_id := "uipath-task-mining-cloud"

catalog := data.systems[system_id]

doc := "uipath-task-mining-cloud-roles.ja.txt"

service := {"type": "service"}

# ---------------------------------------------------------------------------
# Roles held

# role_grants are the subject's role grants in this system, each as the
# reason a decision gives for it (a group's roles are held by its members,
# lib.system_reasons expands groups; a grant's stored value is its reason):
# "ロールをグループに割り当てると、グループ内のすべてのユーザーがロールを継承します。"
role_grants contains r if {
	some r in lib.system_reasons(system_id)
	r.role
}

# Default roles of groups, held at service scope without an assignment (so
# their reason names none, and says why it is held):
# "既定では、Administrators グループのユーザーには、管理者ロールが割り当てられます。"
# and "組織管理者は、Administrators グループのメンバーです。"
# (catalog.default_group_roles: {"administrators": ["administrator"]}).
role_grants contains {
	"kind": "role",
	"role": role,
	"scope": service,
	"via": concat("", ["group:", group]),
	"default": sprintf("members of group %q hold %q by default (%s)", [group, role, doc]),
} if {
	some group, roles in catalog.default_group_roles
	concat("", ["group:", group]) in lib.principals
	some role in roles
}

# held adds the roles a role includes, at the same scope and via the same
# principal, the reason saying through which role: "Administrator ロールには、
# 既定でプロジェクト作成者ロールが含まれています。"
# (catalog.includes: {"administrator": ["project_creator"]}).
held contains g if some g in role_grants

held contains object.union(g, {"role": implied, "implied_by": g.role}) if {
	some g in role_grants
	some implied in catalog.includes[g.role]
}

# ---------------------------------------------------------------------------
# What the tables say about the checked action

# row is the table row the action is read from: its own, or for the derived
# view_access the row アクセス権を管理する (footnote "***) 読み取り専用です。").
row := object.get(catalog.actions[input.action], "read_only_of", input.action)

read_only if row != input.action

# project_bound: the action is about one project. ダウンロード ページの表示 is
# not (its scopes in the catalog are only "service").
project_bound if "project" in catalog.actions[input.action].scopes

# project is the registered project checked (store.projects), if any.
project := data.store.projects[system_id][lib.scope.id] if lib.scope.type == "project"

# options are the (role, scope) pairs whose grant would allow the action at
# lib.scope by the tables: the role's cell in the action's row is a はい mark,
# and a grant of the role at scope reaches the checked scope.
options contains {"role": cell.role, "table": cell.table, "mark": cell.mark, "scope": scp} if {
	some cell in yes_cells[row]
	scp := option_scope(cell.table, cell.mark, lib.scope)
}

# yes_cells are the はい marks of both tables by row: a rule of the catalog
# alone, so it is computed once per bundle, and a check reads only its own
# row's cells instead of every role's cell of both tables.
yes_cells[row] contains {"table": table, "role": role, "mark": mark} if {
	some table, roles in catalog.matrix
	some role, cells in roles
	some row, mark in cells
	startswith(mark, "yes")
}

# Service-level table, はい: a service-level role reaches every project
# ("テナント内の Task Mining サービス全体でユーザーが実行できるアクションを制御するロールです。").
option_scope("service", "yes", _) := service

# Service-level table, はい*: only for projects, and only those the project
# creator created (checked in unmet): "*) この権限は、プロジェクト作成者が作成した
# プロジェクトにのみ適用されます。"
option_scope("service", "yes*", checked) := service if is_string(checked.id)

# Project-level table, every はい mark: a project-level role holds only on the
# project it is assigned on ("特定の Task Mining プロジェクトでユーザーが実行できる
# アクションを制御するロールです。", "*) この権限は、そのロールを持つユーザーが割り当てられて
# いるプロジェクトにのみ適用されます。").
option_scope("project", _, checked) := checked if {
	project_bound
	is_string(checked.id)
}

# ... except ダウンロード ページの表示 (はい for all three), which is not about a
# project: the role held on any project counts.
option_scope("project", _, _) := {"type": "project"} if not project_bound

# unmet are, by option, the footnote conditions it does not meet for this
# check (an option is open without any: a lookup, not a search of pairs).
# What a condition says (unmet_message) is worded only where a denial names
# it, not in every check that tests it.

# "*) この権限は、プロジェクト作成者が作成したプロジェクトにのみ適用されます。"
unmet[o] contains "creator" if {
	not project.created_by == input.subject
	some o in options
	o.table == "service"
	o.mark == "yes*"
}

# "**) ビジネス アナリストは、ビジネス アナリスト ロールのみを割り当てることができます。"
unmet[o] contains "business_analyst" if {
	not lib.context.role == "business_analyst"
	some o in options
	o.mark == "yes**"
}

# "***) 読み取り専用です。": the mark allows only the read-only view_access.
unmet[o] contains "read_only" if {
	some o in options
	o.mark == "yes***"
	not read_only
}

# Unassisted projects: "Unassisted Task Mining プロジェクトにプロジェクト レベルのロールを
# 割り当てるには、プロジェクト管理者またはビジネス アナリストのロールが割り当てられている必要が
# あります。" The service-level roles do not assign roles there.
unmet[o] contains "unassisted" if {
	input.action == "assign_roles"
	project.kind == "unassisted"
	some o in options
	o.table == "service"
}

# unmet_message words each unmet condition, citing its footnote (the
# conditions above): a rule only a denial reads.
unmet_message[[o, "creator"]] := sprintf(
	concat("", [
		"%s's rights marked * apply only to projects the user created; ",
		"%q was not created by %q (%s, service-level table footnote: %s)",
	]),
	[o.role, lib.scope.id, input.subject, doc, catalog.footnotes.service["*"]],
) if {
	some o, conditions in unmet
	"creator" in conditions
}

unmet_message[[o, "business_analyst"]] := sprintf(
	concat("", [
		"%s may assign only business_analyst; context.role must name the role being assigned ",
		"(got %v) (%s, row ロールを割り当てる, footnote %s)",
	]),
	[o.role, object.get(lib.context, "role", "none"), doc, catalog.footnotes.project["**"]],
) if {
	some o, conditions in unmet
	"business_analyst" in conditions
}

unmet_message[[o, "read_only"]] := sprintf(
	"%s's %s is read-only: view_access is allowed, %s is not (%s, row %s, footnote %s)",
	[o.role, row, input.action, doc, label[row], catalog.footnotes.project["***"]],
) if {
	some o, conditions in unmet
	"read_only" in conditions
}

unmet_message[[o, "unassisted"]] := sprintf(
	concat("", [
		"%q is an Unassisted Task Mining project: assigning project-level roles there ",
		"needs project_admin or business_analyst on it (%s: %s)",
	]),
	[lib.scope.id, doc, unassisted_rule],
) if {
	some o, conditions in unmet
	"unassisted" in conditions
}

unassisted_rule := "Unassisted Task Mining プロジェクトにプロジェクト レベルのロールを割り当てるには、プロジェクト管理者またはビジネス アナリストのロールが割り当てられている必要があります。"

label[r.action] := r.label if some r in catalog.rows

open_options contains o if {
	some o in options
	not unmet[o]
}

# matches: a grant at scope granted fills an option at scope wanted; an
# option at {"type": "project"} (no id) takes any project.
matches(granted, wanted) if granted == wanted

matches(granted, {"type": "project"}) if granted.type == "project"

# ---------------------------------------------------------------------------
# The decision

decision := lib.verdict(reasons, missing)

reasons contains g if {
	some g in held
	some o in open_options
	g.role == o.role
	matches(g.scope, o.scope)
}

# On deny: the roles that would grant it ...
missing contains lib.missing_role(system_id, o.role, o.scope) if {
	count(reasons) == 0
	some o in open_options
}

# ... why the roles the subject holds do not ...
missing contains lib.missing_condition(system_id, unmet_message[[o, condition]]) if {
	count(reasons) == 0
	some o, conditions in unmet
	some condition in conditions
	some g in held
	g.role == o.role
	matches(g.scope, o.scope)
}

# ... that a project check names its project ...
missing contains lib.missing_condition(system_id, "a check on a project needs resource.id") if {
	lib.scope.type == "project"
	not lib.scope.id
}

# ... and, where no role of either table grants it there, that.
missing contains lib.missing_condition(system_id, msg) if {
	count(open_options) == 0
	msg := sprintf("no role allows %s at scope type %q (%s, row %s)", [input.action, lib.scope.type, doc, label[row]])
}

# assign_roles with context.role: the role being assigned must be one of the
# system and assignable at the checked scope (service-level roles at service
# scope, project-level ones on a project; table "利用可能なロール": サービス
# レベルのロール / プロジェクト レベルのロール). Without context.role only
# footnote ** needs it (unmet above).
missing contains lib.missing_condition(system_id, msg) if {
	input.action == "assign_roles"
	r := lib.context.role
	not lib.scope.type in object.get(catalog.roles, [r, "scopes"], [])
	msg := sprintf("context.role %v is not a role of %s assignable at scope type %q", [r, system_id, lib.scope.type])
}

# ---------------------------------------------------------------------------
# Writes (package permatrix.admin)

# A role only at the scope type of its table ("サービス レベルのロール" /
# "プロジェクト レベルのロール") is the generic scope rule of permatrix.admin,
# driven by the catalog's role scopes.

# Writes made on behalf of input.actor

# A write is judged as the actor's check of the row it exercises, at the
# assignment's scope: ロールを割り当てる (assign_roles, with the role as
# context.role) or ロールの割り当ての削除 (remove_role_assignments).
write_action := {"assign": "assign_roles", "unassign": "remove_role_assignments"}

actor_decision := d if {
	# A write is judged as the actor's own decision in this system: this
	# package's decision asked with the actor's check as input.
	# regal ignore:with-outside-test-context
	d := decision with input as {
		"subject": input.actor,
		"groups": object.get(input, "groups", []),
		"system": system_id,
		"action": write_action[input.op],
		"resource": input.assignment.scope,
		"context": {"role": object.get(input.assignment, "role", null)},
	}
}

scope_text(s) := sprintf("project %q", [s.id]) if s.type == "project"

else := sprintf("scope %q", [s.type])

# assigned_kind is the kind of the project an assignment is on ("" when the
# project is not registered or has no kind): that one project's record is
# read, so a write's guard is that project, not every project of the store.
default assigned_kind := ""

assigned_kind := data.store.projects[system_id][input.assignment.scope.id].kind

# delegation_rule is the rule the write breaks, with its citation.
delegation_rule := delegation_service if {
	input.assignment.scope.type != "project"
} else := delegation_unassisted if {
	input.op == "assign"
	assigned_kind == "unassisted"
} else := delegation_assign if {
	input.op == "assign"
} else := delegation_unassign

# Service-level roles: サービス レベル table, row ロールを割り当てる / ロールの割り当ての削除:
# Administrator はい, Project Creator はい* (only its own projects, never the service).
delegation_service := sprintf(
	concat("", [
		"only an Administrator assigns or removes service-level roles (%s, service-level table, ",
		"rows ロールを割り当てる/ロールの割り当ての削除: Administrator はい, Project Creator はい* only on projects it created)",
	]),
	[doc],
)

# Assigning on an Unassisted project (unassisted_rule, footnote **).
delegation_unassisted := sprintf(
	concat("", [
		"on an Unassisted Task Mining project only project_admin (any of the three project roles) ",
		"or business_analyst (business_analyst only) assigns project-level roles ",
		"(%s: %s ... ビジネス アナリスト ロールが割り当てられている場合は、ビジネス アナリスト ロールのみを割り当てることができます。)",
	]),
	[doc, unassisted_rule],
)

# Assigning project-level roles: プロジェクト レベル table, row ロールを割り当てる.
delegation_assign := sprintf(
	concat("", [
		"assigning project-level roles needs ロールを割り当てる on the project: ",
		"Administrator, Project Creator on a project it created (はい*), プロジェクト管理者 on it, ",
		"or ビジネス アナリスト on it for business_analyst only (%s, footnote %s)",
	]),
	[doc, catalog.footnotes.project["**"]],
)

# Removing project-level roles: プロジェクト レベル table, row ロールの割り当ての削除.
delegation_unassign := sprintf(
	concat("", [
		"removing role assignments needs ロールの割り当ての削除 on the project: ",
		"Administrator, Project Creator on a project it created (はい*) or プロジェクト管理者 on it; ",
		"ビジネス アナリスト and 記録ユーザー いいえ (%s)",
	]),
	[doc],
)

forbidden contains sprintf("%q may not %s role %q at %s: %s", [
	input.actor, input.op, object.get(input.assignment, "role", null), scope_text(input.assignment.scope), delegation_rule,
]) if {
	write_action[input.op]
	not actor_decision.allow
}

# Registering a project on behalf of input.actor needs プロジェクトの作成:
# "既定では、新しい Task Mining プロジェクトを作成できるのは組織管理者のみです。" and
# "追加のユーザーまたはグループに Task Mining プロジェクトの作成を許可するには、
# Task Mining の管理者ロールまたはプロジェクト作成者ロールを…割り当てる必要があります。"
forbidden contains sprintf(
	concat("", [
		"%q may not create project %q: ",
		"creating projects needs administrator or project_creator (%s, row プロジェクトの作成)",
	]),
	[input.actor, input.project.id, doc],
) if {
	input.op == "register_project"
	not create_decision.allow
}

# Making an Unassisted project Assisted (or of no kind) changes who assigns
# roles on it (uipath-task-mining-cloud-roles.ja.txt, line 212):
# "Unassisted Task Mining プロジェクトにプロジェクト レベルのロールを
# 割り当てるには、プロジェクト管理者またはビジネス アナリストのロールが割り当てられて
# いる必要があります。" An administrator that sentence shuts out flipped the kind,
# assigned itself project_admin and flipped it back. So the change needs what
# assigning project_admin on the project as it is needs: project_admin on it.
forbidden contains sprintf(
	concat("", [
		"%q may not change the kind of Unassisted project %q to %q: ",
		"who assigns roles there would change, and only project_admin on it assigns them all (%s: %s)",
	]),
	[input.actor, input.project.id, input.project.kind, doc, unassisted_rule],
) if {
	input.op == "register_project"
	data.store.projects[system_id][input.project.id].kind == "unassisted"
	input.project.kind != "unassisted"
	not leave_unassisted_decision.allow
}

leave_unassisted_decision := d if {
	# The actor's own assign_roles of project_admin on the project, decided
	# over the store as it is (the project still Unassisted).
	# regal ignore:with-outside-test-context
	d := decision with input as {
		"subject": input.actor,
		"groups": object.get(input, "groups", []),
		"system": system_id,
		"action": "assign_roles",
		"resource": {"type": "project", "id": input.project.id},
		"context": {"role": "project_admin"},
	}
}

create_decision := d if {
	# Registering is judged as the actor's own create_project decision in
	# this system: this package's decision asked with that check as input.
	# regal ignore:with-outside-test-context
	d := decision with input as {
		"subject": input.actor,
		"groups": object.get(input, "groups", []),
		"system": system_id,
		"action": "create_project",
		"context": {},
	}
}

# administrator_role administers the service: "Administrator ロールには、既定で
# プロジェクト作成者ロールが含まれています。" and the service-level table gives it
# はい in every row it has: it may change projects others registered
# (data.permatrix.admin).
administrator_role := "administrator"
