package store

import (
	"bytes"
	"container/heap"
	"fmt"
	"slices"
	"strings"

	"github.com/permatrix/permatrix"
)

// grantLeaf is a grant's value in data.store: the reason a decision gives
// for it.
type grantLeaf struct {
	Kind       string          `json:"kind"`
	Role       string          `json:"role,omitempty"`
	Permission string          `json:"permission,omitempty"`
	Scope      permatrix.Scope `json:"scope"`
	Via        string          `json:"via"`
	Assignment string          `json:"assignment"`
}

func leafOf(a permatrix.Assignment) grantLeaf {
	l := grantLeaf{Kind: KindPermission, Permission: a.Permission, Scope: a.Scope, Via: a.Subject, Assignment: a.ID}
	if a.Role != "" {
		l.Kind, l.Role, l.Permission = KindRole, a.Role, ""
	}
	return l
}

// assignmentOf reads an assignment back from its grant key and leaf.
func assignmentOf(key, value []byte) (permatrix.Assignment, error) {
	segs := Segments(key)
	var l grantLeaf
	if len(segs) != 7 || segs[0] != nsDoc || segs[1] != ixGrants {
		return permatrix.Assignment{}, corrupt(key, "not a grant key")
	}
	if fast, ok := decodeGrantLeaf(value); ok {
		l = fast
	} else if err := unmarshalRecord(value, &l); err != nil {
		return permatrix.Assignment{}, corrupt(key, err.Error())
	}
	a := permatrix.Assignment{ID: l.Assignment, Subject: segs[2], System: segs[3], Scope: l.Scope}
	switch segs[4] {
	case KindRole:
		a.Role = segs[5]
	case KindPermission:
		a.Permission = segs[5]
	default:
		return a, corrupt(key, "unknown kind")
	}
	if l.Via != a.Subject || (l.Role != a.Role) || (l.Permission != a.Permission) || ScopeKey(l.Scope) != segs[6] || !permatrix.ValidID(a.ID) {
		return a, corrupt(key, "leaf does not match its key")
	}
	return a, nil
}

func corrupt(key []byte, why string) error {
	return fmt.Errorf("store: corrupt value at %q: %s", Segments(key), why)
}

// Assignment returns the assignment with the id (ENOTFOUND if absent).
func Assignment(s Snapshot, id string) (permatrix.Assignment, error) {
	dk, err := s.Get(assignmentKey(id))
	if err != nil {
		return permatrix.Assignment{}, err
	}
	if dk == nil {
		return permatrix.Assignment{}, permatrix.Errorf(permatrix.ENOTFOUND, "assignment %q not found", id)
	}
	dk = slices.Clone(dk)
	v, err := s.Get(dk)
	if err != nil {
		return permatrix.Assignment{}, err
	}
	if v == nil {
		return permatrix.Assignment{}, corrupt(assignmentKey(id), "index names a missing grant")
	}
	a, err := assignmentOf(dk, v)
	if err == nil && a.ID != id {
		err = corrupt(dk, "grant names another assignment id")
	}
	return a, err
}

// indexedAssignment is the assignment whose grant key dk the assignment
// index's entry k names.
func indexedAssignment(s Snapshot, k, dk []byte) (permatrix.Assignment, error) {
	v, err := s.Get(dk)
	if err != nil {
		return permatrix.Assignment{}, err
	}
	if v == nil {
		return permatrix.Assignment{}, corrupt(k, "index names a missing grant")
	}
	return assignmentOf(dk, v)
}

// Assignments lists the assignments that match f, ordered by id, starting
// after f.Cursor: a page of f.PageLimit(). next is the last id of the page when more follow, else "".
//
// A page holds what a page needs, whatever the filter: a subject's page
// (with f.WithGroups, the user's and its groups') is looked for by id from
// the cursor (subjectByID), and where that would read too far, the
// subject's grants (in one system, with f.System), one subtree in key
// order (each group's too), are reduced as they are read to the limit+1
// smallest ids after the cursor (so the page reads all of them, and holds
// a page); the assignments at one scope below
// the service scope (f.ScopeType and f.ScopeID) are listed by id in the
// scopes index, a system at a time, where the page seeks its cursor
// (without f.System, a page of each system, merged); any other filter
// walks the assignment index by id from the cursor until the page is full
// or scanBudget entries are read: a page may then be short, even empty,
// and next (the last id read) says where the next one starts.
func Assignments(s Snapshot, f permatrix.AssignmentFilter) (list []permatrix.Assignment, next string, err error) {
	limit, err := f.PageLimit()
	if err != nil {
		return nil, "", err
	}
	switch {
	case f.WithGroups && !strings.HasPrefix(f.Subject, permatrix.UserPrefix):
		return nil, "", permatrix.Errorf(permatrix.EINVALID, "with_groups lists a user's assignments and its groups': it needs subject=user:<id>")
	case f.Subject != "":
		if list, next, ok, err := subjectByID(s, f, limit); err != nil || ok {
			return list, next, err
		}
		return subjectAssignments(s, f, limit)
	case f.System != "" && f.ScopeType != "" && f.ScopeID != "" && f.ScopeType != permatrix.ServiceScope.Type:
		return scopeAssignments(s, f, limit)
	case f.ScopeType != "" && f.ScopeID != "" && f.ScopeType != permatrix.ServiceScope.Type:
		return scopeAssignmentsEverywhere(s, f, limit)
	}
	// The page ends full, or after scanBudget entries of the index: a
	// filter matching few of many, or none, read the rest of the index on
	// every page. Then next is the last id read, the page short or empty.
	list = []permatrix.Assignment{}
	var after []byte
	if f.Cursor != "" {
		after = assignmentKey(f.Cursor)
	}
	budget, read, last := scanBudget(limit), 0, ""
	err = s.Scan(Prefix(nsIndex, ixAssignments), after, func(k, dk []byte) error {
		if read++; read > budget {
			next = last
			return ErrStop
		}
		a, err := indexedAssignment(s, k, dk)
		if err != nil {
			return err
		}
		last = a.ID
		if !f.Match(a) {
			return nil
		}
		if len(list) == limit {
			next = list[len(list)-1].ID
			return ErrStop
		}
		list = append(list, a)
		return nil
	})
	if err != nil && err != ErrStop {
		return nil, "", err
	}
	return list, next, nil
}

// scanBudget is how many entries of the assignment index a page of limit
// read by id reads at most, whatever it found.
func scanBudget(limit int) int { return 16*(limit+1) + 1024 }

// subjectByID tries a page of a subject's assignments in id order (with
// f.WithGroups, of the user's and of the groups it is stored in): the
// assignment index from the cursor, whose values are grant keys (which
// start with their subject), until the page is full. A subject whose
// assignments are dense in id order (a group's grants imported together,
// a user in a group holding most of the store) gets its page reading about
// a page, wherever the cursor is. It gives up (ok false) after
// idBudget(limit) entries of the index: a subject with few assignments
// among many is read from its own subtree instead, which the attempt made
// at most that much dearer.
func subjectByID(s Snapshot, f permatrix.AssignmentFilter, limit int) (list []permatrix.Assignment, next string, ok bool, err error) {
	ours := principalsOf(s, f)
	var after []byte
	if f.Cursor != "" {
		after = assignmentKey(f.Cursor)
	}
	list = []permatrix.Assignment{}
	budget, read := idBudget(limit), 0
	full := false
	err = s.Scan(Prefix(nsIndex, ixAssignments), after, func(k, dk []byte) error {
		if read++; read > budget {
			return ErrStop
		}
		if mine, err := ours(dk); err != nil || !mine {
			return err
		}
		a, err := indexedAssignment(s, k, dk)
		if err != nil {
			return err
		}
		if !f.Match(a) {
			return nil
		}
		if len(list) == limit {
			next, full = list[len(list)-1].ID, true
			return ErrStop
		}
		list = append(list, a)
		return nil
	})
	if err != nil && err != ErrStop {
		return nil, "", false, err
	}
	if read > budget && !full {
		return nil, "", false, nil
	}
	return list, next, true, nil
}

// principalsOf is whether a grant key is of f's subject (in f.System, if
// given) or, with f.WithGroups, of a group the user is stored in: a
// group's grant costs a read of the user's membership of it.
func principalsOf(s Snapshot, f permatrix.AssignmentFilter) func(gk []byte) (bool, error) {
	own := GrantsPrefix(f.Subject)
	if f.System != "" {
		own = GrantsPrefix(f.Subject, f.System)
	}
	if !f.WithGroups {
		return func(gk []byte) (bool, error) { return bytes.HasPrefix(gk, own), nil }
	}
	user := strings.TrimPrefix(f.Subject, permatrix.UserPrefix)
	return func(gk []byte) (bool, error) {
		if bytes.HasPrefix(gk, own) {
			return true, nil
		}
		segs := Segments(gk)
		if len(segs) < 4 || (f.System != "" && segs[3] != f.System) {
			return false, nil
		}
		group, ok := strings.CutPrefix(segs[2], permatrix.GroupPrefix)
		if !ok {
			return false, nil
		}
		v, err := s.Get(membershipKey(permatrix.Membership{Group: group, User: user}))
		return v != nil, err
	}
}

// idBudget is how many entries of the assignment index subjectByID reads
// for a page of limit before it gives up.
func idBudget(limit int) int { return 4*(limit+1) + 64 }

// subjectAssignments is a page of a subject's assignments (and, with
// f.WithGroups, of the groups the user is stored in): each principal's
// grants (in f.System, if given) read in key order, of which a max-heap
// keeps the limit+1 smallest ids after the cursor. The groups are read
// from the user's memberships as the scan goes, not listed first.
func subjectAssignments(s Snapshot, f permatrix.AssignmentFilter, limit int) ([]permatrix.Assignment, string, error) {
	h := make(idHeap, 0, min(limit+1, 64))
	grants := func(principal string) error {
		prefix := GrantsPrefix(principal)
		if f.System != "" {
			prefix = GrantsPrefix(principal, f.System)
		}
		return s.Scan(prefix, nil, func(k, v []byte) error {
			a, err := assignmentOf(k, v)
			if err != nil {
				return err
			}
			if !f.Match(a) || a.ID <= f.Cursor {
				return nil
			}
			if len(h) <= limit {
				heap.Push(&h, a)
			} else if a.ID < h[0].ID {
				h[0] = a
				heap.Fix(&h, 0)
			}
			return nil
		})
	}
	err := grants(f.Subject)
	if err == nil && f.WithGroups {
		user := strings.TrimPrefix(f.Subject, permatrix.UserPrefix)
		err = s.Scan(Prefix(nsDoc, ixMemberships, user), nil, func(k, _ []byte) error {
			return grants(permatrix.GroupPrefix + lastSegment(k))
		})
	}
	if err != nil {
		return nil, "", err
	}
	list := []permatrix.Assignment(h)
	slices.SortFunc(list, func(a, b permatrix.Assignment) int { return cmpString(a.ID, b.ID) })
	if len(list) > limit {
		return list[:limit], list[limit-1].ID, nil
	}
	return list, "", nil
}

// idHeap is a max-heap of assignments by id.
type idHeap []permatrix.Assignment

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].ID > h[j].ID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(permatrix.Assignment)) }
func (h *idHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

// scopeAssignmentsEverywhere is a page of the assignments at one scope (not
// the service scope) in every system: a page of each system's (each seeks
// its cursor in the scopes index), merged by id. The systems are found by
// seeking past each one's subtree in the index, not by reading it.
func scopeAssignmentsEverywhere(s Snapshot, f permatrix.AssignmentFilter, limit int) ([]permatrix.Assignment, string, error) {
	var all []permatrix.Assignment
	more := false
	var after []byte
	for {
		system := ""
		err := s.Scan(Prefix(nsDoc, ixScopes), after, func(k, _ []byte) error {
			if segs := Segments(k); len(segs) > 2 {
				system = segs[2]
			}
			return ErrStop
		})
		if err != nil && err != ErrStop {
			return nil, "", err
		}
		if system == "" {
			break
		}
		// Past every key of the system: 0xff is in no scope (UTF-8), and
		// after the separator, so not past a system whose id extends this
		// one's ("sys-x" after "sys").
		after = append(Prefix(nsDoc, ixScopes, system), 0xff)
		f := f
		f.System = system
		list, next, err := scopeAssignments(s, f, limit)
		if err != nil {
			return nil, "", err
		}
		all = append(all, list...)
		more = more || next != ""
	}
	slices.SortFunc(all, func(a, b permatrix.Assignment) int { return cmpString(a.ID, b.ID) })
	if all == nil {
		all = []permatrix.Assignment{}
	}
	if len(all) > limit || (more && len(all) == limit) {
		return all[:limit], all[limit-1].ID, nil
	}
	return all, "", nil
}

// scopeAssignments is a page of the assignments at one scope (not the
// service scope) of one system: the scopes index lists them by id, so the
// page starts at its cursor and reads limit+1 of them.
func scopeAssignments(s Snapshot, f permatrix.AssignmentFilter, limit int) (list []permatrix.Assignment, next string, err error) {
	list = []permatrix.Assignment{}
	scope := permatrix.Scope{Type: f.ScopeType, ID: f.ScopeID}
	var after []byte
	if f.Cursor != "" {
		after = scopeUseKey(f.System, scope, f.Cursor)
	}
	err = s.Scan(Prefix(nsDoc, ixScopes, f.System, ScopeKey(scope)), after, func(k, _ []byte) error {
		id := lastSegment(k)
		if len(list) == limit {
			next = list[len(list)-1].ID
			return ErrStop
		}
		a, err := Assignment(s, id)
		if permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
			return corrupt(k, "scope index names a missing assignment")
		}
		if err != nil {
			return err
		}
		if !f.Match(a) {
			return corrupt(k, "scope index names an assignment made elsewhere")
		}
		list = append(list, a)
		return nil
	})
	if err != nil && err != ErrStop {
		return nil, "", err
	}
	return list, next, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lastSegment is the last segment of a key.
func lastSegment(k []byte) string {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == sep {
			return string(k[i+1:])
		}
	}
	return string(k)
}

// Members lists the users of a group, sorted; none for an unknown group.
func Members(s Snapshot, group string) ([]string, error) {
	users := []string{}
	err := EachMember(s, group, "", func(u string) error {
		users = append(users, u)
		return nil
	})
	return users, err
}

// EachMember calls fn with each user of a group after the user after (all
// of them for ""), in order, until fn returns an error (ErrStop ends it
// without one). Nothing is held between calls.
func EachMember(s Snapshot, group, after string, fn func(user string) error) error {
	var from []byte
	if after != "" {
		from = memberKey(permatrix.Membership{Group: group, User: after})
	}
	err := s.Scan(Prefix(nsIndex, ixMembers, group), from, func(k, _ []byte) error {
		return fn(lastSegment(k))
	})
	if err == ErrStop {
		err = nil
	}
	return err
}

// MembersPage lists at most limit users of a group after the user after,
// in order; next is the last of them when more follow, else "". It reads
// limit+1 members whatever the group's size.
func MembersPage(s Snapshot, group, after string, limit int) (users []string, next string, err error) {
	users = []string{}
	err = EachMember(s, group, after, func(u string) error {
		if len(users) == limit {
			next = users[len(users)-1]
			return ErrStop
		}
		users = append(users, u)
		return nil
	})
	return users, next, err
}

// Groups lists the groups of a user, sorted; none for an unknown user.
func Groups(s Snapshot, user string) ([]string, error) {
	groups := []string{}
	err := s.Scan(Prefix(nsDoc, ixMemberships, user), nil, func(k, _ []byte) error {
		groups = append(groups, lastSegment(k))
		return nil
	})
	return groups, err
}

type roleValue struct {
	Permissions []string `json:"permissions"`
}

// Role returns the custom role system/name (ENOTFOUND if absent).
func Role(s Snapshot, system, name string) (permatrix.Role, error) {
	v, err := s.Get(roleKey(system, name))
	if err != nil {
		return permatrix.Role{}, err
	}
	if v == nil {
		return permatrix.Role{}, permatrix.Errorf(permatrix.ENOTFOUND, "role %q of system %q not found", name, system)
	}
	var rv roleValue
	if err := unmarshalRecord(v, &rv); err != nil || rv.Permissions == nil {
		return permatrix.Role{}, corrupt(roleKey(system, name), "not a role")
	}
	return permatrix.Role{System: system, Name: name, Permissions: rv.Permissions}, nil
}

// Roles lists the custom roles of a system sorted by name, or with system ""
// those of every system sorted by system then name.
func Roles(s Snapshot, system string) ([]permatrix.Role, error) {
	prefix := Prefix(nsDoc, ixRoles)
	if system != "" {
		prefix = Prefix(nsDoc, ixRoles, system)
	}
	roles := []permatrix.Role{}
	err := s.Scan(prefix, nil, func(k, v []byte) error {
		segs := Segments(k)
		var rv roleValue
		if len(segs) != 4 || unmarshalRecord(v, &rv) != nil || rv.Permissions == nil {
			return corrupt(k, "not a role")
		}
		roles = append(roles, permatrix.Role{System: segs[2], Name: segs[3], Permissions: rv.Permissions})
		return nil
	})
	return roles, err
}

type projectValue struct {
	CreatedBy string `json:"created_by"`
	Kind      string `json:"kind"`
}

// Project returns the project system/id (ENOTFOUND if absent).
func Project(s Snapshot, system, id string) (permatrix.Project, error) {
	v, err := s.Get(projectKey(system, id))
	if err != nil {
		return permatrix.Project{}, err
	}
	if v == nil {
		return permatrix.Project{}, permatrix.Errorf(permatrix.ENOTFOUND, "project %q of system %q not found", id, system)
	}
	pv, err := unmarshalProject(v)
	if err != nil {
		return permatrix.Project{}, corrupt(projectKey(system, id), err.Error())
	}
	return permatrix.Project{System: system, ID: id, CreatedBy: pv.CreatedBy, Kind: pv.Kind}, nil
}

// RoleUses counts the assignments of a custom role (up to max, 0: all).
func RoleUses(s Snapshot, system, role string, max int) (int, error) {
	n := 0
	err := s.Scan(Prefix(nsIndex, ixRoleUses, system, role), nil, func(_, _ []byte) error {
		n++
		if max > 0 && n >= max {
			return ErrStop
		}
		return nil
	})
	if err == ErrStop {
		err = nil
	}
	return n, err
}

// HoldsIndexedAssignmentsOf reports whether an assignment of system is
// stored that the indexes of role uses and of scopes find: one of a role,
// or at a scope below the service scope. It reads at most two keys; a
// permission at the service scope is in neither index.
func HoldsIndexedAssignmentsOf(s Snapshot, system string) (bool, error) {
	found := false
	for _, prefix := range [][]byte{Prefix(nsIndex, ixRoleUses, system), Prefix(nsDoc, ixScopes, system)} {
		err := s.Scan(prefix, nil, func(_, _ []byte) error {
			found = true
			return ErrStop
		})
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// AssignedSystems is the set of systems the stored assignments are of,
// and the number of index entries read for it: one pass over the
// assignment index, reading each entry's grant key for its system segment
// (no grant is read).
func AssignedSystems(s Snapshot) (map[string]bool, int, error) {
	systems := map[string]bool{}
	entries := 0
	err := s.Scan(Prefix(nsIndex, ixAssignments), nil, func(_, grant []byte) error {
		entries++
		if sys := grantSystem(grant); !systems[string(sys)] {
			systems[string(sys)] = true
		}
		return nil
	})
	return systems, entries, err
}

// grantSystem is the system segment of a grant key (d grants <principal>
// <system> …), empty in a key of another shape.
func grantSystem(grant []byte) []byte {
	rest := grant
	for range 3 {
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
	}
	if i := bytes.IndexByte(rest, sep); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// HasAssignmentsOn reports whether any assignment is made at scope (not
// the service scope) in system.
func HasAssignmentsOn(s Snapshot, system string, scope permatrix.Scope) (bool, error) {
	found := false
	err := s.Scan(Prefix(nsDoc, ixScopes, system, ScopeKey(scope)), nil, func(_, _ []byte) error {
		found = true
		return ErrStop
	})
	return found, err
}
