package pdp

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// Judging ahead. A write of many changes whose verdict inputs are known
// beforehand (an import's lines) is judged on every core while its plan is
// made in order: each worker judges changes against its own snapshot at the
// plan's revision, recording what the verdict read. The plan takes a
// verdict judged ahead as the change's own only if none of the units it
// read is changed by the changes planned before it — it read then exactly
// what judging in order would have read, and the write rules are a
// function of what they read — and judges the change again in order
// otherwise. The units a taken verdict read are recorded as the plan's
// reads, so they guard the commit like its own.
//
// A worker's snapshot may be newer than the plan's (a commit made between
// the plan's snapshot and the workers'): its verdicts are taken too where
// no commit after the plan's revision changed a unit they read — the same
// check, the other way — instead of judging the whole write in order (not
// when the write rules may read data.store.revision: Policy.VerdictVaries).
//
// A write planned again (its commit conflicted: an import's chunk planned
// while the one before it committed, which wrote a unit one of its lines
// read) takes the verdicts the plan before judged ahead whose units no
// commit changed since (Changes.ChangedAfter at their revision, the
// commit's own check): they read at the new revision what they read then.
// Only the changes the conflict touched are judged again — unless the
// write rules depend on more than the units they read (Policy.VerdictVaries:
// the clock, randomness, the network, data.store.revision): then every
// change is.

// minAhead is the fewest changes worth starting workers for.
const minAhead = 64

// errNotAhead says a change was not judged ahead (or its verdict cannot be
// taken): judge it in order.
var errNotAhead = errors.New("not judged ahead")

// judgedAhead is one change's verdict judged ahead.
type judgedAhead struct {
	done                  bool // under ahead.mu
	violations, forbidden []string
	units                 [][]byte
	revision              uint64
	err                   error
	again                 bool // carried over from the plan before (holding)
}

// ahead is the judging ahead of one plan: nil when there is none.
type ahead struct {
	results []judgedAhead
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// mu and judged hand the verdicts over: a worker marks a result done
	// and broadcasts, the plan waits for the one it needs. (A channel a
	// result was an allocation a line.) finished is set once every worker
	// has returned: a change they did not reach (the write's context
	// ended) will not be judged ahead.
	mu       sync.Mutex
	judged   *sync.Cond
	finished bool
	taken    *atomic.Uint64 // Service.aheadTaken
	again    *atomic.Uint64 // Service.aheadAgain
	backend  store.Backend  // whose Changes say whether a unit changed between two revisions
	// policy and epoch are what the verdicts were judged by and in (the
	// store's Changes.Epoch, read before the workers' snapshots): a plan
	// made again takes a verdict only in both.
	policy *opa.Policy
	epoch  uint64
}

// prejudge starts judging ahead the changes of a plan at revision, if they
// are many and their inputs known. earlier is the judging ahead of the
// write's plan before this one (nil: none): its verdicts that still hold
// are taken, not judged again.
func (s *Service) prejudge(ctx context.Context, p *opa.Policy, revision uint64, changes []change, earlier *ahead) *ahead {
	workers := runtime.GOMAXPROCS(0)
	if len(changes) < minAhead || workers < 2 {
		return nil
	}
	for _, c := range changes {
		if c.input != nil {
			return nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	epoch := s.backend.Changes().Epoch()
	a := &ahead{results: make([]judgedAhead, len(changes)), cancel: cancel, taken: &s.aheadTaken, again: &s.aheadAgain, backend: s.backend, policy: p, epoch: epoch}
	a.judged = sync.NewCond(&a.mu)
	// The verdicts of the plan before hold if no commit after theirs
	// changed what they read, which the index of changes answers once it
	// has every commit up to revision: a backend records a commit before
	// it publishes it. (The workers of that plan have returned: its
	// results are read without its lock.)
	// A verdict of write rules that read the clock, randomness, the
	// network or data.store.revision (Policy.VerdictVaries) holds for its
	// own plan only.
	if earlier == nil || len(earlier.results) != len(changes) || earlier.policy != p || p.VerdictVaries ||
		earlier.epoch != epoch || s.backend.Revision() < revision {
		earlier = nil
	}
	var next sync.Mutex
	i := 0
	take := func() int {
		next.Lock()
		defer next.Unlock()
		if ctx.Err() != nil || i == len(changes) {
			return -1
		}
		i++
		return i - 1
	}
	// The workers' snapshots are opened here, not in the workers: a
	// worker started late (the cores busy) found a commit made since the
	// plan's snapshot — an import's chunk before, committing while this
	// one is planned — and judged nothing ahead.
	for range workers {
		snap, err := s.backend.View()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			var tracked *store.Tracked
			// The units' lists are cut from blocks: a list and a buffer
			// a change were two allocations a line.
			var blocks store.UnitBlocks
			if err == nil {
				defer snap.Close()
				// One tracked view a worker, reset for each change: one a
				// change was a view and a map a line.
				tracked = store.Track(snap)
			}
			for k := take(); k >= 0; k = take() {
				r := &a.results[k]
				if err != nil {
					r.err = err
				} else if snap.Revision() < revision {
					r.err = errNotAhead // another epoch's numbering: judged in order
				} else if e := earlier.holding(k, revision, s.backend.Changes()); e != nil {
					r.violations, r.forbidden, r.units, r.revision, r.again = e.violations, e.forbidden, e.units, revision, true
				} else {
					tracked.Reset()
					r.violations, r.forbidden, r.err = p.Verdict(ctx, tracked, changes[k].verdictIn())
					r.units, r.revision = tracked.UnitsFrom(&blocks), snap.Revision()
				}
				a.mu.Lock()
				r.done = true
				a.mu.Unlock()
				a.judged.Broadcast()
			}
		}()
	}
	go func() {
		a.wg.Wait()
		a.mu.Lock()
		a.finished = true
		a.mu.Unlock()
		a.judged.Broadcast()
	}()
	return a
}

// verdict is change i's verdict judged ahead, if the plan tx may take it
// (errNotAhead otherwise: judge it in order).
func (a *ahead) verdict(i int, tx *store.Tx) (violations, forbidden []string, err error) {
	if a == nil {
		return nil, nil, errNotAhead
	}
	r := &a.results[i]
	a.mu.Lock()
	for !r.done && !a.finished {
		a.judged.Wait()
	}
	done := r.done
	a.mu.Unlock()
	if !done {
		return nil, nil, errNotAhead // never reached: the workers stopped
	}
	if r.err != nil {
		return nil, nil, errNotAhead // judged again in order, which says why if it fails again
	}
	if !a.unchangedSince(r, tx.Revision()) || tx.Changes(r.units) {
		return nil, nil, errNotAhead
	}
	tx.Relied(r.units)
	a.taken.Add(1)
	if r.again {
		a.again.Add(1) // counted when taken: a plan that stops early takes fewer than it carried over
	}
	return r.violations, r.forbidden, nil
}

// unchangedSince reports whether r, judged at its revision, is what
// judging at revision (the plan's, at or before r's) gives: the same
// revision, or no commit after revision changed a unit r read — asked once
// the index of changes has every commit up to r's revision (a backend
// records a commit before it publishes it) — unless the write rules may
// read what no unit stands for (Policy.VerdictVaries: data.store.revision
// is r's there, not the plan's).
func (a *ahead) unchangedSince(r *judgedAhead, revision uint64) bool {
	switch {
	case r.revision == revision:
		return true
	case r.revision < revision || a.policy.VerdictVaries || a.backend.Revision() < r.revision:
		return false
	}
	return !a.backend.Changes().ChangedAfter(revision, r.units)
}

// holding is change k's verdict judged ahead, judged at or before
// revision, if no commit after its revision changed a unit it read (nil
// otherwise, or when a is nil).
func (a *ahead) holding(k int, revision uint64, changes *store.Changes) *judgedAhead {
	if a == nil {
		return nil
	}
	e := &a.results[k]
	if !e.done || e.err != nil || e.revision > revision || changes.ChangedAfter(e.revision, e.units) {
		return nil
	}
	return e
}

// stop ends the judging ahead and waits for its workers (their snapshots
// closed).
func (a *ahead) stop() {
	if a == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
}
