package etcd

import (
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// TestViewRacingRebuild: a view is never of a replica being rebuilt. View
// checks syncing, then opens the replica's snapshot; checkCluster sets
// syncing, then empties the replica (Wipe) and the first load fills it
// page by page at revision 0. A view that passed the check before the
// rebuild began and opened its snapshot after it read an empty (or half
// loaded) store at revision 0 — a check with min_revision N, reached on
// the old replica, was decided at revision 0.
func TestViewRacingRebuild(t *testing.T) {
	r, err := bolt.Open(filepath.Join(t.TempDir(), "replica.db"), bolt.Options{Replica: true, Source: replicaSource("/p/", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := store.Key("d", "memberships", "u", "g")
	if err := r.Apply(7, []store.Op{{Key: key, Value: []byte("true")}}, [][]byte{store.UnitOf(key)}); err != nil {
		t.Fatal(err)
	}
	s := &Store{replica: r}
	testHookViewChecked = func() {
		// checkCluster finds the replica another cluster's (or ahead).
		s.syncing.Store(true)
		if err := r.Wipe(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookViewChecked = nil })
	snap, err := s.View()
	if err == nil {
		defer snap.Close()
		v, _ := snap.Get(key)
		t.Fatalf("a view of the replica being rebuilt: revision %d, member %q", snap.Revision(), v)
	}
}
