# METADATA
# title: Blue Prism
# description: |
#   System blueprism. Source: shared/vendor-docs/blueprism-user-permissions.txt
#   (the permission tables by category). Roles are custom: named permission
#   sets in data.store.roles.blueprism, assigned at service scope or, as
#   group-level access rights, on a process_group, object_group or
#   resource_group. The matrix (implications, requirements, derived actions)
#   is data in systems/blueprism/data.json, each entry citing the
#   document; this file only evaluates it. Readings: docs/systems/blueprism.md.
package permatrix.systems.blueprism

import data.permatrix.lib

system_id := "blueprism"

catalog := data.systems[system_id]

service := {"type": "service"}

# --- what a subject holds where ------------------------------------------

# role_permissions: "When a Blue Prism role exists, a user may be assigned
# permissions conveniently simply by selecting/deselecting permissions
# associated with the list of roles" (section "Use of roles to set
# permissions"): a role is its permission set.
role_permissions(role) := {p | some p in data.store.roles[system_id][role].permissions}

# held is the permissions of one grant: its role's, or the permission itself
# ("Set a user's permissions": permissions are selected per user too). It is
# only walked and searched, so a role's is its list as the store holds it,
# no set built for each call (role_permissions is the set, for writes).
held(g) := data.store.roles[system_id][g.role].permissions if {
	g.role
} else := [g.permission]

# subject_grants are the checked subject's Blue Prism grants, each as its
# reason (lib.system_reasons: the role or permission, scope and via a
# grant's uses read).
subject_grants := lib.system_reasons(system_id)

# actor_grants are the writing actor's Blue Prism assignments.
actor_grants contains g if {
	some g in lib.system_grants_of(input.actor, lib.asserted_groups, system_id)
}

service_permissions(grants) := {p | some g in grants; g.scope.type == "service"; some p in held(g)}

# group_grants are the grants made on exactly the group scp (group-level
# access rights), never service grants.
group_grants(grants, scp) := {g |
	some g in grants
	g.scope.type != "service"
	g.scope.type == scp.type
	g.scope.id == scp.id
}

# allowed(permissions) is the set of actions the permissions allow (allows).
allowed(permissions) := {a | some p in permissions; some a in allows(p)}

# effective is the set of actions grants allow on scp. Manage Process Access
# Rights (line 194): "A user with this permission cannot grant access rights
# that are denied by the permissions set for a user role. For example, if a role
# allows a user to edit processes, that permission can be removed for a
# group. If the role does not allow a user to delete processes, that
# permission cannot be granted for that role at group level." (likewise
# Manage Business Object Access Rights). So where group-level rights exist
# for scp they narrow what the service-level permissions allow and never
# widen it; elsewhere the service-level permissions apply. Both sentences
# speak of what the role allows, its implications included: a role with
# Create Process "allows a user to edit processes" (Edit Process, line 170:
# "Users with Create Process permission can create and edit processes, even
# if they don't have the Edit Process permission."), so group rights
# keeping Edit Process keep editing there. A group-level permission the
# role does not allow "cannot be granted" there: it counts for nothing, its
# implications neither (Create Process on a group whose role allows only
# editing gives no editing there).
effective(grants, scp) := role_allows & allowed(grantable) if {
	# No grant is group-level on the service (group_grants): not looked for.
	scp.type != "service"
	on_group := group_grants(grants, scp)
	count(on_group) > 0
	role_allows := allowed(service_permissions(grants))
	grantable := {p | some g in on_group; some p in held(g); p in role_allows}
} else := allowed(service_permissions(grants))

# allows is the set of actions a held permission allows: itself and what it
# implies (catalog "implies", each entry cited there); an unused permission
# allows nothing (catalog "unused": "This permission is not used.").
allows(p) := set() if {
	catalog.unused[p]
} else := {p} | {a | some a in catalog.implies[p]}

# --- the check, as clauses -------------------------------------------------
# A clause {"any_of": [actions], "scope": scp} is met when a permission in
# effect on scp allows one of its actions. The action is allowed when every
# clause is met (and at least one grant is a reason).

clauses contains {"any_of": [input.action], "scope": lib.scope} if {
	catalog.permissions[input.action]
	not catalog.unused[input.action]
}

# Requirements besides the permission itself, and the derived actions
# (catalog "requires", each cited in data and docs/systems/blueprism.md).
clauses contains {"any_of": c, "scope": lib.scope} if some c in catalog.requires[input.action]

# An import action's clauses: one for each permission its items need
# (import_permissions). An action that imports nothing has no kinds: its
# check skips working them out, here and below.
clauses contains {"any_of": [p], "scope": lib.scope} if {
	catalog.import_actions[input.action]
	some p in import_permissions
}

# Edit Process Groups / Edit Object Groups: "Users can also move groups with
# this permission if they have the appropriate access rights to the target
# folder": the same permission in effect on the target group (a group id:
# an empty one names no group, whose rights would be read as none).
clauses contains {"any_of": [move.permission], "scope": target} if {
	move := catalog.moves[input.action]
	lib.valid_id(lib.context.target_group)
	target := {"type": move.scope_type, "id": lib.context.target_group}
}

# Import Release: "If the user is importing a release that contains either
# processes or objects, the user will also need the appropriate permissions
# such as Import Process and Import Business Object." Import Global Dashboard
# (likewise Published Dashboard, Tile, Skill): "If a release contains a global
# dashboard and the user does not have this permission, the release cannot be
# imported."
import_permissions contains p if {
	some k in imported_kinds
	p := catalog.release_kinds[k].import
}

# Import Process: "If a process being imported already exists in the
# database, users must also have the Edit Process permission to overwrite
# that process during import." (likewise Import Business Object).
import_permissions contains p if {
	some k in overwritten_kinds
	p := catalog.release_kinds[k].overwrite
}

# import_kinds are the kinds of item the checked import action may carry.
import_kinds := {k | some k in catalog.import_actions[input.action]}

# declared_kinds are the kinds the import carries: the release's
# context.release_contains, or the one kind of import_process /
# import_business_object.
declared_kinds := {k | some k in lib.context.release_contains; k in import_kinds} if {
	input.action == "import_release"
} else := import_kinds

# overwritten_kinds: context.overwrite_existing, true (every declared item
# that can be overwritten does) or a list of kinds.
overwritten_kinds := {k | some k in declared_kinds; catalog.release_kinds[k].overwrite} if {
	lib.context.overwrite_existing == true
} else := {k | some k in lib.context.overwrite_existing; k in import_kinds}

# imported_kinds: declared or overwritten (an overwritten item is imported).
imported_kinds := declared_kinds | overwritten_kinds

# --- verdict -----------------------------------------------------------------

# effective_at is the actions the subject's grants allow on each group a
# clause names (effective): computed once a check, not once a use.
effective_at[clause.scope] := effective(subject_grants, clause.scope) if {
	some clause in clauses
	clause.scope.type != "service"
}

# in_effect: action a is in effect on scp (effective). On the service it is
# whenever a service-level permission allows it — which met's own permission
# p (held by a grant covering the service: a service grant) witnesses, so
# the set of every action allowed there is not built.
in_effect(_, scp) if scp.type == "service"

in_effect(a, scp) if a in effective_at[scp]

# met is, for each clause, the grants covering its scope that hold a
# permission allowing one of its actions in effect there: the clause's
# reasons (computed once a check: reasons and missing both read it).
met[clause] := {g |
	some a in clause.any_of
	in_effect(a, clause.scope)
	some g in subject_grants
	lib.covers(g.scope, clause.scope)
	some p in held(g)
	a in allows(p)
} if {
	some clause in clauses
}

# missing_clause names what a clause lacks: its (first) action, with the
# alternatives when there are several.
missing_clause(clause) := lib.missing_permission(system_id, clause.any_of[0], clause.scope) if {
	count(clause.any_of) == 1
} else := object.union(
	lib.missing_permission(system_id, clause.any_of[0], clause.scope),
	{"any_of": clause.any_of},
)

# reasons: the grants (service-level, and group-level on the clause's group)
# holding a permission that meets a clause (met), not looked for again.
reasons contains g if {
	some grants in met
	some g in grants
}

missing contains m if {
	some clause, grants in met
	count(grants) == 0
	m := missing_clause(clause)
}

# The unused permissions allow nothing (Audit – View Design Control,
# Processes – Grouping, Processes – View Environment Variables).
missing contains lib.missing_condition(system_id, sprintf("%s allows nothing: %s", [input.action, why])) if {
	why := catalog.unused[input.action]
}

# A check on a group names the group (resource.id). Group-level access rights
# narrow what the role allows on one group (Manage Process Access Rights,
# line 194: "if a role allows a user to edit processes, that permission can
# be removed for a group"), so on a group of no id the rights in effect are
# unknown; read as service scope, it allowed what every narrowed group
# denies. The HTTP API refuses such a check (400); the Data API evaluates any
# input.
missing contains lib.missing_condition(system_id, msg) if {
	lib.scope.type != "service"
	not lib.valid_id(object.get(lib.scope, "id", null))
	msg := sprintf("a check at scope type %q needs resource.id: the group whose access rights apply", [lib.scope.type])
}

# View Resource Screen Captures: "If Allow latest runtime resource screen
# capture is selected in System –Settings, users with this permission can
# view a runtime resource screen capture." Unknown means not selected.
missing contains lib.missing_condition(system_id, c.message) if {
	c := catalog.conditions[input.action]
	object.get(lib.context, c.context, false) != true
}

missing contains lib.missing_condition(system_id, msg) if {
	catalog.moves[input.action]
	not lib.valid_id(object.get(lib.context, "target_group", null))
	msg := sprintf(
		"%s needs context.target_group: the id of the %s it is moved into",
		[input.action, catalog.moves[input.action].scope_type],
	)
}

# What an import action's context lacks (import_missing): looked for only
# in the check of an action that imports.
missing contains m if {
	catalog.import_actions[input.action]
	some m in import_missing
}

# A malformed import context is never read as "nothing to import".
import_missing contains lib.missing_condition(system_id, "context.release_contains must be a list of kinds") if {
	input.action == "import_release"
	not is_array(object.get(lib.context, "release_contains", []))
}

import_missing contains lib.missing_condition(system_id, msg) if {
	count(import_kinds) > 0
	v := object.get(lib.context, "overwrite_existing", [])
	not is_array(v)
	not is_boolean(v)
	msg := "context.overwrite_existing must be true or a list of kinds"
}

import_missing contains lib.missing_condition(system_id, msg) if {
	some key in kind_keys
	some k in lib.context[key]
	not catalog.release_kinds[k]
	msg := sprintf("unknown kind %v in context.%s (known: %s)", [k, key, known_kinds])
}

# kind_keys are the context keys that list kinds for the checked action: an
# import_process or import_business_object reads overwrite_existing too, and
# an unknown kind there (a typo of its own) is not "overwrites nothing".
kind_keys contains "release_contains" if input.action == "import_release"

kind_keys contains "overwrite_existing" if count(import_kinds) > 0

known_kinds := concat(", ", catalog.import_actions.import_release)

decision := lib.verdict(reasons, missing)
