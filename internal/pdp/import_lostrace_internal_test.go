package pdp

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
)

// TestChunkPlannedAgainAfterALostRaceHoldsWritersWhole: a chunk whose
// first plan conflicted with a single write — the chunk before committed
// before the chunk's snapshot, so nothing of its design overlapped — lost
// a race, as any write does, and plans again holding s.writers whole. It
// planned again holding them shared (aabe6ab: every chunk's second plan
// was), lost again to the stream of writes, and a chunk whose plan takes
// over a third of store.RetryBudget ran out of it before the plan that
// held them whole: 503 after two or three conflicts (rules taking 7 ms a
// line, a chunk of 500 lines, a writer of its users), where it was stored
// before. Here the test holds s.writers shared once the write is made:
// the chunk must wait for them, not commit.
func TestChunkPlannedAgainAfterALostRaceHoldsWritersWhole(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	permission := permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	// The chunk before committed at the store's revision now: before the
	// chunk's snapshot.
	before := chunkBefore()
	before.rev = svc.backend.Revision()
	result := writeChunkAfter(ctx, svc, append(analystLines(1, 99), ImportLine{Line: 100, Assignment: permission}), before)
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	waitsForWritersWhole(t, svc, func() { close(before.done) }, result)
}

// TestChunkLosingToAWriteMidImportHoldsWritersWhole: a chunk in the middle
// of an import, whose chunk before committed after its first plan's
// snapshot, but whose first plan read a unit a single write changed
// meanwhile, lost a race as a chunk with no chunk before does: its second
// plan holds s.writers whole. Shared, a chunk whose plan takes a third of
// store.RetryBudget could lose twice more to a stream of writes and run out
// of it. The test holds s.writers shared as another write does: the chunk
// must wait.
func TestChunkLosingToAWriteMidImportHoldsWritersWhole(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	permission := permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	before := chunkBefore()
	result := writeChunkAfter(ctx, svc, append(analystLines(1, 99), ImportLine{Line: 100, Assignment: permission}), before)
	// The single write changes user:x's Celonis grants, which the chunk's
	// last line read.
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	// The chunk before commits after it (its stand-in: a write of a user
	// none of the chunk's lines read).
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:other", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	waitsForWritersWhole(t, svc, func() { before.rev = svc.backend.Revision(); close(before.done) }, result)
}

// waitsForWritersWhole holds s.writers shared, as another write does, and
// releases the chunk before (release): the chunk, which lost a race to a
// single write, must plan again holding them whole — it does not commit
// while they are held shared — and commit once they are not, user:x then
// holding its analyst role and the chunk's permission.
func waitsForWritersWhole(t *testing.T, svc *Service, release func(), result <-chan error) {
	t.Helper()
	svc.writers.RLock()
	release()
	select {
	case err := <-result:
		svc.writers.RUnlock()
		t.Fatalf("the chunk planned again after a lost race committed (%v) with s.writers held shared: it did not hold them whole", err)
	case <-time.After(2 * time.Second):
	}
	svc.writers.RUnlock()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	list, _, err := svc.Assignments(context.Background(), permatrix.AssignmentFilter{Subject: "user:x"})
	if err != nil || len(list) != 2 {
		t.Fatalf("user:x holds %d assignments (%v), want 2", len(list), err)
	}
}
