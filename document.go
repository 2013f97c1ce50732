package permatrix

// The assignment store reaches the policies as ordinary OPA data under
// data.store, so the stock opa binary, given an export (GET /v1/export),
// decides exactly as the embedded engine does. The layout is made for the
// questions a decision asks, answered by direct lookups:
//
//	store.revision                                          number
//	store.grants[principal][system][kind][name][scope]      reason (below)
//	store.memberships[user][group]                          true
//	store.roles[system][role]                               {"permissions": [...]}
//	store.projects[system][project]                         {"created_by": ..., "kind": ...}
//	store.scopes[system][scope][assignment id]              true
//
// principal is "user:<id>" or "group:<id>"; kind is "role" or "permission"
// and name the role or permission id; scope is "service" or "<type>:<id>".
// A grant's value is the reason a decision gives for it:
//
//	{"kind": "role", "role": "admin", "scope": {"type": "service"},
//	 "via": "user:alice", "assignment": "a000000000001"}
//
// scopes indexes the grants made below the service scope by where they are
// made (for rules such as "a project that already has assignments").
// Assignment ids are unique across the store. internal/store keeps this
// document (and the admin API's indexes) in any ordered key-value backend.

// StoreRoot is the top-level key of the store in the data document.
const StoreRoot = "store"

// Value is the assignment as the write rules see it (the input of
// data.permatrix.admin.verdict).
func (a Assignment) Value() map[string]any {
	v := map[string]any{
		"id":      a.ID,
		"subject": a.Subject,
		"system":  a.System,
		"scope":   a.Scope.Value(),
	}
	if a.Role != "" {
		v["role"] = a.Role
	} else {
		v["permission"] = a.Permission
	}
	return v
}

// Value is the scope as the policies see it.
func (s Scope) Value() map[string]any {
	if s.ID == "" {
		return map[string]any{"type": s.Type}
	}
	return map[string]any{"type": s.Type, "id": s.ID}
}

// Value is the custom role as the policies see it.
func (r Role) Value() map[string]any {
	perms := make([]any, len(r.Permissions))
	for i, p := range r.Permissions {
		perms[i] = p
	}
	return map[string]any{"permissions": perms}
}

// Value is the project as the policies see it.
func (p Project) Value() map[string]any {
	return map[string]any{"created_by": p.CreatedBy, "kind": p.Kind}
}

// Value is the membership as the write rules see it (input.membership).
func (m Membership) Value() map[string]any {
	return map[string]any{"group": m.Group, "user": m.User}
}
