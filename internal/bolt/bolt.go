// Package bolt persists the assignment store (assignments, group
// memberships, custom roles, projects) in one bbolt file.
//
// Invariants:
//
//   - Every committed write transaction that changed anything increments the
//     revision exactly once, in the same transaction. A revision therefore
//     names one state of the store, and two readers at the same revision see
//     the same data.
//   - A write acknowledged by Update has been fsynced: bbolt's default
//     options are kept (NoSync false), so Commit returns only after the data
//     and meta pages are on disk. A crash, even kill -9, loses no
//     acknowledged write.
//   - Updates are serialized by DB.mu, so revisions are published to
//     DB.Revision in commit order.
//   - Only one process has the file open: bbolt holds an exclusive flock,
//     and a second Open gives up after lockTimeout with EUNAVAILABLE.
//
// Layout (bucket → key → value; "nested" means one sub-bucket per key):
//
//	meta         "format" → uint64 BE (formatVersion), "revision" → uint64 BE
//	assignments  id → JSON permatrix.Assignment
//	by_subject   nested per subject: id → empty        (index of assignments)
//	members      nested per group:   user → empty
//	groups_of    nested per user:    group → empty     (inverse of members)
//	roles        nested per system:  name → JSON permatrix.Role
//	projects     nested per system:  id → JSON permatrix.Project
//
// Nested buckets are deleted when their last key goes, so the file never
// accumulates empty subjects, groups or systems.
package bolt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
)

// formatVersion is the layout this package reads and writes. Bump it, and
// refuse older files or migrate them, whenever the layout above changes.
const formatVersion = 1

// lockTimeout bounds how long Open waits for another process to release
// the file. bbolt polls the flock every 50 ms until then.
const lockTimeout = 2 * time.Second

var (
	bucketMeta        = []byte("meta")
	bucketAssignments = []byte("assignments")
	bucketBySubject   = []byte("by_subject")
	bucketMembers     = []byte("members")
	bucketGroupsOf    = []byte("groups_of")
	bucketRoles       = []byte("roles")
	bucketProjects    = []byte("projects")

	keyFormat   = []byte("format")
	keyRevision = []byte("revision")
)

// allBuckets are the top-level buckets; every one exists in an opened store.
var allBuckets = [][]byte{
	bucketMeta, bucketAssignments, bucketBySubject, bucketMembers,
	bucketGroupsOf, bucketRoles, bucketProjects,
}

// DB is an open store file.
type DB struct {
	bolt *bbolt.DB
	path string

	// mu serializes Update so that the revision published in rev never goes
	// backwards: bbolt alone serializes write transactions, but not the
	// store to rev that follows each commit.
	mu  sync.Mutex
	rev atomic.Uint64 // last committed revision

	fault      atomic.Pointer[Fault] // the last write's disk fault, until the disk takes writes again
	probeEvery atomic.Int64          // time.Duration between disk probes while faulted
	closed     chan struct{}         // closed by Close: stops the probe
	closeOnce  sync.Once
}

// Open opens the store file at path, creating it (mode 0600: it holds
// authorization data) if it does not exist. If another process has it open,
// Open fails within lockTimeout with an EUNAVAILABLE error saying so. A file
// of another format, or a bbolt file that is not a permatrix store, is
// refused. An existing file is checked first (check.go): a damaged or
// empty one is a *CorruptError listing what is wrong, never a panic and
// never an empty store in its place.
func Open(path string) (*DB, error) {
	existing := false
	if fi, err := os.Stat(path); err == nil {
		existing = true
		if err := checkFile(path, fi.Size()); err != nil {
			return nil, err
		}
	}
	var b *bbolt.DB
	if err := guard(func() (err error) {
		b, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
		return err
	}); err != nil {
		return nil, openError(path, err)
	}
	if existing {
		if err := guard(func() error { _, err := verifyOpen(b, path); return err }); err != nil {
			b.Close()
			return nil, corrupt(path, err)
		}
	}
	db := &DB{bolt: b, path: path, closed: make(chan struct{})}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// init creates the layout in a new file, checks the format of an existing
// one and loads the revision. It commits only if it created something, so
// opening an existing store writes nothing.
func (db *DB) init() error {
	btx, err := db.bolt.Begin(true)
	if err != nil {
		return err
	}
	defer btx.Rollback()

	changed := false
	meta := btx.Bucket(bucketMeta)
	if meta == nil {
		// A new file has no buckets at all. A bbolt file with buckets but
		// no meta belongs to something else: don't write into it.
		if k, _ := btx.Cursor().First(); k != nil {
			return permatrix.Errorf(permatrix.EUNAVAILABLE,
				"%s is not a permatrix store (bucket %q found, no %q)", db.path, k, bucketMeta)
		}
		if meta, err = btx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, u64(formatVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyRevision, u64(0)); err != nil {
			return err
		}
		changed = true
	}
	format, ok := getU64(meta, keyFormat)
	if !ok {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no valid format version", db.path)
	}
	if format != formatVersion {
		return permatrix.Errorf(permatrix.EUNAVAILABLE,
			"%s: store format %d is not supported (this build reads format %d)", db.path, format, formatVersion)
	}
	rev, ok := getU64(meta, keyRevision)
	if !ok {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no valid revision", db.path)
	}
	for _, name := range allBuckets {
		if btx.Bucket(name) == nil {
			if _, err := btx.CreateBucket(name); err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		if err := btx.Commit(); err != nil {
			return err
		}
	}
	db.rev.Store(rev)
	return nil
}

// Close closes the file and releases its lock. Pending transactions must
// have finished.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { close(db.closed) })
	return db.bolt.Close()
}

// Path is the file the store was opened from.
func (db *DB) Path() string { return db.path }

// Revision is the last committed revision. It is cheap (one atomic load) and
// may be called concurrently with anything.
func (db *DB) Revision() uint64 { return db.rev.Load() }

// Update runs fn in one read-write transaction.
//
// If fn returns nil and made at least one change, the revision is
// incremented once in the same transaction and the transaction commits
// (fsync included); Update returns the new revision and the patches the
// changes imply, the last one being {Path: ["revision"], Value: rev}. If fn
// made no change, nothing is committed, and Update returns the current
// revision and no patches. If fn returns an error, or a Tx method failed
// after it had started writing, nothing is stored and Update returns that
// error. The Tx must not be used after fn returns.
func (db *DB) Update(fn func(tx *Tx) error) (rev uint64, patches []permatrix.Patch, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()

	btx, err := db.bolt.Begin(true)
	if err != nil {
		return 0, nil, db.writeFailed(err)
	}
	// A no-op after Commit; on any other way out (error, no change, panic
	// in fn) it discards the transaction.
	defer btx.Rollback()

	tx := &Tx{btx: btx, rev: db.rev.Load()}
	if err := fn(tx); err != nil {
		if tx.err != nil {
			return 0, nil, db.writeFailed(err)
		}
		return 0, nil, err
	}
	if tx.err != nil {
		return 0, nil, db.writeFailed(tx.err)
	}
	if len(tx.patches) == 0 {
		return tx.rev, nil, nil
	}
	rev = tx.rev + 1
	if err := btx.Bucket(bucketMeta).Put(keyRevision, u64(rev)); err != nil {
		return 0, nil, err
	}
	if err := btx.Commit(); err != nil {
		return 0, nil, db.writeFailed(fmt.Errorf("bolt: commit revision %d: %w", rev, err))
	}
	db.writeCommitted()
	db.rev.Store(rev)
	patches = append(tx.patches, permatrix.Patch{Path: []string{"revision"}, Value: rev})
	return rev, patches, nil
}

// View runs fn in a read-only transaction: a consistent snapshot at one
// revision, concurrent with other Views and with Update. The mutating Tx
// methods fail in it.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bbolt.Tx) error {
		rev, _ := getU64(btx.Bucket(bucketMeta), keyRevision)
		return fn(&Tx{btx: btx, rev: rev})
	})
}

// State reads the whole store at one revision, in one read transaction.
// Assignments are sorted by id, memberships by group then user, roles by
// system then name, projects by system then id.
func (db *DB) State() (*permatrix.State, error) {
	s := &permatrix.State{}
	err := db.View(func(tx *Tx) error {
		s.Revision = tx.rev
		err := tx.btx.Bucket(bucketAssignments).ForEach(func(k, v []byte) error {
			a, err := decode[permatrix.Assignment](k, v)
			s.Assignments = append(s.Assignments, a)
			return err
		})
		if err != nil {
			return err
		}
		err = forEachNested(tx.btx.Bucket(bucketMembers), func(group, user, _ []byte) error {
			s.Memberships = append(s.Memberships, permatrix.Membership{Group: string(group), User: string(user)})
			return nil
		})
		if err != nil {
			return err
		}
		if s.Roles, err = tx.Roles(""); err != nil {
			return err
		}
		return forEachNested(tx.btx.Bucket(bucketProjects), func(_, k, v []byte) error {
			p, err := decode[permatrix.Project](k, v)
			s.Projects = append(s.Projects, p)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// forEachNested calls fn for every key of every sub-bucket of b, in key
// order of the sub-buckets and then of their keys.
func forEachNested(b *bbolt.Bucket, fn func(outer, k, v []byte) error) error {
	return b.ForEachBucket(func(outer []byte) error {
		return b.Bucket(outer).ForEach(func(k, v []byte) error { return fn(outer, k, v) })
	})
}

// decode unmarshals a stored JSON value; key names it in the error, since a
// failure means the file is corrupt or of another layout.
func decode[T any](key, v []byte) (T, error) {
	var x T
	if err := json.Unmarshal(v, &x); err != nil {
		return x, fmt.Errorf("bolt: corrupt value at key %q: %w", key, err)
	}
	return x, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bbolt.Bucket, key []byte) (uint64, bool) {
	v := b.Get(key)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}
