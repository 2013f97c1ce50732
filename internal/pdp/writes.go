package pdp

import (
	"context"
	"fmt"
	"slices"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
)

// ValidateAssignment checks an assignment's shape (400 territory); whether
// the vendor rules allow it is the policies' verdict (422/403).
func ValidateAssignment(a permatrix.Assignment) error {
	switch {
	case a.Subject == "":
		return permatrix.Errorf(permatrix.EINVALID, "subject is required")
	case !permatrix.ValidSubject(a.Subject):
		return permatrix.Errorf(permatrix.EINVALID, "subject must be \"user:<id>\" or \"group:<id>\" with an id of 1 to %d bytes", permatrix.MaxIDBytes)
	case a.System == "":
		return permatrix.Errorf(permatrix.EINVALID, "system is required")
	case a.Role == "" && a.Permission == "":
		return permatrix.Errorf(permatrix.EINVALID, "one of role and permission is required")
	case a.Role != "" && a.Permission != "":
		return permatrix.Errorf(permatrix.EINVALID, "an assignment names exactly one of role and permission")
	case a.Scope.Type == "":
		return permatrix.Errorf(permatrix.EINVALID, "scope.type is required")
	case a.Scope.Type == "service" && a.Scope.ID != "":
		return permatrix.Errorf(permatrix.EINVALID, "a service scope has no id")
	case a.Scope.Type != "service" && !permatrix.ValidID(a.Scope.ID):
		return permatrix.Errorf(permatrix.EINVALID, "scope.id is required for scope type %q", a.Scope.Type)
	case a.ID != "" && !permatrix.ValidID(a.ID):
		return permatrix.Errorf(permatrix.EINVALID, "invalid assignment id")
	}
	return nil
}

// verdictInput is the input of data.permatrix.admin.verdict for one write
// (the shapes are listed in policies/permatrix/admin/admin.rego): the op,
// what it is about under key, and the actor unless the operator writes.
// Every write builds its verdict input here.
func verdictInput(op, actor, key string, about any) verdict {
	in := map[string]any{"op": op, key: about}
	if actor != "" {
		in["actor"] = actor
	}
	return verdict{input: in}
}

func validActor(actor string) error {
	if actor != "" && !permatrix.ValidID(actor) {
		return permatrix.Errorf(permatrix.EINVALID, "actor must be a user id of 1 to %d bytes", permatrix.MaxIDBytes)
	}
	return nil
}

// Assign stores an assignment on behalf of actor ("" for the operator).
func (s *Service) Assign(ctx context.Context, a permatrix.Assignment, actor string) (permatrix.Assignment, uint64, error) {
	if err := ValidateAssignment(a); err != nil {
		return a, 0, err
	}
	if err := validActor(actor); err != nil {
		return a, 0, err
	}
	rev, err := s.write(ctx, []verdict{verdictInput("assign", actor, "assignment", a.Value())}, func(tx *bolt.Tx) error {
		return tx.CreateAssignment(&a)
	})
	return a, rev, err
}

// Unassign removes an assignment on behalf of actor.
func (s *Service) Unassign(ctx context.Context, id, actor string) (uint64, error) {
	if err := validActor(actor); err != nil {
		return 0, err
	}
	var a permatrix.Assignment
	if err := s.db.View(func(tx *bolt.Tx) (err error) { a, err = tx.Assignment(id); return err }); err != nil {
		return 0, err
	}
	return s.write(ctx, []verdict{verdictInput("unassign", actor, "assignment", a.Value())}, func(tx *bolt.Tx) error {
		_, err := tx.DeleteAssignment(id)
		return err
	})
}

// Assignments lists assignments, a page at a time.
func (s *Service) Assignments(ctx context.Context, f permatrix.AssignmentFilter) (list []permatrix.Assignment, next string, err error) {
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, "", permatrix.Errorf(permatrix.EINVALID, "limit must be between 1 and 1000")
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		list, next, err = tx.Assignments(f)
		return err
	})
	return list, next, err
}

// ImportLine is one assignment of an import, the actor it is written on
// behalf of ("" for the operator) and its line in the import.
type ImportLine struct {
	Line       int
	Assignment permatrix.Assignment
	Actor      string
}

// Import stores every assignment or none (one transaction). Each is judged
// by the vendor rules, with its own actor, against the store as it was
// before the import: the first refused line fails the import, and the
// error names its line.
func (s *Service) Import(ctx context.Context, lines []ImportLine) (int, uint64, error) {
	verdicts := make([]verdict, len(lines))
	for i, l := range lines {
		err := ValidateAssignment(l.Assignment)
		if err == nil {
			err = validActor(l.Actor)
		}
		if err != nil {
			e := err.(*permatrix.Error)
			return 0, 0, permatrix.Errorf(e.Code, "line %d: %s", l.Line, e.Message)
		}
		verdicts[i] = verdictInput("assign", l.Actor, "assignment", l.Assignment.Value())
		verdicts[i].where = fmt.Sprintf("line %d", l.Line)
	}
	rev, err := s.write(ctx, verdicts, func(tx *bolt.Tx) error {
		for i := range lines {
			if err := tx.CreateAssignment(&lines[i].Assignment); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return len(lines), rev, nil
}

// Export is the whole store as OPA data: {"store": ...}.
func (s *Service) Export(ctx context.Context) (map[string]any, error) {
	st, err := s.db.State()
	if err != nil {
		return nil, err
	}
	return map[string]any{permatrix.StoreRoot: st.Document()}, nil
}

func validMembership(m permatrix.Membership) error {
	if !permatrix.ValidID(m.Group) || !permatrix.ValidID(m.User) {
		return permatrix.Errorf(permatrix.EINVALID, "group and user ids must be 1 to %d bytes", permatrix.MaxIDBytes)
	}
	return nil
}

// AddMember puts a user in a group (idempotent) on behalf of actor. A
// member holds what the group holds, so the write rules judge it as
// assigning each of the group's holdings to the user.
func (s *Service) AddMember(ctx context.Context, m permatrix.Membership, actor string) (uint64, error) {
	if err := validMembership(m); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, []verdict{verdictInput("add_member", actor, "membership", m.Value())}, func(tx *bolt.Tx) error { return tx.AddMember(m) })
}

// RemoveMember takes a user out of a group on behalf of actor (judged as
// removing each of the group's holdings from the user).
func (s *Service) RemoveMember(ctx context.Context, m permatrix.Membership, actor string) (uint64, error) {
	if err := validMembership(m); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, []verdict{verdictInput("remove_member", actor, "membership", m.Value())}, func(tx *bolt.Tx) error { return tx.RemoveMember(m) })
}

// Members lists a group's users.
func (s *Service) Members(ctx context.Context, group string) (users []string, rev uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		users, err = tx.Members(group)
		rev = tx.Revision()
		return err
	})
	return users, rev, err
}

func (s *Service) knownSystem(id string) (*permatrix.System, error) {
	p, err := s.policy()
	if err != nil {
		return nil, err
	}
	sys, ok := p.Catalog[id]
	if !ok {
		return nil, permatrix.Errorf(permatrix.ENOTFOUND, "unknown system %q", id)
	}
	return sys, nil
}

// PutRole defines or replaces a custom role on behalf of actor.
func (s *Service) PutRole(ctx context.Context, r permatrix.Role, actor string) (uint64, error) {
	if _, err := s.knownSystem(r.System); err != nil {
		return 0, err
	}
	if !permatrix.ValidID(r.Name) {
		return 0, permatrix.Errorf(permatrix.EINVALID, "role names are 1 to %d bytes", permatrix.MaxIDBytes)
	}
	if r.Permissions == nil {
		return 0, permatrix.Errorf(permatrix.EINVALID, "permissions is required (an array of permission ids)")
	}
	// A role is a set of permissions: store it sorted, without repeats.
	r.Permissions = slices.Compact(slices.Sorted(slices.Values(r.Permissions)))
	if err := validActor(actor); err != nil {
		return 0, err
	}
	in := verdictInput("define_role", actor, "role", map[string]any{"system": r.System, "name": r.Name, "permissions": r.Value()["permissions"]})
	return s.write(ctx, []verdict{in}, func(tx *bolt.Tx) error { return tx.PutRole(r) })
}

// Role returns a custom role.
func (s *Service) Role(ctx context.Context, system, name string) (r permatrix.Role, err error) {
	if _, err := s.knownSystem(system); err != nil {
		return r, err
	}
	err = s.db.View(func(tx *bolt.Tx) error { r, err = tx.Role(system, name); return err })
	return r, err
}

// DeleteRole removes a custom role that no assignment uses.
func (s *Service) DeleteRole(ctx context.Context, system, name, actor string) (uint64, error) {
	if _, err := s.knownSystem(system); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	var r permatrix.Role
	if err := s.db.View(func(tx *bolt.Tx) (err error) { r, err = tx.Role(system, name); return err }); err != nil {
		return 0, err
	}
	in := verdictInput("delete_role", actor, "role", map[string]any{"system": system, "name": name, "permissions": r.Value()["permissions"]})
	return s.write(ctx, []verdict{in}, func(tx *bolt.Tx) error {
		if n, err := roleUses(tx, system, name); err != nil {
			return err
		} else if n > 0 {
			return permatrix.Errorf(permatrix.ECONFLICT, "role %q is assigned %d time(s); remove those assignments first", name, n)
		}
		return tx.DeleteRole(system, name)
	})
}

func roleUses(tx *bolt.Tx, system, role string) (int, error) {
	n, cursor := 0, ""
	for {
		list, next, err := tx.Assignments(permatrix.AssignmentFilter{System: system, Limit: 1000, Cursor: cursor})
		if err != nil {
			return 0, err
		}
		for _, a := range list {
			if a.Role == role {
				n++
			}
		}
		if next == "" {
			return n, nil
		}
		cursor = next
	}
}

// PutProject registers a project. Where the vendor gives a project's creator
// a role on it (catalog creator_role), that assignment is made in the same
// transaction. An actor registers projects as itself: without created_by
// the actor is the creator (the write rules refuse naming anyone else).
func (s *Service) PutProject(ctx context.Context, p permatrix.Project, actor string) (permatrix.Project, uint64, *permatrix.Assignment, error) {
	sys, err := s.knownSystem(p.System)
	if err != nil {
		return p, 0, nil, err
	}
	if err := validActor(actor); err != nil {
		return p, 0, nil, err
	}
	if p.CreatedBy == "" {
		p.CreatedBy = actor
	}
	switch {
	case !permatrix.ValidID(p.ID):
		return p, 0, nil, permatrix.Errorf(permatrix.EINVALID, "project ids are 1 to %d bytes", permatrix.MaxIDBytes)
	case p.CreatedBy != "" && !permatrix.ValidID(p.CreatedBy):
		return p, 0, nil, permatrix.Errorf(permatrix.EINVALID, "created_by must be a user id of 1 to %d bytes", permatrix.MaxIDBytes)
	case p.Kind != "" && p.Kind != "assisted" && p.Kind != "unassisted":
		return p, 0, nil, permatrix.Errorf(permatrix.EINVALID, "kind must be \"assisted\" or \"unassisted\"")
	case !sys.HasScopeType("project"):
		return p, 0, nil, permatrix.Errorf(permatrix.EUNPROCESSABLE, "system %q has no projects", p.System)
	}
	in := verdictInput("register_project", actor, "project", map[string]any{"system": p.System, "id": p.ID, "created_by": p.CreatedBy, "kind": p.Kind})
	var creator *permatrix.Assignment
	rev, err := s.write(ctx, []verdict{in}, func(tx *bolt.Tx) error {
		// Who created a project is a fact, not a field: re-registering it under
		// another creator would hand that user the creator's role.
		if old, err := tx.Project(p.System, p.ID); err == nil && old.CreatedBy != p.CreatedBy {
			return permatrix.Errorf(permatrix.ECONFLICT, "project %q is registered as created by %q; created_by cannot change", p.ID, old.CreatedBy)
		} else if err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
			return err
		}
		if err := tx.PutProject(p); err != nil {
			return err
		}
		if sys.CreatorRole == "" || p.CreatedBy == "" {
			return nil
		}
		creator = &permatrix.Assignment{
			Subject: permatrix.UserPrefix + p.CreatedBy, System: p.System, Role: sys.CreatorRole,
			Scope: permatrix.Scope{Type: "project", ID: p.ID},
		}
		return tx.CreateAssignment(creator)
	})
	if err != nil {
		return p, 0, nil, err
	}
	return p, rev, creator, nil
}

// Project returns a registered project.
func (s *Service) Project(ctx context.Context, system, id string) (p permatrix.Project, err error) {
	if _, err := s.knownSystem(system); err != nil {
		return p, err
	}
	err = s.db.View(func(tx *bolt.Tx) error { p, err = tx.Project(system, id); return err })
	return p, err
}

// Assignment returns one assignment.
func (s *Service) Assignment(ctx context.Context, id string) (a permatrix.Assignment, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { a, err = tx.Assignment(id); return err })
	return a, err
}
