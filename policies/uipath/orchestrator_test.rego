# METADATA
# title: uipath-orchestrator tests
# description: AI Center permissions held through direct tenant grants (user or group).
package uipath_orchestrator_test

import data.permatrix
import data.testing.layout

sys := "uipath-orchestrator"

tenant := {"type": "service"}

perms := {
	"ml_logs_view", "ml_packages_view", "ml_packages_edit",
	"ml_packages_create", "ml_packages_delete", "ml_skills_view",
}

grant(id, subject, perm) := {"id": id, "subject": subject, "system": sys, "permission": perm, "scope": tenant}

check(action) := {"subject": "alice", "system": sys, "action": action}

# decide is the decision for check_in over store. A test helper: Regal
# counts only test_ rules as test context, but with is what it is for.
decide(store, check_in) := d if {
	# regal ignore:with-outside-test-context,external-reference
	d := permatrix.decision with data.store as store with input as check_in
}

missing_perm(p) := {"kind": "permission", "system": sys, "permission": p, "scope": tenant}

# "the following permissions need to be applied in Orchestrator at the tenant level"
test_each_permission_granted_directly if {
	every p in perms {
		d := decide({"revision": 3, "grants": layout.grants({"user:alice": {"a1": grant("a1", "user:alice", p)}})}, check(p))
		d.allow
		d.missing == []
		d.reasons == [{"kind": "permission", "permission": p, "scope": tenant, "via": "user:alice", "assignment": "a1"}]
		d.revision == 3
	}
}

test_each_permission_denied_without_grant if {
	every p in perms {
		d := decide({"grants": layout.grants({})}, check(p))
		not d.allow
		d.reasons == []
		d.missing == [missing_perm(p)]
	}
}

# One permission of the tenant role does not grant another.
test_other_permission_grants_nothing if {
	store := {"grants": layout.grants({"user:alice": {"a1": grant("a1", "user:alice", "ml_packages_view")}})}
	every p in perms - {"ml_packages_view"} {
		d := decide(store, check(p))
		not d.allow
		d.missing == [missing_perm(p)]
	}
}

# A grant to another user is not alice's.
test_grant_of_other_user if {
	store := {"grants": layout.grants({"user:bob": {"a1": grant("a1", "user:bob", "ml_logs_view")}})}
	d := decide(store, check("ml_logs_view"))
	not d.allow
}

# "Roles can be assigned to individual users or to a group."
test_group_grant_stored_membership if {
	store := {
		"grants": layout.grants({"group:study": {"g1": grant("g1", "group:study", "ml_skills_view")}}),
		"memberships": {"alice": {"study": true}},
		"groups": {"study": {"alice": true}},
	}
	d := decide(store, check("ml_skills_view"))
	d.allow
	d.reasons[0].via == "group:study"
}

test_group_grant_asserted_group if {
	store := {"grants": layout.grants({"group:study": {"g1": grant("g1", "group:study", "ml_skills_view")}})}
	d := decide(store, object.union(check("ml_skills_view"), {"groups": ["study"]}))
	d.allow
	d.reasons[0].via == "group:study"
}

test_group_grant_not_member if {
	store := {"grants": layout.grants({"group:study": {"g1": grant("g1", "group:study", "ml_skills_view")}})}
	not decide(store, check("ml_skills_view")).allow
}

# The tenant is the only scope: a check at a project is an input error, as
# POST /v1/check's 400 (pdp.validScope).
test_project_scope_check_denied if {
	store := {"grants": layout.grants({"user:alice": {"a1": grant("a1", "user:alice", "ml_logs_view")}})}
	d := decide(store, object.union(check("ml_logs_view"), {"resource": {"type": "project", "id": "p1"}}))
	not d.allow
	d.errors == [`system "uipath-orchestrator" has no resource type "project" (has: [service])`]
}

# Writes: permissions at the tenant only; no roles.
# write is the verdict on assigning assignment (a test helper, as decide).
write(assignment) := v if {
	# regal ignore:with-outside-test-context,external-reference
	v := permatrix.admin.verdict with input as {"op": "assign", "assignment": assignment}
}

test_write_permission_at_tenant_ok if {
	write({"subject": "user:alice", "system": sys, "permission": "ml_packages_edit", "scope": tenant}) == {
		"violations": [],
		"forbidden": [],
	}
}

test_write_permission_at_project_refused if {
	p1 := {"type": "project", "id": "p1"}
	v := write({"subject": "user:alice", "system": sys, "permission": "ml_packages_edit", "scope": p1})
	count(v.violations) == 1
}

test_write_role_refused if {
	v := write({"subject": "user:alice", "system": sys, "role": "admin", "scope": tenant})
	v.violations == [`unknown role "admin" for system "uipath-orchestrator"`]
}

# "How to grant AICenter permissions in Orchestrator" (lines 73-80) says how a
# tenant role is made, not who may make it: no actor writes here, whatever it
# holds (vendor-docs/README.md reading); the operator (no actor) still does.
assign_as(actor) := {
	"op": "assign", "actor": actor,
	"assignment": {"subject": "user:alice", "system": sys, "permission": "ml_logs_view", "scope": tenant},
}

# bob holds every permission of the tenant: still no authority to grant them.
holder := {"grants": layout.grants({"user:bob": {p: grant(p, "user:bob", p) | some p in perms}})}

test_write_by_any_actor_refused if {
	every actor in ["bob", "alice"] {
		v := permatrix.admin.verdict with input as assign_as(actor) with data.store as holder
		v.violations == []
		count(v.forbidden) == 1
		contains(v.forbidden[0], "the document names no one who may grant these tenant permissions")
		contains(v.forbidden[0], "uipath-task-mining-automation-suite.txt")
	}
}

test_unassign_by_actor_refused if {
	v := permatrix.admin.verdict with input as {
		"op": "unassign", "actor": "bob",
		"assignment": {"id": "x", "subject": "user:alice", "system": sys, "permission": "ml_logs_view", "scope": tenant},
	}
	contains(v.forbidden[0], "only the operator")
}

# holds(perm) is what the decision allows (how UiPath Task Mining asks its AI
# Center prerequisites, without the decision): for each permission, with
# grants to alice, to a stored group of hers, to an asserted group, to
# another user, and with none.
holds_store := {
	"grants": layout.grants({
		"user:alice": {"a1": grant("a1", "user:alice", "ml_logs_view")},
		"group:study": {"g1": grant("g1", "group:study", "ml_skills_view")},
		"group:told": {"g2": grant("g2", "group:told", "ml_packages_edit")},
		"user:bob": {"b1": grant("b1", "user:bob", "ml_packages_view")},
	}),
	"memberships": {"alice": {"study": true}},
}

test_holds_is_what_the_decision_allows if {
	checks := [object.union(check(p), {"groups": groups}) |
		some p in perms
		some groups in [[], ["told"]]
	]
	every c in checks {
		holds_under(c) == decide(holds_store, c).allow
	}

	# Each way of holding is taken, and bob's grant is not alice's.
	allowed := {[c.action, count(c.groups)] | some c in checks; decide(holds_store, c).allow}
	allowed == {
		["ml_logs_view", 0], ["ml_logs_view", 1], ["ml_skills_view", 0], ["ml_skills_view", 1],
		["ml_packages_edit", 1],
	}
}

# holds_under is holds of the check's action under holds_store, as a boolean.
holds_under(c) if {
	# regal ignore:with-outside-test-context,external-reference
	permatrix.systems.uipath_orchestrator.holds(c.action) with data.store as holds_store with input as c
} else := false
