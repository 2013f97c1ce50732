package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// lagging is a backend whose snapshots stay at an old revision until Fresh
// or Wait is called — a fleet sidecar whose replica has not yet applied
// what another sidecar committed.
type lagging struct {
	*store.Memory
	stale  store.Snapshot
	lag    atomic.Bool
	freshN atomic.Int32
}

func (l *lagging) View() (store.Snapshot, error) {
	if l.lag.Load() {
		return l.stale, nil
	}
	return l.Memory.View()
}

func (l *lagging) Fresh(ctx context.Context) error {
	l.freshN.Add(1)
	l.lag.Store(false)
	return l.Memory.Fresh(ctx)
}

func (l *lagging) Wait(ctx context.Context, rev uint64) error {
	l.lag.Store(false)
	return l.Memory.Wait(ctx, rev)
}

// TestUpdateOnALaggingReplica: a plan with something to commit needs no
// current snapshot (its commit is guarded), but a refusal or a plan with
// nothing to do is an answer from the snapshot alone, so Update makes it
// again on a current one.
func TestUpdateOnALaggingReplica(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *lagging {
		l := &lagging{Memory: store.NewMemory()}
		l.stale, _ = l.Memory.View() // before the role exists
		// "Another sidecar" creates the role; this one has not seen it.
		if _, err := store.Update(ctx, l.Memory, func(tx *store.Tx) error {
			return tx.PutRole(permatrix.Role{System: "s", Name: "r", Permissions: []string{"p"}})
		}); err != nil {
			t.Fatal(err)
		}
		l.lag.Store(true)
		return l
	}
	t.Run("a refusal is made again on a current snapshot", func(t *testing.T) {
		l := setup(t)
		_, err := store.Update(ctx, l, func(tx *store.Tx) error {
			if _, err := tx.Role("s", "r"); err != nil {
				return err // not found on the stale snapshot
			}
			return tx.DeleteRole("s", "r")
		})
		if err != nil {
			t.Fatalf("deleting a role created elsewhere before the write began: %v", err)
		}
		if l.freshN.Load() != 1 {
			t.Fatalf("Fresh called %d times, want 1", l.freshN.Load())
		}
		snap, _ := l.Memory.View()
		if _, err := store.Role(snap, "s", "r"); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
			t.Fatalf("the role is still there: %v", err)
		}
	})
	t.Run("a plan with writes commits without Fresh", func(t *testing.T) {
		l := setup(t)
		if _, err := store.Update(ctx, l, func(tx *store.Tx) error {
			return tx.PutRole(permatrix.Role{System: "s", Name: "other", Permissions: []string{"p"}})
		}); err != nil {
			t.Fatal(err)
		}
		if l.freshN.Load() != 0 {
			t.Fatalf("Fresh called %d times for a guarded commit", l.freshN.Load())
		}
	})
	t.Run("a stale plan whose reads changed is planned again", func(t *testing.T) {
		l := setup(t)
		_, err := store.Update(ctx, l, func(tx *store.Tx) error {
			if _, err := tx.Role("s", "r"); err == nil {
				return nil // exists: nothing to do
			}
			return tx.PutRole(permatrix.Role{System: "s", Name: "r", Permissions: []string{"q"}})
		})
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := l.Memory.View()
		r, err := store.Role(snap, "s", "r")
		if err != nil || r.Permissions[0] != "p" {
			t.Fatalf("the role created elsewhere was overwritten by a plan on a stale snapshot: %+v %v", r, err)
		}
	})
}

// TestUnchanged: a batch with nothing to write is answered at a revision
// where what it read holds — its base, or the published revision when that
// is later and nothing it read changed up to it — and refused when a unit
// it read changed after its base.
func TestUnchanged(t *testing.T) {
	unit := store.UnitOf(store.Key("d", "memberships", "u", "g"))
	other := store.UnitOf(store.Key("d", "memberships", "v", "g"))
	c := store.NewChanges(0, 100)
	c.Record(5, [][]byte{unit})
	c.Record(7, [][]byte{other})
	for _, tc := range []struct {
		base, applied, want uint64
		conflict            bool
	}{
		{base: 5, applied: 7, want: 7},        // published later, the unit unchanged since 5
		{base: 8, applied: 7, want: 8},        // the snapshot ahead of the published revision
		{base: 4, applied: 7, conflict: true}, // the unit changed at 5
		{base: 6, applied: 6, want: 6},
	} {
		got, err := store.Unchanged(&store.Batch{Base: tc.base, Reads: [][]byte{unit}}, c, func() uint64 { return tc.applied })
		if tc.conflict {
			if err != store.ErrConflict {
				t.Errorf("base %d: %d %v, want a conflict", tc.base, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("base %d, applied %d: %d %v, want %d", tc.base, tc.applied, got, err, tc.want)
		}
	}
	// Planned in the epoch before the store was emptied and loaded afresh:
	// its base names the old numbering.
	epoch := c.Epoch()
	c.Forget()
	if got, err := store.Unchanged(&store.Batch{Base: 8, Epoch: epoch}, c, func() uint64 { return 8 }); err != store.ErrConflict {
		t.Errorf("a batch of the epoch before: %d %v, want a conflict", got, err)
	}
	if got, err := store.Unchanged(&store.Batch{Base: 8, Epoch: c.Epoch()}, c, func() uint64 { return 8 }); err != nil || got != 8 {
		t.Errorf("a batch of this epoch: %d %v, want 8", got, err)
	}
}

// TestUpdateSettledWaitIsNotRetrying: the time a write waits in settle (an
// import's chunk waiting for the chunk before it to commit) is not spent
// retrying: a write that waited longer than the retry budget there, then
// met its first conflict, is planned again, not answered "conflicted once;
// nothing was written". Here settle waits past a budget of 200 ms, and a
// write to the unit the plan read is made meanwhile.
func TestUpdateSettledWaitIsNotRetrying(t *testing.T) {
	store.SetRetryBudget(t, 200*time.Millisecond)
	ctx := context.Background()
	m := store.NewMemory()
	role := func(perm string) func(tx *store.Tx) error {
		return func(tx *store.Tx) error {
			return tx.PutRole(permatrix.Role{System: "s", Name: "r", Permissions: []string{perm}})
		}
	}
	if _, err := store.Update(ctx, m, role("p")); err != nil {
		t.Fatal(err)
	}
	settles := 0
	_, err := store.UpdateSettled(ctx, m, func(tx *store.Tx) error {
		r, err := tx.Role("s", "r")
		if err != nil {
			return err
		}
		return tx.PutRole(permatrix.Role{System: "s", Name: "copy", Permissions: r.Permissions})
	}, func() error {
		if settles++; settles == 1 {
			time.Sleep(300 * time.Millisecond) // the chunk before commits
			if _, err := store.Update(ctx, m, role("q")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a write that waited in settle, then conflicted once: %v", err)
	}
	snap, _ := m.View()
	defer snap.Close()
	if r, err := store.Role(snap, "s", "copy"); err != nil || r.Permissions[0] != "q" {
		t.Fatalf("the copy %+v %v, want the role as changed meanwhile", r, err)
	}
}

// TestLostReadsNameTheWriteLost: a plan made again after its commit
// conflicted is given the reads of the plan that lost (none on a first
// plan), and the store's Changes tell, while it plans again, which write it
// lost to: the one made at the revision that changed them
// (ChangedAfterExcept is false for that revision), not another.
func TestLostReadsNameTheWriteLost(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	role := func(name, perm string) func(tx *store.Tx) error {
		return func(tx *store.Tx) error {
			return tx.PutRole(permatrix.Role{System: "s", Name: name, Permissions: []string{perm}})
		}
	}
	if _, err := store.Update(ctx, m, role("r", "p")); err != nil {
		t.Fatal(err)
	}
	plans := 0
	var first, won uint64
	_, err := store.Update(ctx, m, func(tx *store.Tx) error {
		plans++
		lost := tx.LostReads()
		switch plans {
		case 1:
			if lost != nil {
				t.Errorf("a first plan is given lost reads %q", lost)
			}
		case 2:
			changes := m.Changes()
			switch {
			case len(lost) == 0:
				t.Error("the plan made again is given no lost reads")
			case !changes.ChangedAfter(first, lost):
				t.Error("the first plan's reads did not change after its revision: it lost no race")
			case changes.ChangedAfterExcept(first, won, lost):
				t.Errorf("ChangedAfterExcept(%d, %d, %q): true, want false: only the write at %d changed what the plan read", first, won, lost, won)
			case !changes.ChangedAfterExcept(first, won+1, lost):
				t.Errorf("ChangedAfterExcept(%d, %d, %q): false, want true: the write at %d changed what the plan read", first, won+1, lost, won)
			}
		}
		r, err := tx.Role("s", "r")
		if err != nil {
			return err
		}
		if plans == 1 {
			first = tx.Revision()
			// Another write of the role this plan read commits first,
			if won, err = store.Update(ctx, m, role("r", "q")); err != nil {
				return err
			}
			// then one of a role it did not read.
			if _, err := store.Update(ctx, m, role("other", "q")); err != nil {
				return err
			}
		}
		return tx.PutRole(permatrix.Role{System: "s", Name: "copy", Permissions: r.Permissions})
	})
	if err != nil || plans != 2 {
		t.Fatalf("%d plans, %v; want 2, none", plans, err)
	}
}
