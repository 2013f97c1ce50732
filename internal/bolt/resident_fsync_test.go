//go:build linux

package bolt

import (
	"context"
	"sync"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestFailedCommitWaitsForTheResidentPass: the resident pass
// (Options.Resident) reads the document's pages in a read transaction of
// its own. A commit that failed after writing its meta page (its
// fdatasync: TestFailedCommitKeepsOpenSnapshots) leaves bbolt's free list
// listing the pages that transaction reads as free; the next commit must
// wait for it as for any snapshot of before the failure (DB.awaitStale),
// or it writes over the pages the pass is walking — whose cursor then
// follows whatever was written there: a wrong page id faults, and a fault
// breaks the store. The pass was not counted among the snapshots: the
// next commit was made at once.
func TestFailedCommitWaitsForTheResidentPass(t *testing.T) {
	db := faultyStore(t, "PERMATRIX_FSYNC_RESIDENT", Options{Resident: store.DocumentPrefix()})
	if db == nil {
		return // run under strace, and checked
	}
	ctx := context.Background()
	commit := func(gen int) (uint64, error) { return commitGeneration(ctx, db, gen) }
	if _, err := commit(1); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitResident(ctx); err != nil {
		t.Fatal(err)
	}
	// A pass, held once its transaction has begun: asked as a bulk scan's
	// snapshot closes.
	begun, release := make(chan struct{}), make(chan struct{})
	testHookResidentBegun = sync.OnceFunc(func() { close(begun); <-release })
	defer func() { testHookResidentBegun = nil }()
	defer SetBulkScan(1)()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Scan(store.DocumentPrefix(), nil, func(_, _ []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	<-begun
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	if _, err := commit(2); err == nil {
		t.Fatal("the second commit did not fail: no fault was injected (strace's when=4)")
	} else {
		t.Logf("the second commit failed: %v", err)
	}
	// The next commit, before it writes, waits for the snapshots opened
	// before the failure that are still open: the held pass is one.
	stillOpen := make(chan int, 1)
	testHookStaleWait = sync.OnceFunc(func() {
		db.rmu.Lock()
		defer db.rmu.Unlock()
		n := 0
		for _, e := range db.stale {
			n += e.open
		}
		stillOpen <- n
	})
	defer func() { testHookStaleWait = nil }()
	next := make(chan error, 1)
	go func() { _, err := commit(3); next <- err }()
	if n := <-stillOpen; n != 1 {
		t.Errorf("the next commit waits for %d reads opened before the failed commit, want 1 (the resident pass, still reading): it may write over the pass's pages", n)
	}
	released()
	if err := <-next; err != nil {
		t.Fatalf("the next commit, once the pass ended: %v", err)
	}
	if err := db.WaitResident(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Broken(); err != nil {
		t.Fatalf("the store broke: %v", err)
	}
}
