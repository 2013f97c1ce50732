# Celonis member tests, older document line 9 ("Member Role | - | - | - |
# - | - | -"): what a write refuses and what a member's decision says is
# missing. The helpers are celonis_test.rego's.
package celonis_test

import data.permatrix

member_condition := concat("", [
	"a Celonis member holds no permission and is granted none (celonis-task-mining-permissions-older.txt, ",
	"line 9); an analyst is granted permissions (line 8), an admin holds them all",
])

# What a member lacks is not the permission alone, which no write would
# grant it (member_violations), but another role: missing says so beside
# the permission.
test_member_missing_names_the_member_role if {
	d := decide(member, check(tm, "edit_users", p1, {}))
	not d.allow
	d.missing == [
		{"kind": "condition", "system": tm, "message": member_condition},
		{"kind": "permission", "system": tm, "permission": "edit_users", "scope": p1},
	]
	s := decide(member, check("celonis-studio", "create_package", {"type": "space", "id": "s"}, {}))
	{"kind": "condition", "system": "celonis-studio", "message": member_condition} in s.missing
	a := decide(analyst, check(tm, "edit_users", p1, {}))
	a.missing == [{"kind": "permission", "system": tm, "permission": "edit_users", "scope": p1}]
}

# Old line 9, "Member Role | - | - | - | - | - | -": a member holds no
# permission, so a user holding Celonis permissions (in any of the three
# systems) is not made a member, as a member is granted none.
test_member_role_refused_to_a_permission_holder if {
	v := verdict([grant("g", "user:u", tm, "edit_users", p1)], role("x", "u", "member"))
	count(v.violations) == 1
	contains(v.violations[0], "user:u holds Celonis permissions (edit_users)")
	contains(v.violations[0], "older.txt, line 9")
	w := verdict([grant("g", "user:u", sm, "get", bucket)], role("x", "u", "member"))
	count(w.violations) == 1
}

# A member with another role is not a member-only subject (platform.rego,
# granting): its permissions count, and the member role may be added.
test_member_role_taken_beside_another_role if {
	verdict(array.concat(analyst, [grant("g", "user:u", tm, "edit_users", p1)]), role("x", "u", "member")).violations == []
	verdict([], role("x", "u", "member")).violations == []
	verdict([grant("g", "user:w", tm, "edit_users", p1)], role("x", "u", "member")).violations == []
}

# A permission granted to a group is the group's: its other members hold it,
# and a member's decisions pass it over (test_member_group_grant_is_ignored);
# the documents say nothing of a group's grants for its members, so the
# grant is stored (docs/systems/celonis.md, Writes).
test_group_with_a_member_can_be_granted if {
	g := grant("x", "group:ops", tm, "edit_users", p1)

	# regal ignore:with-outside-test-context
	v := permatrix.admin.verdict with data.store as store(member, {"u": {"ops": true}})
		with input as {"op": "assign", "assignment": g}
	v.violations == []
}
