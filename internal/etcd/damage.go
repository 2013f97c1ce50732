package etcd

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

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
// fails the open check's store.Verify, is set aside and loaded again).

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

// maxDamageLogged is how many newly damaged keys one apply logs one by
// one: a writer planting a million keys does not fill the log.
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
		s.prefix, strconv.Quote(first), keys[first], more)
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
	next, copied := cur, false
	for _, op := range ops {
		var why error
		if !op.Delete {
			why = store.CheckRecord(op.Key, op.Value)
		}
		if why == nil && len(next) == 0 {
			continue
		}
		k := s.dataKey(op.Key)
		if _, was := next[k]; why == nil && !was {
			continue
		}
		if !copied {
			next, copied = maps.Clone(cur), true
			if next == nil {
				next = map[string]string{}
			}
		}
		if why != nil {
			next[k] = why.Error()
		} else {
			delete(next, k)
		}
	}
	return next
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
		slices.Sort(added)
		for _, k := range added[:min(len(added), maxDamageLogged)] {
			s.log.Error("etcd holds a key permatrix does not write: this sidecar serves nothing from its replica until it is repaired or deleted",
				"key", k, "problem", next[k], "revision", rev)
		}
		if len(added) > maxDamageLogged {
			s.log.Error("etcd holds more keys permatrix does not write", "more", len(added)-maxDamageLogged, "damaged_keys", len(next), "revision", rev)
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
// permatrix does not write, at most max of them in key order, and counts
// them all (store.Damaged: the /metrics gauges).
func (s *Store) DamagedKeys(max int) ([]string, int) {
	d := s.damage.Load()
	if d == nil || len(d.keys) == 0 {
		return nil, 0
	}
	keys := slices.Sorted(maps.Keys(d.keys))
	return keys[:min(len(keys), max)], len(keys)
}
