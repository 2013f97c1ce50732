package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A store file truncated under a running server (a hand, a copy over it, a
// restore into the live file): the next read faults inside bbolt's Begin,
// which holds bbolt's meta lock while it reads the meta page. The fault was
// recovered (503) with the lock still held, and every later read and write
// waited for it for ever: /health and every check hung. From the fault on
// the store is broken: reads and writes answer EUNAVAILABLE at once, saying
// so, and Health is not ready.
func TestReadFaultBreaksTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	batch := func() *store.Batch {
		return &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}
	}
	if _, err := db.Commit(context.Background(), batch()); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Fatalf("View of a truncated file: %v, want EUNAVAILABLE", err)
	}
	// Checked before any further read, which hung without the fix.
	h := db.Health()
	if h.Ready || !strings.Contains(h.Error, "broken") || h.ErrorAt.IsZero() {
		t.Fatalf("Health after a read fault: %+v, want not ready, broken, with its time", h)
	}
	for i := range 3 {
		if _, err := db.View(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("View %d after the fault: %v, want EUNAVAILABLE, broken", i, err)
		}
	}
	if _, err := db.Commit(context.Background(), batch()); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Commit after the fault: %v, want EUNAVAILABLE, broken", err)
	}
	if _, err := db.Backup(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Fatalf("Backup after the fault: %v, want EUNAVAILABLE", err)
	}
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Close after the fault: %v, want the store's fault", err)
	}
}

// breakingCtx is a commit's context whose first Err — asked inside the
// commit's bbolt transaction — breaks the store, as a reader faulting on
// another goroutine at that moment does.
type breakingCtx struct {
	context.Context
	once *sync.Once
	db   *DB
}

func (c breakingCtx) Err() error {
	c.once.Do(func() { c.db.breakOnFault(&panicError{v: "a reader's fault"}) })
	return c.Context.Err()
}

// TestCommitMadeAsTheStoreBreaksIsAcknowledged: a commit whose bbolt
// transaction was made and synced while a reader's fault broke the store
// is on disk; its client was told 503, "nothing more is written", and its
// revision was never published. It is acknowledged with its revision, as
// any commit made, and the file holds it.
func TestCommitMadeAsTheStoreBreaksIsAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	value := []byte(`{"permissions":["x"]}`)
	ctx := breakingCtx{Context: context.Background(), once: &sync.Once{}, db: db}
	rev, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: value}}})
	if err != nil {
		t.Fatalf("a commit made as the store broke: %v, want its revision", err)
	}
	if db.Health().Ready {
		t.Fatal("the store is ready after a fault")
	}
	if got := db.Revision(); got != rev {
		t.Errorf("revision %d after the commit, want its %d", got, rev)
	}
	// The file holds it: a copy, opened (the store's own flock is held).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := Open(cp, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	snap, err := other.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if got, err := snap.Get(key); err != nil || !bytes.Equal(got, value) || snap.Revision() != rev {
		t.Fatalf("the file: %q %v at revision %d, want %q at %d", got, err, snap.Revision(), value, rev)
	}
}

// TestSnapshotOpenWhenTheStoreBreaksCloses: a snapshot opened before the
// store broke (a decision, an export in flight) is closed once it did:
// bbolt's Rollback takes the meta lock a fault inside Begin left held, and
// the request closing it waited for ever.
func TestSnapshotOpenWhenTheStoreBreaksCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	open, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("View of a truncated file: %v, want EUNAVAILABLE, broken", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- open.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a guard only
		t.Fatal("closing a snapshot opened before the store broke did not return")
	}
}

// TestExportClosedOnATruncatedFile: an export's snapshot (a bulk scan)
// closed once the file was truncated under the server drops the map's
// pages from the resident set, which reads the meta page in a new bbolt
// transaction: unguarded, its memory fault killed the process. It breaks
// the store as any other read's fault.
func TestExportClosedOnATruncatedFile(t *testing.T) {
	defer SetBulkScan(1)()
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	export, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := export.Scan(nil, nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("the export's scan: %d records, %v; want 1", n, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	_ = export.Close()
	if h := db.Health(); h.Ready || !strings.Contains(h.Error, "broken") {
		t.Fatalf("Health after a fault closing an export: %+v, want not ready, broken", h)
	}
}

// TestScanCallersPanicLeavesTheStoreWhole: a panic of a Scan's callback
// (the caller's code, not bbolt's: nothing of bbolt's is held) fails that
// Scan, and only it: it broke the store until a restart, every read and
// write answering 503 "restart serve, which checks the file", over a file
// that was whole. A memory fault inside the callback, reading the value
// from the file's map, is the file's and still breaks it.
func TestScanCallersPanicLeavesTheStoreWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	// Over a page: a bucket of a few small values is kept inline in its
	// parent's, and bbolt copies one unaligned out of the map.
	value := []byte(`{"permissions":["` + strings.Repeat("p", 8<<10) + `"]}`)
	batch := func() *store.Batch {
		return &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: value}}}
	}
	if _, err := db.Commit(context.Background(), batch()); err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	err = snap.Scan(nil, nil, func(_, _ []byte) error { panic("the caller's bug") })
	snap.Close()
	if err == nil || !strings.Contains(err.Error(), "the caller's bug") {
		t.Fatalf("a Scan whose callback panicked: %v, want its panic", err)
	}
	if h := db.Health(); !h.Ready {
		t.Fatalf("Health after a callback's panic: %+v, want ready", h)
	}
	if _, err := db.Commit(context.Background(), batch()); err != nil {
		t.Fatalf("a write after a callback's panic: %v", err)
	}

	snap, err = db.View()
	if err != nil {
		t.Fatalf("a read after a callback's panic: %v", err)
	}
	err = snap.Scan(nil, nil, func(_, v []byte) error {
		if err := os.Truncate(path, 0); err != nil {
			t.Error(err)
		}
		readSink = v[len(v)-1] // through the map, past the file's end
		return nil
	})
	if err == nil {
		t.Fatal("a Scan whose callback faulted reading the map: no error")
	}
	if h := db.Health(); h.Ready || !strings.Contains(h.Error, "broken") {
		t.Fatalf("Health after a fault reading the map inside a callback: %+v, want not ready, broken", h)
	}
}

// readSink keeps a test's read of the map from being optimized away.
var readSink byte

// TestOpenOnAFileTruncatedAfterItsCheck: Open drops the pages its check
// read (releaseResident), in a bbolt transaction of its own that reads the
// meta page. A file truncated between the check and that release faulted
// there, unguarded: SIGBUS killed serve at start instead of its error exit.
// Open returns the file's damage as an error.
func TestOpenOnAFileTruncatedAfterItsCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(key)}, Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	testHookBeforeRelease = func() {
		if err := os.Truncate(path, 0); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBeforeRelease = nil }()
	db, err = Open(path, Options{})
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "reading the file failed") {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of a file truncated after its check: %v, want a CorruptError of the read that faulted", err)
	}
}

// TestOpenOnAFileTruncatedBeforeItsCheck: a file truncated between bbolt's
// open and the store check faults in the check's first read, bbolt's Begin
// of the meta page, whose lock the fault leaves held. Open answered the
// check's error only after closing bbolt's handle, which waits for that
// lock: it never answered (serve hung at start instead of exiting 3).
func TestOpenOnAFileTruncatedBeforeItsCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	testHookBeforeCheck = func() {
		if err := os.Truncate(path, 0); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBeforeCheck = nil }()
	opened := make(chan error, 1)
	go func() {
		db, err := Open(path, Options{})
		if db != nil {
			db.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("Open of a file truncated before its check: %v, want a CorruptError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open of a file truncated before its check did not answer in 30 s")
	}
}
