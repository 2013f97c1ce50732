package bolt

import (
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
)

// Listing limits of Tx.Assignments.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Tx is a transaction on the store, handed to the fn of DB.Update or
// DB.View; it is valid only until fn returns.
//
// Mutating methods check everything they can before their first write, so
// a method that returns a validation error (EINVALID, ENOTFOUND, ECONFLICT)
// has changed nothing and fn may carry on. A method that fails after it
// started writing (a bbolt error: disk full, corruption) records its error
// in the Tx, and Update then refuses to commit even if fn returns nil, so a
// half-made change is never stored.
//
// A method that finds nothing to change (a duplicate assignment, a present
// member, an identical role or project) writes nothing and adds no patch,
// so an Update made only of such calls commits nothing.
type Tx struct {
	btx     *bbolt.Tx
	rev     uint64 // the revision this transaction started from
	patches []permatrix.Patch
	err     error // first failure after a write started; poisons the commit
}

// Revision is the revision the transaction started from: the state it
// reads. In Update, the new revision is known only once fn has returned.
func (tx *Tx) Revision() uint64 { return tx.rev }

// writable fails a mutation in a read-only transaction (a programming error)
// or in one that an earlier failure has poisoned.
func (tx *Tx) writable() error {
	if tx.err != nil {
		return tx.err
	}
	if !tx.btx.Writable() {
		return fmt.Errorf("bolt: mutation in a read-only transaction")
	}
	return nil
}

// fail records err as the poison of the transaction and returns it.
func (tx *Tx) fail(err error) error {
	if tx.err == nil {
		tx.err = err
	}
	return err
}

func (tx *Tx) patch(path []string, value any) {
	tx.patches = append(tx.patches, permatrix.Patch{Path: path, Value: value})
}

// CreateAssignment stores a new assignment.
//
// If a.ID is empty, it is set to "a" and a 12-digit zero-padded sequence
// number, skipping numbers taken by ids given explicitly. If an identical
// assignment (same subject, system, role or permission, scope) is already
// stored, a.ID is set to its id and nothing changes: creating a duplicate is
// harmless, which makes import and assign idempotent. Otherwise a given a.ID
// that is already taken is ECONFLICT.
//
// a must have a valid subject ("user:<id>"/"group:<id>"), a valid system id,
// exactly one of Role and Permission, and a scope type (EINVALID).
func (tx *Tx) CreateAssignment(a *permatrix.Assignment) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if err := validAssignment(*a); err != nil {
		return err
	}
	all := tx.btx.Bucket(bucketAssignments)
	idx := tx.btx.Bucket(bucketBySubject)

	// Duplicates can only be among the subject's own assignments, which the
	// index lists; a subject holds few, so scanning them is cheap.
	if sub := idx.Bucket([]byte(a.Subject)); sub != nil {
		c := sub.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			old, err := decode[permatrix.Assignment](k, all.Get(k))
			if err != nil {
				return err
			}
			if sameGrant(old, *a) {
				a.ID = old.ID
				return nil
			}
		}
	}

	if a.ID != "" {
		if all.Get([]byte(a.ID)) != nil {
			return permatrix.Errorf(permatrix.ECONFLICT, "assignment %s already exists", a.ID)
		}
	} else {
		// The sequence only grows, so the id of a deleted assignment is
		// never handed out again (a rolled-back Update rolls it back too,
		// but then its ids were never stored). The loop skips numbers that
		// ids given explicitly took.
		for a.ID == "" || all.Get([]byte(a.ID)) != nil {
			n, err := all.NextSequence()
			if err != nil {
				return tx.fail(err)
			}
			a.ID = fmt.Sprintf("a%012d", n)
		}
	}

	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := all.Put([]byte(a.ID), v); err != nil {
		return tx.fail(err)
	}
	sub, err := idx.CreateBucketIfNotExists([]byte(a.Subject))
	if err != nil {
		return tx.fail(err)
	}
	if err := sub.Put([]byte(a.ID), []byte{}); err != nil {
		return tx.fail(err)
	}
	tx.patch(permatrix.AssignmentPath(*a), a.Value())
	return nil
}

func validAssignment(a permatrix.Assignment) error {
	switch {
	case a.ID != "" && !permatrix.ValidID(a.ID):
		return permatrix.Errorf(permatrix.EINVALID, "invalid assignment id %q", a.ID)
	case !permatrix.ValidSubject(a.Subject):
		return permatrix.Errorf(permatrix.EINVALID, "invalid subject %q: want user:<id> or group:<id>", a.Subject)
	case !permatrix.ValidID(a.System):
		return permatrix.Errorf(permatrix.EINVALID, "invalid system %q", a.System)
	case (a.Role == "") == (a.Permission == ""):
		return permatrix.Errorf(permatrix.EINVALID, "an assignment needs exactly one of role and permission")
	case a.Scope.Type == "":
		return permatrix.Errorf(permatrix.EINVALID, "an assignment needs a scope type")
	}
	return nil
}

// sameGrant reports whether a and b grant the same thing to the same
// subject, ids aside.
func sameGrant(a, b permatrix.Assignment) bool {
	a.ID, b.ID = "", ""
	return a == b
}

// DeleteAssignment removes the assignment with the id and returns it
// (ENOTFOUND if absent).
//
// Its patch removes store.subjects[subject][id]; when that was the subject's
// last assignment the engine keeps an empty store.subjects[subject] object,
// which the policies treat as no assignments. The file itself keeps no
// empty index bucket.
func (tx *Tx) DeleteAssignment(id string) (permatrix.Assignment, error) {
	if err := tx.writable(); err != nil {
		return permatrix.Assignment{}, err
	}
	a, err := tx.Assignment(id)
	if err != nil {
		return a, err
	}
	if err := tx.btx.Bucket(bucketAssignments).Delete([]byte(id)); err != nil {
		return a, tx.fail(err)
	}
	if err := deleteNested(tx.btx.Bucket(bucketBySubject), a.Subject, id); err != nil {
		return a, tx.fail(err)
	}
	tx.patch(permatrix.AssignmentPath(a), nil)
	return a, nil
}

// Assignment returns the assignment with the id (ENOTFOUND if absent).
func (tx *Tx) Assignment(id string) (permatrix.Assignment, error) {
	v := tx.btx.Bucket(bucketAssignments).Get([]byte(id))
	if v == nil {
		return permatrix.Assignment{}, permatrix.Errorf(permatrix.ENOTFOUND, "assignment %q not found", id)
	}
	return decode[permatrix.Assignment]([]byte(id), v)
}

// Assignments lists the assignments that match f, ordered by id, starting
// after f.Cursor. f.Limit is the page size: 0 means DefaultLimit, above
// MaxLimit means MaxLimit, negative is EINVALID. nextCursor is the last id
// of the page when more matching assignments follow, else "": pass it as
// f.Cursor to get the next page.
//
// With f.Subject set only the subject's index is walked; other filters are
// applied to each assignment walked.
func (tx *Tx) Assignments(f permatrix.AssignmentFilter) (list []permatrix.Assignment, nextCursor string, err error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, "", permatrix.Errorf(permatrix.EINVALID, "negative limit %d", limit)
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	all := tx.btx.Bucket(bucketAssignments)
	list = []permatrix.Assignment{}

	walked := all
	if f.Subject != "" {
		if walked = tx.btx.Bucket(bucketBySubject).Bucket([]byte(f.Subject)); walked == nil {
			return list, "", nil
		}
	}
	c := walked.Cursor()
	k, v := c.First()
	if f.Cursor != "" {
		if k, v = c.Seek([]byte(f.Cursor)); k != nil && string(k) == f.Cursor {
			k, v = c.Next()
		}
	}
	for ; k != nil; k, v = c.Next() {
		if f.Subject != "" {
			v = all.Get(k) // the index holds ids only
		}
		a, err := decode[permatrix.Assignment](k, v)
		if err != nil {
			return nil, "", err
		}
		if !f.Match(a) {
			continue
		}
		if len(list) == limit {
			return list, list[len(list)-1].ID, nil
		}
		list = append(list, a)
	}
	return list, "", nil
}

// AddMember puts m.User in m.Group. It is idempotent: a present membership
// changes nothing and adds no patch.
func (tx *Tx) AddMember(m permatrix.Membership) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if err := validMembership(m); err != nil {
		return err
	}
	if hasNested(tx.btx.Bucket(bucketMembers), m.Group, m.User) {
		return nil
	}
	if err := putNested(tx.btx.Bucket(bucketMembers), m.Group, m.User, nil); err != nil {
		return tx.fail(err)
	}
	if err := putNested(tx.btx.Bucket(bucketGroupsOf), m.User, m.Group, nil); err != nil {
		return tx.fail(err)
	}
	for _, p := range permatrix.MembershipPaths(m) {
		tx.patch(p, true)
	}
	return nil
}

// RemoveMember takes m.User out of m.Group (ENOTFOUND if not a member).
func (tx *Tx) RemoveMember(m permatrix.Membership) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if !hasNested(tx.btx.Bucket(bucketMembers), m.Group, m.User) {
		return permatrix.Errorf(permatrix.ENOTFOUND, "user %q is not a member of group %q", m.User, m.Group)
	}
	if err := deleteNested(tx.btx.Bucket(bucketMembers), m.Group, m.User); err != nil {
		return tx.fail(err)
	}
	if err := deleteNested(tx.btx.Bucket(bucketGroupsOf), m.User, m.Group); err != nil {
		return tx.fail(err)
	}
	for _, p := range permatrix.MembershipPaths(m) {
		tx.patch(p, nil)
	}
	return nil
}

func validMembership(m permatrix.Membership) error {
	switch {
	case !permatrix.ValidID(m.Group):
		return permatrix.Errorf(permatrix.EINVALID, "invalid group %q", m.Group)
	case !permatrix.ValidID(m.User):
		return permatrix.Errorf(permatrix.EINVALID, "invalid user %q", m.User)
	}
	return nil
}

// Members lists the users of a group, sorted; none for an unknown group.
func (tx *Tx) Members(group string) ([]string, error) {
	return nestedKeys(tx.btx.Bucket(bucketMembers), group), nil
}

// Groups lists the groups of a user, sorted; none for an unknown user.
func (tx *Tx) Groups(user string) ([]string, error) {
	return nestedKeys(tx.btx.Bucket(bucketGroupsOf), user), nil
}

// PutRole creates or replaces the custom role r.System/r.Name. Putting a
// role identical to the stored one changes nothing. Nil permissions are
// stored as an empty list.
func (tx *Tx) PutRole(r permatrix.Role) error {
	if err := tx.writable(); err != nil {
		return err
	}
	switch {
	case !permatrix.ValidID(r.System):
		return permatrix.Errorf(permatrix.EINVALID, "invalid system %q", r.System)
	case !permatrix.ValidID(r.Name):
		return permatrix.Errorf(permatrix.EINVALID, "invalid role name %q", r.Name)
	}
	if r.Permissions == nil {
		r.Permissions = []string{}
	}
	if old, err := tx.Role(r.System, r.Name); err == nil && slices.Equal(old.Permissions, r.Permissions) {
		return nil
	} else if err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := putNested(tx.btx.Bucket(bucketRoles), r.System, r.Name, v); err != nil {
		return tx.fail(err)
	}
	tx.patch(permatrix.RolePath(r), r.Value())
	return nil
}

// Role returns the custom role system/name (ENOTFOUND if absent).
func (tx *Tx) Role(system, name string) (permatrix.Role, error) {
	v := getNested(tx.btx.Bucket(bucketRoles), system, name)
	if v == nil {
		return permatrix.Role{}, permatrix.Errorf(permatrix.ENOTFOUND, "role %q of system %q not found", name, system)
	}
	return decode[permatrix.Role]([]byte(name), v)
}

// DeleteRole removes the custom role system/name (ENOTFOUND if absent).
func (tx *Tx) DeleteRole(system, name string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	r, err := tx.Role(system, name)
	if err != nil {
		return err
	}
	if err := deleteNested(tx.btx.Bucket(bucketRoles), system, name); err != nil {
		return tx.fail(err)
	}
	tx.patch(permatrix.RolePath(r), nil)
	return nil
}

// Roles lists the custom roles of a system sorted by name, or with system ""
// those of every system sorted by system then name.
func (tx *Tx) Roles(system string) ([]permatrix.Role, error) {
	roles := []permatrix.Role{}
	add := func(_, k, v []byte) error {
		r, err := decode[permatrix.Role](k, v)
		roles = append(roles, r)
		return err
	}
	b := tx.btx.Bucket(bucketRoles)
	if system == "" {
		return roles, forEachNested(b, add)
	}
	sys := b.Bucket([]byte(system))
	if sys == nil {
		return roles, nil
	}
	return roles, sys.ForEach(func(k, v []byte) error { return add(nil, k, v) })
}

// PutProject creates or replaces the project p.System/p.ID. Putting a
// project identical to the stored one changes nothing.
func (tx *Tx) PutProject(p permatrix.Project) error {
	if err := tx.writable(); err != nil {
		return err
	}
	switch {
	case !permatrix.ValidID(p.System):
		return permatrix.Errorf(permatrix.EINVALID, "invalid system %q", p.System)
	case !permatrix.ValidID(p.ID):
		return permatrix.Errorf(permatrix.EINVALID, "invalid project id %q", p.ID)
	}
	if old, err := tx.Project(p.System, p.ID); err == nil && old == p {
		return nil
	} else if err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		return err
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := putNested(tx.btx.Bucket(bucketProjects), p.System, p.ID, v); err != nil {
		return tx.fail(err)
	}
	tx.patch(permatrix.ProjectPath(p), p.Value())
	return nil
}

// Project returns the project system/id (ENOTFOUND if absent).
func (tx *Tx) Project(system, id string) (permatrix.Project, error) {
	v := getNested(tx.btx.Bucket(bucketProjects), system, id)
	if v == nil {
		return permatrix.Project{}, permatrix.Errorf(permatrix.ENOTFOUND, "project %q of system %q not found", id, system)
	}
	return decode[permatrix.Project]([]byte(id), v)
}

// Nested buckets: parent → sub-bucket named outer → key → value.

func getNested(parent *bbolt.Bucket, outer, key string) []byte {
	sub := parent.Bucket([]byte(outer))
	if sub == nil {
		return nil
	}
	return sub.Get([]byte(key))
}

// hasNested reports whether outer/key exists. It seeks rather than Gets
// because index entries have empty values, and bbolt does not promise that
// Get tells an empty value from a missing key.
func hasNested(parent *bbolt.Bucket, outer, key string) bool {
	sub := parent.Bucket([]byte(outer))
	if sub == nil {
		return false
	}
	k, _ := sub.Cursor().Seek([]byte(key))
	return k != nil && string(k) == key
}

func putNested(parent *bbolt.Bucket, outer, key string, v []byte) error {
	sub, err := parent.CreateBucketIfNotExists([]byte(outer))
	if err != nil {
		return err
	}
	if v == nil {
		v = []byte{}
	}
	return sub.Put([]byte(key), v)
}

// deleteNested deletes key and then the sub-bucket if it became empty.
func deleteNested(parent *bbolt.Bucket, outer, key string) error {
	sub := parent.Bucket([]byte(outer))
	if sub == nil {
		return nil
	}
	if err := sub.Delete([]byte(key)); err != nil {
		return err
	}
	if k, _ := sub.Cursor().First(); k == nil {
		return parent.DeleteBucket([]byte(outer))
	}
	return nil
}

func nestedKeys(parent *bbolt.Bucket, outer string) []string {
	keys := []string{}
	if sub := parent.Bucket([]byte(outer)); sub != nil {
		sub.ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	}
	return keys
}
