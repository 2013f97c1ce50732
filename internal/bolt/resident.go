package bolt

import (
	"context"
	"errors"
	"sync"
)

// residentKeeper maps the pages under a key prefix (Options.Resident) back
// into the process's resident set, in the background: after Open's check
// released them, and after each bulk scan's snapshot did. One goroutine
// while the store is open (keepResident); passes asked while one runs are
// one more pass, not one each.
type residentKeeper struct {
	prefix []byte
	wake   chan struct{} // one token: a pass is asked
	exited chan struct{} // closed when keepResident returns

	mu     sync.Mutex
	asked  uint64        // passes asked so far
	done   uint64        // asked as it was when the last pass finished began
	passed chan struct{} // closed and replaced when a pass finishes
}

func newResidentKeeper(prefix []byte) *residentKeeper {
	return &residentKeeper{prefix: prefix, wake: make(chan struct{}, 1), exited: make(chan struct{}), passed: make(chan struct{})}
}

// ask asks for a pass (nil: no prefix is kept, nothing to do).
func (k *residentKeeper) ask() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.asked++
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default: // a pass is asked already, and begins after this ask
	}
}

// releasePages drops the map's pages from the resident set (after a bulk
// scan, or a replica's resync, read them through the map) and asks for
// the Options.Resident ones back. Memory only, never data (Open). Guarded:
// it reads the meta page in a transaction of its own, which faults if the
// file was truncated under the server since.
func (db *DB) releasePages() {
	if db.guard(func() error { return releaseResident(db.bolt) }) == nil {
		db.resident.ask()
	}
}

// keepResident runs the passes db.resident is asked for until the store
// closes. A pass is a read like any (guarded: a fault breaks the store;
// counted in the era as a snapshot); it holds a read transaction while it
// runs, which only a remap of the file waits for (rare: initialMmapSize),
// and a commit after one that failed past its meta page (awaitStale).
func (db *DB) keepResident() {
	k := db.resident
	defer close(k.exited)
	for {
		select {
		case <-db.stop:
			return
		case <-k.wake:
		}
		k.mu.Lock()
		asked := k.asked
		k.mu.Unlock()
		if testHookResidentPass != nil {
			testHookResidentPass()
		}
		_ = db.guard(func() error {
			// Counted as a snapshot (DB.enter): a commit after one that
			// failed past its meta page waits for it, or may write over
			// the pages it walks (era).
			e := db.enter()
			defer db.leave(e)
			return mapResident(db.bolt, k.prefix, db.stop, db.brokenErr)
		})
		k.mu.Lock()
		k.done = asked
		close(k.passed)
		k.passed = make(chan struct{})
		k.mu.Unlock()
	}
}

// testHookResidentPass, set by tests only, runs in keepResident before
// each pass.
var testHookResidentPass func()

// testHookResidentBegun, set by tests only, runs in a pass once its read
// transaction has begun.
var testHookResidentBegun func()

// errResidentClosed is WaitResident's answer once the store closed.
var errResidentClosed = errors.New("bolt: the store closed before its pages were mapped")

// WaitResident returns once every pass of mapping the Options.Resident
// pages asked before it was called has finished (at once without
// Options.Resident), or ctx ends, or the store closes: a benchmark or a
// test of a sidecar past its start. A store broken meanwhile answers its
// fault (its pages are not all mapped: a pass stops at the fault).
func (db *DB) WaitResident(ctx context.Context) error {
	k := db.resident
	if k == nil {
		return nil
	}
	k.mu.Lock()
	target := k.asked
	k.mu.Unlock()
	for {
		k.mu.Lock()
		done, passed := k.done, k.passed
		k.mu.Unlock()
		if done >= target {
			return db.brokenErr()
		}
		select {
		case <-passed:
		case <-k.exited:
			return errResidentClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
