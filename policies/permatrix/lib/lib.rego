# METADATA
# title: permatrix shared library
# description: |
#   What every system policy needs: the subject's principals (the user and
#   its groups, stored and asserted), the assignments they hold, scope
#   matching, and the shapes of reasons and missing items. The store's
#   layout is documented in document.go at the repository root.
package permatrix.lib

# system is the catalog entry (systems/<id>/data.json) of the system asked about.
system := data.systems[input.system]

# scope is where the check asks: input.resource, or the whole system.
default scope := {"type": "service"}

scope := {"type": input.resource.type, "id": input.resource.id} if {
	is_string(input.resource.id)
	input.resource.type != "service"
} else := {"type": input.resource.type} if is_string(input.resource.type)

# context holds the per-system context keys of the check.
default context := {}

context := input.context if is_object(input.context)

# input_kind is the JSON kind of the input ("object" for a check), or
# "none" without one.
default input_kind := "none"

input_kind := type_name(input)

# revision is the assignment-store revision the data was exported at.
default revision := 0

revision := data.store.revision

# asserted_groups are the groups an upstream identity provider asserted.
default asserted_groups := []

asserted_groups := input.groups if is_array(input.groups)

# grants are the assignments the checked subject holds, directly or through a group.
grants := grants_of(input.subject, asserted_groups)

# principals are the checked subject and each of its groups, as assignment
# subjects: the keys of data.store.grants a decision looks under. They are
# principals_of the subject, written out: the set every decision reads,
# built without two function calls and their intermediate sets. (As a
# complete rule: partial set rules made stock opa's topdown twice as slow
# over the Rego tests.) Without a subject it is undefined, as the call was.
principals := ({concat("", ["user:", input.subject])} | {concat("", ["group:", g]) |
	some g in asserted_groups
}) | {concat("", ["group:", g]) |
	some g, member in data.store.memberships[input.subject]
	member
}

# scope_key is the checked scope as a grant key (document.go): "service" or
# "<type>:<id>".
scope_key := "service" if scope.type == "service"

else := concat(":", [scope.type, object.get(scope, "id", "")])

# role_reasons are the reasons of the subject's grants of role in sys at the
# scope key: direct lookups, one per principal.
role_reasons(sys, role, key) := {r | some p in principals; r := data.store.grants[p][sys].role[role][key]}

# permission_reasons are the reasons of the subject's grants of perm in sys
# at the scope key.
permission_reasons(sys, perm, key) := {r | some p in principals; r := data.store.grants[p][sys].permission[perm][key]}

# roles_in are the roles the subject holds in sys, at any scope: roles_of
# for the subject, over the principals rule, computed once per decision
# (a function is not remembered by its arguments; a decision asks this
# several times).
roles_in(sys) := {role | some p in principals; some role, _ in data.store.grants[p][sys].role}

# roles_of are the roles a user holds in sys at any scope, itself or
# through its groups (stored and asserted): roles_in for any user, the
# names under data.store.grants[principal][sys].role (document.go), not
# its assignments built one by one (system_grants_of).
roles_of(user, asserted, sys) := {role |
	some p in principals_of(user, asserted)
	some role, _ in data.store.grants[p][sys].role
}

# groups_of is the user's stored group memberships plus the asserted ones.
groups_of(user, asserted) := {g | some g in asserted} | {g | data.store.memberships[user][g]}

# principals_of is the user and each of its groups, as assignment subjects.
principals_of(user, asserted) := {concat("", ["user:", user])} | {concat("", ["group:", g]) |
	some g in groups_of(user, asserted)
}

# assignments_of is every assignment a principal ("user:<id>" or
# "group:<id>") holds itself, as {"id", "subject", "system", "role" or
# "permission", "scope", "via"}. The store keeps each at
# data.store.grants[principal][system][kind][name][scope] (document.go).
assignments_of(p) := {a |
	some sys, _ in data.store.grants[p]
	some a in system_assignments_of(p, sys)
}

# system_assignments_of is assignments_of in one system: a direct lookup of
# data.store.grants[p][sys], the principal's grants in that system only.
system_assignments_of(p, sys) := {a |
	some kind, names in data.store.grants[p][sys]
	some name, scopes in names
	some r in scopes
	a := {"id": r.assignment, "subject": p, "system": sys, kind: name, "scope": r.scope, "via": p}
}

# grants_of is every assignment held by one of the user's principals, via
# naming the principal (user or group) that holds it.
grants_of(user, asserted) := {a |
	some p in principals_of(user, asserted)
	some a in assignments_of(p)
}

# system_grants_of is grants_of restricted to one system, read by direct
# lookups (system_assignments_of): a policy about one system reads no
# other system's grants.
system_grants_of(user, asserted, sys) := {a |
	some p in principals_of(user, asserted)
	some a in system_assignments_of(p, sys)
}

# system_grants are the checked subject's grants in one system (grants
# restricted to sys, by direct lookups): system_grants_of the subject, over
# the principals rule, computed once per decision (a function is not
# remembered by its arguments).
system_grants(sys) := {a |
	some p in principals
	some a in system_assignments_of(p, sys)
}

# system_reasons are the checked subject's grants in one system as the
# store holds them: each grant's value is its reason (document.go: "kind",
# "role" or "permission", "scope", "via", "assignment"), read, not built as
# an assignment (system_grants) and then as a reason.
system_reasons(sys) := {r |
	some p in principals
	some names in data.store.grants[p][sys]
	some scopes in names
	some r in scopes
}

# covers: a grant at service scope covers every scope of its system; any
# other grant covers exactly its own scope.
covers(granted, _) if granted.type == "service"

covers(granted, target) if {
	granted.type == target.type
	granted.id == target.id
}

# reason is how a decision names the assignment that granted it.
reason(g) := {"kind": "role", "role": g.role, "scope": g.scope, "via": g.via, "assignment": g.id} if {
	g.role
} else := {"kind": "permission", "permission": g.permission, "scope": g.scope, "via": g.via, "assignment": g.id}

# missing_permission names a permission that is lacking, with its system and scope.
missing_permission(sys, perm, scp) := {"kind": "permission", "system": sys, "permission": perm, "scope": scp}

# missing_role names a role that is lacking.
missing_role(sys, role, scp) := {"kind": "role", "system": sys, "role": role, "scope": scp}

# missing_condition names a documented condition the check's context does not meet.
missing_condition(sys, msg) := {"kind": "condition", "system": sys, "message": msg}

# verdict is a decision from the reasons that grant the action and what is
# missing: allowed only with a reason and nothing missing; reasons are
# empty on deny (contract section 3).
verdict(reasons, missing) := {"allow": true, "reasons": sort(reasons), "missing": []} if {
	count(reasons) > 0
	count(missing) == 0
} else := {"allow": false, "reasons": [], "missing": sort(missing)}

# check_input is the input of a check of another action for the same
# subject: how a policy asks another system's package about a prerequisite,
# as data.permatrix.systems.<pkg>.decision with input as check_input(...).
# (The reference has to be static: a dynamic one would look recursive to
# the compiler.)
check_input(sys, action, scp) := {
	"subject": input.subject,
	"groups": asserted_groups,
	"system": sys,
	"action": action,
	"resource": scp,
	"context": {},
}

# valid_id: an id as permatrix.ValidID (permatrix.go) takes it, so the Data
# API refuses what POST /v1/check refuses: 1 to 256 bytes (contract section
# 2) without a C0 control character or DEL. count counts characters, so the
# bound is on the hex encoding, exactly two characters a byte. (Go also
# refuses invalid UTF-8, which a string decoded from JSON cannot hold.)
valid_id(s) if {
	is_string(s)
	count(s) > 0
	count(hex.encode(s)) <= 512
	not regex.match(`[\x00-\x1f\x7f]`, s)
}

# id_error is what POST /v1/check answers, with 400, for an id a check
# gives in field (permatrix.CheckID, and the strict decoding of its body
# before it): undefined for an id valid_id takes. A key left out is read
# as "", as Go reads it.
id_error(field, id) := sprintf("%s is required", [field]) if {
	id == ""
} else := sprintf("%s must be 1 to 256 bytes without control characters", [field]) if {
	is_string(id)
	not valid_id(id)
} else := string_error(field, id)

# unknown_system_error names a system the bundle does not have with the
# systems it has (the catalog is public: GET /v1/systems), as Go's
# Catalog.UnknownSystem words it: a check's (contract section 3: "Unknown
# system") and a write's (contract section 4).
unknown_system_error(id) := sprintf(
	"unknown system %q: the systems are %s",
	[id, concat(", ", sort(object.keys(data.systems)))],
)

# string_error is what the decoding of a check says of a value that is not
# a string where a string belongs: undefined for a string.
string_error(field, value) := sprintf("%s: expected a string, got null (leave the key out instead)", [field]) if {
	value == null
} else := sprintf("%s: expected a string, got JSON %s", [field, type_name(value)]) if not is_string(value)

# uint64: n is a whole number as Go's uint64 decoding takes it: digits only
# (no sign, fraction or exponent: json.marshal gives a number as it was
# written), at most 2^64-1.
uint64(n) if {
	is_number(n)
	regex.match(`^[0-9]+$`, json.marshal(n))
	n <= 18446744073709551615
}

# unknown_key_error is what the strict decoding of a check says of a key
# that an object (where: "the input", "object resource") does not have
# among its known keys: the known key it differs from only in case, or all
# of them.
unknown_key_error(key, where, known) := msg if {
	some name in known
	lower(name) == lower(key)
	msg := sprintf("unknown key %q in %s (keys are case-sensitive: did you mean %q?)", [key, where, name])
} else := sprintf("unknown key %q in %s (known keys: %s)", [key, where, concat(", ", sort(known))])

# check_keys are the keys of a check (permatrix.Check), scope_keys those of
# its resource (permatrix.Scope).
check_keys := {"subject", "system", "action", "resource", "context", "groups", "min_revision"}

scope_keys := {"type", "id"}
