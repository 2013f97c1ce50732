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
	errors_of(object.union(valid, {"system": "nope"})) == [`unknown system "nope"`]
	errors_of(object.union(valid, {"action": "fly"})) == [`unknown action "fly" for system "celonis-task-mining"`]
}
