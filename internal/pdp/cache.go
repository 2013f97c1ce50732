package pdp

import (
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// decisionCache remembers decisions so that a repeated question is answered
// without evaluating the policies, and never stale:
//
//   - the key is the active policy (a compiled bundle: a swap makes every
//     old entry unreachable), the store's epoch (a replica emptied and
//     loaded afresh numbers its revisions anew: store.Changes.Forget) and
//     the check as the policies see it;
//   - an entry keeps the store revision it was decided at and the units
//     of the store it read (store.Tracked); it answers only while none of
//     those units changed after that revision (store.Changes), and then
//     answers for the revision the store is at now — the decision made
//     now would read the same data and so be the same.
//
// A write therefore invalidates exactly the decisions that read what it
// changed (the subject's grants and groups, a role, a project), not the
// whole cache.
//
// A decision is kept only the second time its question is asked (the
// doorkeeper of TinyLFU): a sweep of one-off questions — every user
// checked once by a batch job, the bench's cold set — would otherwise fill
// the cache with entries of about 1.4 KiB that are never read again,
// evicting the questions asked all the time and holding the heap (and the
// collector's work) at the cache's full size. The price is one more
// evaluation of a question asked twice.
//
// The entries are bounded in number (--decision-cache-size) and in bytes:
// an entry's size is its key's (at most maxCacheKey) and what it keeps —
// the units its decision read, its reasons and what is missing — and the
// units grow with the groups a check asserts (a unit or more each), which
// a key of 1 KiB names by the hundred: 256 one-byte groups made entries of
// some 18 KiB, 1.8 GB held at the default 100,000 entries, from checks
// anyone may send. The entries' sizes (entryCost) are held to
// maxCacheBytesPerEntry times the entries the cache keeps, the least
// recently used evicted past it.
type decisionCache struct {
	entries *lru.Cache[string, *cached]
	// mu orders puts, so that bytes (the entries' entryCost, kept up by
	// put and the eviction callback) is the sum of the entries' costs.
	mu       sync.Mutex
	bytes    int64
	maxBytes int64
	seen     doorkeeper
	hits     atomic.Uint64
	misses   atomic.Uint64
	// firsts counts decisions not kept because their question was new.
	firsts atomic.Uint64
}

type cached struct {
	allow    bool
	reasons  []map[string]any
	missing  []map[string]any
	revision uint64
	units    [][]byte
	cost     int64 // entryCost
}

// DefaultCacheSize is how many decisions the cache keeps by default.
const DefaultCacheSize = 100_000

func newDecisionCache(size int) *decisionCache {
	if size <= 0 {
		return nil
	}
	dc := &decisionCache{maxBytes: math.MaxInt64} // a size too large to multiply: no bound but its entries
	if int64(size) <= math.MaxInt64/maxCacheBytesPerEntry {
		dc.maxBytes = int64(size) * maxCacheBytesPerEntry
	}
	c, err := lru.NewWithEvict(size, func(_ string, e *cached) { dc.bytes -= e.cost })
	if err != nil {
		return nil
	}
	dc.entries = c
	dc.seen.init(size)
	return dc
}

// maxCacheKey bounds a kept decision's key: the cache holds a number of
// entries, and a key is as long as the check a client sent (a body up to
// --body-limit); a check with a longer key (a large context) is decided
// and not kept, so the cache's memory stays bounded by what its own
// entries take.
const maxCacheKey = 1 << 10

// cacheKey is the cache key of a check under a policy generation and a
// store epoch: every field the policies' input has (Check.Input), each
// length-prefixed, so that two checks share a key only if their inputs are
// the same. The context, any JSON, is appendValue's (map keys sorted); a
// check has none mostly. Not min_revision: not part of the input. A key
// over maxCacheKey is not cacheable.
func cacheKey(generation, epoch uint64, c permatrix.Check) (string, bool) {
	var scratch [256]byte
	b := binary.AppendUvarint(scratch[:0], generation)
	b = binary.AppendUvarint(b, epoch)
	b = appendField(b, c.Subject)
	b = appendField(b, c.System)
	b = appendField(b, c.Action)
	if r := c.Resource; r != nil {
		b = append(b, 1)
		b = appendField(b, r.Type)
		b = appendField(b, r.ID)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Groups)))
	for _, g := range c.Groups {
		if b = appendField(b, g); len(b) > maxCacheKey {
			return "", false
		}
	}
	if c.Context != nil {
		b = append(b, 1)
		var ok bool
		if b, ok = appendValue(b, c.Context); !ok {
			return "", false
		}
	}
	if len(b) > maxCacheKey {
		return "", false
	}
	return string(b), true
}

// appendValue appends x, a context value, tagged by its kind (false once
// b is over maxCacheKey: a client's large context is not walked to the
// end for a key that will not be kept): strings and
// keys length-prefixed with their bytes as they are (the policies see a
// string's bytes, invalid UTF-8 included, where encoding/json would write
// every invalid byte as \ufffd), a nil slice or map as the empty one
// (jsonTerm makes both an empty array or object). A kind jsonTerm leaves
// to ast.InterfaceToValue (which goes through encoding/json) is
// encoding/json's text.
func appendValue(b []byte, x any) ([]byte, bool) {
	switch x := x.(type) {
	case nil:
		return append(b, 'n'), true
	case bool:
		if x {
			return append(b, 't'), true
		}
		return append(b, 'f'), true
	case string:
		return appendField(append(b, 's'), x), true
	case json.Number:
		return appendField(append(b, '#'), string(x)), true
	case map[string]any:
		b = binary.AppendUvarint(append(b, 'o'), uint64(len(x)))
		var ok bool
		for _, k := range slices.Sorted(maps.Keys(x)) {
			b = appendField(b, k)
			if b, ok = appendValue(b, x[k]); !ok || len(b) > maxCacheKey {
				return b, false
			}
		}
		return b, true
	case []any:
		b = binary.AppendUvarint(append(b, 'a'), uint64(len(x)))
		var ok bool
		for _, v := range x {
			if b, ok = appendValue(b, v); !ok || len(b) > maxCacheKey {
				return b, false
			}
		}
		return b, true
	}
	raw, err := json.Marshal(x)
	if err != nil {
		return b, false
	}
	return appendField(append(b, 'j'), string(raw)), true
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// get answers key (made in the store's epoch) from the cache if the entry
// is still true at revision now (read before the call) in changes — and
// the epoch still the store's: now may be a revision numbered anew.
func (dc *decisionCache) get(key string, epoch uint64, changes *store.Changes, now uint64) (*permatrix.Decision, bool) {
	e, ok := dc.entries.Get(key)
	if !ok || e.revision > now || changes.Epoch() != epoch || changes.ChangedAfter(e.revision, e.units) {
		dc.misses.Add(1)
		return nil, false
	}
	dc.hits.Add(1)
	return &permatrix.Decision{Allow: e.allow, Revision: now, Reasons: e.reasons, Missing: e.missing}, true
}

// keeps says whether the decision of key, about to be made, will be kept:
// its question was asked before (it is in the cache, stale, or the
// doorkeeper saw it). Asked once per evaluation, before it: the doorkeeper
// notes the question as it answers, and a decision not kept needs no
// record of what it read.
func (dc *decisionCache) keeps(key string) bool {
	if !dc.entries.Contains(key) && !dc.seen.sawBefore(key) {
		dc.firsts.Add(1)
		return false
	}
	return true
}

// maxCacheBytesPerEntry is what the cache's entries take on average at
// most (entryCost): the cache holds at most that many bytes an entry it
// may keep. An ordinary decision's entry is some 1 KiB.
const maxCacheBytesPerEntry = 2 << 10

// put remembers a decision made over a tracked snapshot (keeps said so),
// evicting the least recently used entries past the cache's bytes. A
// decision larger than the whole budget is not kept.
func (dc *decisionCache) put(key string, d *permatrix.Decision, units [][]byte) {
	e := &cached{allow: d.Allow, reasons: d.Reasons, missing: d.Missing, revision: d.Revision, units: units}
	e.cost = entryCost(key, e)
	if e.cost > dc.maxBytes {
		return
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	// Add replaces a kept entry of the key without the eviction callback.
	if old, ok := dc.entries.Peek(key); ok {
		dc.bytes -= old.cost
	}
	dc.entries.Add(key, e) // may evict the oldest (the callback counts it)
	dc.bytes += e.cost
	for dc.bytes > dc.maxBytes {
		if _, _, ok := dc.entries.RemoveOldest(); !ok {
			break
		}
	}
}

// size is the entries' entryCost.
func (dc *decisionCache) size() int64 {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.bytes
}

// entryCost estimates the bytes an entry holds: its key, the entry and
// the cache's element for it, its units (a slice header each and their
// bytes), its reasons and what is missing (valueCost).
func entryCost(key string, e *cached) int64 {
	n := int64(len(key)) + 160 // the key's header, the element, the entry
	n += int64(24 * len(e.units))
	for _, u := range e.units {
		n += int64(len(u))
	}
	for _, l := range [][]map[string]any{e.reasons, e.missing} {
		n += int64(24 * len(l))
		for _, m := range l {
			n += valueCost(m)
		}
	}
	return n
}

// valueCost estimates the bytes of a decoded JSON value: a map's buckets
// (some 64 bytes a key with its value's interface), a slice's elements,
// strings' headers and bytes.
func valueCost(x any) int64 {
	switch x := x.(type) {
	case string:
		return 16 + int64(len(x))
	case map[string]any:
		n := int64(48)
		for k, v := range x {
			n += 48 + int64(len(k)) + valueCost(v)
		}
		return n
	case []any:
		n := int64(24)
		for _, v := range x {
			n += 16 + valueCost(v)
		}
		return n
	case []map[string]any:
		n := int64(24)
		for _, v := range x {
			n += 8 + valueCost(v)
		}
		return n
	}
	return 16
}

// doorkeeper remembers which questions were asked lately: a Bloom filter
// of their keys, two bits a key out of 16 a cache entry, cleared after as
// many new keys as the cache holds (so "lately" spans about one cache's
// worth of questions). A false positive only keeps a one-off decision;
// races between readers, writers and the clearing lose or add a bit, never
// more. Its memory is fixed: 2 bytes an entry of the cache's size (up to
// doorkeeperMax entries).
type doorkeeper struct {
	bits  atomic.Pointer[[]atomic.Uint64]
	added atomic.Int64
	limit int64
	seed  maphash.Seed
}

// doorkeeperMax bounds the questions a doorkeeper remembers (32 MiB of
// filter): a cache that large holds about 23 GiB of decisions, and the
// filter is allocated at once, whatever --decision-cache-size asks for.
const doorkeeperMax = 1 << 24

func (k *doorkeeper) init(size int) {
	k.limit = int64(min(size, doorkeeperMax))
	k.seed = maphash.MakeSeed()
	k.clear()
}

func (k *doorkeeper) clear() {
	words := make([]atomic.Uint64, max(1, (16*k.limit+63)/64))
	k.bits.Store(&words)
	k.added.Store(0)
}

// sawBefore reports whether key was added since the last clearing, and
// adds it. The key that finds the filter full clears it and is the first
// of the new one: forgetting it too would keep nothing at size 1, and
// never keep a working set of exactly the cache's size asked in turn.
func (k *doorkeeper) sawBefore(key string) bool {
	h := maphash.String(k.seed, key)
	if k.mark(*k.bits.Load(), h) {
		return true
	}
	if k.added.Add(1) > k.limit {
		k.clear()
		k.mark(*k.bits.Load(), h)
		k.added.Add(1)
	}
	return false
}

// mark sets the two bits of hash h in words and reports whether both were
// set already.
func (k *doorkeeper) mark(words []atomic.Uint64, h uint64) bool {
	n := uint64(len(words)) * 64
	seen := true
	for _, i := range [2]uint64{h % n, (h >> 32) * 0x9e3779b97f4a7c15 % n} {
		w, bit := &words[i/64], uint64(1)<<(i%64)
		if old := w.Load(); old&bit == 0 {
			seen = false
			w.Or(bit)
		}
	}
	return seen
}

// CacheStats are the decision cache's counters (zero when it is off).
type CacheStats struct {
	Hits, Misses uint64
	// Firsts are decisions not kept because their question was new.
	Firsts  uint64
	Entries int
	// Bytes is the entries' estimated size (entryCost).
	Bytes int64
}

// CacheStats reports the decision cache's hits, misses and size.
func (s *Service) CacheStats() CacheStats {
	if s.cache == nil {
		return CacheStats{}
	}
	return CacheStats{Hits: s.cache.hits.Load(), Misses: s.cache.misses.Load(), Firsts: s.cache.firsts.Load(), Entries: s.cache.entries.Len(), Bytes: s.cache.size()}
}
