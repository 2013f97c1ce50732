package pdp

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestPrejudgeAllocs: a change judged ahead allocates what its verdict
// does over the snapshot — not a tracked view and its map, nor a channel,
// a change, nor a string a unit read (its key in the tracked view, the
// plan's note of it: store's unitStrings), nor a list of the units it read
// (store.UnitBlocks); 10 more than its verdict, at first: an import judges
// a million of them.
func TestPrejudgeAllocs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	ctx := context.Background()
	db, svc := newActiveService(t)
	p, err := svc.policy()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	const n = 1000
	changes := make([]change, n)
	for i := range changes {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
		changes[i] = assign(&a, "")
	}
	verdict := testing.AllocsPerRun(5, func() {
		for i := range changes {
			if _, _, err := p.Verdict(ctx, snap, changes[i].verdictIn()); err != nil {
				t.Fatal(err)
			}
		}
	}) / n
	// Not testing.AllocsPerRun: it runs its function on one core, where
	// nothing is judged ahead.
	ahead := mallocsPerRun(5, func() {
		tx := store.NewTx(ctx, snap, nil)
		a := svc.prejudge(ctx, p, snap.Revision(), changes, nil)
		if a == nil {
			t.Fatal("nothing judged ahead")
		}
		defer a.stop()
		for i := range changes {
			if _, _, err := a.verdict(i, tx); err != nil {
				t.Fatalf("change %d: %v", i, err)
			}
		}
	}) / n
	if ahead > verdict+0.5 {
		t.Errorf("a change judged ahead allocates %.1f times, its verdict over the snapshot %.1f", ahead, verdict)
	}
}

// mallocsPerRun is the mean allocations of a run of f, as
// testing.AllocsPerRun counts them (after one run to warm up), on every
// core.
func mallocsPerRun(runs int, f func()) float64 {
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(runs)
}
