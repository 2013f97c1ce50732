package store

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// Changes remembers, per unit, the last revision that changed it — enough to
// answer "did any of these units change after revision r?" for the commits
// and cached decisions in flight. It forgets old entries to stay bounded:
// everything at or before Floor is forgotten, so a question about a revision
// before Floor is answered "changed" (conservative, never wrong).
//
// Units are remembered by a 64-bit hash, not their bytes (a few hundred
// thousand of them would otherwise take tens of MiB): two units sharing a
// hash make a change of one look like a change of the other, which is
// again conservative.
type Changes struct {
	mu    sync.RWMutex
	last  map[uint64]uint64
	floor uint64
	limit int
	// epoch counts Forget: a revision of an earlier epoch may name another
	// state than the same revision now (a replica emptied and loaded from
	// another source numbers its revisions anew).
	epoch atomic.Uint64
}

// changesSeed keys the unit hashes of this process.
var changesSeed = maphash.MakeSeed()

func unitHash(u []byte) uint64 { return maphash.Bytes(changesSeed, u) }

// DefaultChangesLimit bounds the units Changes remembers.
const DefaultChangesLimit = 1 << 18

// NewChanges starts an index at revision floor (nothing is known before it).
func NewChanges(floor uint64, limit int) *Changes {
	if limit <= 0 {
		limit = DefaultChangesLimit
	}
	return &Changes{last: map[uint64]uint64{}, floor: floor, limit: limit}
}

// Record notes that rev changed units.
func (c *Changes) Record(rev uint64, units [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range units {
		if h := unitHash(u); rev > c.last[h] {
			c.last[h] = rev
		}
	}
	if len(c.last) > c.limit {
		c.prune()
	}
}

// Reset forgets everything up to floor (e.g. after a full resync).
func (c *Changes) Reset(floor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = map[uint64]uint64{}
	c.floor = floor
}

// Forget forgets everything, and that the revisions so far meant
// anything: the store was emptied and numbers its revisions anew (a
// replica loaded afresh from another source), so what was decided at a
// revision before it says nothing of the same revision after it. Call it
// once the emptied state is what new snapshots read.
func (c *Changes) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = map[uint64]uint64{}
	c.floor = 0
	c.epoch.Add(1)
}

// Epoch counts Forget calls, from 1 (0 is no epoch: Batch.Epoch). An
// answer kept with the revision it was made at holds only in the epoch it
// was made in: read the epoch before the snapshot the answer reads.
func (c *Changes) Epoch() uint64 { return c.epoch.Load() + 1 }

// prune drops the older half of the entries and raises the floor to the
// newest revision dropped.
func (c *Changes) prune() {
	cut := medianRevision(c.last)
	if len(c.last) > 2*c.limit {
		// A new map: Go's maps keep their size after deletes, and one
		// large commit (an all-or-nothing import) made this one many
		// times the limit.
		kept := make(map[uint64]uint64, len(c.last)/2)
		for u, r := range c.last {
			if r > cut {
				kept[u] = r
			}
		}
		c.last = kept
	} else {
		// In place: the map fills to the limit again before the next
		// prune, and a new one grew to it by doubling (a copy each
		// time) — with the sort that found the cut, 1.4 % of an
		// import's CPU.
		for u, r := range c.last {
			if r <= cut {
				delete(c.last, u)
			}
		}
	}
	if cut > c.floor {
		c.floor = cut
	}
}

// medianRevision is the revision at index len/2 of last's revisions
// sorted. They are counted, not sorted, when they span fewer revisions
// than there are entries — always, but for a store whose commits each
// change a unit or two: an import's chunks change tens of thousands at
// one revision.
func medianRevision(last map[uint64]uint64) uint64 {
	lo, hi := ^uint64(0), uint64(0)
	for _, r := range last {
		lo, hi = min(lo, r), max(hi, r)
	}
	k := len(last) / 2
	if hi-lo < uint64(len(last)) {
		counts := make([]int32, hi-lo+1)
		for _, r := range last {
			counts[r-lo]++
		}
		seen := 0
		for i, n := range counts {
			if seen += int(n); seen > k {
				return lo + uint64(i)
			}
		}
	}
	revs := make([]uint64, 0, len(last))
	for _, r := range last {
		revs = append(revs, r)
	}
	slices.Sort(revs)
	return revs[k]
}

// ChangedAfter reports whether any of units may have changed after rev.
func (c *Changes) ChangedAfter(rev uint64, units [][]byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rev < c.floor {
		return true
	}
	for _, u := range units {
		if c.last[unitHash(u)] > rev {
			return true
		}
	}
	return false
}

// ChangedAfterExcept reports whether any of units may have changed after
// rev at a revision other than except: whether a write whose reads were
// units, planned at rev, lost its commit to another write than the one
// made at except (a unit's last change is what is known of it, and a
// revision at or below the floor says nothing: true).
func (c *Changes) ChangedAfterExcept(rev, except uint64, units [][]byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rev < c.floor {
		return true
	}
	for _, u := range units {
		if last := c.last[unitHash(u)]; last > rev && last != except {
			return true
		}
	}
	return false
}

// Floor is the revision at or before which changes are forgotten.
func (c *Changes) Floor() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.floor
}
