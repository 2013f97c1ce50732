package bolt

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/store"
)

// TestFailedCommitKeepsOpenSnapshots: a snapshot open while a commit fails
// after its meta page was written (its fdatasync) still reads its own
// revision after the next commit. bbolt's rollback of the failed
// transaction reloads the free list from the newest meta page — the failed
// commit's, which lists the pages that commit freed (the open snapshot's
// pages) as free, not pending: the next commit may then write over pages
// the snapshot is reading. Runs itself under strace, which fails the
// fdatasync of the second commit's meta page (as TestFailedCommitVisible
// does; strace is Debian's, unpacked into the cache where not installed).
func TestFailedCommitKeepsOpenSnapshots(t *testing.T) {
	db := faultyStore(t, "PERMATRIX_FSYNC_REUSE", Options{})
	if db == nil {
		return // run under strace, and checked
	}
	ctx := context.Background()
	commit := func(gen int) (uint64, error) { return commitGeneration(ctx, db, gen) }
	if _, err := commit(1); err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := commit(2); err == nil {
		t.Fatal("the second commit did not fail: no fault was injected (strace's when=4)")
	} else {
		t.Logf("the second commit failed: %v", err)
	}
	// The next commit: made while the snapshot is open, or made to wait
	// for it (then made once it is closed). The snapshot is read once it
	// is one or the other — known, not guessed from how long it took; the
	// bound of the wait is only a hang guard here.
	waiting := make(chan struct{})
	testHookStaleWait = sync.OnceFunc(func() { close(waiting) })
	defer func() { testHookStaleWait = nil }()
	defer func(d time.Duration) { staleReadersWait = d }(staleReadersWait)
	staleReadersWait = time.Minute
	next := make(chan error, 1)
	go func() { _, err := commit(3); next <- err }()
	waited := true
	select {
	case err := <-next:
		waited = false
		if err != nil {
			t.Fatal(err)
		}
	case <-waiting:
	}
	bad := 0
	for i := range generationKeys {
		v, err := snap.Get(generationKey(i))
		if err != nil || !bytes.Equal(v, generationValue(1, i)) {
			if bad < 3 {
				t.Errorf("the snapshot at revision %d, key %d: %.12q… (%d bytes), err %v; want generation 1's value", snap.Revision(), i, v, len(v), err)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d keys of the open snapshot read wrong", bad, generationKeys)
	}
	if waited {
		snap.Close()
		if err := <-next; err != nil {
			t.Fatalf("the next commit, once the snapshot closed: %v", err)
		}
	}
}

// generationKeys is how many keys commitGeneration writes.
const generationKeys = 200

// generationKey and generationValue are commitGeneration's key i and its
// value in generation gen (~900 bytes: a page's worth every few keys).
func generationKey(i int) []byte {
	return store.Key("d", "memberships", fmt.Sprintf("u%04d", i), "g")
}

func generationValue(gen, i int) []byte { return bytes.Repeat([]byte{byte('a' + gen)}, 900+i%7) }

// commitGeneration commits the generationKeys keys with their values of
// generation gen: each generation writes the pages of the one before
// afresh (bbolt's copy on write).
func commitGeneration(ctx context.Context, db *DB, gen int) (uint64, error) {
	b := &store.Batch{Base: db.Revision()}
	for i := range generationKeys {
		b.Ops = append(b.Ops, store.Op{Key: generationKey(i), Value: generationValue(gen, i)})
	}
	return db.Commit(ctx, b)
}
