package pdp

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
)

// TestChunkPlannedAgainHoldsWritersShared: an import's chunk that
// conflicts with the commit made while it waited for the chunk before
// plans again holding s.writers shared, as the next chunk planning beside
// it and single writes do: taken whole, it waited for them and held them
// back — the pipeline of chunks stopped — for a conflict the overlap of
// chunks makes by design. Here the test holds s.writers shared, as the
// next chunk would, while the chunk plans again: the chunk commits.
func TestChunkPlannedAgainHoldsWritersShared(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	_, svc := newActiveService(t)
	// The permission's verdict reads user:x's Celonis grants (is it a
	// member?); the analyst role given to user:x meanwhile changes them.
	permission := permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	release, result := heldChunk(ctx, svc, append(analystLines(1, 99), ImportLine{Line: 100, Assignment: permission}))
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	again := svc.aheadAgain.Load()
	svc.writers.RLock()
	held := true
	defer func() {
		if held {
			svc.writers.RUnlock()
		}
	}()
	release()
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		svc.writers.RUnlock()
		held = false
		t.Fatalf("the chunk planned again is still waiting 30 s after the chunk before committed, s.writers held shared: it waits to hold them whole (then: %v)", <-result)
	}
	if svc.aheadAgain.Load() == again {
		t.Fatal("the chunk took no verdict of a plan before: was it planned again?")
	}
	for subject, want := range map[string]int{"user:x": 2, "user:a99": 1} {
		list, _, err := svc.Assignments(ctx, permatrix.AssignmentFilter{Subject: subject})
		if err != nil || len(list) != want {
			t.Fatalf("%s holds %d assignments (%v), want %d", subject, len(list), err, want)
		}
	}
}
