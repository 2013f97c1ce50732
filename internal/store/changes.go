package store

import (
	"slices"
	"sync"
)

// Changes remembers, per unit, the last revision that changed it — enough to
// answer "did any of these units change after revision r?" for the commits
// and cached decisions in flight. It forgets old entries to stay bounded:
// everything at or before Floor is forgotten, so a question about a revision
// before Floor is answered "changed" (conservative, never wrong).
type Changes struct {
	mu    sync.RWMutex
	last  map[string]uint64
	floor uint64
	limit int
}

// DefaultChangesLimit bounds the units Changes remembers.
const DefaultChangesLimit = 1 << 18

// NewChanges starts an index at revision floor (nothing is known before it).
func NewChanges(floor uint64, limit int) *Changes {
	if limit <= 0 {
		limit = DefaultChangesLimit
	}
	return &Changes{last: map[string]uint64{}, floor: floor, limit: limit}
}

// Record notes that rev changed units.
func (c *Changes) Record(rev uint64, units [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range units {
		if rev > c.last[string(u)] {
			c.last[string(u)] = rev
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
	c.last = map[string]uint64{}
	c.floor = floor
}

// prune drops the older half of the entries and raises the floor to the
// newest revision dropped.
func (c *Changes) prune() {
	revs := make([]uint64, 0, len(c.last))
	for _, r := range c.last {
		revs = append(revs, r)
	}
	slices.Sort(revs)
	cut := revs[len(revs)/2]
	for u, r := range c.last {
		if r <= cut {
			delete(c.last, u)
		}
	}
	if cut > c.floor {
		c.floor = cut
	}
}

// ChangedAfter reports whether any of units may have changed after rev.
func (c *Changes) ChangedAfter(rev uint64, units [][]byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rev < c.floor {
		return true
	}
	for _, u := range units {
		if c.last[string(u)] > rev {
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
