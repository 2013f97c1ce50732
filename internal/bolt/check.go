package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A store file is checked before it is served (Open) and by `permatrix
// store check` (Check), in three steps, each only once the one before
// passed:
//
//  1. the page structure, read from the file (checkPages): nothing bbolt
//     follows can lie outside the file or be referenced twice;
//  2. bbolt's own consistency check (tx.Check): free and reachable pages
//     account for the whole file, each once;
//  3. every record: every value's checksum, then the layout's invariants
//     (store.Verify: keys of the layout, values that decode, indexes that
//     agree). A format 1 file is checked by planning its migration.
//
// All of it runs with debug.SetPanicOnFault and a recover, so that should a
// damaged page still fault through the mmap or trip a bbolt invariant, the
// result is an error, never a crash. An existing file of 0 bytes is not a
// new store: it is refused, since an empty store served in its place would
// look healthy and answer every check as if nobody held anything.

// CorruptError says a store file is damaged and what is wrong with it.
type CorruptError struct {
	Path     string
	Problems []string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store %s is damaged and was not opened (restore it from a backup: a copy of a sound file, or `permatrix store copy` from a fleet's etcd; `permatrix store check --db %s` lists the damage):\n  %s",
		e.Path, e.Path, strings.Join(e.Problems, "\n  "))
}

// Report is what Check found in a sound store.
type Report struct {
	Format      uint64 `json:"format"`
	Mode        string `json:"mode"`
	Revision    uint64 `json:"revision"`
	Assignments int    `json:"assignments"`
	Memberships int    `json:"memberships"`
	Roles       int    `json:"roles"`
	Projects    int    `json:"projects"`
	// Note is a replica's note (DB.ApplyNote): its records are then not
	// checked against each other.
	Note string `json:"note,omitempty"`
}

// Check checks the store file at path without changing it. A damaged file
// is a *CorruptError; a file that cannot be checked (absent, locked by a
// running server) is another error.
func Check(path string) (*Report, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, fi); err != nil {
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
		r, err = verifyOpen(b, path, true)
		return err
	})
	if err != nil {
		return nil, corrupt(path, err)
	}
	return r, nil
}

// checkFile refuses what is not a regular file and an empty file, and
// checks the page structure, holding a shared lock on the file so that a
// running server's writes are not read half-made.
func checkFile(path string, fi os.FileInfo) error {
	// A directory, a pipe or a device named as the store is the wrong
	// path, not damage (exit 3 would say "restore it from a backup"); a
	// FIFO is not even opened: that would wait for a writer.
	if !fi.Mode().IsRegular() {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s %s, not a store file (is the path right?)", path, fileKind(fi.Mode()))
	}
	size := fi.Size()
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

// fileKind says what a file that is not a regular one is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "is a directory"
	case m&os.ModeNamedPipe != 0:
		return "is a named pipe"
	case m&os.ModeSocket != 0:
		return "is a socket"
	case m&os.ModeDevice != 0:
		return "is a device"
	}
	return "is a " + m.Type().String() + " file"
}

func locked(path string) error {
	return &LockedError{permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s is locked by another process (is another permatrix running?)", path)}
}

// LockedError is a store file another process holds (a running serve):
// EUNAVAILABLE, and only this, is "ask that process instead".
type LockedError struct{ err *permatrix.Error }

func (e *LockedError) Error() string { return e.err.Error() }

// Unwrap gives the *permatrix.Error (EUNAVAILABLE) it answers as.
func (e *LockedError) Unwrap() error { return e.err }

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
	defer recoverFault(&err)
	return fn()
}

// recoverFault turns a panic into *err; it is deferred directly (recover
// works only there).
func recoverFault(err *error) {
	if v := recover(); v != nil {
		*err = &panicError{v}
	}
}

// verifyOpen runs bbolt's consistency check and checks every record of an
// opened store, in one read transaction. listAll lists every record whose
// checksum fails (store check); without it the first one stops the check
// (serve: one pass over the records less at start).
func verifyOpen(b *bbolt.DB, path string, listAll bool) (*Report, error) {
	var r *Report
	err := b.View(func(btx *bbolt.Tx) error {
		var problems []string
		for err := range btx.Check() { // drained: Check's goroutine sends until done
			if len(problems) < maxProblems {
				problems = append(problems, "bbolt: "+err.Error())
			}
		}
		if len(problems) > 0 {
			return &CorruptError{Problems: problems}
		}
		var err error
		r, err = checkRecords(btx, path, listAll)
		return err
	})
	return r, err
}

var (
	prefixGrants      = store.Prefix("d", "grants")
	prefixMemberships = store.Prefix("d", "memberships")
	prefixRoles       = store.Prefix("d", "roles")
	prefixProjects    = store.Prefix("d", "projects")
)

// checkRecords checks the buckets and every record of the layout (package
// comment).
func checkRecords(btx *bbolt.Tx, path string, listAll bool) (*Report, error) {
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
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	format, ok := getU64(meta, keyFormat)
	r.Format = format
	switch {
	case !ok:
		add("meta: format %x is not a number", meta.Get(keyFormat))
	case format == 1:
		return r, checkV1(btx, r)
	case format != formatVersion && format != unbucketedFormat:
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store format %d is not supported (this build reads formats 1 to %d)", path, format, formatVersion)
	}
	bucketed := format == formatVersion
	rev, ok := getU64(meta, keyRevision)
	if !ok {
		add("meta: revision %x is not a number", meta.Get(keyRevision))
	}
	r.Revision = rev
	if _, ok := getU64(meta, keyIDSeq); !ok {
		add("meta: id sequence %x is not a number", meta.Get(keyIDSeq))
	}
	r.Mode = string(meta.Get(keyMode))
	if r.Mode != "primary" && r.Mode != "replica" {
		add("meta: mode %q", r.Mode)
	}
	_ = btx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if string(name) != string(bucketMeta) && string(name) != string(bucketKV) {
			add("unknown bucket %q", name)
		}
		return nil
	})
	kv := btx.Bucket(bucketKV)
	if kv == nil {
		add("bucket %q is missing", bucketKV)
	}
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}
	// store check lists every damaged record and counts them; serve's open
	// check leaves both to store.Verify's scan below, which unseals every
	// value (a nested bucket too: a nil value has no checksum) and stops at
	// the first damage.
	c := kv.Cursor()
	for k, v := c.First(); listAll && k != nil; k, v = c.Next() {
		if v == nil {
			add("%q is a bucket, not a value", store.Segments(k))
			continue
		}
		key := k
		if bucketed && bytes.HasPrefix(k, scopesPrefix) {
			var ok bool
			if key, ok = storeKeyOf(k); !ok {
				add("%v", corruptScopeKey(k))
				continue
			}
		}
		if _, err := unseal(key, v); err != nil {
			add("%v", err)
			continue
		}
		// Counted by prefix: splitting 3 million keys costs a second.
		switch {
		case bytes.HasPrefix(k, prefixGrants):
			r.Assignments++
		case bytes.HasPrefix(k, prefixMemberships):
			r.Memberships++
		case bytes.HasPrefix(k, prefixRoles):
			r.Roles++
		case bytes.HasPrefix(k, prefixProjects):
			r.Projects++
		}
	}
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}
	// A replica with a note (an etcd prefix's copy in progress,
	// DB.ApplyNote) holds what its source holds: half a store while the
	// copy runs, which the backend does not serve.
	if r.Mode == "replica" && len(meta.Get(keyNote)) > 0 {
		r.Note = string(meta.Get(keyNote))
		return r, nil
	}
	for _, p := range store.Verify(&snapshot{tx: btx, kv: kv, rev: rev, bucketed: bucketed}, maxProblems) {
		add("%s: %s", p.Where, p.What)
	}
	if len(problems) > 0 {
		return nil, &CorruptError{Problems: problems}
	}
	return r, nil
}

// checkV1 checks a format 1 file by planning its migration (migrateV1
// without the writes): every record must be one a write could have stored.
func checkV1(btx *bbolt.Tx, r *Report) error {
	meta := btx.Bucket(bucketMeta)
	r.Revision, _ = getU64(meta, keyRevision)
	r.Mode = "primary"
	_, counts, err := planV1(btx)
	if err != nil {
		return &CorruptError{Problems: []string{"format 1: " + err.Error()}}
	}
	r.Assignments, r.Memberships, r.Roles, r.Projects = counts[0], counts[1], counts[2], counts[3]
	return nil
}

// strictJSON decodes a stored JSON value and insists it is exactly the bytes
// json.Marshal writes for it: a damaged key name — even a case variant,
// which encoding/json would match anyway — or stray bytes show as a
// difference.
func strictJSON[T any](v []byte, x *T) error {
	if err := json.Unmarshal(v, x); err != nil {
		return err
	}
	if again, err := json.Marshal(x); err != nil || string(again) != string(v) {
		return fmt.Errorf("stored as %q, not as permatrix writes it", v)
	}
	return nil
}
