package pdp_test

import (
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// revisions keeps a read transaction of every revision a test's only
// writer makes (right after a write returns, the store is at its
// revision), to evaluate a served answer again over the revision it names.
type revisions struct {
	t     testing.TB
	db    *bolt.DB
	mu    sync.Mutex
	snaps map[uint64]store.Snapshot
}

// keepRevisions keeps the store's revision now, and the ones keep is told
// of. close them before the db: bbolt's Close waits for its reads.
func keepRevisions(t testing.TB, db *bolt.DB) *revisions {
	r := &revisions{t: t, db: db, snaps: map[uint64]store.Snapshot{}}
	r.keep()
	return r
}

// keep keeps the revision the store is at (one kept already: a write that
// changed nothing).
func (r *revisions) keep() {
	s, err := r.db.View()
	if err != nil {
		r.t.Error(err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snaps[s.Revision()] != nil {
		s.Close()
		return
	}
	r.snaps[s.Revision()] = s
}

// at is the snapshot of rev, waited for while its writer keeps it; nil,
// the test failed, if it is not kept within 5 s.
func (r *revisions) at(rev uint64) store.Snapshot {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		r.mu.Lock()
		s := r.snaps[rev]
		r.mu.Unlock()
		if s != nil {
			return s
		}
	}
	r.t.Errorf("no snapshot of revision %d", rev)
	return nil
}

// close closes every snapshot kept.
func (r *revisions) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.snaps {
		s.Close()
	}
	r.snaps = nil
}
