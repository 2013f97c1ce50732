package bolt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
