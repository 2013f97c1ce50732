package store_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// counted is a backend that counts its snapshots open.
type counted struct {
	store.Backend
	open atomic.Int64
}

func (c *counted) View() (store.Snapshot, error) {
	snap, err := c.Backend.View()
	if err == nil {
		c.open.Add(1)
		snap = &countedSnapshot{Snapshot: snap, c: c}
	}
	return snap, err
}

type countedSnapshot struct {
	store.Snapshot
	c *counted
}

func (s *countedSnapshot) Close() error {
	s.c.open.Add(-1)
	return s.Snapshot.Close()
}

// A plan that panics leaves no snapshot open. The panic is recovered
// above Update (the server's recovery; an import's chunk goroutine), and
// the process goes on: a bbolt read transaction left open holds the
// memory map, so the next commit that grows the file, and the store's
// Close at shutdown, wait for it for ever.
func TestUpdatePanicClosesItsSnapshot(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "panic.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &counted{Backend: db}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the plan's panic did not reach Update's caller")
			}
		}()
		_, _ = store.Update(context.Background(), c, func(*store.Tx) error { panic("a plan's defect") })
	}()
	if n := c.open.Load(); n != 0 {
		// Not closed: Close would wait for the snapshot for ever.
		t.Fatalf("%d snapshots open after a plan panicked", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
