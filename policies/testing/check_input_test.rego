# METADATA
# title: data.permatrix.errors tests
# description: |
#   data.permatrix.errors refuses the checks POST /v1/check refuses with 400
#   (pdp.ValidateCheck, what it calls, and the strict decoding of the body),
#   in its words: "the same Rego, run by the stock opa binary ... gives the
#   same results" (contract.md section 3, lines 68-71), and a check missing
#   its subject, system or action, or of the wrong types, is a 400 there
#   (contract.md lines 60-62). The Go side: internal/http/ids_test.go
#   (TestDataAPIRefusesTheIdsCheckRefuses) sends each input to both.
package check_input_test

import data.permatrix

tm := "celonis-task-mining"

# valid is a check /v1/check decides.
valid := {"subject": "alice", "system": tm, "action": "edit_users"}

# errors_of are the errors of the decision of check, or none.
errors_of(check) := object.get(d, "errors", []) if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as {} with input as check
}

# refused: the decision of check is a deny that says msg among its errors.
refused(check, msg) if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as {} with input as check
	d.allow == false
	msg in d.errors
}

# decided: the decision of check has no errors.
decided(check) if errors_of(check) == []

test_valid_check_decided if {
	decided(valid)
}

# contract.md:60-61: "missing subject/system/action, wrong types → 400",
# worded as permatrix.CheckID and the decoding say it.
test_subject_as_check_id if {
	refused(object.remove(valid, ["subject"]), "subject is required")
	refused(object.union(valid, {"subject": ""}), "subject is required")
	refused(object.union(valid, {"subject": null}), "subject: expected a string, got null (leave the key out instead)")
	refused(object.union(valid, {"subject": 7}), "subject: expected a string, got JSON number")
	refused(object.union(valid, {"subject": "a\u0000b"}), "subject must be 1 to 256 bytes without control characters")
}

# Before, a check without a system or action had no error at all: a deny
# whose errors were [].
test_system_and_action_required if {
	refused(object.remove(valid, ["system"]), "system is required")
	refused(object.union(valid, {"system": ""}), "system is required")
	refused(object.union(valid, {"system": 7}), "system: expected a string, got JSON number")
	refused(object.remove(valid, ["action"]), "action is required")
	refused(object.union(valid, {"action": ""}), "action is required")
	refused(object.union(valid, {"action": ["x"]}), "action: expected a string, got JSON array")
	refused(object.union(valid, {"action": null}), "action: expected a string, got null (leave the key out instead)")
}

# contract.md:60: "Unknown system, unknown action for that system".
test_unknown_system_and_action if {
	[nope] := errors_of(object.union(valid, {"system": "nope"}))
	startswith(nope, `unknown system "nope": the systems are blueprism, celonis-storage-manager, `)
	nope == sprintf(`unknown system "nope": the systems are %s`, [concat(", ", sort(object.keys(data.systems)))])
	errors_of(object.union(valid, {"action": "fly"})) == [`unknown action "fly" for system "celonis-task-mining"`]
}

# at is the valid check with resource.
at(resource) := object.union(valid, {"resource": resource})

# repeat is n copies of s, one string.
repeat(s, n) := concat("", [s | some _ in numbers.range(1, n)])

# contract.md:32-34: a scope is {"type":"service"} or a type of the system
# with an id (an id as a subject's, lines 30-31). Before, a resource that
# was not an object, or a project without a valid id, was decided at the
# service scope: allowed by a service grant.
test_resource_shape if {
	decided(at(null))
	decided(at({"type": "service"}))
	decided(at({"type": "service", "id": ""}))
	decided(at({"type": "project", "id": "p1"}))
	refused(at("p1"), "resource: expected an object, got JSON string")
	refused(at(false), "resource: expected an object, got JSON boolean")
	refused(at({}), "resource.type is required")
	refused(at({"type": "", "id": "p"}), "resource.type is required")
	refused(at({"type": null}), "resource.type: expected a string, got null (leave the key out instead)")
	refused(at({"type": 3}), "resource.type: expected a string, got JSON number")
}

# pdp.validScope: a type the system does not have, a colon in it too, is an
# input error, not a deny with a missing condition.
test_resource_type_of_the_system if {
	has := "(has: [service project bucket])"
	refused(at({"type": "project:p", "id": "x"}), sprintf(`system %q has no resource type "project:p" %s`, [tm, has]))
	refused(at({"type": "space", "id": "x"}), sprintf(`system %q has no resource type "space" %s`, [tm, has]))
	decided(at({"type": "bucket", "id": "x"}))
}

# contract.md:30-31, an id is 1 to 256 bytes (without control characters:
# permatrix.ValidID), also a resource's.
test_resource_id if {
	required := `resource.id is required for resource.type "project": 1 to 256 bytes without control characters`
	refused(at({"type": "project"}), required)
	refused(at({"type": "project", "id": ""}), required)
	refused(at({"type": "project", "id": concat("", ["a", repeat("é", 128)])}), required)
	decided(at({"type": "project", "id": repeat("é", 128)}))
	refused(at({"type": "project", "id": "a\u0001"}), required)
	refused(at({"type": "project", "id": "a\u007f"}), required)
	refused(at({"type": "project", "id": 5}), "resource.id: expected a string, got JSON number")
	null_id := at({"type": "service", "id": null})
	errors_of(null_id) == ["resource.id: expected a string, got null (leave the key out instead)"]
}

# with_groups is the valid check with groups.
with_groups(groups) := object.union(valid, {"groups": groups})

# contract.md:46-47: "groups (optional array of group ids)", each an id as
# a subject's (lines 30-31), at most 256 (permatrix.MaxAssertedGroups).
# Before, only their count was checked: a group that is no id, or groups
# that were no array, were decided (the groups ignored).
test_groups_are_ids if {
	decided(with_groups(null))
	decided(with_groups([]))
	decided(with_groups([concat("", [repeat("€", 85), "a"])]))
	refused(with_groups("g"), "groups: expected an array of strings, got JSON string")
	refused(with_groups({}), "groups: expected an array of strings, got JSON object")
	refused(with_groups([""]), "groups[0] is required")
	refused(with_groups(["g", null]), "groups[1]: expected a string, got null (leave the key out instead)")
	refused(with_groups(["g", 1]), "groups[1]: expected a string, got JSON number")
	refused(with_groups(["g", "a\u007f"]), "groups[1] must be 1 to 256 bytes without control characters")
	over := concat("", [repeat("€", 85), "ab"])
	refused(with_groups(["g", "g", over]), "groups[2] must be 1 to 256 bytes without control characters")

	# The first that is no id, as /v1/check names it.
	errors_of(with_groups(["g", "", "a\u0000"])) == ["groups[1] is required"]
}

# contract.md:38-43, 61: a check is a JSON object ("wrong types → 400");
# its context an object (line 45). The Data API's input is the check:
# "the input" where /v1/check says "the body".
test_check_is_an_object if {
	errors_of("alice") == ["the input must be a JSON object, got string"]
	errors_of([1, 2]) == ["the input must be a JSON object, got array"]
	errors_of(42) == ["the input must be a JSON object, got number"]
	d := permatrix.decision with data.store as {}
	d.errors == ["an input is required: a JSON object"]
	not d.allow
	decided(object.union(valid, {"context": null}))
	decided(object.union(valid, {"context": {"k": 1}}))
	refused(object.union(valid, {"context": "x"}), "context: expected an object, got JSON string")
	refused(object.union(valid, {"context": []}), "context: expected an object, got JSON array")
}

# min_revision, /v1/check's consistency token, is a uint64 there: read so
# here, and ignored.
test_min_revision_a_whole_number if {
	every n in [null, 0, 1, 18446744073709551615] {
		decided(object.union(valid, {"min_revision": n}))
	}
	every n in [-1, 1.5, 18446744073709551616] {
		refused(object.union(valid, {"min_revision": n}), "min_revision: expected a whole number, got JSON number")
	}
	refused(object.union(valid, {"min_revision": "1"}), "min_revision: expected a whole number, got JSON string")
}

# contract.md:38-47 names a check's keys (and a scope's, lines 32-33);
# /v1/check refuses any other, case-sensitively. Before, a misspelt
# "resource" was a check at the service scope.
test_unknown_keys if {
	known := "(known keys: action, context, groups, min_revision, resource, subject, system)"
	misspelt := object.union(valid, {"resourse": {"type": "project", "id": "p"}})
	refused(misspelt, sprintf(`unknown key "resourse" in the input %s`, [known]))
	capital := object.union(valid, {"Resource": {"type": "project", "id": "p"}})
	refused(capital, `unknown key "Resource" in the input (keys are case-sensitive: did you mean "resource"?)`)
	refused(at({"type": "project", "id": "p", "x": 1}), `unknown key "x" in object resource (known keys: id, type)`)
	id_in_capitals := at({"type": "service", "ID": "p"})
	refused(id_in_capitals, `unknown key "ID" in object resource (keys are case-sensitive: did you mean "id"?)`)

	# Of many, the first (in order: /v1/check names the first it reads).
	many := object.union(valid, {sprintf("k%03d", [i]): i | some i in numbers.range(1, 100)})
	errors_of(many) == [sprintf(`unknown key "k001" in the input %s`, [known])]

	# The context's keys are the system's: any is taken.
	decided(object.union(valid, {"context": {"x": 1, "Resource": {}}}))
}
