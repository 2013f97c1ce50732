package permatrix

// The assignment store reaches the policies as ordinary OPA data under
// data.store, so the stock opa binary, given an export, decides exactly as
// the embedded engine does. The layout is indexed for the questions the
// policies ask during a check:
//
//	store.revision                          number
//	store.subjects[subject][assignment id]  assignment (subject: "user:<id>"/"group:<id>")
//	store.memberships[user][group]          true
//	store.groups[group][user]               true
//	store.roles[system][role]               {"permissions": [...]}
//	store.projects[system][project id]      {"created_by": ..., "kind": ...}
//
// Assignment ids are unique across subjects.

// StoreRoot is the top-level key of the store in the data document.
const StoreRoot = "store"

// State is the whole assignment store at one revision.
type State struct {
	Revision    uint64
	Assignments []Assignment
	Memberships []Membership
	Roles       []Role
	Projects    []Project
}

// Document renders s as the value of data.store.
func (s *State) Document() map[string]any {
	subjects := map[string]any{}
	for _, a := range s.Assignments {
		m, ok := subjects[a.Subject].(map[string]any)
		if !ok {
			m = map[string]any{}
			subjects[a.Subject] = m
		}
		m[a.ID] = a.Value()
	}
	memberships, groups := map[string]any{}, map[string]any{}
	for _, m := range s.Memberships {
		nested(memberships, m.User)[m.Group] = true
		nested(groups, m.Group)[m.User] = true
	}
	roles := map[string]any{}
	for _, r := range s.Roles {
		nested(roles, r.System)[r.Name] = r.Value()
	}
	projects := map[string]any{}
	for _, p := range s.Projects {
		nested(projects, p.System)[p.ID] = p.Value()
	}
	return map[string]any{
		"revision":    s.Revision,
		"subjects":    subjects,
		"memberships": memberships,
		"groups":      groups,
		"roles":       roles,
		"projects":    projects,
	}
}

func nested(m map[string]any, key string) map[string]any {
	v, ok := m[key].(map[string]any)
	if !ok {
		v = map[string]any{}
		m[key] = v
	}
	return v
}

// Value is the assignment as the policies see it.
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

// A Patch is one change to data.store made by a committed write. Path is
// relative to data.store; Value nil means remove. Patches let the engine
// follow the bolt file without re-reading it.
type Patch struct {
	Path  []string
	Value any
}

// AssignmentPath is where an assignment lives under data.store.
func AssignmentPath(a Assignment) []string { return []string{"subjects", a.Subject, a.ID} }

// MembershipPaths are where a membership lives under data.store (both indexes).
func MembershipPaths(m Membership) [][]string {
	return [][]string{{"memberships", m.User, m.Group}, {"groups", m.Group, m.User}}
}

// RolePath is where a custom role lives under data.store.
func RolePath(r Role) []string { return []string{"roles", r.System, r.Name} }

// ProjectPath is where a project lives under data.store.
func ProjectPath(p Project) []string { return []string{"projects", p.System, p.ID} }
