package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/permatrix/permatrix"
)

// A store file is checked before it is served (Open) and by `permatrix
// store check` (Check), in three steps, each only once the one before
// passed:
//
//  1. the page structure, read from the file (checkPages): nothing bbolt
//     follows can lie outside the file or be referenced twice;
//  2. bbolt's own consistency check (tx.Check): free and reachable pages
//     account for the whole file, each once;
//  3. every record (checkRecords): decodes strictly, carries valid ids,
//     agrees with its key, and the indexes agree with what they index.
//
// All of it runs with debug.SetPanicOnFault and a recover, so that should a
// damaged page still fault through the mmap or trip a bbolt invariant, the
// result is an error, never a crash. An existing file of 0 bytes is not a
// new store: it is refused, since an empty store served in its place would
// look healthy and answer every check as if nobody held anything.
//
// The checks are behind Check and verifyOpen so that a new store format
// brings its own.

// CorruptError says a store file is damaged and what is wrong with it.
type CorruptError struct {
	Path     string
	Problems []string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store %s is damaged and was not opened (restore it from a backup or an export; `permatrix store check --db %s` lists the damage):\n  %s",
		e.Path, e.Path, strings.Join(e.Problems, "\n  "))
}

// Report is what Check found in a sound store.
type Report struct {
	Revision    uint64
	Assignments int
	Memberships int
	Roles       int
	Projects    int
}

// Check checks the store file at path without changing it. A damaged file
// is a *CorruptError; a file that cannot be checked (absent, locked by a
// running server) is another error.
func Check(path string) (*Report, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, fi.Size()); err != nil {
		return nil, err
	}
	var b *bbolt.DB
	if err := guard(func() (err error) {
		b, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, ReadOnly: true})
		return err
	}); err != nil {
		return nil, openError(path, err)
	}
	defer b.Close()
	var r *Report
	err = guard(func() (err error) {
		r, err = verifyOpen(b, path)
		return err
	})
	if err != nil {
		return nil, corrupt(path, err)
	}
	return r, nil
}

// checkFile refuses an empty file and checks the page structure, holding a
// shared lock on the file so that a running server's writes are not read
// half-made.
func checkFile(path string, size int64) error {
	if size == 0 {
		return &CorruptError{Path: path, Problems: []string{"the file is empty (0 bytes): a store file is never empty; an empty one is not a new store"}}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			return locked(path)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var problems []string
	if err := guard(func() error { problems = checkPages(f, size); return nil }); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Problems: problems}
	}
	return nil
}

func locked(path string) error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s is locked by another process (is another permatrix running?)", path)
}

// openError classifies a failed bbolt.Open: a file bbolt finds invalid is
// damaged; a lock timeout or an I/O error is not about the file's content.
func openError(path string, err error) error {
	var pe *panicError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return locked(path)
	case errors.As(err, &pe), errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), strings.Contains(err.Error(), "file size too small"):
		return &CorruptError{Path: path, Problems: []string{err.Error()}}
	}
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "open store %s: %v", path, err)
}

func corrupt(path string, err error) error {
	var pe *permatrix.Error
	if errors.As(err, &pe) {
		return err
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.Path = path
		return ce
	}
	return &CorruptError{Path: path, Problems: []string{err.Error()}}
}

// panicError is a panic or memory fault turned into an error by guard.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("reading the file failed: %v", e.v) }

// guard runs fn with memory faults turned into panics, and panics into
// errors.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v}
		}
	}()
	return fn()
}

// verifyOpen runs bbolt's consistency check and checks every record of an
// opened store, in one read transaction.
func verifyOpen(b *bbolt.DB, path string) (*Report, error) {
	var r *Report
	err := b.View(func(btx *bbolt.Tx) error {
		var problems []string
		for err := range btx.Check() {
			if len(problems) < maxProblems {
				problems = append(problems, "bbolt: "+err.Error())
			}
		}
		if len(problems) > 0 {
			return &CorruptError{Problems: problems}
		}
		var err error
		r, err = checkRecords(btx, path)
		return err
	})
	return r, err
}

// checkRecords checks every bucket and record of the layout (package
// comment) and that the indexes agree with what they index.
func checkRecords(btx *bbolt.Tx, path string) (*Report, error) {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	r := &Report{}
	// Not damage but the wrong file: another program's bbolt file, or a
	// store of another format. A file with no bucket at all is a store
	// whose creation stopped before its layout was written: Open writes it.
	meta := btx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := btx.Cursor().First(); k != nil {
			return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "%s is not a permatrix store (bucket %q found, no %q)", path, k, bucketMeta)
		}
		return r, nil
	}
	if f, ok := getU64(meta, keyFormat); ok && f != formatVersion {
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store format %d is not supported (this build reads format %d)", path, f, formatVersion)
	}
	_ = btx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if !slices.ContainsFunc(allBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
			add("unknown bucket %q", name)
		}
		return nil
	})
	for _, name := range allBuckets {
		if btx.Bucket(name) == nil {
			add("bucket %q is missing", name)
		}
	}
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}

	if _, ok := getU64(meta, keyFormat); !ok {
		add("meta: format %x is not a number", meta.Get(keyFormat))
	}
	rev, ok := getU64(meta, keyRevision)
	if !ok {
		add("meta: revision %x is not a number", meta.Get(keyRevision))
	}
	r.Revision = rev

	// Assignments, each in its subject's index.
	all, bySubject := btx.Bucket(bucketAssignments), btx.Bucket(bucketBySubject)
	_ = all.ForEach(func(k, v []byte) error {
		r.Assignments++
		var a permatrix.Assignment
		switch {
		case v == nil:
			add("assignments: %q is a bucket, not an assignment", k)
		case strictDecode(v, &a) != nil:
			add("assignments: %q: %s", k, problem(strictDecode(v, &a)))
		case a.ID != string(k):
			add("assignments: key %q holds assignment %q", k, a.ID)
		case storedAssignment(a) != nil:
			add("assignments: %q: %s", k, problem(storedAssignment(a)))
		case !hasNested(bySubject, a.Subject, a.ID):
			add("assignments: %q is missing from the index of %q", k, a.Subject)
		}
		return nil
	})
	// The subject index: every entry an assignment of that subject.
	_ = nested(bySubject, "by_subject", add, func(subject, id, v []byte) {
		if !permatrix.ValidSubject(string(subject)) {
			add("by_subject: invalid subject %q", subject)
			return
		}
		var a permatrix.Assignment
		if raw := all.Get(id); raw == nil || strictDecode(raw, &a) != nil || a.Subject != string(subject) || len(v) != 0 {
			add("by_subject: %q lists %q, which is not its assignment", subject, id)
		}
	})
	// Memberships, in both directions.
	members, groupsOf := btx.Bucket(bucketMembers), btx.Bucket(bucketGroupsOf)
	_ = nested(members, "members", add, func(group, user, v []byte) {
		r.Memberships++
		switch {
		case !permatrix.ValidID(string(group)) || !permatrix.ValidID(string(user)) || len(v) != 0:
			add("members: invalid entry %q/%q", group, user)
		case !hasNested(groupsOf, string(user), string(group)):
			add("members: %q in %q is missing from groups_of", user, group)
		}
	})
	_ = nested(groupsOf, "groups_of", add, func(user, group, _ []byte) {
		if !hasNested(members, string(group), string(user)) {
			add("groups_of: %q in %q is missing from members", user, group)
		}
	})
	// Roles and projects, each under its system and name.
	_ = nested(btx.Bucket(bucketRoles), "roles", add, func(system, name, v []byte) {
		r.Roles++
		var role permatrix.Role
		if err := strictDecode(v, &role); err != nil {
			add("roles: %q/%q: %v", system, name, err)
		} else if role.System != string(system) || role.Name != string(name) || !permatrix.ValidID(role.Name) || !validIDs(role.Permissions) {
			add("roles: %q/%q holds %q/%q with permissions %q", system, name, role.System, role.Name, role.Permissions)
		}
	})
	_ = nested(btx.Bucket(bucketProjects), "projects", add, func(system, id, v []byte) {
		r.Projects++
		var p permatrix.Project
		if err := strictDecode(v, &p); err != nil {
			add("projects: %q/%q: %v", system, id, err)
		} else if p.System != string(system) || p.ID != string(id) || !permatrix.ValidID(p.ID) ||
			p.CreatedBy != "" && !permatrix.ValidID(p.CreatedBy) || p.Kind != "" && p.Kind != "assisted" && p.Kind != "unassisted" {
			add("projects: %q/%q holds %+v", system, id, p)
		}
	})
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}
	return r, nil
}

// nested calls fn for every key of every sub-bucket of b; a plain key
// where a sub-bucket belongs is a problem.
func nested(b *bbolt.Bucket, name string, add func(string, ...any), fn func(outer, k, v []byte)) error {
	return b.ForEach(func(outer, v []byte) error {
		sub := b.Bucket(outer)
		if v != nil || sub == nil {
			add("%s: %q is a value where a bucket belongs", name, outer)
			return nil
		}
		return sub.ForEach(func(k, v []byte) error {
			fn(outer, k, v)
			return nil
		})
	})
}

// strictDecode decodes a stored JSON value and insists it is exactly the
// bytes json.Marshal writes for it (as every Tx method stores values):
// a damaged key name — even a case variant, which encoding/json would
// match anyway — or stray bytes show as a difference.
func strictDecode[T any](v []byte, x *T) error {
	if err := json.Unmarshal(v, x); err != nil {
		return err
	}
	if again, err := json.Marshal(x); err != nil || !bytes.Equal(again, v) {
		return fmt.Errorf("stored as %q, not as permatrix writes it", v)
	}
	return nil
}

// problem is an error's message without the permatrix code prefix.
func problem(err error) string {
	var pe *permatrix.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// storedAssignment checks a stored assignment as a write would have.
func storedAssignment(a permatrix.Assignment) error {
	if err := validAssignment(a); err != nil {
		return err
	}
	switch {
	case a.ID == "":
		return errors.New("no id")
	case a.Role != "" && !permatrix.ValidID(a.Role), a.Permission != "" && !permatrix.ValidID(a.Permission):
		return errors.New("invalid role or permission")
	case a.Scope.IsService() && a.Scope.ID != "", !a.Scope.IsService() && !permatrix.ValidID(a.Scope.ID), !permatrix.ValidID(a.Scope.Type):
		return fmt.Errorf("invalid scope %+v", a.Scope)
	}
	return nil
}

func validIDs(ids []string) bool {
	for _, id := range ids {
		if !permatrix.ValidID(id) {
			return false
		}
	}
	return true
}
