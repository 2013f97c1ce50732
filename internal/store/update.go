package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/permatrix/permatrix"
)

// Update plans a write again after a conflict at most MaxAttempts times,
// and not after RetryBudget has passed (not counting UpdateSettled's waits
// in settle).
const (
	MaxAttempts = 100
	RetryBudget = 10 * time.Second
)

// retryBudget is RetryBudget, shorter in tests.
var retryBudget = RetryBudget

// publishWait bounds how long a write with nothing to do waits for its
// revision to be published (Update).
const publishWait = 5 * time.Second

// Update is the write protocol, the same over every backend:
//
//  1. take a snapshot of the applied state at revision R;
//  2. plan (and judge) the write with fn, reading through a Tx over it —
//     every read is recorded;
//  3. commit the Tx's operations, on the condition that nothing it read
//     changed after R; the backend returns once the commit is durable and
//     visible at the returned revision;
//  4. on a conflict, wait until the snapshot would be newer, and start again
//     (at most MaxAttempts times).
//
// A commit needs no current snapshot: its condition makes the plan as good
// as one made at the commit's revision, however old R is (a fleet
// sidecar's replica may lag the cluster). An answer that no commit checks
// does: when fn refuses the write, or plans nothing, the plan is made again
// once the applied state holds every commit acknowledged so far
// (Backend.Fresh) — so a write refused, or found already made, is so at a
// revision after every write acknowledged before it began.
//
// fn may run several times and must have no effect outside the Tx. If it
// returns an error, nothing is committed and Update returns it. A Tx that
// planned nothing commits nothing (its reads are still checked, so the
// answer is true at the returned revision).
func Update(ctx context.Context, b Backend, fn func(tx *Tx) error) (uint64, error) {
	return UpdateSettled(ctx, b, fn, nil)
}

// ErrPlanAgain is what a settle of UpdateSettled returns to have the write
// planned again, its plan not acted on (the state it was judged by is gone).
var ErrPlanAgain = errors.New("store: plan again")

// UpdateSettled is Update with settle, if not nil, called after each plan,
// once the plan's snapshot is closed and before its outcome is acted on
// (committed, or answered with fn's error): a write that must commit after
// another (an import's chunk planned while the one before it commits) waits
// there. That wait is not the write's retrying: it does not count against
// RetryBudget (a chunk waiting for a large chunk before it had its budget
// spent before its first conflict, and was answered 503 at it). settle's
// error stops the write (ErrPlanAgain: plan again). A plan
// made on a state older than the store's by then is taken as any: its
// commit's condition holds it to the newer state, and an answer from it
// alone (fn's error, or nothing planned) is planned again on the newer
// snapshot. The snapshot is closed first because a bbolt commit may wait
// for every open read transaction (a remap of a grown file).
func UpdateSettled(ctx context.Context, b Backend, fn func(tx *Tx) error, settle func() error) (uint64, error) {
	start := time.Now()
	fresh := false
	var lost [][]byte // the reads of the last plan whose commit conflicted
	for attempt := 1; ; attempt++ {
		epoch := b.Changes().Epoch() // before the snapshot: Batch.Epoch
		snap, err := b.View()
		if err != nil {
			return 0, err
		}
		tx := NewTx(ctx, snap, b.NextID)
		tx.lost = lost
		err = planOn(snap, fn, tx)
		var batch *Batch
		if err == nil {
			batch = tx.Batch()
			batch.Epoch = epoch
		}
		planned := snap.Revision()
		snap.Close()
		if settle != nil {
			waited := time.Now()
			serr := settle()
			start = start.Add(time.Since(waited))
			if errors.Is(serr, ErrPlanAgain) {
				attempt--
				continue
			} else if serr != nil {
				return 0, serr
			}
		}
		if !fresh && (err != nil || len(batch.Ops) == 0) && ctx.Err() == nil {
			// An answer from the snapshot alone: plan again on a current
			// one, if the snapshot was not current already (bbolt's always
			// is: nothing is judged twice there).
			if err := b.Fresh(ctx); err != nil {
				return 0, err
			}
			fresh = true
			if b.Revision() != planned {
				attempt--
				continue
			}
		}
		if err != nil {
			return 0, err
		}
		rev, err := b.Commit(ctx, batch)
		if err == nil && b.Revision() < rev {
			// A commit of nothing answers with its snapshot's revision
			// (Unchanged), and a snapshot shows a revision as soon as it
			// is committed, before it is published: a check started once
			// this write is answered must be decided at rev or later, yet
			// one the decision cache answers is at the published revision
			// (the one Wait waits for), and says what was true there.
			// The publication follows the commit at once; a store
			// emptied meanwhile (a fleet's replica loaded afresh) may
			// not come back to rev soon, hence the bound.
			wctx, cancel := context.WithTimeout(ctx, publishWait)
			werr := b.Wait(wctx, rev)
			cancel()
			if werr != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				return 0, permatrix.Errorf(permatrix.EUNAVAILABLE,
					"the write had nothing to do at revision %d, which this store has not published yet (at %d); retrying it is safe", rev, b.Revision())
			}
		}
		if !errors.Is(err, ErrConflict) {
			return rev, err
		}
		if attempt == MaxAttempts || time.Since(start) > retryBudget {
			times := "once"
			if attempt > 1 {
				times = fmt.Sprintf("%d times in a row", attempt)
			}
			return 0, permatrix.Errorf(permatrix.EUNAVAILABLE,
				"the write conflicted with concurrent writes %s; nothing was written, try again", times)
		}
		lost = batch.Reads
		// Something the plan read changed after its snapshot: plan again on
		// a snapshot that has the change (a fleet's replica may not have
		// applied the commit that won yet), after a short random pause that
		// grows with the attempts, so that racing writers spread out.
		next := batch.Base + 1
		var ce *ConflictError
		if errors.As(err, &ce) && ce.Revision > next {
			next = ce.Revision
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = b.Wait(wctx, next) // on timeout: plan again anyway
		cancel()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		pause := time.Duration(min(attempt, 20)) * 500 * time.Microsecond
		time.Sleep(time.Duration(rand.Int64N(int64(pause))))
	}
}

// planOn runs fn on tx, a Tx over snap, and closes snap if fn panics: the
// panic is recovered above (the server's recovery, an import's chunk), and
// a bbolt read transaction left open holds its memory map — the next
// commit that grows the file, and the store's Close, would wait for ever.
func planOn(snap Snapshot, fn func(tx *Tx) error, tx *Tx) (err error) {
	planned := false
	defer func() {
		if !planned {
			snap.Close()
		}
	}()
	err = fn(tx)
	planned = true
	return err
}
