package store

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/permatrix/permatrix"
)

// Tx plans writes against a snapshot: its reads go through the writes it
// has planned so far (Overlay) and are recorded (Tracked); its writes become
// key operations. Batch turns it into one commit. A Tx is used by one
// goroutine; the snapshot it reads is the caller's to close.
//
// A method that returns an error has planned nothing: each one checks
// everything before its first operation.
//
// A method that finds nothing to change (a duplicate assignment, a present
// member, an identical role or project) plans no operation, so a Tx made
// only of such calls commits nothing.
type Tx struct {
	ctx     context.Context
	overlay *Overlay
	view    *Tracked
	ids     func(context.Context) (uint64, error)
	lost    [][]byte // the reads of the plan before, whose commit conflicted
}

// NewTx starts planning against snap; ids reserves assignment numbers
// (Backend.NextID).
func NewTx(ctx context.Context, snap Snapshot, ids func(context.Context) (uint64, error)) *Tx {
	o := NewOverlay(snap)
	return &Tx{ctx: ctx, overlay: o, view: Track(o), ids: ids}
}

// View is the state as the Tx sees it: the snapshot with the planned writes
// over it, reads recorded. The policies judge the Tx's writes through it.
func (tx *Tx) View() Snapshot { return tx.view }

// Revision is the revision of the snapshot the Tx reads.
func (tx *Tx) Revision() uint64 { return tx.overlay.Revision() }

// LostReads are the units the write's plan before this one read, whose
// commit conflicted (UpdateSettled; nil on a first plan): with the
// store's Changes, which write it lost to.
func (tx *Tx) LostReads() [][]byte { return tx.lost }

// Grow makes room for about ops more operations (and as many units they
// write and read): a plan that knows its size (an import chunk) grows its
// lists and maps once, not by doubling them (a copy of each every time).
func (tx *Tx) Grow(ops int) {
	tx.overlay.grow(ops)
	tx.view.grow(ops)
}

// Relied records units as read by the Tx: what a verdict reached over
// another snapshot at the Tx's revision read (the commit is guarded by
// them as by the Tx's own reads). Use it only for reads none of the Tx's
// planned writes changes (Changes).
func (tx *Tx) Relied(units [][]byte) { tx.view.Note(units) }

// Changes reports whether the writes planned so far change any of units.
func (tx *Tx) Changes(units [][]byte) bool { return tx.overlay.Changes(units) }

// Empty reports whether the Tx planned no operation.
func (tx *Tx) Empty() bool { return len(tx.overlay.Ops()) == 0 }

// Size measures the Tx as one commit (Batch), as it grows: for a backend
// with limits (Bounded), planning stops before a commit would not fit.
func (tx *Tx) Size() Size {
	s := tx.overlay.Size()
	s.Reads, s.ReadBytes = tx.view.size()
	return s
}

// Mark is a point of a Tx's planning to roll back to.
type Mark struct{ ops, reads int }

// Mark is the point the Tx's planning has reached.
func (tx *Tx) Mark() Mark { return Mark{ops: len(tx.overlay.Ops()), reads: tx.view.Len()} }

// PlannedSince reports whether the Tx planned an operation after m.
func (tx *Tx) PlannedSince(m Mark) bool { return len(tx.overlay.Ops()) > m.ops }

// Rollback takes back everything planned and read after m: the Tx is as it
// was at m, and so is its Batch. (Assignment numbers reserved meanwhile
// stay used: numbers may have gaps.)
func (tx *Tx) Rollback(m Mark) {
	tx.overlay.Truncate(m.ops)
	tx.view.Forget(m.reads)
}

// Batch is the Tx as one commit: its operations, guarded by every unit it read.
// Its operations and written units are the overlay's lists, clipped (a
// plan after appends past them; the overlay changes no entry it has): a
// copy of each was a MiB an import chunk.
func (tx *Tx) Batch() *Batch {
	ops := slices.Clip(tx.overlay.Ops())
	return &Batch{Base: tx.Revision(), Reads: tx.view.Units(), Ops: ops,
		planned: plannedWrites{units: slices.Clip(tx.overlay.writes), ops: len(ops), tree: tx.overlay.tree.Clone()}}
}

func (tx *Tx) put(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tx.overlay.Put(key, raw)
	return nil
}

// IDFormat formats assignment sequence numbers as ids.
const IDFormat = "a%012d"

// CreateAssignment plans a new assignment.
//
// If an identical assignment (same subject, system, role or permission,
// scope) exists, a.ID is set to its id and nothing changes: creating a
// duplicate is harmless, which makes import and assign idempotent. A given
// a.ID that is taken is ECONFLICT; an empty one is set to a new id.
func (tx *Tx) CreateAssignment(a *permatrix.Assignment) error {
	if err := a.Validate(); err != nil {
		return err
	}
	gk := GrantKey(*a)
	old, err := tx.view.Get(gk)
	if err != nil {
		return err
	}
	if old != nil {
		existing, err := assignmentOf(gk, old)
		if err != nil {
			return err
		}
		a.ID = existing.ID
		return nil
	}
	var keys assignmentKeys
	if a.ID != "" {
		keys = keysOf(*a)
		taken, err := tx.view.Get(keys.id)
		if err != nil {
			return err
		}
		if taken != nil {
			return permatrix.Errorf(permatrix.ECONFLICT, "assignment %s already exists", a.ID)
		}
	} else {
		for a.ID == "" {
			n, err := tx.ids(tx.ctx)
			if err != nil {
				return err
			}
			// Numbers can collide with ids given explicitly (an import of
			// another store's ids): skip those.
			b := *a
			b.ID = formatID(n)
			keys = keysOf(b)
			taken, err := tx.view.Get(keys.id)
			if err != nil {
				return err
			}
			if taken == nil {
				a.ID = b.ID
			}
		}
	}
	tx.overlay.Put(gk, keys.leaf)
	tx.overlay.Put(keys.id, gk)
	if keys.roleUse != nil {
		tx.overlay.Put(keys.roleUse, []byte{})
	}
	if keys.scopeUse != nil {
		tx.overlay.Put(keys.scopeUse, trueValue)
	}
	return nil
}

// trueValue is the value of a scope's use: one slice for all, never
// changed (the overlay and its commit keep values as given).
var trueValue = []byte("true")

// formatID is fmt.Sprintf(IDFormat, n), without the interface n was boxed
// in (an allocation an assignment created).
func formatID(n uint64) string {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], n, 10)
	var b [1 + 12 + 20]byte
	id := append(b[:0], 'a')
	for range 12 - len(d) {
		id = append(id, '0')
	}
	return string(append(id, d...))
}

// assignmentKeys are the keys a new assignment is stored under besides
// its grant key, and its grant's leaf: cut from one buffer, each its own
// (capacity its length). Each of them was an allocation of its own, the
// id's key twice (checked, then written), the leaf a json.Marshal of an
// interface.
type assignmentKeys struct {
	id, roleUse, scopeUse, leaf []byte
}

// keysOf is a's assignmentKeys (a.ID set); roleUse is nil without a role,
// scopeUse at the service scope.
func keysOf(a permatrix.Assignment) assignmentKeys {
	l := leafOf(a)
	n := len(nsIndex) + len(ixAssignments) + len(a.ID) + 2 + grantLeafLen(l)
	if a.Role != "" {
		n += len(nsIndex) + len(ixRoleUses) + len(a.System) + len(a.Role) + len(a.ID) + 4
	}
	if !a.Scope.IsService() {
		n += len(nsDoc) + len(ixScopes) + len(a.System) + scopeKeyLen(a.Scope) + len(a.ID) + 4
	}
	buf := make([]byte, 0, n)
	cut := func(start int) []byte { return buf[start:len(buf):len(buf)] }
	var k assignmentKeys
	start := len(buf)
	buf = appendJoin(buf, nsIndex, []string{ixAssignments, a.ID})
	k.id = cut(start)
	if a.Role != "" {
		start = len(buf)
		buf = appendJoin(buf, nsIndex, []string{ixRoleUses, a.System, a.Role, a.ID})
		k.roleUse = cut(start)
	}
	if !a.Scope.IsService() {
		start = len(buf)
		buf = appendJoin(buf, nsDoc, []string{ixScopes, a.System})
		buf = appendScopeKey(append(buf, sep), a.Scope)
		buf = append(append(buf, sep), a.ID...)
		k.scopeUse = cut(start)
	}
	start = len(buf)
	buf, ok := appendGrantLeaf(buf, l)
	if !ok {
		// A string the fast encoding does not write (one json.Marshal
		// escapes): json.Marshal's own, which never fails for a leaf.
		k.leaf, _ = json.Marshal(l)
		return k
	}
	k.leaf = cut(start)
	return k
}

// Held reports whether a's grant is stored, and if it is sets a.ID to the
// stored assignment's id. It plans nothing.
func (tx *Tx) Held(a *permatrix.Assignment) (bool, error) {
	gk := GrantKey(*a)
	v, err := tx.view.Get(gk)
	if err != nil || v == nil {
		return false, err
	}
	existing, err := assignmentOf(gk, v)
	if err != nil {
		return false, err
	}
	a.ID = existing.ID
	return true, nil
}

// DeleteAssignment plans the removal of the assignment with the id and
// returns it (ENOTFOUND if absent).
func (tx *Tx) DeleteAssignment(id string) (permatrix.Assignment, error) {
	a, err := Assignment(tx.view, id)
	if err != nil {
		return a, err
	}
	tx.overlay.Delete(GrantKey(a))
	tx.overlay.Delete(assignmentKey(a.ID))
	if a.Role != "" {
		tx.overlay.Delete(roleUseKey(a.System, a.Role, a.ID))
	}
	if !a.Scope.IsService() {
		tx.overlay.Delete(scopeUseKey(a.System, a.Scope, a.ID))
	}
	return a, nil
}

// Assignment returns the assignment with the id (ENOTFOUND if absent).
func (tx *Tx) Assignment(id string) (permatrix.Assignment, error) { return Assignment(tx.view, id) }

// AddMember plans putting m.User in m.Group; a present membership changes
// nothing.
func (tx *Tx) AddMember(m permatrix.Membership) error {
	if err := m.Validate(); err != nil {
		return err
	}
	v, err := tx.view.Get(membershipKey(m))
	if err != nil || v != nil {
		return err
	}
	tx.overlay.Put(membershipKey(m), []byte("true"))
	tx.overlay.Put(memberKey(m), []byte{})
	return nil
}

// RemoveMember plans taking m.User out of m.Group (ENOTFOUND if not a
// member).
func (tx *Tx) RemoveMember(m permatrix.Membership) error {
	if err := m.Validate(); err != nil {
		return err
	}
	v, err := tx.view.Get(membershipKey(m))
	if err != nil {
		return err
	}
	if v == nil {
		return permatrix.Errorf(permatrix.ENOTFOUND, "user %q is not a member of group %q", m.User, m.Group)
	}
	tx.overlay.Delete(membershipKey(m))
	tx.overlay.Delete(memberKey(m))
	return nil
}

// Members lists a group's users.
func (tx *Tx) Members(group string) ([]string, error) { return Members(tx.view, group) }

// Groups lists a user's groups.
func (tx *Tx) Groups(user string) ([]string, error) { return Groups(tx.view, user) }

// PutRole plans creating or replacing the custom role r. Its permissions are
// a set: stored sorted, without repeats. An identical role changes nothing.
func (tx *Tx) PutRole(r permatrix.Role) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r = r.Normal()
	old, err := Role(tx.view, r.System, r.Name)
	switch {
	case err == nil && slices.Equal(old.Permissions, r.Permissions):
		return nil
	case err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND:
		return err
	}
	return tx.put(roleKey(r.System, r.Name), roleValue{Permissions: r.Permissions})
}

// Role returns a custom role (ENOTFOUND if absent).
func (tx *Tx) Role(system, name string) (permatrix.Role, error) { return Role(tx.view, system, name) }

// countedUses is how many uses of a custom role a refused deletion counts.
const countedUses = 1000

// DeleteRole plans removing a custom role that no assignment uses
// (ENOTFOUND if absent, ECONFLICT while assigned).
func (tx *Tx) DeleteRole(system, name string) error {
	if _, err := Role(tx.view, system, name); err != nil {
		return err
	}
	// Counted up to a bound: a role a million hold is refused without a
	// read of each of its uses.
	n, err := RoleUses(tx.view, system, name, countedUses+1)
	switch {
	case err != nil:
		return err
	case n > countedUses:
		return permatrix.Errorf(permatrix.ECONFLICT, "role %q is assigned more than %d times; remove those assignments first", name, countedUses)
	case n > 0:
		return permatrix.Errorf(permatrix.ECONFLICT, "role %q is assigned %d time(s); remove those assignments first", name, n)
	}
	tx.overlay.Delete(roleKey(system, name))
	return nil
}

// PutProject plans registering p. Who created a project is a fact, not a
// field: registering it again under another creator is ECONFLICT. An
// identical project changes nothing.
func (tx *Tx) PutProject(p permatrix.Project) error {
	if err := p.Validate(); err != nil {
		return err
	}
	old, err := Project(tx.view, p.System, p.ID)
	switch {
	case err == nil && old == p:
		return nil
	case err == nil && old.CreatedBy != p.CreatedBy:
		return permatrix.Errorf(permatrix.ECONFLICT, "project %q is registered as created by %q; created_by cannot change", p.ID, old.CreatedBy)
	case err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND:
		return err
	}
	return tx.put(projectKey(p.System, p.ID), projectValue{CreatedBy: p.CreatedBy, Kind: p.Kind})
}

// DeleteProject plans removing the registration of a project on which no
// assignment is made (ENOTFOUND if absent, ECONFLICT while one is).
func (tx *Tx) DeleteProject(system, id string) error {
	if _, err := Project(tx.view, system, id); err != nil {
		return err
	}
	used, err := HasAssignmentsOn(tx.view, system, permatrix.Scope{Type: "project", ID: id})
	if err != nil {
		return err
	}
	if used {
		return permatrix.Errorf(permatrix.ECONFLICT, "project %q has assignments on it; remove them first", id)
	}
	tx.overlay.Delete(projectKey(system, id))
	return nil
}

// Project returns a registered project (ENOTFOUND if absent).
func (tx *Tx) Project(system, id string) (permatrix.Project, error) {
	return Project(tx.view, system, id)
}

// HasAssignmentsOn reports whether any assignment is made at scope in system.
func (tx *Tx) HasAssignmentsOn(system string, scope permatrix.Scope) (bool, error) {
	return HasAssignmentsOn(tx.view, system, scope)
}
