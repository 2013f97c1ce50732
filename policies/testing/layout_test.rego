# METADATA
# title: test helpers for the store layout
# description: |
#   The policy tests write their stores as {subject: {id: assignment}} maps,
#   the way a person reads them; grants and scopes lay such a map out as the
#   server stores data.store (document.go at the repository root):
#   store.grants[principal][system][kind][name][scope] = reason, and
#   store.scopes[system][scope][id] = true for grants below the service scope.
package testing.layout

# every_assignment is every assignment object of a subjects map.
every_assignment(subjects) := [a | some m in subjects; some a in m]

# grants is data.store.grants of a subjects map.
grants(subjects) := grants_of(every_assignment(subjects))

# scopes is data.store.scopes of a subjects map.
scopes(subjects) := scopes_of(every_assignment(subjects))

# grants_of is data.store.grants of a list (or set) of assignment objects.
grants_of(list) := {a.subject: by_system(list, a.subject) | some a in list}

# scopes_of is data.store.scopes of a list (or set) of assignment objects.
scopes_of(list) := {a.system: scope_ids(list, a.system) |
	some a in list
	a.scope.type != "service"
}

by_system(list, p) := {a.system: by_kind(list, p, a.system) | some a in list; a.subject == p}

by_kind(list, p, sys) := {kind(a): by_name(list, p, sys, kind(a)) | some a in list; a.subject == p; a.system == sys}

by_name(list, p, sys, k) := {a[k]: by_scope(list, p, sys, k, a[k]) |
	some a in list
	a.subject == p
	a.system == sys
	kind(a) == k
}

by_scope(list, p, sys, k, n) := {scope_key(a.scope): leaf(a) |
	some a in list
	a.subject == p
	a.system == sys
	kind(a) == k
	a[k] == n
}

scope_ids(list, sys) := {scope_key(b.scope): ids_at(list, sys, scope_key(b.scope)) |
	some b in list
	b.system == sys
	b.scope.type != "service"
}

ids_at(list, sys, key) := {a.id: true | some a in list; a.system == sys; scope_key(a.scope) == key}

default kind(_) := "permission"

kind(a) := "role" if a.role

# leaf is a grant's value: the reason a decision gives for it.
leaf(a) := {"kind": kind(a), kind(a): a[kind(a)], "scope": a.scope, "via": a.subject, "assignment": a.id}

scope_key(s) := "service" if s.type == "service"

else := concat(":", [s.type, s.id])
