package bolt

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestNothingToDoAtTheSnapshotsRevision: a write that found nothing to do
// answers with a revision at which what it found holds. A snapshot shows a
// commit as soon as bbolt has it, before its revision is published: a
// member found there was not there at the published revision, so that one
// is not the answer (it was, until the etcd fleet test caught a sidecar
// answering "already a member" with a revision where etcd had none).
func TestNothingToDoAtTheSnapshotsRevision(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "permatrix.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	key := store.Key("d", "memberships", "u", "g")
	unit := [][]byte{store.UnitOf(key)}

	held, release := make(chan uint64), make(chan struct{})
	testHookBeforePublish = func(rev uint64) { held <- rev; <-release }
	t.Cleanup(func() { testHookBeforePublish = nil })

	added := make(chan error, 1)
	go func() {
		_, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Reads: unit, Ops: []store.Op{{Key: key, Value: []byte("true")}}})
		added <- err
	}()
	rev := <-held // committed in bbolt, not yet published
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() != rev || db.Revision() >= rev {
		t.Fatalf("snapshot at %d, published %d: the hook is not where a snapshot is ahead", snap.Revision(), db.Revision())
	}
	if v, err := snap.Get(key); err != nil || v == nil {
		t.Fatalf("the snapshot does not show the member: %q %v", v, err)
	}
	// The write "add the member" planned on it has nothing to do.
	got, err := db.Commit(ctx, &store.Batch{Base: snap.Revision(), Reads: unit})
	snap.Close()
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if got < rev {
		t.Fatalf("nothing to do answered with revision %d, before the member's revision %d", got, rev)
	}
	if err := <-added; err != nil {
		t.Fatal(err)
	}
}
