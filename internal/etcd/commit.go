package etcd

import (
	"context"
	"errors"
	"slices"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Group commit. Every write is one guarded etcd transaction, and with many
// writers at once the transactions — each a raft round trip and an fsync on
// every member — are the ceiling. So, as bbolt's Batch does for one file,
// commits waiting at the same moment share a transaction: a committer takes
// the first commit waiting and adds each next one that reads no unit an
// earlier one of the group writes (its judgement then cannot depend on the
// others') and writes no key another writes (etcd refuses a key twice in a
// transaction; the guards' puts are made once for the group), while the
// group stays within etcd's per-transaction limits. The
// transaction is guarded by every member's reads, so it commits all of them
// or none; when it fails, the guards it read back say which members
// conflicted — they get store.ErrConflict and plan again — and the rest are
// committed again without them. Several committers run at once, so a group
// is not held up by the one before it: their transactions are ordered by
// etcd like any concurrent writers'. A commit whose client left while it
// waited is not sent (left).

// committers is how many group transactions may be in flight at once. Fewer
// make bigger groups: on the fleet benchmark (docs/performance.md) 4 gave
// 768 writes/s, 1 gave 970, 2 gave 1 021.
const committers = 2

// queuedCommits is how many commits may wait for a committer.
const queuedCommits = 512

// commitReq is one Commit waiting for its transaction.
type commitReq struct {
	ctx    context.Context // the client's
	b      *store.Batch
	size   store.Size
	reads  [][]byte      // the units guarded (fewerGuards of b.Reads)
	writes [][]byte      // the units written
	ops    []clientv3.Op // the key operations (the guards' puts are the group's)
	cmps   []clientv3.Cmp
	done   chan commitResult
}

type commitResult struct {
	rev uint64
	err error
}

// Commit commits b — in a transaction of its own or shared with concurrent
// commits (above) — and waits until the replica has applied it. A batch
// over the transaction limits (Fits) is refused before it is sent.
func (s *Store) Commit(ctx context.Context, b *store.Batch) (uint64, error) {
	size := b.Size()
	if len(b.Ops) > 0 {
		if err := s.Fits(size); err != nil {
			return 0, err
		}
	}
	if err := s.awaitCheck(ctx); err != nil {
		return 0, err
	}
	if s.planOnWiped(b) {
		return 0, store.ErrConflict
	}
	if len(b.Ops) == 0 {
		// Nothing to write: the answer holds if nothing it read changed
		// since, which the replica (at or after b.Base) can tell.
		return store.Unchanged(b, s.replica.Changes(), s.replica.Revision)
	}
	if err := ctx.Err(); err != nil {
		return 0, err // the client has left: nothing is sent
	}
	if s.opts.CopyTarget && s.copyLock.Load() == nil {
		return 0, s.errNoCopyLock()
	}
	r := s.request(ctx, b, size)
	select {
	case s.commits <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.stopped:
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: the sidecar is stopping; nothing was written")
	}
	var res commitResult
	select {
	case res = <-r.done:
	case <-ctx.Done():
		// The transaction is still made if a committer took the commit
		// before the client left (left): all or nothing, as when a
		// client leaves during any commit.
		return 0, inFlightError(ctx)
	case <-s.stopped:
		// Once the committers have stopped, a commit one of them took is
		// answered (drain answers those still queued then); one queued
		// after — the first select takes the queue or the stop at random
		// once Close has begun — was never sent.
		s.committers.Wait()
		select {
		case res = <-r.done:
		default:
			return 0, permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: the sidecar is stopping; nothing was written")
		}
	}
	if res.err != nil {
		return 0, res.err
	}
	// Acknowledge only once the write is visible here.
	if err := s.waitApplied(ctx, res.rev); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return 0, ctx.Err() // the client has left: no one to tell
		}
		return 0, permatrix.Errorf(permatrix.EUNAVAILABLE,
			"the write committed at etcd revision %d but this sidecar has not applied it yet (applied: %d); retrying the write is safe", res.rev, s.replica.Revision())
	}
	return res.rev, nil
}

// inFlightError answers a commit whose request ended while its
// transaction may be in etcd's hands. A client that left (Canceled) hears
// nothing; one whose request ran out of time (DeadlineExceeded: the
// server's request timeout) is still answered, and must learn that the
// write may be made — not only that its request timed out.
func inFlightError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return permatrix.Errorf(permatrix.EUNAVAILABLE,
			"store unavailable: the request ran out of time with its commit on its way to etcd; the write was made entirely or not at all, and retrying it is safe")
	}
	return ctx.Err()
}

// errStopping answers a commit that Close interrupted.
func errStopping() error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: the sidecar is stopping; the write was made entirely or not at all, and retrying it is safe")
}

// request turns a batch into its share of a transaction.
func (s *Store) request(ctx context.Context, b *store.Batch, size store.Size) *commitReq {
	r := &commitReq{ctx: ctx, b: b, size: size, reads: fewerGuards(b.Reads, s.guardLimit()), writes: b.Writes(), done: make(chan commitResult, 1)}
	for _, u := range r.reads {
		r.cmps = append(r.cmps, clientv3.Compare(clientv3.ModRevision(s.guardKey(u)), "<", int64(b.Base)+1))
	}
	// A plan may write a key more than once (put, then put again or
	// delete); etcd refuses a key twice in a transaction, and the last
	// operation is the key's outcome.
	last := make(map[string]int, len(b.Ops))
	for i, op := range b.Ops {
		last[string(op.Key)] = i
	}
	for i, op := range b.Ops {
		if last[string(op.Key)] != i {
			continue
		}
		if op.Delete {
			r.ops = append(r.ops, clientv3.OpDelete(s.dataKey(op.Key)))
		} else {
			r.ops = append(r.ops, clientv3.OpPut(s.dataKey(op.Key), string(op.Value)))
		}
	}
	return r
}

func (s *Store) startCommitters(ctx context.Context) {
	for range committers {
		s.committers.Add(1)
		go func() {
			defer s.committers.Done()
			s.committer(ctx)
		}()
	}
}

// committer forms groups from the commits waiting and commits them.
func (s *Store) committer(ctx context.Context) {
	var next *commitReq
	for {
		if next == nil {
			select {
			case next = <-s.commits:
			case <-ctx.Done():
				s.drain()
				return
			}
		}
		if next.left() {
			next = nil
			continue
		}
		g := s.newGroup(next)
		next = nil
	fill:
		for {
			select {
			case r := <-s.commits:
				if r.left() {
					continue
				}
				if !g.add(r) {
					next = r
					break fill
				}
			default:
				break fill
			}
		}
		s.commitGroup(ctx, g.members)
	}
}

// left answers r with its context's error if its client has left while
// it waited (nothing of it was sent yet): a write the client was told
// failed is not made after all, later.
func (r *commitReq) left() bool {
	if err := r.ctx.Err(); err != nil {
		r.done <- commitResult{err: err}
		return true
	}
	return false
}

// drain answers the commits still queued when the store closes.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.commits:
			r.done <- commitResult{err: permatrix.Errorf(permatrix.EUNAVAILABLE, "store unavailable: the sidecar is stopping; nothing was written")}
		default:
			return
		}
	}
}

// group is a set of commits that can share a transaction.
type group struct {
	s       *Store
	members []*commitReq
	// writes are the units the members write, each guard put once (every
	// write bumps the shallow units — "", "d", … — so most members share
	// some); keys the keys they write, each in one member only.
	writes           map[string]bool
	keys             map[string]bool
	ops, cmps, bytes int
}

func (s *Store) newGroup(first *commitReq) *group {
	g := &group{s: s, writes: map[string]bool{}, keys: map[string]bool{}}
	g.put(first)
	return g
}

func (g *group) put(r *commitReq) {
	g.members = append(g.members, r)
	g.ops += len(r.ops) + g.newUnits(r)
	for _, u := range r.writes {
		g.writes[string(u)] = true
	}
	for _, op := range r.b.Ops {
		g.keys[string(op.Key)] = true
	}
	g.cmps += len(r.cmps)
	g.bytes += g.s.txnBytes(r.size)
}

// newUnits is how many units r writes that the group does not yet.
func (g *group) newUnits(r *commitReq) int {
	n := 0
	for _, u := range r.writes {
		if !g.writes[string(u)] {
			n++
		}
	}
	return n
}

// add adds r if it fits: within the transaction limits (each branch's
// entries, the request's bytes as Fits bounds them), reading no unit the
// group writes (r's judgement would not have seen that write), and writing
// no key the group writes (etcd refuses a key twice in one transaction).
// Reading what the group writes is fine the other way round: the members
// before r read the state before r's write, as if committed before it.
func (g *group) add(r *commitReq) bool {
	limit := g.s.opts.MaxTxnOps
	if g.ops+len(r.ops)+g.newUnits(r) > limit || g.cmps+len(r.cmps) > g.s.guardLimit() || g.bytes+g.s.txnBytes(r.size) > g.s.opts.MaxRequestBytes {
		return false
	}
	for _, u := range r.reads {
		if g.writes[string(u)] {
			return false
		}
	}
	for _, op := range r.b.Ops {
		if g.keys[string(op.Key)] {
			return false
		}
	}
	g.put(r)
	return true
}

// commitGroup commits the members as one transaction, then those that did
// not conflict again until none is left.
func (s *Store) commitGroup(ctx context.Context, members []*commitReq) {
	for {
		// Nothing of the members is made yet: those whose clients left
		// are let go.
		members = slices.DeleteFunc(members, (*commitReq).left)
		// Nor are those planned on a replica emptied since (diverge, then
		// checkCluster): their base revision names a history the cluster
		// does not have, which no guard compare can refuse. The epoch is
		// the one the transaction is sent in (sentAt).
		sent := s.sentAt()
		members = slices.DeleteFunc(members, func(r *commitReq) bool {
			if r.b.Epoch != 0 && r.b.Epoch != sent.epoch {
				r.done <- commitResult{err: store.ErrConflict}
				return true
			}
			return false
		})
		if len(members) == 0 {
			return
		}
		// The cluster has reached the replica's revision and every
		// member's base (each was read from it): an answer below them is
		// from a history the replica did not follow (sameHistory).
		for _, r := range members {
			sent.before = max(sent.before, r.b.Base)
		}
		var cmps []clientv3.Cmp
		var ops, gets []clientv3.Op
		read, written := map[string]bool{}, map[string]bool{}
		for _, r := range members {
			cmps = append(cmps, r.cmps...)
			ops = append(ops, r.ops...)
			for _, u := range r.writes {
				if k := s.guardKey(u); !written[k] {
					written[k] = true
					ops = append(ops, clientv3.OpPut(k, ""))
				}
			}
			for _, u := range r.reads {
				if k := s.guardKey(u); !read[k] {
					read[k] = true
					gets = append(gets, clientv3.OpGet(k))
				}
			}
		}
		// Not while a store copy into the prefix is incomplete (copymark.go):
		// a write planned before the mark reached this replica would land
		// in the middle of the copy. The copy's own commits are not held.
		// A copy's commits, in its stead, hold only while it holds the
		// prefix's copy lock (copymark.go).
		// A copy's target without the lock sends nothing (Commit refuses
		// it first): its transaction would hold neither compare.
		lock := s.copyLock.Load()
		switch {
		case !s.opts.CopyTarget:
			cmps = append(cmps, clientv3.Compare(clientv3.Version(s.copyKey()), "=", 0))
			gets = append(gets, clientv3.OpGet(s.copyKey()))
		case lock != nil:
			// And only into the prefix marked: not before the mark, nor
			// after its removal (a commit cut short, reaching etcd after
			// the copy removed the mark), into a prefix sidecars serve.
			cmps = append(cmps, lock.owner, clientv3.Compare(clientv3.Version(s.copyKey()), ">", 0))
			gets = append(gets, clientv3.OpGet(lock.key), clientv3.OpGet(s.copyKey()))
		default:
			err := s.errNoCopyLock()
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		// On a conflict the Else branch reads the guards: each member's
		// newest guard says whether it conflicted, and from which revision
		// on to plan again.
		resp, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Else(gets...).Commit()
		cancel()
		if err != nil {
			if ctx.Err() == nil && len(members) == 1 {
				if e := s.refused(err, members[0].size); e != nil {
					s.setErr(err)
					members[0].done <- commitResult{err: e}
					return
				}
			}
			if ctx.Err() == nil && len(members) > 1 && s.refused(err, store.Size{}) != nil {
				// The cluster's limits are below the ones the store was
				// given: let each member find out alone.
				for _, r := range members {
					s.commitGroup(ctx, []*commitReq{r})
				}
				return
			}
			if ctx.Err() != nil {
				// ctx is the committers': the store is closing, not
				// the client leaving (its context is not this one).
				err = errStopping()
			} else {
				err = s.commitError(ctx, err)
			}
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		if !s.sameHistory(resp.Header, sent) {
			// The members were judged on the replica, whose state this
			// cluster does not have. If the transaction failed, nothing
			// was written; if it succeeded, it is made, and its client
			// must be told it is not a write like others.
			err := s.errDiverged()
			if resp.Succeeded {
				err = permatrix.Errorf(permatrix.EUNAVAILABLE,
					"store unavailable: the write was committed at etcd revision %d, but judged on this sidecar's replica, which etcd's history no longer holds (%s): read back what it changed before writing again", resp.Header.Revision, s.divergedWhy())
			}
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		if resp.Succeeded {
			if !changedData(members, resp) {
				s.nudge(ctx, resp.Header.Revision)
			}
			for _, r := range members {
				r.done <- commitResult{rev: uint64(resp.Header.Revision)}
			}
			return
		}
		changed := map[string]uint64{}
		var mark *string // the mark's value, if present (an empty value too)
		locked := false
		for _, rr := range resp.Responses {
			if rng := rr.GetResponseRange(); rng != nil {
				for _, kv := range rng.Kvs {
					changed[string(kv.Key)] = uint64(kv.ModRevision)
					if string(kv.Key) == s.copyKey() {
						v := string(kv.Value)
						mark = &v
					}
					if lock != nil && string(kv.Key) == lock.key && kv.CreateRevision == lock.rev {
						locked = true
					}
				}
			}
		}
		if lock != nil && !locked {
			err := s.errLostCopyLock(lock, mark != nil, false)
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		if lock != nil && mark == nil {
			err := s.errCopyNotMarked()
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		if lock == nil && mark != nil {
			err := s.incomplete(*mark, "; nothing was written")
			for _, r := range members {
				r.done <- commitResult{err: err}
			}
			return
		}
		var again []*commitReq
		for _, r := range members {
			won := uint64(0)
			for _, u := range r.reads {
				won = max(won, changed[s.guardKey(u)])
			}
			if won > r.b.Base {
				r.done <- commitResult{err: &store.ConflictError{Revision: won}}
			} else {
				again = append(again, r)
			}
		}
		if len(again) == len(members) {
			// No member's guard moved, yet the transaction failed: cannot
			// happen (the compares and the reads are one transaction); plan
			// again rather than loop.
			for _, r := range members {
				r.done <- commitResult{err: &store.ConflictError{Revision: r.b.Base + 1}}
			}
			return
		}
		members = again
	}
}

// changedData reports whether a transaction that succeeded changed a data
// key — made an event the watch carries. Only a group whose every key
// operation is a delete may not: of keys etcd did not have (a plan that put
// a new key and deleted it again ends with the delete alone; store.Clear
// deletes the keys of a replica another writer may have deleted already).
func changedData(members []*commitReq, resp *clientv3.TxnResponse) bool {
	for _, r := range members {
		for _, op := range r.ops {
			if op.IsPut() {
				return true
			}
		}
	}
	for _, rr := range resp.Responses {
		if d := rr.GetResponseDeleteRange(); d != nil && d.Deleted > 0 {
			return true
		}
	}
	return false
}

// nudge puts the nudge key after a commit at rev that changed no data key:
// the watch carries no event of rev (it follows the data and meta keys, not
// the guards), yet the commit's members wait for the replica to apply it,
// and every sidecar's Fresh waits for it (the root guard's revision). The
// nudge's revision, after rev, is applied by every replica. If it fails,
// those waits time out as when the replica lags (EUNAVAILABLE, retrying is
// safe), until the next commit.
func (s *Store) nudge(ctx context.Context, rev int64) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Put(rctx, s.nudgeKey(), strconv.FormatInt(rev, 10))
	if err != nil {
		s.setErr(err)
		return
	}
	s.contact(uint64(resp.Header.Revision))
}
