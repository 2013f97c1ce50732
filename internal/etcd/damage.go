package etcd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"

	"go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
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

// damage is the replica's damaged keys. It is immutable once published
// (Store.damage).
type damage struct {
	// keys are the damaged etcd keys and what is wrong with each.
	keys map[string]string
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

// newDamage makes the published state of keys.
func (s *Store) newDamage(keys map[string]string, repairedAt uint64) *damage {
	d := &damage{keys: keys, repairedAt: repairedAt}
	if len(keys) == 0 {
		return d
	}
	first := slices.Min(slices.Collect(maps.Keys(keys)))
	more := ""
	if n := len(keys) - 1; n > 0 {
		more = fmt.Sprintf(", and %d more key(s) permatrix did not write", n)
	}
	d.err = permatrix.Errorf(permatrix.EUNAVAILABLE,
		"etcd prefix %s holds the key %s, %s%s: a replica known to be damaged is not served; repair or delete the key in etcd (another writer under the prefix, or a repair half done: docs/fleet.md)",
		s.prefix, strconv.Quote(shownKey(first)), keys[first], more)
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

// damageAfter is the damaged keys after ops (data keys, in the order
// applied: a later operation on a key wins) on cur. It copies cur only
// when something changes.
func (s *Store) damageAfter(cur map[string]string, ops []store.Op) map[string]string {
	e := damageEdit{cur: cur, next: cur}
	for _, op := range ops {
		var why error
		switch {
		case op.Delete:
		case !replicable(op.Key):
			why = errUnreplicable
		default:
			why = store.CheckRecord(op.Key, op.Value)
		}
		if why == nil && len(e.next) == 0 {
			continue
		}
		e.set(s.dataKey(op.Key), why)
	}
	return e.next
}

// damageEdit makes the damaged keys next from cur, copying cur once, on
// the first change.
type damageEdit struct {
	cur, next map[string]string
	copied    bool
}

// set records key as damaged (why) or not (why nil).
func (e *damageEdit) set(key string, why error) {
	if _, was := e.next[key]; why == nil && !was {
		return
	}
	if !e.copied {
		e.next, e.copied = maps.Clone(e.cur), true
		if e.next == nil {
			e.next = map[string]string{}
		}
	}
	if why != nil {
		e.next[key] = why.Error()
	} else {
		delete(e.next, key)
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

// damageOfCounter is cur with the id counter's damage as value v shows
// it (nil: the key is absent).
func (s *Store) damageOfCounter(cur map[string]string, v []byte) map[string]string {
	var why error
	if v != nil {
		_, why = idCounterValue(v)
	}
	e := damageEdit{cur: cur, next: cur}
	e.set(s.idKey(), why)
	return e.next
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
	cur := s.damage.Load()
	var curKeys map[string]string
	if cur != nil {
		curKeys = cur.keys
	}
	next := s.damageOfCounter(curKeys, v)
	s.publishDamage(cur, next, rev, true, false)
	s.publishDamage(cur, next, rev, false, false)
	return nil
}

// damageHeld is cur with the damage of every record the replica holds
// (store.CheckRecord): what a replica opened marked holds was checked by
// no one — bolt's open check skips a marked replica's records, and the
// damage its applies found died with the process that applied them — so
// the mark's removal, which makes the replica servable, checks them
// first. One scan of the replica, once per such start.
func (s *Store) damageHeld(cur map[string]string) (map[string]string, error) {
	snap, err := s.replica.View()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	e := damageEdit{cur: cur, next: cur}
	err = snap.Scan(nil, nil, func(k, v []byte) error {
		if why := store.CheckRecord(k, v); why != nil {
			e.set(s.dataKey(k), why)
		}
		return nil
	})
	return e.next, err
}

// replicable reports whether the replica's bbolt file can hold key k:
// bbolt refuses an empty key (a put of the prefix's k/ itself) and one
// longer than bbolt.MaxKeySize (etcd takes keys up to its request size).
// An apply the replica refuses stops it at the revision before — the
// watch resumes there and fails again, past the key's delete — so such a
// key is damage, named and refused like any other, and left out of what
// the replica applies (replicableOps).
func replicable(k []byte) bool { return len(k) > 0 && len(k) <= bbolt.MaxKeySize }

var errUnreplicable = fmt.Errorf("a key the replica cannot hold (empty, or longer than %d bytes)", bbolt.MaxKeySize)

// replicableOps is ops without those of keys the replica cannot hold
// (replicable): ops itself when there are none.
func replicableOps(ops []store.Op) []store.Op {
	if !slices.ContainsFunc(ops, func(op store.Op) bool { return !replicable(op.Key) }) {
		return ops
	}
	return slices.DeleteFunc(slices.Clone(ops), func(op store.Op) bool { return !replicable(op.Key) })
}

// publishDamage is called around an apply at rev that takes the damaged
// keys from cur to next: before it (before is true), the keys damaged in
// either, so that no snapshot showing a damaged key is served from the
// moment it can be taken; after it, next. It logs what changed.
func (s *Store) publishDamage(cur *damage, next map[string]string, rev uint64, before, initial bool) {
	var old map[string]string
	repairedAt := uint64(0)
	if cur != nil {
		old, repairedAt = cur.keys, cur.repairedAt
	}
	if before {
		var added []string
		for k := range next {
			if _, ok := old[k]; !ok {
				added = append(added, k)
			}
		}
		if len(added) == 0 {
			return
		}
		union := maps.Clone(old)
		if union == nil {
			union = map[string]string{}
		}
		maps.Copy(union, next)
		s.damage.Store(s.newDamage(union, repairedAt))
		// Keys are logged one by one while fewer than maxDamageLogged
		// are damaged, then a line each time their number doubles: a
		// writer planting keys one revision each does not fill the log.
		slices.Sort(added)
		named := added[:min(len(added), max(0, maxDamageLogged-len(old)))]
		for _, k := range named {
			s.log.Error("etcd holds a key permatrix does not write: this sidecar serves nothing from its replica until it is repaired or deleted",
				"key", shownKey(k), "problem", next[k], "revision", rev)
		}
		if len(named) < len(added) && bits.Len(uint(len(old))) < bits.Len(uint(len(union))) {
			s.log.Error("etcd holds more keys permatrix does not write", "more", len(added)-len(named), "damaged_keys", len(union), "revision", rev)
		}
		return
	}
	repaired := 0
	for k := range old {
		if _, ok := next[k]; !ok {
			repaired++
		}
	}
	switch {
	case initial:
		// A replica loaded afresh: what it showed before is gone (and
		// its revisions may have been another cluster's).
		repairedAt = 0
	case repaired > 0:
		repairedAt = rev
	case len(next) == len(old):
		return // nothing changed
	}
	s.damage.Store(s.newDamage(next, repairedAt))
	if repaired > 0 && len(next) == 0 {
		s.log.Info("the keys permatrix does not write were repaired or deleted in etcd: the replica is served again", "repaired", repaired, "revision", rev)
	}
}

// DamagedKeys names the etcd keys under the prefix that hold what
// permatrix does not write, at most max of them in key order (a long one
// by its first bytes: shownKey), and counts them all (store.Damaged: the
// /metrics gauges).
func (s *Store) DamagedKeys(max int) ([]string, int) {
	d := s.damage.Load()
	if d == nil || len(d.keys) == 0 {
		return nil, 0
	}
	keys := slices.Sorted(maps.Keys(d.keys))
	keys = keys[:min(len(keys), max)]
	for i, k := range keys {
		keys[i] = shownKey(k)
	}
	return keys, len(d.keys)
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
