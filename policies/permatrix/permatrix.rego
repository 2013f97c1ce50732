# METADATA
# title: permatrix entrypoints
# description: |
#   data.permatrix.allow and data.permatrix.decision answer "may input.subject
#   do input.action on input.resource in input.system?". They dispatch to the
#   system's own package, named by the catalog (data.systems[id].package), so
#   a vendor is added with a data entry and a package, never an edit here.
#   Contract: shared/contract.md section 3.
package permatrix

import data.permatrix.lib

# allow is true only when the system's policy allows end to end.
default allow := false

# METADATA
# description: true only when the system's policy allows end to end (POST /v1/data/permatrix/allow)
# entrypoint: true
allow if decision.allow == true

# METADATA
# description: |
#   The system policy's verdict plus the store revision (POST /v1/check); an
#   input that names no known system or action is denied and says why in errors.
# entrypoint: true
decision := object.union(system_verdict, {"revision": lib.revision}) if {
	count(errors) == 0
} else := {
	"allow": false,
	"reasons": [],
	"missing": [],
	"revision": lib.revision,
	"errors": sort([e | some e in errors]),
}

# system_verdict is the system package's decision where the action applies
# at the asked scope type (the catalog's scopes of the action); elsewhere a deny.
system_verdict := data.permatrix.systems[lib.system.package].decision if {
	lib.scope.type in lib.system.actions[input.action].scopes
} else := lib.verdict(set(), {lib.missing_condition(input.system, msg)}) if {
	msg := sprintf("%s applies at scope types %s, not %q", [
		input.action,
		concat(", ", lib.system.actions[input.action].scopes),
		lib.scope.type,
	])
}

# errors name what is wrong with the input itself: what POST /v1/check
# answers 400, in its words (pdp.ValidateCheck, what it calls, and the
# strict decoding of the check's body before it), so that the Data API and
# the stock opa refuse the checks /v1/check refuses. A key left out is "",
# as Go reads it. Where /v1/check names the first thing wrong, errors name
# every one (but of the groups and the unknown keys, the first: so many
# messages as a body has keys would multiply its size).

# The input is the check: a JSON object, as /v1/check's body is. (OPA reads
# {"input": null} as no input.)
errors contains "an input is required: a JSON object" if lib.input_kind == "none"

errors contains sprintf("the input must be a JSON object, got %s", [lib.input_kind]) if {
	not lib.input_kind in {"none", "object"}
}

# A key a check does not have is refused, as /v1/check's strict decoding
# refuses it (keys are case-sensitive): a misspelt "resource" would be a
# check at the service scope.
errors contains lib.unknown_key_error(key, "the input", lib.check_keys) if {
	is_object(input)
	key := min({k | some k, _ in input; not k in lib.check_keys})
}

errors contains lib.unknown_key_error(key, "object resource", lib.scope_keys) if {
	is_object(input.resource)
	key := min({k | some k, _ in input.resource; not k in lib.scope_keys})
}

# The subject is an id (lib.id_error: permatrix.CheckID).
errors contains lib.id_error("subject", object.get(input, "subject", ""))

errors contains "system is required" if object.get(input, "system", "") == ""

errors contains lib.string_error("system", input.system)

# An unknown system is named with the systems there are (lib).
errors contains lib.unknown_system_error(input.system) if {
	is_string(input.system)
	input.system != ""
	not data.systems[input.system]
}

errors contains "action is required" if object.get(input, "action", "") == ""

errors contains lib.string_error("action", input.action)

errors contains sprintf("unknown action %q for system %q", [input.action, input.system]) if {
	data.systems[input.system]
	is_string(input.action)
	input.action != ""
	not data.systems[input.system].actions[input.action]
}

# Each asserted group is a principal whose grants a decision looks up: at
# most 256 (permatrix.MaxAssertedGroups; docs/security.md), as the HTTP API
# and the identity headers and tokens hold them.
errors contains sprintf("groups holds %d group ids, over the limit of 256", [count(input.groups)]) if {
	is_array(input.groups)
	count(input.groups) > 256
}

errors contains sprintf("groups: expected an array of strings, got JSON %s", [type_name(input.groups)]) if {
	input.groups != null
	not is_array(input.groups)
}

# Each group is an id, as a subject is; the first that is not is named, as
# /v1/check names it (within the limit, so that the work stays bounded).
errors contains msg if {
	is_array(input.groups)
	count(input.groups) <= 256
	first := min({i | some i, g in input.groups; not lib.valid_id(g)})
	msg := lib.id_error(sprintf("groups[%d]", [first]), input.groups[first])
}

errors contains sprintf("context: expected an object, got JSON %s", [type_name(input.context)]) if {
	input.context != null
	not is_object(input.context)
}

# A context carries a few facts (the catalogs' context_keys), and its shape
# is bounded far above what they need (permatrix.MaxContextKeys,
# MaxContextDepth, MaxContextValues; docs/security.md), in /v1/check's
# words: a key's value is at depth 1, each value at every depth counts.
errors contains "context holds more than 32 keys" if {
	is_object(input.context)
	count(input.context) > 32
}

# The levels are iterated one by one, not walked: walk makes each value's
# path, as long as its depth, so a chain of 4,000 values nested one in the
# next (the Data API takes 4,096 without the token) was 8 million terms. A
# value at depth 5 is all the depth rule looks for; the values are counted
# to depth 4, past which the context is refused anyway (and /v1/check,
# counting as it reads, meets the fifth level before the 257th value when
# it has too few values above it).
errors contains "context nests deeper than 4 levels" if {
	is_object(input.context)

	# any value at level 5: a false there is a value too
	some v1 in input.context
	some v2 in v1
	some v3 in v2
	some v4 in v3
	some _ in v4
}

errors contains "context holds more than 256 values" if {
	is_object(input.context)
	c := input.context
	levels := [
		count([1 | some _ in c]),
		count([1 | some v1 in c; some _ in v1]),
		count([1 | some v1 in c; some v2 in v1; some _ in v2]),
		count([1 | some v1 in c; some v2 in v1; some v3 in v2; some _ in v3]),
	]
	sum(levels) > 256
}

# A context key that differs only in case from one the system declares
# (its catalog's context_keys) is the client meaning that key, which the
# rules never read: {"Release_contains": ["process"]} was an import_release
# allowed without import_process. Refused in /v1/check's words, the first
# such key named (pdp.ValidateCheck); a key the system does not declare in
# any case stays the client's.
errors contains msg if {
	is_object(input.context)
	declared := data.systems[input.system].context_keys
	key := min({k |
		some k, _ in input.context
		not declared[k]
		some n, _ in declared
		lower(n) == lower(k)
	})
	some name, _ in declared
	lower(name) == lower(key)
	msg := sprintf("unknown key %q in object context (keys are case-sensitive: did you mean %q?)", [key, name])
}

# min_revision is /v1/check's consistency token (a uint64): the server
# waits for the store to reach it before it evaluates (a check's own, as
# /v1/check reads it, or the Data API's beside the input); the policies
# decide nothing by it, they only refuse one that is no whole number.
errors contains sprintf("min_revision: expected a whole number, got JSON %s", [type_name(input.min_revision)]) if {
	input.min_revision != null
	not lib.uint64(input.min_revision)
}

# The resource, as permatrix.Scope.Validate and pdp.validScope take it:
# an object (null is none: the service scope), with a type the system has
# and, but for the service scope, an id. (Before, a resource that was not
# an object, or a project without a valid id, was decided at the service
# scope.)
errors contains sprintf("resource: expected an object, got JSON %s", [type_name(input.resource)]) if {
	input.resource != null
	not is_object(input.resource)
}

errors contains "resource.type is required" if {
	is_object(input.resource)
	object.get(input.resource, "type", "") == ""
}

errors contains lib.string_error("resource.type", input.resource.type)

errors contains sprintf("system %q has no resource type %q (has: [%s])", [input.system, type, concat(" ", types)]) if {
	type := input.resource.type
	is_string(type)
	type != ""
	types := data.systems[input.system].scope_types
	not type in types
}

errors contains lib.string_error("resource.id", input.resource.id)

errors contains sprintf(
	"resource.id is required for resource.type %q: 1 to 256 bytes without control characters",
	[type],
) if {
	type := input.resource.type
	is_string(type)
	not type in {"", "service"}
	id := object.get(input.resource, "id", "")
	is_string(id)
	not lib.valid_id(id)
}

# The service scope is the whole system: an id with it is a mistake (a
# resource whose type was left out), not a check at service scope
# (permatrix.Scope.Validate answers /v1/check the same; there, as in
# permatrix.Scope, an empty id is none).
errors contains `resource.id is not allowed with resource.type "service" (the whole system has no id)` if {
	input.resource.type == "service"
	id := object.get(input.resource, "id", "")
	is_string(id)
	id != ""
}
