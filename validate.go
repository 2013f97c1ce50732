package permatrix

import "slices"

// Shape validation: whether a value can be stored at all (EINVALID, HTTP
// 400). Whether the vendor rules allow it is the policies' verdict (422/403),
// never decided here. Every layer (HTTP, decision point, store) calls these,
// so the wording is the same wherever a bad value is refused.

// Validate checks an assignment's shape.
func (a Assignment) Validate() error {
	switch {
	case a.ID != "" && !ValidID(a.ID):
		return Errorf(EINVALID, "invalid assignment id: want 1 to %d bytes without control characters", MaxIDBytes)
	case a.Subject == "":
		return Errorf(EINVALID, "subject is required")
	case !ValidSubject(a.Subject):
		return Errorf(EINVALID, "subject must be \"user:<id>\" or \"group:<id>\" with an id of 1 to %d bytes without control characters", MaxIDBytes)
	case a.System == "":
		return Errorf(EINVALID, "system is required")
	case !ValidID(a.System):
		return Errorf(EINVALID, "invalid system id")
	case a.Role == "" && a.Permission == "":
		return Errorf(EINVALID, "one of role and permission is required")
	case a.Role != "" && a.Permission != "":
		return Errorf(EINVALID, "an assignment names exactly one of role and permission")
	case a.Role != "" && !ValidID(a.Role):
		return Errorf(EINVALID, "invalid role id")
	case a.Permission != "" && !ValidID(a.Permission):
		return Errorf(EINVALID, "invalid permission id")
	}
	return a.Scope.Validate("scope.type", "scope.id")
}

// Validate checks a scope's shape — an assignment's, a check's resource,
// the permissions' query —, naming its fields as the caller wrote them
// (typeField, idField). It is the one owner of the rule that the service
// scope (the whole system) has no id and every other scope has one: an id
// given with "service" was dropped, and a check about one resource was
// answered about the whole system.
func (s Scope) Validate(typeField, idField string) error {
	switch {
	case s.Type == "":
		return Errorf(EINVALID, "%s is required", typeField)
	case !ValidID(s.Type) || containsColon(s.Type):
		return Errorf(EINVALID, "invalid %s %q", typeField, s.Type)
	case s.IsService() && s.ID != "":
		return Errorf(EINVALID, "%s is not allowed with %s \"service\" (the whole system has no id)", idField, typeField)
	case !s.IsService() && !ValidID(s.ID):
		return Errorf(EINVALID, "%s is required for %s %q: 1 to %d bytes without control characters", idField, typeField, s.Type, MaxIDBytes)
	}
	return nil
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// Validate checks a membership's shape.
func (m Membership) Validate() error {
	if !ValidID(m.Group) || !ValidID(m.User) {
		return Errorf(EINVALID, "group and user ids must be 1 to %d bytes without control characters", MaxIDBytes)
	}
	return nil
}

// Validate checks a custom role's shape.
func (r Role) Validate() error {
	switch {
	case !ValidID(r.System):
		return Errorf(EINVALID, "invalid system id")
	case !ValidID(r.Name):
		return Errorf(EINVALID, "role names are 1 to %d bytes without control characters", MaxIDBytes)
	case r.Permissions == nil:
		return Errorf(EINVALID, "permissions is required (an array of permission ids)")
	}
	for _, p := range r.Permissions {
		if !ValidID(p) {
			return Errorf(EINVALID, "invalid permission id %q", p)
		}
	}
	return nil
}

// Validate checks a project's shape.
func (p Project) Validate() error {
	switch {
	case !ValidID(p.System):
		return Errorf(EINVALID, "invalid system id")
	case !ValidID(p.ID):
		return Errorf(EINVALID, "project ids are 1 to %d bytes without control characters", MaxIDBytes)
	case p.CreatedBy != "" && !ValidID(p.CreatedBy):
		return Errorf(EINVALID, "created_by must be a user id of 1 to %d bytes", MaxIDBytes)
	case p.Kind != "" && p.Kind != "assisted" && p.Kind != "unassisted":
		return Errorf(EINVALID, "kind must be \"assisted\" or \"unassisted\"")
	}
	return nil
}

// Normal is the role as it is stored: its permissions are a set, sorted,
// without repeats, never nil.
func (r Role) Normal() Role {
	ps := append([]string{}, r.Permissions...)
	slices.Sort(ps)
	r.Permissions = slices.Compact(ps)
	return r
}
