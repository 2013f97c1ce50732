package opa_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// errAfter is a context whose Err says cancelled from its n-th call on:
// an evaluation ended at a chosen point of its run (the vm asks Err as it
// goes), with no clock.
type errAfter struct {
	context.Context
	n, calls atomic.Int64
}

func (c *errAfter) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.Canceled
	}
	return nil
}

// Evaluations cancelled at every point of their run, by goroutines that
// decide other checks between them, give back pooled inputs (checkInputs)
// and store nodes that the next evaluations fill and read as new: every
// decision not cancelled is topdown's, and a cancelled one is an error,
// never a decision. Under -race it also holds an input or node given back
// by a cancelled evaluation to being read by no one.
func TestCancelledEvaluationsLeaveThePoolsAsNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 1))
	vmPolicy, tdPolicy, c, db, snap := assignCorpus(t, rng)
	ctx := context.Background()
	checks := make([]permatrix.Check, 300)
	decisions := make([]*permatrix.Decision, len(checks))
	for i := range checks {
		checks[i] = c.check(i)
		var err error
		if decisions[i], err = tdPolicy.Decide(ctx, store.Track(snap), checks[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var cancelled, decided atomic.Int64
	errs := make(chan error, 6)
	for g := range 6 {
		wg.Go(func() {
			snap, err := db.View() // a snapshot is one goroutine's
			if err != nil {
				errs <- err
				return
			}
			defer snap.Close()
			for i := range checks {
				k := (i*7 + g*31) % len(checks)
				// Cancelled after its n-th look at its context: from
				// before it starts to past its end.
				cc := &errAfter{Context: ctx}
				cc.n.Store(int64(1 + (i+g)%6))
				d, err := vmPolicy.Decide(cc, snap, checks[k])
				switch {
				case err != nil && cc.calls.Load() >= cc.n.Load():
					cancelled.Add(1)
				case err != nil || !reflect.DeepEqual(d, decisions[k]):
					errs <- fmt.Errorf("goroutine %d, check %+v cancelled at %d (asked %d times):\n vm      %+v %v\n topdown %+v", g, checks[k], cc.n.Load(), cc.calls.Load(), d, err, decisions[k])
					return
				}
				// The next, not cancelled, on whatever the last left.
				k = (k + 1) % len(checks)
				d, err = vmPolicy.Decide(ctx, snap, checks[k])
				if err != nil || !reflect.DeepEqual(d, decisions[k]) {
					errs <- fmt.Errorf("goroutine %d, check %+v after a cancelled one:\n vm      %+v %v\n topdown %+v", g, checks[k], d, err, decisions[k])
					return
				}
				decided.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d evaluations cancelled, %d decided after one", cancelled.Load(), decided.Load())
	// One in six is cancelled at its first look, before it runs: the
	// others cancelled were so in the middle of their run.
	if cancelled.Load() <= int64(len(checks)) {
		t.Fatalf("%d evaluations cancelled: none in the middle of its run", cancelled.Load())
	}
}
