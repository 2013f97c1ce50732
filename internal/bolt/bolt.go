// Package bolt is the assignment store's backend in one bbolt file: the
// embedded default, and the local replica of a sidecar in a fleet
// (internal/etcd). It implements store.Backend: ordered keys and values
// with revisions; what the keys mean is internal/store's business.
//
// Invariants:
//
//   - One committed bbolt transaction changes the revision exactly once,
//     in the same transaction, so a revision names one state and two readers
//     at the same revision see the same data. A transaction that changes
//     nothing commits nothing.
//   - Group commit: concurrent Commits are queued and applied by one
//     committer goroutine in one bbolt transaction, fsynced once (bbolt's
//     defaults: NoSync false). Every Commit of that transaction returns the
//     same, new revision, and only after the fsync: an acknowledged write
//     survives kill -9. A commit that fails (disk full, I/O error) fails every
//     Commit of the transaction and nothing of it is stored.
//   - A Commit is applied only if no unit it read changed after its base
//     revision (store.Changes, kept in memory: at open nothing is known
//     before the file's revision, so a batch based on an older revision
//     conflicts), and not if an earlier Commit of the same transaction wrote
//     one of those units.
//   - Every value is stored with a CRC-32C of key and value; a read that finds
//     a mismatch is an error, never data.
//   - Assignment numbers (NextID) come from a counter persisted in the meta
//     bucket with every commit, at least as high as every number handed out
//     before the commit: after a crash the counter resumes above every
//     stored id.
//   - Open reads every page once (the check) and then drops the pages of the
//     memory map from the process's resident set (resident_linux.go): they
//     stay in the page cache; serving maps back only what it reads, and
//     the pages under Options.Resident in the background at once. A
//     snapshot whose scans went through bulkScan bytes or more (an export)
//     does the same when it closes, and so does a replica's resync with
//     Options.Resident.
//   - Only one process has the file open: bbolt holds an exclusive flock,
//     and a second Open gives up after lockTimeout with EUNAVAILABLE. A
//     read-only Open (Options.ReadOnly: check --db, replay --db) holds a
//     shared one and writes nothing to the file.
//   - A replica (Options.Replica) is written only by Apply and Reset, with
//     the revisions its source gives; Commit is refused. Its transactions
//     are not fsynced (the source holds every acknowledged write; Close
//     syncs): a process crash loses nothing, an operating-system crash may
//     leave it behind its source — caught up from its revision — or damaged
//     — refused at open, then rebuilt by its owner (internal/etcd).
//
// Layout (bucket → key → value), format 3:
//
//	meta  "format" → uint64 BE (formatVersion), "revision" → uint64 BE,
//	      "idseq" → uint64 BE, "mode" → "primary" | "replica",
//	      "source" → what a replica replicates (e.g. its etcd prefix)
//	kv    store key → CRC-32C (4 bytes BE) of store key and value ‖ value,
//	      but a key of the scope index (d scopes <system> <scope> <id>)
//	      kept as d scopes <system> <id's bucket> <scope> <id> (scopes.go)
//
// Format 2 files, whose kv keys are the store's keys, scope index
// included, are read as they are and stay format 2 (`permatrix store copy`
// into a new file makes a format 3 copy).
//
// The kv bucket's pages are split when 0.9 full (fillPercent), not half:
// a store's keys mostly arrive beside earlier ones.
//
// Format 1 files (a bucket per kind of record) are migrated to format 3 in
// one transaction when opened (migrate.go).
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// formatVersion is the layout this package writes. Bump it, and migrate
// older files or read them as they are, whenever the layout above changes.
// Format 2 files (the scope index by scope: store keys as they are) are
// read as they are; format 1 files are migrated to formatVersion.
const formatVersion = 3

// unbucketedFormat is the format whose scope index is not bucketed.
const unbucketedFormat = 2

// lockTimeout bounds how long Open waits for another process to release
// the file. bbolt polls the flock every 50 ms until then.
const lockTimeout = 2 * time.Second

// initialMmapSize is the address space bbolt maps at once. bbolt remaps when
// the file outgrows its mapping, and a remap waits for every open read
// transaction (a snapshot, an export being streamed), while every read
// begun meanwhile — each decision's snapshot — waits behind it: decisions
// stalled until an export of the whole store had been streamed. Mapping
// more than the file needs (address space, not memory: untouched pages
// are neither read nor resident) makes that wait rare. A million
// assignments take about 940 MiB: the 1 GiB this was remapped at the next
// tens of thousands; 16 GiB on 64-bit platforms is 16 million or so.
// On 32-bit ones bbolt maps at most 2 GiB: 1 GiB there.
var initialMmapSize = 1 << 30 << (4 * (strconv.IntSize / 64))

// maxBatchOps bounds the operations of one group commit; a single Commit
// larger than that is applied alone.
const maxBatchOps = 200_000

var (
	bucketMeta = []byte("meta")
	bucketKV   = []byte("kv")

	keyFormat   = []byte("format")
	keyRevision = []byte("revision")
	keyIDSeq    = []byte("idseq")
	keyMode     = []byte("mode")
	keySource   = []byte("source")
	// keyNote is a replica's note (ApplyNote): absent when empty.
	keyNote = []byte("note")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tune Open.
type Options struct {
	// Replica opens (or creates) the file as a replica of source: written by
	// Apply and Reset only. A primary file is refused as a replica and the
	// other way round, and a replica of another source is refused, unless
	// AcceptSource accepts the source it records (the same source under
	// another name: the backend renames it with SetSource).
	Replica      bool
	Source       string
	AcceptSource func(recorded string) bool
	// ChangesLimit bounds the unit-change index (store.Changes).
	ChangesLimit int
	// ReadOnly opens an existing store to read it only (check --db,
	// replay --db): nothing is written to the file — which may be on a
	// read-only file system — and Commit is refused. bbolt takes a shared
	// lock, which a running server's excludes. A file that needs writing
	// first (format 1, a layout never written) is refused.
	ReadOnly bool
	// Resident, if not nil, is a key prefix whose pages are kept in the
	// process's resident set: when Open's check, or a bulk scan's snapshot
	// closing, drops the map's pages, those under Resident are read back
	// in the background at once (keepResident; WaitResident waits for it).
	// serve gives the policies' document (store.DocumentPrefix), the only
	// keys decisions read: a decision then takes no page fault to map a
	// page the drop took away — a fresh process's first decisions as fast
	// as later ones — for those pages in RSS from the start (~410 MiB of a
	// 1M-assignment store's ~560 MiB file).
	Resident []byte
}

// DB is an open store file.
type DB struct {
	bolt    *bbolt.DB
	path    string
	replica bool
	// bucketed: the file is of format 3, its scope index kept by id
	// bucket (scopes.go); read once at open.
	bucketed bool

	readOnly bool
	resident *residentKeeper // nil without Options.Resident

	source  string                 // what a replica replicates (meta "source")
	note    atomic.Pointer[string] // a replica's note (meta "note"; ApplyNote)
	rev     atomic.Uint64          // last committed revision
	seq     atomic.Uint64          // last assignment number handed out
	changes *store.Changes

	mu      sync.Mutex // guards queue, applied, closed, source
	queue   []*commitReq
	wake    chan struct{} // one token: the committer has work
	applied chan struct{} // closed and replaced at every new revision
	closed  bool
	done    chan struct{} // closed when the committer has exited
	stop    chan struct{} // closed by Close: stops the disk probe

	fault      atomic.Pointer[Fault] // the last write's disk failure (fault.go)
	broken     atomic.Pointer[Fault] // the fault that broke the store (fault.go)
	probeEvery atomic.Int64          // time.Duration between disk probes while faulted

	// Snapshots by era: a commit that failed after its meta page was
	// written ends an era (endEra), and the next commit waits for the
	// snapshots of the eras before it (stale, the committer's).
	rmu   sync.Mutex // guards era and every era's open, ended
	era   *era
	stale []*era
}

// era counts the snapshots opened between two commits that failed after
// writing their meta page. bbolt's rollback of such a commit reloads its
// free list from the newest meta page — the failed commit's, which lists
// the pages it replaced as free, not as pending until the readers of the
// revision before it close: the next commit may write over the pages an
// open snapshot reads (TestFailedCommitKeepsOpenSnapshots). So the next
// commit waits until the snapshots of ended eras are closed.
type era struct {
	open  int
	ended bool
	done  chan struct{} // closed once ended with no snapshot open
}

func newEra() *era { return &era{done: make(chan struct{})} }

// enter registers a snapshot about to be opened in the current era.
func (db *DB) enter() *era {
	db.rmu.Lock()
	defer db.rmu.Unlock()
	if db.era == nil {
		db.era = newEra()
	}
	db.era.open++
	return db.era
}

// leave unregisters a snapshot of e.
func (db *DB) leave(e *era) {
	db.rmu.Lock()
	defer db.rmu.Unlock()
	e.open--
	if e.ended && e.open == 0 {
		close(e.done)
	}
}

// endEra ends the current era (committer only): a commit failed after
// writing its meta page.
func (db *DB) endEra() {
	db.rmu.Lock()
	defer db.rmu.Unlock()
	e := db.era
	if e == nil {
		return
	}
	e.ended = true
	if e.open == 0 {
		close(e.done)
	}
	db.era = newEra()
	db.stale = append(db.stale, e)
}

// staleReadersWait bounds how long a commit waits for the snapshots opened
// before a commit that failed after writing its meta page.
var staleReadersWait = 10 * time.Second

// awaitStale waits until every snapshot of an ended era is closed
// (committer only), at most staleReadersWait: after that, the commit is
// refused (one of them may be held by a writer waiting for it).
func (db *DB) awaitStale() error {
	if len(db.stale) == 0 {
		return nil
	}
	if testHookStaleWait != nil {
		testHookStaleWait()
	}
	timer := time.NewTimer(staleReadersWait)
	defer timer.Stop()
	for len(db.stale) > 0 {
		select {
		case <-db.stale[0].done:
			db.stale = db.stale[1:]
		case <-timer.C:
			return permatrix.Errorf(permatrix.EUNAVAILABLE,
				"store %s: snapshots opened before a commit that failed after writing its meta page are still open (%s): the write would reuse their pages; retry", db.path, staleReadersWait)
		}
	}
	return nil
}

type commitReq struct {
	ctx   context.Context
	batch *store.Batch
	done  chan commitResult
}

type commitResult struct {
	rev uint64
	err error
}

// Open opens the store file at path, creating it (mode 0600: it holds
// authorization data) if it does not exist. If another process has it open,
// Open fails within lockTimeout with an EUNAVAILABLE error saying so. A file
// that is not a permatrix store, of an unknown format, or corrupt is refused
// with an error saying why (Verify has the details).
func Open(path string, o Options) (*DB, error) {
	fi, statErr := os.Stat(path)
	if statErr == nil {
		if err := checkFile(path, fi); err != nil {
			return nil, err
		}
	}
	// A file this Open creates and then fails to make a store of (a full
	// disk) is removed: left empty or half-written, every later Open
	// would refuse it as a damaged store.
	created := errors.Is(statErr, os.ErrNotExist)
	undo := func() {
		if created {
			os.Remove(path)
		}
	}
	var b *bbolt.DB
	err := guard(func() (err error) {
		b, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, InitialMmapSize: initialMmapSize, ReadOnly: o.ReadOnly})
		return err
	})
	if err != nil {
		if !errors.Is(err, berrors.ErrTimeout) { // not another process's file
			undo()
		}
		return nil, openError(path, err)
	}
	b.NoSync = o.Replica
	if testHookBeforeCheck != nil {
		testHookBeforeCheck()
	}
	if err := guard(func() error { _, err := verifyOpen(b, path, false); return err }); err != nil {
		closeUnlessFaulted(b, err)
		undo()
		return nil, corrupt(path, err)
	}
	// The open check read every page: drop them from the resident set
	// (resident_linux.go); those under o.Resident are mapped back in the
	// background (keepResident). A failure costs memory only, never data.
	if testHookBeforeRelease != nil {
		testHookBeforeRelease()
	}
	// Guarded as every read: it reads the meta page in a transaction of its
	// own, which faults if the file was truncated since the check. The
	// fault leaves bbolt's meta lock held (Begin), so b is not closed (Close
	// would wait for that lock for ever): its file is left to the process's
	// exit, which a damaged store means.
	if err := guard(func() error { return releaseResident(b) }); err != nil {
		var pe *panicError
		if errors.As(err, &pe) {
			undo()
			return nil, corrupt(path, err)
		}
	}
	db := &DB{bolt: b, path: path, replica: o.Replica, readOnly: o.ReadOnly, wake: make(chan struct{}, 1),
		applied: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	if err := guard(func() error { return db.init(o) }); err != nil {
		closeUnlessFaulted(b, err)
		undo()
		// init writes a new file's layout or migrates format 1: a disk that
		// refuses that write says nothing about the file, which it left as
		// it was (fault.go).
		if errno, ok := diskErrno(err); ok {
			return nil, permatrix.Errorf(permatrix.ESTORAGE,
				"%s: store %s: opening it needs a write (its layout, or its migration to format %d), which the disk refused; nothing was written: make room and start again", errno, path, formatVersion)
		}
		return nil, corrupt(path, err)
	}
	db.changes = store.NewChanges(db.rev.Load(), o.ChangesLimit)
	go db.committer()
	if o.Resident != nil {
		db.resident = newResidentKeeper(o.Resident)
		go db.keepResident()
		db.resident.ask()
	}
	return db, nil
}

// init creates the layout in a new file, migrates an older format, checks
// the file and loads the revision and the id counter.
func (db *DB) init(o Options) error {
	mode := "primary"
	if o.Replica {
		mode = "replica"
	}
	update := db.bolt.Update
	if o.ReadOnly {
		update = db.bolt.View
	}
	err := update(func(btx *bbolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		if meta != nil && o.ReadOnly {
			if format, ok := getU64(meta, keyFormat); ok && format == 1 {
				return &NeedsWriteError{permatrix.Errorf(permatrix.EUNAVAILABLE,
					"%s is a store of format 1: permatrix serve or import migrate it to format %d when they open it; it cannot be read as it is", db.path, formatVersion)}
			}
		}
		if meta == nil && o.ReadOnly {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s holds no store yet (its layout was never written)", db.path)
		}
		if meta == nil {
			// A new file has no buckets at all. A bbolt file with buckets but
			// no meta belongs to something else: don't write into it.
			if k, _ := btx.Cursor().First(); k != nil {
				return permatrix.Errorf(permatrix.EUNAVAILABLE,
					"%s is not a permatrix store (bucket %q found, no %q)", db.path, k, bucketMeta)
			}
			var err error
			if meta, err = btx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if _, err := btx.CreateBucket(bucketKV); err != nil {
				return err
			}
			for k, v := range map[string][]byte{
				string(keyFormat): u64(formatVersion), string(keyRevision): u64(0), string(keyIDSeq): u64(0),
				string(keyMode): []byte(mode), string(keySource): []byte(o.Source),
			} {
				if err := meta.Put([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		}
		format, ok := getU64(meta, keyFormat)
		switch {
		case !ok:
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no valid format version", db.path)
		case format == 1:
			return migrateV1(btx)
		case format != formatVersion && format != unbucketedFormat:
			return permatrix.Errorf(permatrix.EUNAVAILABLE,
				"%s: store format %d is not supported (this build reads formats 1 to %d)", db.path, format, formatVersion)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.bolt.View(func(btx *bbolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		if btx.Bucket(bucketKV) == nil {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no %q bucket", db.path, bucketKV)
		}
		if got := string(meta.Get(keyMode)); got != mode {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s is a %s store, opened as a %s", db.path, got, mode)
		}
		got := string(meta.Get(keySource))
		if o.Replica && got != o.Source && (o.AcceptSource == nil || !o.AcceptSource(got)) {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s replicates %q, not %q", db.path, got, o.Source)
		}
		db.source = got
		format, _ := getU64(meta, keyFormat)
		db.bucketed = format == formatVersion
		note := string(meta.Get(keyNote))
		db.note.Store(&note)
		rev, ok := getU64(meta, keyRevision)
		if !ok {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no valid revision", db.path)
		}
		seq, ok := getU64(meta, keyIDSeq)
		if !ok {
			return permatrix.Errorf(permatrix.EUNAVAILABLE, "%s: store has no valid id sequence", db.path)
		}
		db.rev.Store(rev)
		db.seq.Store(seq)
		return nil
	})
}

// NeedsWriteError is a read-only Open refused because the file must be
// written before it can be read: a format 1 file, which opening it for
// writing migrates.
type NeedsWriteError struct{ err error }

func (e *NeedsWriteError) Error() string { return e.err.Error() }
func (e *NeedsWriteError) Unwrap() error { return e.err }

// Close stops the committer (failing queued commits), then closes the file
// and releases its lock. Snapshots must have been closed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	close(db.stop)
	db.signal()
	if err := db.brokenErr(); err != nil {
		// bbolt may hold its locks for ever (fault.go): neither the
		// committer nor bbolt's Close may return.
		return err
	}
	<-db.done
	if db.resident != nil {
		<-db.resident.exited // its read transaction ended: bbolt's Close waits for it
		// The pass may have faulted meanwhile, in the Begin that holds
		// bbolt's meta lock (a file truncated as Close began): bbolt's
		// Close would wait for that lock for ever.
		if err := db.brokenErr(); err != nil {
			return err
		}
	}
	if db.replica {
		// Not fsynced while applying (package comment): synced on the way out.
		if err := db.guard(db.bolt.Sync); err != nil {
			db.bolt.Close()
			return err
		}
	}
	return db.bolt.Close()
}

// Path is the file the store was opened from.
func (db *DB) Path() string { return db.path }

// Revision is the last committed revision.
func (db *DB) Revision() uint64 { return db.rev.Load() }

// Changes is the index of recent unit changes.
func (db *DB) Changes() *store.Changes { return db.changes }

// Wait returns once the revision is at least rev, or ctx ends.
func (db *DB) Wait(ctx context.Context, rev uint64) error {
	for {
		db.mu.Lock()
		ch := db.applied
		db.mu.Unlock()
		if db.rev.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// testHookStaleWait, set by tests only, runs when a commit is about to
// wait for the snapshots of ended eras (awaitStale).
var testHookStaleWait func()

// closeUnlessFaulted closes b after a failed open, but not after a fault
// (the file truncated under it): a fault in bbolt's Begin leaves its meta
// lock held, and Close would wait for that lock for ever. The handle is
// then left to the process's exit, which a damaged store means.
func closeUnlessFaulted(b *bbolt.DB, err error) {
	var pe *panicError
	if !errors.As(err, &pe) {
		b.Close()
	}
}

// testHookBeforeCheck, set by tests only, runs in Open between bbolt's
// open and the store check.
var testHookBeforeCheck func()

// testHookBeforeRelease, set by tests only, runs in Open between the
// file's check and the release of the pages it read.
var testHookBeforeRelease func()

// testHookCommitter, set by tests only, runs first on the committer's
// goroutine: the disk-fault tests lock it to its thread, as strace counts
// the syscalls it fails a thread at a time (fsyncfault_test.go).
var testHookCommitter func()

// testHookBeforePublish, set by tests only, runs after a write's bbolt
// commit and before its changes are recorded and its revision published:
// while it runs, a snapshot shows a revision Revision has not reached.
var testHookBeforePublish func(rev uint64)

// publish makes rev the committed revision and wakes Waiters.
func (db *DB) publish(rev uint64) {
	db.rev.Store(rev)
	db.mu.Lock()
	close(db.applied)
	db.applied = make(chan struct{})
	db.mu.Unlock()
}

// Fresh has nothing to wait for: every commit to the file is made by this
// process (a replica's source is another matter: see internal/etcd).
func (db *DB) Fresh(context.Context) error { return nil }

// NextID reserves the next assignment number.
func (db *DB) NextID(context.Context) (uint64, error) {
	if db.replica {
		return 0, errors.New("bolt: a replica hands out no ids")
	}
	return db.seq.Add(1), nil
}

// View returns a snapshot of the committed state.
func (db *DB) View() (store.Snapshot, error) {
	var s *snapshot
	if err := db.brokenErr(); err != nil {
		return nil, err
	}
	e := db.enter()
	err := db.guard(func() error {
		btx, err := db.bolt.Begin(false)
		if err != nil {
			return err
		}
		meta := btx.Bucket(bucketMeta)
		rev, _ := getU64(meta, keyRevision)
		s = &snapshot{tx: btx, kv: btx.Bucket(bucketKV), rev: rev, bucketed: db.bucketed, note: string(meta.Get(keyNote)), owner: db, era: e}
		return nil
	})
	if err != nil {
		if s != nil {
			s.tx.Rollback()
		}
		db.leave(e)
		if err := db.brokenErr(); err != nil {
			return nil, err
		}
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s: %v", db.path, err)
	}
	return s, nil
}

// Commit queues b for the next group commit and waits for its outcome.
func (db *DB) Commit(ctx context.Context, b *store.Batch) (uint64, error) {
	if db.replica {
		return 0, errors.New("bolt: a replica is written by its source only")
	}
	if db.readOnly {
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s is open read-only", db.path)
	}
	if err := db.brokenErr(); err != nil {
		return 0, err
	}
	if len(b.Ops) == 0 {
		return store.Unchanged(b, db.changes, db.Revision)
	}
	// Refused here, not in the group commit: it would fail the other
	// Commits of its transaction too.
	for _, op := range b.Ops {
		if err := keptErr(db.bucketed, op.Key); err != nil {
			return 0, err
		}
	}
	req := &commitReq{ctx: ctx, batch: b, done: make(chan commitResult, 1)}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s is closed", db.path)
	}
	db.queue = append(db.queue, req)
	db.mu.Unlock()
	db.signal()
	// Once queued, the outcome is awaited even if ctx ends: the committer
	// skips a request whose ctx ended before it was taken, and a request it
	// took is committed or failed promptly.
	r := <-req.done
	return r.rev, r.err
}

func (db *DB) signal() {
	select {
	case db.wake <- struct{}{}:
	default:
	}
}

// committer applies queued commits, a group at a time.
func (db *DB) committer() {
	defer close(db.done)
	if testHookCommitter != nil {
		testHookCommitter()
	}
	for range db.wake {
		for {
			db.mu.Lock()
			if len(db.queue) == 0 {
				closed := db.closed
				db.mu.Unlock()
				if closed {
					return
				}
				break
			}
			// Take requests up to maxBatchOps (at least one).
			n, ops := 0, 0
			for n < len(db.queue) && (n == 0 || ops+len(db.queue[n].batch.Ops) <= maxBatchOps) {
				ops += len(db.queue[n].batch.Ops)
				n++
			}
			group := db.queue[:n:n]
			db.queue = db.queue[n:]
			closed := db.closed
			db.mu.Unlock()
			if closed {
				for _, r := range group {
					r.done <- commitResult{err: permatrix.Errorf(permatrix.EUNAVAILABLE, "store %s is closed", db.path)}
				}
				continue
			}
			db.commitGroup(group)
		}
	}
}

// commitGroup applies a group of requests in one bbolt transaction.
func (db *DB) commitGroup(group []*commitReq) {
	err := db.brokenErr()
	if err == nil {
		err = db.awaitStale()
	}
	if err != nil {
		for _, r := range group {
			r.done <- commitResult{err: err}
		}
		return
	}
	base := db.rev.Load()
	rev := base + 1
	results := make([]commitResult, len(group))
	written := map[string]bool{} // units written by earlier requests of the group
	var units [][]byte
	applied := 0
	err = db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error {
			var ops []store.Op // the applied requests', in order
			var first *store.Batch
			for i, r := range group {
				if err := r.ctx.Err(); err != nil {
					results[i].err = err
					continue
				}
				if db.changes.ChangedAfter(r.batch.Base, r.batch.Reads) || readsAny(r.batch.Reads, written) {
					results[i].err = store.ErrConflict
					continue
				}
				if ops == nil {
					ops, first = r.batch.Ops, r.batch
				} else {
					ops = append(slices.Clip(ops), r.batch.Ops...)
				}
				// A string key a unit was an allocation each (three an
				// import line): only a request that follows reads them.
				if i < len(group)-1 {
					for _, u := range r.batch.Writes() {
						written[string(u)] = true
					}
				}
				// The first request's units are its batch's list, as its
				// operations are: a copy was as long as an import chunk's.
				if units == nil {
					units = r.batch.Writes()
				} else {
					units = append(slices.Clip(units), r.batch.Writes()...)
				}
				results[i].rev = rev
				applied++
			}
			if applied == 0 {
				return errNothing
			}
			// A batch alone is written in its own key order (a planned
			// one's from its planning's tree: an import chunk's
			// operations were cloned and sorted here, on the serial
			// commit); a group's operations together are sorted.
			var err error
			if applied == 1 && first != nil {
				err = putInKeyOrder(kvBucket(btx), db.bucketed, first.InKeyOrder(), sealedSize(ops))
			} else {
				err = putOps(kvBucket(btx), db.bucketed, ops)
			}
			if err != nil {
				return err // bbolt fails the whole transaction
			}
			meta := btx.Bucket(bucketMeta)
			if err := meta.Put(keyRevision, u64(rev)); err != nil {
				return err
			}
			return meta.Put(keyIDSeq, u64(db.seq.Load()))
		})
	})
	switch {
	case errors.Is(err, errNothing):
		// every request conflicted or was canceled: nothing to commit
	case err != nil && db.brokenErr() != nil:
		// Failed, and the store broke (this transaction's fault or a
		// reader's meanwhile): bbolt is not entered again, not even to
		// ask whether its meta page was written (visible). A transaction
		// that was made is acknowledged below whatever broke meanwhile:
		// it is on disk.
		for i := range results {
			results[i] = commitResult{err: db.brokenErr()}
		}
	case err != nil:
		cause := err
		if werr := db.writeFailed(err); werr != err {
			err = werr
		} else {
			err = fmt.Errorf("bolt: commit revision %d: %w", rev, err)
		}
		if db.visible(rev) {
			// bbolt wrote the meta page, then failed (its sync): the meta
			// pages are read from the memory map, so every transaction
			// from now on starts from this one — readers see it, and the
			// next commit makes it durable. It is the store's revision
			// rev: recorded and published, or a snapshot would show what
			// the index of changes does not know, and the next commit
			// would name another state rev too. Whether it survives a
			// crash before the next commit is not known.
			db.endEra()
			db.changes.Record(rev, units)
			db.publish(rev)
			err = permatrix.Errorf(permatrix.ErrorCode(err),
				"%v: store %s: the write was made but not synced to disk: it may not survive a crash; retrying it is safe", cause, db.path)
		}
		for i := range results {
			if results[i].err == nil {
				results[i] = commitResult{err: err}
			}
		}
	default:
		db.writeCommitted()
		if testHookBeforePublish != nil {
			testHookBeforePublish(rev)
		}
		db.changes.Record(rev, units)
		db.publish(rev)
	}
	for i, r := range group {
		r.done <- results[i]
	}
}

var errNothing = errors.New("bolt: nothing to commit")

// visible reports whether the store's revision, as a new transaction sees
// it, is rev: a commit that failed after its meta page was written.
func (db *DB) visible(rev uint64) bool {
	var got uint64
	_ = db.guard(func() error {
		return db.bolt.View(func(btx *bbolt.Tx) error {
			got, _ = getU64(btx.Bucket(bucketMeta), keyRevision)
			return nil
		})
	})
	return got == rev
}

func readsAny(reads [][]byte, written map[string]bool) bool {
	if len(written) == 0 {
		return false
	}
	for _, u := range reads {
		if written[string(u)] {
			return true
		}
	}
	return false
}

// Apply writes a replica's change: the operations of its source's revision
// rev (or of several whole revisions up to rev) in one transaction, and
// units as the changed units. A revision at or before the applied one is
// ignored.
func (db *DB) Apply(rev uint64, ops []store.Op, units [][]byte) error {
	return db.replicate(rev, ops, nil, func() { db.changes.Record(rev, units) })
}

// ApplyNote is Apply that also sets the replica's note, in the same
// transaction: what its source says of itself at rev ("" for nothing; an
// etcd prefix's "copy in progress" marker). A snapshot shows the note of
// its own revision (Note), and a replica with a note is not held to be a
// whole store when it is opened (its records may be half a copy: Open
// checks their checksums, not that they agree with each other).
func (db *DB) ApplyNote(rev uint64, ops []store.Op, units [][]byte, note string) error {
	return db.replicate(rev, ops, &note, func() { db.changes.Record(rev, units) })
}

// Note is the replica's note at its latest revision ("": none).
func (db *DB) Note() string {
	if p := db.note.Load(); p != nil {
		return *p
	}
	return ""
}

// Resync writes the operations that turn a replica into its source's state
// at rev, in one transaction: readers see the old state or the new one,
// never a mix. The unit-change index starts afresh at rev.
func (db *DB) Resync(rev uint64, ops []store.Op) error {
	return db.resynced(db.replicate(rev, ops, nil, func() { db.changes.Reset(rev) }))
}

// ResyncNote is Resync that also sets the replica's note (ApplyNote).
func (db *DB) ResyncNote(rev uint64, ops []store.Op, note string) error {
	return db.resynced(db.replicate(rev, ops, &note, func() { db.changes.Reset(rev) }))
}

// resynced follows a resync that ended with err: one that was made wrote
// the replica's pages afresh (with pwrite, not through the map), and the
// Options.Resident ones are mapped in the background, as after Open —
// once the map's pages are dropped, as after Open's check: the resync read
// the pages it replaced through the map, and the pass would leave them
// resident beside the new ones (free pages: twice the document).
func (db *DB) resynced(err error) error {
	if err == nil && db.resident != nil {
		db.releasePages()
	}
	return err
}

// Load writes operations into a replica without moving its revision: the
// pages of a first synchronisation, before Resync names their revision.
// The caller keeps the replica from being read meanwhile.
func (db *DB) Load(ops []store.Op) error {
	if !db.replica {
		return errors.New("bolt: Load on a primary store")
	}
	return db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error { return putOps(kvBucket(btx), db.bucketed, ops) })
	})
}

// Source is what a replica records that it replicates (Options.Source, or
// what SetSource wrote since).
func (db *DB) Source() string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.source
}

// SetSource records what a replica replicates, durably: a backend names
// its source more precisely once it knows more of it (an etcd cluster's id,
// learnt on first contact), or renames an older name of it.
func (db *DB) SetSource(source string) error {
	if !db.replica {
		return errors.New("bolt: SetSource on a primary store")
	}
	err := db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error {
			return btx.Bucket(bucketMeta).Put(keySource, []byte(source))
		})
	})
	if err != nil {
		return db.writeFailed(err)
	}
	db.writeCommitted()
	if err := db.bolt.Sync(); err != nil { // replica transactions are not fsynced
		return err
	}
	db.mu.Lock()
	db.source = source
	db.mu.Unlock()
	return nil
}

// Wipe empties a replica and sets its revision to 0.
func (db *DB) Wipe() error {
	if !db.replica {
		return errors.New("bolt: Wipe on a primary store")
	}
	err := db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error {
			if err := btx.DeleteBucket(bucketKV); err != nil {
				return err
			}
			if _, err := btx.CreateBucket(bucketKV); err != nil {
				return err
			}
			meta := btx.Bucket(bucketMeta)
			if err := meta.Delete(keyNote); err != nil {
				return err
			}
			return meta.Put(keyRevision, u64(0))
		})
	})
	if err == nil {
		// What is loaded next numbers its revisions anew (Changes.Forget).
		empty := ""
		db.note.Store(&empty)
		db.rev.Store(0)
		db.changes.Forget()
	}
	return err
}

func (db *DB) replicate(rev uint64, ops []store.Op, note *string, record func()) error {
	if !db.replica {
		return errors.New("bolt: a primary store is written by Commit")
	}
	if rev <= db.rev.Load() {
		return nil // already applied
	}
	err := db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error {
			if err := putOps(kvBucket(btx), db.bucketed, ops); err != nil {
				return err
			}
			meta := btx.Bucket(bucketMeta)
			if note != nil && *note == "" {
				if err := meta.Delete(keyNote); err != nil {
					return err
				}
			} else if note != nil {
				if err := meta.Put(keyNote, []byte(*note)); err != nil {
					return err
				}
			}
			return meta.Put(keyRevision, u64(rev))
		})
	})
	if err != nil {
		return db.writeFailed(err)
	}
	db.writeCommitted()
	if testHookBeforePublish != nil {
		testHookBeforePublish(rev)
	}
	if note != nil {
		db.note.Store(note)
	}
	record()
	db.publish(rev)
	return nil
}

// putOps applies ops in key order — stably: the operations of one key
// keep their order, the last is its outcome. bbolt inserts a key into its
// leaf by moving the keys after it, so many inserts out of order into one
// leaf (a large commit into a new or small store) cost the square of their
// number; in order, each lands at the end.
func putOps(kv *bbolt.Bucket, bucketed bool, ops []store.Op) error {
	if !slices.IsSortedFunc(ops, compareOpKeys) {
		ops = slices.Clone(ops)
		slices.SortStableFunc(ops, compareOpKeys)
	}
	return putInKeyOrder(kv, bucketed, slices.Values(ops), sealedSize(ops))
}

// putInKeyOrder writes ops, in key order, sealing the values into one
// buffer of size bytes (sealedSize): bbolt holds them until the
// transaction ends, as it held one allocation each.
func putInKeyOrder(kv *bbolt.Bucket, bucketed bool, ops iter.Seq[store.Op], size int) error {
	sealed := make([]byte, 0, size)
	for op := range ops {
		// The value is sealed with the store's key, kept under the key
		// the file keeps it at (scopes.go).
		at, err := storedKey(bucketed, op.Key)
		if err != nil {
			return err
		}
		if op.Delete {
			err = kv.Delete(at)
		} else {
			if len(sealed)+4+len(op.Value) > cap(sealed) {
				sealed = make([]byte, 0, 4+len(op.Value)) // size too small: never cut a value short
			}
			start := len(sealed)
			sealed = appendSealed(sealed, op.Key, op.Value)
			err = kv.Put(at, sealed[start:len(sealed):len(sealed)])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sealedSize is how many bytes ops' values take sealed.
func sealedSize(ops []store.Op) int {
	size := 0
	for _, op := range ops {
		if !op.Delete {
			size += 4 + len(op.Value)
		}
	}
	return size
}

func compareOpKeys(a, b store.Op) int { return bytes.Compare(a.Key, b.Key) }

// seal prefixes a value with the CRC-32C of key and value.
func seal(key, value []byte) []byte {
	return appendSealed(make([]byte, 0, 4+len(value)), key, value)
}

// appendSealed appends seal(key, value) to dst.
func appendSealed(dst, key, value []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, checksum(key, value))
	return append(dst, value...)
}

func checksum(key, value []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
}

// unseal checks and strips a stored value's checksum.
func unseal(key, stored []byte) ([]byte, error) {
	if len(stored) < 4 {
		return nil, fmt.Errorf("bolt: corrupt value at %q: %d bytes, no checksum", store.Segments(key), len(stored))
	}
	v := stored[4:]
	if binary.BigEndian.Uint32(stored) != checksum(key, v) {
		return nil, fmt.Errorf("bolt: corrupt value at %q: checksum mismatch", store.Segments(key))
	}
	return v, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bbolt.Bucket, key []byte) (uint64, bool) {
	v := b.Get(key)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// RaiseIDs makes every assignment number handed out from now on greater
// than n (store.IDFloor).
func (db *DB) RaiseIDs(_ context.Context, n uint64) error {
	for {
		cur := db.seq.Load()
		if cur >= n || db.seq.CompareAndSwap(cur, n) {
			break
		}
	}
	return db.guard(func() error {
		return db.bolt.Update(func(btx *bbolt.Tx) error {
			meta := btx.Bucket(bucketMeta)
			if cur, _ := getU64(meta, keyIDSeq); cur >= n {
				return nil
			}
			return meta.Put(keyIDSeq, u64(n))
		})
	})
}

// fillPercent is how full bbolt fills a page of the kv bucket before it
// splits it (bbolt's default is half). The store's writes mostly add keys
// next to ones before them (an import's chunk in key order; new assignment
// ids, each the last), so half-full pages stayed half full: the 1M store
// held 407 MiB of keys in 204 499 leaf pages (838 MiB). At 0.9: 133 513
// pages (551 MiB) — less to read at open, to map while serving and to
// write per commit (docs/performance.md, 2026-11-28 "fill"); 0.8, 0.95 and
// 1.0 gave more pages (1.0 splits a full page at every key inserted
// between two, which interleaved ids like u19 and u190 do).
const fillPercent = 0.9

// kvBucket is the kv bucket of btx, set for writing (fillPercent: the
// setting is a bucket handle's, not stored in the file).
func kvBucket(btx *bbolt.Tx) *bbolt.Bucket {
	b := btx.Bucket(bucketKV)
	b.FillPercent = fillPercent
	return b
}
