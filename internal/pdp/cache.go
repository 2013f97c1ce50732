package pdp

import (
	"encoding/json"
	"strconv"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// decisionCache remembers decisions so that a repeated question is answered
// without evaluating the policies, and never stale:
//
//   - the key is the active policy (a compiled bundle: a swap makes every
//     old entry unreachable) and the check as the policies see it;
//   - an entry keeps the store revision it was decided at and the units
//     of the store it read (store.Tracked); it answers only while none of
//     those units changed after that revision (store.Changes), and then
//     answers for the revision the store is at now — the decision made
//     now would read the same data and so be the same.
//
// A write therefore invalidates exactly the decisions that read what it
// changed (the subject's grants and groups, a role, a project), not the
// whole cache.
type decisionCache struct {
	entries *lru.Cache[string, *cached]
	hits    atomic.Uint64
	misses  atomic.Uint64
}

type cached struct {
	allow    bool
	reasons  []map[string]any
	missing  []map[string]any
	revision uint64
	units    [][]byte
}

// DefaultCacheSize is how many decisions the cache keeps by default.
const DefaultCacheSize = 100_000

func newDecisionCache(size int) *decisionCache {
	if size <= 0 {
		return nil
	}
	c, err := lru.New[string, *cached](size)
	if err != nil {
		return nil
	}
	return &decisionCache{entries: c}
}

// key is the cache key of a check under a policy generation.
func cacheKey(generation uint64, c permatrix.Check) (string, bool) {
	c.MinRevision = 0
	raw, err := json.Marshal(c)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(generation, 36) + "\x00" + string(raw), true
}

// get answers key from the cache if the entry is still true at revision
// now (read before the call) in changes.
func (dc *decisionCache) get(key string, changes *store.Changes, now uint64) (*permatrix.Decision, bool) {
	e, ok := dc.entries.Get(key)
	if !ok || e.revision > now || changes.ChangedAfter(e.revision, e.units) {
		dc.misses.Add(1)
		return nil, false
	}
	dc.hits.Add(1)
	return &permatrix.Decision{Allow: e.allow, Revision: now, Reasons: e.reasons, Missing: e.missing}, true
}

// put remembers a decision made over a tracked snapshot.
func (dc *decisionCache) put(key string, d *permatrix.Decision, units [][]byte) {
	dc.entries.Add(key, &cached{allow: d.Allow, reasons: d.Reasons, missing: d.Missing, revision: d.Revision, units: units})
}

// CacheStats are the decision cache's counters (zero when it is off).
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
}

// CacheStats reports the decision cache's hits, misses and size.
func (s *Service) CacheStats() CacheStats {
	if s.cache == nil {
		return CacheStats{}
	}
	return CacheStats{Hits: s.cache.hits.Load(), Misses: s.cache.misses.Load(), Entries: s.cache.entries.Len()}
}
