package etcd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/google/btree"
	"go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// A replica applies whatever etcd holds under the prefix's data keys, and
// anyone who may write the prefix can put there what permatrix never
// writes: a key outside the layout, a value that is not the record its key
// names (another writer, a bug, a manual repair half done). Each record is
// checked as it is applied (the watch's events, a resync's pages), by the
// rule the bolt store's open check holds each record to
// (store.CheckRecord), and a replica holding such a key is not served —
// View refuses, Servable refuses, Health is not ready, every message
// naming the key and not its value — until the key is repaired or deleted
// in etcd. The damage is what etcd holds, not the replica's file: the
// replica follows it, and a restarted sidecar finds it again (its replica
// fails the open check's store.Verify, is set aside and loaded again) —
// unless the replica was marked by a store copy then: the open check
// skips a marked replica's records, and they are checked here when the
// mark goes (damageHeld). The id counter is checked too (below).

// The damaged keys are kept in key order (a btree): the apply loop, their
// only writer, edits a lazy copy of the published set (Clone: the nodes an
// edit touches are copied, no others) and publishes it, so that an apply
// costs what it touches plus the log of the damaged count — not a copy or
// a scan of every damaged key, which a writer planting a key a revision
// would make quadratic. A resync reads every key anyway, and compares all.

// damage is the replica's damaged keys. It is immutable once published
// (Store.damage).
type damage struct {
	// keys are the damaged etcd keys and what is wrong with each, in
	// key order; never changed once published (edits change a Clone).
	keys *btree.BTreeG[damagedKey]
	// err is the error every refusal answers (nil: nothing damaged).
	err error
	// repairedAt is the revision at which the last key found damaged
	// was repaired or deleted: a snapshot below it may show the damage
	// still.
	repairedAt uint64
}

// maxDamageLogged is how many damaged keys are logged one by one (then a
// line each time their number doubles): a writer planting a million keys,
// at once or a revision each, does not fill the log.
const maxDamageLogged = 10

// damagedKey is a damaged etcd key and what is wrong with it.
type damagedKey struct{ key, why string }

func newDamagedKeys() *btree.BTreeG[damagedKey] {
	return btree.NewG(16, func(a, b damagedKey) bool { return a.key < b.key })
}

// set is d's damaged keys: a new empty set if d is nil (a set is never
// shared between stores: Clone is not to be called concurrently).
func (d *damage) set() *btree.BTreeG[damagedKey] {
	if d == nil || d.keys == nil {
		return newDamagedKeys()
	}
	return d.keys
}

// newDamage makes the published state of keys (nil: none).
func (s *Store) newDamage(keys *btree.BTreeG[damagedKey], repairedAt uint64) *damage {
	if keys == nil {
		keys = newDamagedKeys()
	}
	d := &damage{keys: keys, repairedAt: repairedAt}
	if keys.Len() == 0 {
		return d
	}
	first, _ := keys.Min()
	more := ""
	if n := keys.Len() - 1; n > 0 {
		more = fmt.Sprintf(", and %d more key(s) permatrix did not write", n)
	}
	d.err = permatrix.Errorf(permatrix.EUNAVAILABLE,
		"etcd prefix %s holds the key %s, %s%s: a replica known to be damaged is not served; repair or delete the key in etcd (another writer under the prefix, or a repair half done: docs/fleet.md)",
		s.prefix, strconv.Quote(shownKey(first.key)), first.why, more)
	return d
}

// current is the error of the keys damaged now, or nil.
func (d *damage) current() error {
	if d == nil {
		return nil
	}
	return d.err
}

// refusal is the error of a snapshot at rev of a replica with damage d,
// or nil.
func (d *damage) refusal(rev uint64) error {
	switch {
	case d == nil:
		return nil
	case d.err != nil:
		return d.err
	case rev < d.repairedAt:
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "the replica's damaged keys were repaired at etcd revision %d, after this read's revision %d: retry", d.repairedAt, rev)
	}
	return nil
}

// damageAfter edits e by ops (data keys, in the order applied: a later
// operation on a key wins).
func (s *Store) damageAfter(e *damageEdit, ops []store.Op) {
	for _, op := range ops {
		var why error
		switch {
		case op.Delete:
		case !replicable(op.Key):
			why = errUnreplicable
		default:
			why = store.CheckRecord(op.Key, op.Value)
		}
		if why == nil && e.none() {
			continue
		}
		e.set(s.dataKey(op.Key), why)
	}
}

// damageEdit makes the damaged keys next from those of was (or, fresh,
// from none: a resync's, which reads every key again), cloning them
// lazily on the first change, and remembers the keys it set: what
// publishDamage compares.
type damageEdit struct {
	was  *damage
	next *btree.BTreeG[damagedKey] // nil: unchanged from was (fresh: none)
	// fresh is that next starts empty, not as was's keys.
	fresh bool
	// touched are the keys set, some perhaps to what they were.
	touched []string
}

// editDamage begins an edit of the damage published as cur.
func editDamage(cur *damage) *damageEdit { return &damageEdit{was: cur} }

// keys is the damaged keys after the edit (not to be changed once
// published).
func (e *damageEdit) keys() *btree.BTreeG[damagedKey] {
	switch {
	case e.next != nil:
		return e.next
	case e.fresh:
		return newDamagedKeys()
	}
	return e.was.set()
}

// none is whether no key is damaged after the edit so far.
func (e *damageEdit) none() bool {
	switch {
	case e.next != nil:
		return e.next.Len() == 0
	case e.fresh:
		return true
	}
	return e.was == nil || e.was.keys == nil || e.was.keys.Len() == 0
}

// set records key as damaged (why) or not (why nil).
func (e *damageEdit) set(key string, why error) {
	if why == nil && (e.none() || !e.keys().Has(damagedKey{key: key})) {
		return
	}
	if e.next == nil {
		e.next = e.keys()
		if !e.fresh {
			e.next = e.next.Clone() // the published set is never changed
		}
	}
	if why != nil {
		e.next.ReplaceOrInsert(damagedKey{key, why.Error()})
	} else {
		e.next.Delete(damagedKey{key: key})
	}
	e.touched = append(e.touched, key)
}

// changed is each key whose damage the edit may have changed: those it
// set, and, fresh, every key of was too (those not found again are
// repaired). A key may come more than once.
func (e *damageEdit) changed(yield func(string) bool) {
	for _, k := range e.touched {
		if !yield(k) {
			return
		}
	}
	if e.fresh {
		e.was.set().Ascend(func(d damagedKey) bool { return yield(d.key) })
	}
}

// Of the meta keys ("m/"), only the id counter's value is read for what
// it says: the copy mark's holds the replica unserved whatever it holds
// (copymark.go), the fleet's marker is read for its presence, the nudge
// for its revision, and a key of "m/" permatrix does not write is not read
// at all (a new sidecar's ClaimPrefix refuses it: fleetmark.go). A counter
// that is no number stops every id from being reserved; one within idBlock
// of 2^64 wraps to 0 and hands out again numbers handed out before
// (store's invariant: never). So it is checked as the data keys are: as
// the watch applies it, as a resync reads it (at the resync's revision),
// and as a watch starts (at the replica's revision: a restarted replica's
// file does not hold it) — and NextID never reserves from it.

// idCounterValue is the id counter's value v as permatrix writes it: a
// decimal number, with room above it for a block of ids. The error names
// neither the key nor the value.
func idCounterValue(v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("not an assignment id counter (a decimal number)")
	case n > math.MaxUint64-idBlock:
		return 0, fmt.Errorf("an assignment id counter too near 2^64 (the next block of ids would wrap past 0, handing out again numbers handed out before)")
	}
	return n, nil
}

// damageOfCounter edits e by the id counter's damage as value v shows it
// (nil: the key is absent).
func (s *Store) damageOfCounter(e *damageEdit, v []byte) {
	var why error
	if v != nil {
		var n uint64
		if n, why = idCounterValue(v); why == nil {
			s.sawIDCounter(n) // a resync's and a watch start's reads, the apply's last value
		}
	}
	e.set(s.idKey(), why)
}

// checkCounterAt publishes the id counter's damage as etcd held it at
// rev, the replica's revision, before a watch from it starts: a
// restarted sidecar's replica does not hold the counter.
func (s *Store) checkCounterAt(ctx context.Context, rev uint64) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	resp, err := s.cli.Get(rctx, s.idKey(), clientv3.WithRev(int64(rev)))
	cancel()
	if err != nil {
		return err
	}
	var v []byte
	if len(resp.Kvs) > 0 {
		v = resp.Kvs[0].Value
	}
	e := editDamage(s.damage.Load())
	s.damageOfCounter(e, v)
	s.publishDamage(e, rev, true, false)
	s.publishDamage(e, rev, false, false)
	return nil
}

// damageHeld edits e by the damage of every record the replica holds
// (store.CheckRecord): what a replica opened marked holds was checked by
// no one — bolt's open check skips a marked replica's records, and the
// damage its applies found died with the process that applied them — so
// the mark's removal, which makes the replica servable, checks them
// first. One scan of the replica, once per such start.
func (s *Store) damageHeld(e *damageEdit) error {
	snap, err := s.replica.View()
	if err != nil {
		return err
	}
	defer snap.Close()
	return snap.Scan(nil, nil, func(k, v []byte) error {
		if why := store.CheckRecord(k, v); why != nil {
			e.set(s.dataKey(k), why)
		}
		return nil
	})
}

// replicable reports whether the replica's bbolt file can hold key k
// (bolt.Holds): bbolt refuses an empty key (a put of the prefix's k/
// itself) and one longer than bbolt.MaxKeySize (etcd takes keys up to its
// request size), and a bucketed replica a key below the scope index not of
// its layout. An apply the replica refuses stops it at the revision before
// — the watch resumes there and fails again, past the key's delete — so
// such a key is damage, named and refused like any other, and left out of
// what the replica applies (replicableOps).
func replicable(k []byte) bool { return bolt.Holds(k) }

var errUnreplicable = fmt.Errorf("a key the replica cannot hold (empty, longer than %d bytes as the replica keeps it, or below the scope index but not of its layout)", bbolt.MaxKeySize)

// replicableOps is ops without those of keys the replica cannot hold
// (replicable): ops itself when there are none.
func replicableOps(ops []store.Op) []store.Op {
	if !slices.ContainsFunc(ops, func(op store.Op) bool { return !replicable(op.Key) }) {
		return ops
	}
	return slices.DeleteFunc(slices.Clone(ops), func(op store.Op) bool { return !replicable(op.Key) })
}

// publishDamage is called around an apply at rev that makes the edit e:
// before it (before is true), the keys damaged before or after it, so that
// no snapshot showing a damaged key is served from the moment it can be
// taken; after it, those after. It logs what changed. It compares only
// the keys e changed (damageEdit.changed).
func (s *Store) publishDamage(e *damageEdit, rev uint64, before, initial bool) {
	if e.next == nil && !e.fresh {
		return // nothing changed
	}
	old, next := e.was.set(), e.keys()
	repairedAt := uint64(0)
	if e.was != nil {
		repairedAt = e.was.repairedAt
	}
	seen := map[string]bool{}
	var added []damagedKey
	repaired := 0
	for k := range e.changed {
		if seen[k] {
			continue
		}
		seen[k] = true
		now, damaged := next.Get(damagedKey{key: k})
		switch had := old.Has(damagedKey{key: k}); {
		case damaged && !had:
			added = append(added, now)
		case !damaged && had:
			repaired++
		}
	}
	if before {
		if len(added) == 0 {
			return
		}
		union := old.Clone() // old is published: never changed
		for _, d := range added {
			union.ReplaceOrInsert(d)
		}
		s.damage.Store(s.newDamage(union, repairedAt))
		// Keys are logged one by one while fewer than maxDamageLogged
		// are damaged, then a line each time their number doubles: a
		// writer planting keys one revision each does not fill the log.
		slices.SortFunc(added, func(a, b damagedKey) int { return strings.Compare(a.key, b.key) })
		named := added[:min(len(added), max(0, maxDamageLogged-old.Len()))]
		for _, d := range named {
			s.log.Error("etcd holds a key permatrix does not write: this sidecar serves nothing from its replica until it is repaired or deleted",
				"key", shownKey(d.key), "problem", d.why, "revision", rev)
		}
		if len(named) < len(added) && bits.Len(uint(old.Len())) < bits.Len(uint(union.Len())) {
			s.log.Error("etcd holds more keys permatrix does not write", "more", len(added)-len(named), "damaged_keys", union.Len(), "revision", rev)
		}
		return
	}
	switch {
	case initial:
		// A replica loaded afresh: what it showed before is gone (and
		// its revisions may have been another cluster's).
		repairedAt = 0
	case repaired > 0:
		repairedAt = rev
	case e.next == nil:
		return // nothing changed
	}
	s.damage.Store(s.newDamage(next, repairedAt))
	if repaired > 0 && next.Len() == 0 {
		s.log.Info("the keys permatrix does not write were repaired or deleted in etcd: the replica is served again", "repaired", repaired, "revision", rev)
	}
}

// DamagedKeys names the etcd keys under the prefix that hold what
// permatrix does not write, at most max of them in key order (a long one
// by its first bytes: shownKey), and counts them all (store.Damaged: the
// /metrics gauges).
func (s *Store) DamagedKeys(max int) ([]string, int) {
	d := s.damage.Load()
	if d == nil || d.keys == nil || d.keys.Len() == 0 {
		return nil, 0
	}
	var keys []string
	d.keys.Ascend(func(k damagedKey) bool {
		if len(keys) >= max {
			return false
		}
		keys = append(keys, shownKey(k.key))
		return true
	})
	return keys, d.keys.Len()
}

// maxShownKey bounds a damaged key as messages, log lines and the
// /metrics label name it: etcd takes keys of up to its request size
// (1.5 MiB by default), each in every refusal and every scrape else.
const maxShownKey = 256

// shownKey is k, or its first bytes, its length and a hash of it all: keys
// sharing their first bytes are still named apart (a /metrics label each).
func shownKey(k string) string {
	if len(k) <= maxShownKey {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return fmt.Sprintf("%s…(%d bytes, sha256 %x)", k[:maxShownKey-64], len(k), sum[:8])
}
