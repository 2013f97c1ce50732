package bolt_test

import (
	"context"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestSnapshotGetAllocs: a read of a stored key from a store's snapshot
// allocates nothing (the cursor is kept, the value is the map's): a write
// judged over it, an import line, reads a dozen keys, each in a snapshot
// of the real file.
func TestSnapshotGetAllocs(t *testing.T) {
	db := open(t)
	k := store.Key("d", "grants", "user:u", "sys", "role", "r", "service")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: k, Value: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if v, err := snap.Get(k); err != nil || string(v) != `{}` {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = snap.Get(k) }); n != 0 {
		t.Errorf("a snapshot's Get allocates %v times", n)
	}
}
