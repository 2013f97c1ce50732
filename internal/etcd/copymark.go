package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/permatrix/permatrix"
)

// A copy into a prefix (permatrix store copy) is many commits: until its
// last one the prefix holds part of a store. The copy marks the prefix
// first — <prefix>m/copying, put before anything of the target is deleted
// or copied — and removes the mark after its last commit (and the id
// counter's raise). A replica follows the mark with the keys (it is a meta
// key: the watch carries it, and a resync reads it at the revision of its
// pages), records it with the revision it applies (bolt's note), and a
// Store does not serve a marked revision: View refuses it
// (IncompleteCopyError, EUNAVAILABLE) and Health is not ready, until a
// copy run again (--force) completes and removes the mark. Only the
// copy's own target (Options.CopyTarget) reads and writes a marked prefix.
//
// The mark cannot tell a copy still running from one killed: it stays
// until a copy completes, whatever became of the one that put it. A
// running copy also holds the prefix's copy lock (LockCopy): an etcd mutex
// (<prefix>c/copy/<lease>, outside the keys the sidecars watch) on a lease
// the copy keeps alive, which ends with it — at once when it stops, within
// the lease's TTL when it is killed. A second copy finds the lock held and is
// refused (CopyRunningError, saying what holds it: a copy's key, or one put
// by hand that no copy keeps alive, which no wait ends), --force or not; one that finds the mark but
// not the lock copies over it (with --force). A copy's target writes only
// with the lock: every commit of it — the key transactions (commitGroup),
// the mark's put and removal (putMeta) — is refused before the lock is
// taken (errNoCopyLock), and requires that it still holds it: a copy cut off from
// etcd past its lease, which another copy may then have locked, writes
// none of them more. A copy's key transactions also require the prefix
// marked (errCopyNotMarked): none lands in a prefix the sidecars serve —
// before the mark, or after its removal (one cut short by Ctrl-C and
// reaching etcd late). Not the id counter's raise (RaiseIDs), which only
// moves it up (a gap in the ids at worst), nor the nudge, a meta key no
// one reads: neither undoes another copy's work.

// copyLockTTL is the lease of the copy lock asked for, in seconds: how
// long a killed copy's lock outlives it. etcd grants no lease below its
// least TTL (1.5 election timeouts, rounded up: 2 s at etcd's defaults,
// 15 s at --election-timeout 10000): what it granted is what is said
// (copyLock.ttl).
const copyLockTTL = 10

// copyLock is the copy lock a Store holds (LockCopy).
type copyLock struct {
	sess  *concurrency.Session
	mu    *concurrency.Mutex
	owner clientv3.Cmp // the lock still held: its key, as created
	key   string
	rev   int64 // the key's CreateRevision
	// ttl is the lease's TTL as etcd granted it, in seconds: copyLockTTL,
	// or the cluster's least TTL if longer (1.5 election timeouts).
	ttl int64
}

// CopyRunningError is a prefix whose copy lock is held: by another store
// copy, running (or killed less than its lease's TTL ago), or by a key
// under the lock's prefix that no copy keeps (put by hand: on no lease, or
// on another lease). The message says which (lockHeld). It unwraps to an
// ECONFLICT *permatrix.Error.
type CopyRunningError struct {
	Prefix string
	Key    string // the key that holds the lock ("": not read)
	Lease  int64  // its lease (0: none)
	err    *permatrix.Error
}

func (e *CopyRunningError) Error() string { return e.err.Error() }
func (e *CopyRunningError) Unwrap() error { return e.err }

// LockCopy takes the prefix's copy lock, for as long as the store is open
// (Close releases it), or returns a *CopyRunningError if another copy
// holds it. Called again, it asks etcd whether the store still holds it:
// a *LostCopyLockError if its lease has ended since. Only a Store opened with Options.CopyTarget takes it. Close
// and LockCopy are ordered (lockMu): Close cuts short a LockCopy in flight
// and waits for it, then releases what it took; a LockCopy that fails
// releases what it took itself (its lease, and the lock's key with it, on
// a context of its own: the caller's, or Close's, may have ended it), so a
// lock is never left to its lease's end by a copy still running.
func (s *Store) LockCopy(ctx context.Context) error {
	if !s.opts.CopyTarget {
		return errors.New("etcd: LockCopy on a store not opened as a copy's target")
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.alive.Err() != nil {
		return errClosedNoLock()
	}
	if err := s.awaitCheck(ctx); err != nil {
		return err
	}
	if l := s.copyLock.Load(); l != nil {
		return s.stillLocked(ctx, l)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.alive, cancel)()
	rctx, rcancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer rcancel()
	lease, err := s.cli.Grant(rctx, copyLockTTL)
	if err != nil {
		// A lease granted with its answer lost holds no key: it locks
		// nothing, and ends by itself.
		return s.lockError(ctx, err)
	}
	// The session keeps the lease alive until Close (s.alive).
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(copyLockTTL), concurrency.WithContext(s.alive))
	if err != nil {
		s.revokeLock(lease.ID)
		return s.lockError(ctx, err)
	}
	mu := concurrency.NewMutex(sess, s.copyLockPrefix())
	if err := mu.TryLock(rctx); err != nil {
		// The lock's key may be put (an answer lost): it goes with the
		// lease.
		sess.Orphan()
		s.revokeLock(lease.ID)
		if errors.Is(err, concurrency.ErrLocked) {
			return s.lockHeld(ctx)
		}
		return s.lockError(ctx, err)
	}
	// A new lease's key is put by the lock: its revision is the key's
	// CreateRevision.
	rev := mu.Header().Revision
	s.copyLock.Store(&copyLock{sess: sess, mu: mu, owner: mu.IsOwner(), key: mu.Key(), rev: rev, ttl: lease.TTL})
	// The replica is brought to the lock's revision: it shows the prefix
	// as the copy that held the lock before left it (its mark removed, or
	// not), and what this copy decides from it holds.
	wctx, wcancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer wcancel()
	if err := s.Wait(wctx, uint64(rev)); err != nil {
		if s.alive.Err() != nil {
			return errClosedNoLock() // Close releases the lock
		}
		return fmt.Errorf("the prefix's copy lock is held, but the replica did not apply etcd revision %d: %w", rev, err)
	}
	return nil
}

// stillLocked answers a LockCopy by a store that took the lock before:
// nil only if etcd still has the lock's key as this store created it. A
// lock whose lease ended (cut off from etcd past it, or revoked) is lost —
// another copy may hold it since — and every write of the copy is refused
// for it: the caller is told so now, not that it holds the lock.
func (s *Store) stillLocked(ctx context.Context, l *copyLock) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(l.owner).Else(clientv3.OpGet(s.copyKey(), clientv3.WithCountOnly())).Commit()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("reading the prefix's copy lock: %w", ctx.Err())
		}
		return fmt.Errorf("reading the prefix's copy lock, which this store took (etcd did not say whether it still holds it): %w", s.commitError(ctx, err))
	}
	if resp.Succeeded {
		return nil
	}
	marked := false
	if rr := resp.Responses; len(rr) == 1 {
		marked = rr[0].GetResponseRange().GetCount() > 0
	}
	return s.lostCopyLock(l, marked, false, "it no longer holds it, and no more of the copy is written")
}

// lockHeld is the refusal of a LockCopy that found the prefix's copy lock
// held, saying what holds it: the lock's owner, the key under its prefix
// created first (concurrency.Mutex), and that key's lease. A copy's key is
// on a lease of copyLockTTL it keeps alive, which ends with it; a key put
// by hand with no lease holds the lock until it is deleted, whatever the
// "killed copy" wait said, and one on a longer lease until that ends.
func (s *Store) lockHeld(ctx context.Context) error {
	e := &CopyRunningError{Prefix: s.prefix}
	refuse := func(format string, a ...any) error {
		e.err = permatrix.Errorf(permatrix.ECONFLICT, format, a...)
		return e
	}
	const twoCopies = "two copies into one prefix would write into each other, so this one is refused, --force or not"
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.copyLockPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return refuse("etcd prefix %s: the prefix's copy lock is held (a store copy into it is running, or a key under %s/ holds it), and etcd did not say by what (%v); %s", s.prefix, s.copyLockPrefix(), err, twoCopies)
	}
	if len(resp.Kvs) == 0 {
		return refuse("etcd prefix %s: the prefix's copy lock was held, and has been released since: run the copy again", s.prefix)
	}
	kv := resp.Kvs[0]
	e.Key, e.Lease = string(kv.Key), kv.Lease
	del := "etcdctl del " + e.Key
	if !plainKey(e.Key) {
		del = "etcdctl del --prefix " + s.copyLockPrefix() + "/ (every key of the lock)"
	}
	key := strconv.Quote(cutFrom(e.Key))
	if kv.Lease == 0 {
		return refuse("etcd prefix %s: the prefix's copy lock is held by the key %s, which is on no lease — not a store copy's (a copy's key is on a lease it keeps alive, which ends with it) — and stays until it is deleted: every copy into the prefix is refused until then, --force or not. If no copy into the prefix is running, delete it: %s",
			s.prefix, key, del)
	}
	ttl, err := s.cli.TimeToLive(rctx, clientv3.LeaseID(kv.Lease))
	switch {
	case err != nil:
		return refuse("etcd prefix %s: the prefix's copy lock is held by the key %s, on lease %x, of which etcd did not say how long it lasts (%v); %s", s.prefix, key, kv.Lease, err, twoCopies)
	case ttl.TTL < 0:
		return refuse("etcd prefix %s: the prefix's copy lock was held by the key %s, whose lease %x has ended since: run the copy again", s.prefix, key, kv.Lease)
	case e.Key == fmt.Sprintf("%s/%x", s.copyLockPrefix(), kv.Lease):
		// A copy's key, named by its lease (concurrency.Mutex). Its
		// lease is of copyLockTTL, or of the cluster's least TTL if that
		// is longer (etcd raises it): what etcd granted is said.
		return refuse("a store copy into etcd prefix %s is running: it holds the prefix's copy lock (the key %s, on lease %x of %ds, which a running copy keeps alive; a killed copy's lock lasts until the lease ends: %ds left now); %s: wait until it ends",
			s.prefix, key, kv.Lease, ttl.GrantedTTL, ttl.TTL, twoCopies)
	}
	return refuse("etcd prefix %s: the prefix's copy lock is held by the key %s, on lease %x granted for %ds (%ds left) — not a store copy's key, which is named by its lease — and stays until the lease ends or the key is deleted: every copy into the prefix is refused until then, --force or not. If no copy into the prefix is running, delete it: %s",
		s.prefix, key, kv.Lease, ttl.GrantedTTL, ttl.TTL, del)
}

// plainKey says whether a key can be given to etcdctl as it is: printable,
// without spaces or quotes a shell would read, and short.
func plainKey(k string) bool {
	if len(k) > 256 {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r > '~' || strings.ContainsRune(`"'\$`+"`", r) {
			return false
		}
	}
	return true
}

// lockError is the error of a LockCopy that did not take the lock.
func (s *Store) lockError(ctx context.Context, err error) error {
	if s.alive.Err() != nil {
		return errClosedNoLock()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("taking the prefix's copy lock: %w (no lock is held)", ctx.Err())
	}
	return fmt.Errorf("taking the prefix's copy lock: %w", s.commitError(ctx, err))
}

// errClosedNoLock answers a LockCopy on a closed store, or one Close cut
// short.
func errClosedNoLock() error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE, "the store is closed: the prefix's copy lock was not taken (nothing of it is held)")
}

// revokeLock revokes a lease of the copy lock LockCopy did not take,
// with the lock's key if it was put, on a context of its own. If etcd does
// not answer, the lease ends within its TTL.
func (s *Store) revokeLock(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
	defer cancel()
	s.cli.Revoke(ctx, id)
}

// releaseCopyLock releases the copy lock, if held (Close, once the
// committers have stopped). The store keeps it as its lock: a write sent
// after (the mark's removal racing Close) still compares it, and is
// refused — never sent with no lock to require.
func (s *Store) releaseCopyLock() {
	l := s.copyLock.Load()
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RequestTimeout)
	defer cancel()
	l.mu.Unlock(ctx)
	// The lease goes, and the key with it if Unlock failed. Not by the
	// session's Close: its revoke runs on s.alive, which Close has ended.
	s.cli.Revoke(ctx, l.sess.Lease())
	l.sess.Orphan() // stops its keep-alive
	if testHookCopyLockReleased != nil {
		testHookCopyLockReleased()
	}
}

// testHookCopyLockReleased, set by tests only, runs in Close once the copy
// lock is released.
var testHookCopyLockReleased func()

// copyLockPrefix is the copy lock's mutex prefix: "c/" sorts before the
// guards and the data, outside what the sidecars watch ("k/" to the end).
func (s *Store) copyLockPrefix() string { return s.prefix + "c/copy" }

// errNoCopyLock is the error of a copy's write — a commit, the mark's put
// or removal — by a store that does not hold the prefix's copy lock: not
// a copy's target (Options.CopyTarget), or one that has not taken the lock
// (LockCopy). Sent, it would compare neither the lock (it holds none) nor
// the mark (a copy's target writes into a marked prefix): an unguarded
// write into a prefix another copy may hold.
func (s *Store) errNoCopyLock() error {
	if !s.opts.CopyTarget {
		return permatrix.Errorf(permatrix.EINTERNAL,
			"etcd prefix %s: a store copy's write by a store not opened as a copy's target, which cannot hold the prefix's copy lock: nothing was written", s.prefix)
	}
	return permatrix.Errorf(permatrix.EINTERNAL,
		"etcd prefix %s: a store copy's write without the prefix's copy lock (LockCopy first): nothing was written", s.prefix)
}

// errCopyNotMarked is the error of a copy's commit refused because the
// prefix is not marked: before MarkCopy, or after UnmarkCopy.
func (s *Store) errCopyNotMarked() error {
	return permatrix.Errorf(permatrix.EUNAVAILABLE,
		"etcd prefix %s is not marked as holding a copy in progress (not yet, or no longer: the copy removed its mark), and a copy's commit goes only into a marked prefix, which no sidecar serves: nothing was written",
		s.prefix)
}

// errLostCopyLock is the error of a copy's write refused because the copy
// no longer holds the prefix's copy lock. marked is the mark's presence,
// as the refusal read it: another copy may have taken the lock since, and
// completed (its mark removed, the prefix served) — "the prefix stays
// marked" would send the operator to copy over it. markPut: the refused
// write was this copy's mark.
func (s *Store) errLostCopyLock(l *copyLock, marked, markPut bool) error {
	return s.lostCopyLock(l, marked, markPut, "nothing was written")
}

// lostCopyLock is the *LostCopyLockError of a copy that lost the copy
// lock: what became of the refused call, then what the prefix holds —
// as it was (markPut: the refused write was this copy's mark), or marked
// or not as etcd had it (marked).
func (s *Store) lostCopyLock(l *copyLock, marked, markPut bool, what string) error {
	var then string
	switch {
	case markPut:
		then = "the prefix is as it was (this copy's mark was not put)"
	case marked:
		then = "the prefix is marked as holding an incomplete copy (this copy's mark, or that of a copy that took the lock since), which no sidecar serves"
	default:
		then = "the prefix is not marked: a copy that took the lock since completed into it (or its mark was removed), and the sidecars serve it — a copy run again over it with --force would replace that"
	}
	return &LostCopyLockError{Prefix: s.prefix, Marked: marked, err: permatrix.Errorf(permatrix.EUNAVAILABLE,
		"this store copy lost the copy lock of etcd prefix %s (its lease ended: cut off from etcd for over %ds?), and another copy may be running into the prefix: %s; %s",
		s.prefix, l.ttl, what, then)}
}

// LostCopyLockError is a copy's write refused because the copy no longer
// holds the prefix's copy lock: nothing of it was written. It unwraps to
// an EUNAVAILABLE *permatrix.Error.
type LostCopyLockError struct {
	Prefix string
	Marked bool // the prefix marked (by this copy or another), as etcd had it then
	err    *permatrix.Error
}

func (e *LostCopyLockError) Error() string { return e.err.Error() }
func (e *LostCopyLockError) Unwrap() error { return e.err }

// copyMark is the marker's value.
type copyMark struct {
	From    string    `json:"from"`
	Started time.Time `json:"started"`
}

// IncompleteCopyError is a prefix a store copy marked and has not
// completed: it holds part of a store, which is never served. It unwraps
// to an EUNAVAILABLE *permatrix.Error.
type IncompleteCopyError struct {
	Prefix string
	From   string    // the copy's source, as its --from named it
	Since  time.Time // when the copy started
	err    *permatrix.Error
}

func (e *IncompleteCopyError) Error() string { return e.err.Error() }
func (e *IncompleteCopyError) Unwrap() error { return e.err }

// What is read of a mark's value, which anyone who may write the prefix
// can set (or a fault damage): a value over maxMarkBytes is not parsed (an
// unknown source), and the source it names is cut at maxMarkFrom bytes. A
// replica records the mark so bounded (markNote), and every read of a
// marked replica — the decision cache's Servable before each answer —
// costs no more than that.
const (
	maxMarkBytes = 4 << 10
	maxMarkFrom  = 512
)

// readMark is the mark of value v, bounded.
func readMark(v string) copyMark {
	var m copyMark
	if len(v) <= maxMarkBytes {
		_ = json.Unmarshal([]byte(v), &m) // a value not ours: named as unknown
	}
	m.From = cutFrom(m.From)
	return m
}

// cutFrom is a mark's source cut at maxMarkFrom bytes (on a character's
// start), with "…" saying so.
func cutFrom(from string) string {
	if len(from) <= maxMarkFrom {
		return from
	}
	n := maxMarkFrom
	for n > 0 && !utf8.RuneStart(from[n]) {
		n--
	}
	return from[:n] + "…"
}

// markNote is what a replica records of a mark present with value v: the
// mark, read bounded (readMark) and encoded again — never "", the note of
// no mark, whatever v is (an empty value is a mark too: the key's
// presence, not its value, marks the prefix, as every commit's compare of
// its absence has it).
func markNote(v string) string {
	b, _ := json.Marshal(readMark(v))
	return string(b)
}

// markError is the error of one mark (errIncomplete), made once.
type markError struct {
	note string
	err  error
}

// errIncomplete is the error of a replica whose note is the copy marker
// value v. It is made once per mark: Servable asks it before every answer
// of the decision cache while the prefix is marked.
func (s *Store) errIncomplete(v string) error {
	if c := s.markErr.Load(); c != nil && c.note == v {
		return c.err
	}
	err := s.incomplete(v, "")
	s.markErr.Store(&markError{note: v, err: err})
	return err
}

// incomplete is errIncomplete with more said at the end of the message.
func (s *Store) incomplete(v, more string) error {
	m := readMark(v)
	from, since := m.From, "at an unknown time"
	if from == "" {
		from = "an unknown source"
	}
	if !m.Started.IsZero() {
		since = "at " + m.Started.UTC().Format(time.RFC3339)
	}
	return &IncompleteCopyError{Prefix: s.prefix, From: m.From, Since: m.Started, err: permatrix.Errorf(permatrix.EUNAVAILABLE,
		"etcd prefix %s holds an incomplete copy (permatrix store copy from %s, started %s: still running, or interrupted), so part of a store, which is not served: if the copy was interrupted, run it again with --force to complete it (docs/fleet.md)%s",
		s.prefix, from, since, more)}
}

// IncompleteCopy is the copy marker's error if the replica's latest
// revision is marked (a store copy into the prefix not completed), else
// nil.
func (s *Store) IncompleteCopy() error {
	if n := s.replica.Note(); n != "" {
		return s.errIncomplete(n)
	}
	return nil
}

// Servable says why the store serves nothing now, as View would
// (store.Servable): a replica being loaded, or one at a revision a store
// copy marked. The decision cache asks it before answering.
func (s *Store) Servable() error {
	if s.syncing.Load() {
		return errSyncing()
	}
	if n := s.replica.Note(); n != "" && !s.opts.CopyTarget {
		return s.errIncomplete(n)
	}
	if err := s.damage.Load().current(); err != nil && !s.opts.CopyTarget {
		return err // keys permatrix does not write (damage.go)
	}
	return nil
}

// MarkCopy marks the prefix as holding a copy in progress, from the store
// named from, and waits until the replica has applied the mark. Only a
// Store opened with Options.CopyTarget, holding the copy lock, marks a
// prefix. An error that is a *MetaWriteError may leave the prefix marked;
// any other leaves it as it was.
func (s *Store) MarkCopy(ctx context.Context, from string) error {
	if !s.opts.CopyTarget {
		return errors.New("etcd: MarkCopy on a store not opened as a copy's target")
	}
	v, err := json.Marshal(copyMark{From: cutFrom(from), Started: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	return s.putMeta(ctx, clientv3.OpPut(s.copyKey(), string(v)), "marking the prefix as holding a copy in progress", true, false)
}

// UnmarkCopy removes the mark of MarkCopy once the copy is complete: the
// prefix is served again. Only the copy holding the lock removes it. An
// error that is a *MetaWriteError may have removed the mark; any other
// leaves it.
func (s *Store) UnmarkCopy(ctx context.Context) error {
	return s.putMeta(ctx, clientv3.OpDelete(s.copyKey()), "removing the mark of the copy in progress", false, false)
}

// UnmarkEmptyCopy removes the mark of a copy that failed having copied
// nothing into a prefix empty and unmarked before it — only if the prefix
// holds no key of a store, in the same transaction. A batch of the copy's
// on its way as it failed is sent all the same (its committer took it:
// Commit), and one that reached etcd after the copy looked, before the
// removal, would be left served, part of a store, unmarked. An error
// that is a *MetaWriteError may have removed the mark; any other leaves
// it, an *UnmarkNotEmptyError for the prefix not empty.
func (s *Store) UnmarkEmptyCopy(ctx context.Context) error {
	return s.putMeta(ctx, clientv3.OpDelete(s.copyKey()), "removing the mark of the copy that copied nothing", false, true)
}

// UnmarkNotEmptyError is UnmarkEmptyCopy refused: the prefix holds keys.
type UnmarkNotEmptyError struct {
	Prefix string
	Keys   int64
}

func (e *UnmarkNotEmptyError) Error() string {
	return fmt.Sprintf("etcd prefix %s holds %d keys (a batch of the copy's that reached etcd as it stopped): the mark stays", e.Prefix, e.Keys)
}

// MetaWriteError is a failed put or removal of the copy mark (MarkCopy,
// UnmarkCopy) that etcd may have made, or made: its request was sent and
// no answer came back (a deadline, Ctrl-C, the connection lost), or it was
// made and the replica did not apply it in time. Other errors of theirs
// wrote nothing.
type MetaWriteError struct {
	What string // what was sent: "marking the prefix as holding a copy in progress"
	Made bool   // made for sure (its revision is known); else not known
	Rev  int64  // the revision it was made at, if Made
	Err  error
}

func (e *MetaWriteError) Error() string {
	if e.Made {
		return fmt.Sprintf("%s: made at etcd revision %d, but the replica did not apply it: %v", e.What, e.Rev, e.Err)
	}
	return fmt.Sprintf("%s: %v — sent to etcd and not answered: it may or may not have been made", e.What, e.Err)
}

func (e *MetaWriteError) Unwrap() error { return e.Err }

// putMeta sends op (on the mark) only while the store holds the copy
// lock — and, ifEmpty, while the prefix holds no data key — and waits
// until the replica has applied its revision. markPut: op is the mark's
// put (errLostCopyLock).
func (s *Store) putMeta(ctx context.Context, op clientv3.Op, what string, markPut, ifEmpty bool) error {
	l := s.copyLock.Load()
	if l == nil {
		return fmt.Errorf("%s: %w", what, s.errNoCopyLock())
	}
	if err := s.awaitCheck(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w (not sent)", what, err)
	}
	if s.alive.Err() != nil {
		// Close has closed the client, or is closing it: sent now, the
		// request would fail unsent and be taken for one unanswered.
		return fmt.Errorf("%s: %w", what, permatrix.Errorf(permatrix.EUNAVAILABLE, "the store is closed: not sent, nothing was written"))
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	// Refused, the mark, the lock and the data are read: what the
	// refusal says of them.
	cmps := []clientv3.Cmp{l.owner}
	if ifEmpty {
		// No key in the data range (a range compare: each key's, and
		// none there compares as absent).
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(string(s.dataPrefix)), "=", 0).WithPrefix())
	}
	reads := []clientv3.Op{clientv3.OpGet(s.copyKey(), clientv3.WithCountOnly()), clientv3.OpGet(l.key)}
	if ifEmpty {
		// Counted only where the refusal may be for the keys: a count of
		// the whole data range is a read of every key's index entry.
		reads = append(reads, clientv3.OpGet(string(s.dataPrefix), clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(op).Else(reads...).Commit()
	cancel()
	if err != nil {
		if refusal(err) || errors.Is(err, rpctypes.ErrNoSpace) {
			// etcd carried out nothing.
			return fmt.Errorf("%s: %w", what, s.commitError(context.Background(), err))
		}
		if ctx.Err() != nil {
			err = ctx.Err() // the caller's end, not the client's view of it
		} else if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("etcd did not answer within %s", s.opts.RequestTimeout)
		} else {
			s.setErr(err)
		}
		return &MetaWriteError{What: what, Err: err}
	}
	if !resp.Succeeded {
		var marked, locked bool
		var keys int64
		if rr := resp.Responses; len(rr) == len(reads) {
			marked = rr[0].GetResponseRange().GetCount() > 0
			for _, kv := range rr[1].GetResponseRange().GetKvs() {
				locked = locked || kv.CreateRevision == l.rev
			}
			if ifEmpty {
				keys = rr[2].GetResponseRange().GetCount()
			}
		}
		if !locked || !ifEmpty {
			return fmt.Errorf("%s: %w", what, s.errLostCopyLock(l, marked, markPut))
		}
		return fmt.Errorf("%s: %w", what, &UnmarkNotEmptyError{Prefix: s.prefix, Keys: keys})
	}
	rev := resp.Header.Revision
	wctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	defer context.AfterFunc(s.alive, cancel)()
	if err := s.Wait(wctx, uint64(rev)); err != nil {
		return &MetaWriteError{What: what, Made: true, Rev: rev, Err: err}
	}
	return nil
}
