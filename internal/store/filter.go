package store

import (
	"bytes"
	"hash/maphash"
	"iter"
	"math/bits"
	"sync"
	"sync/atomic"
)

// UnitFilter is a Bloom filter of the data.store units that hold a key. A
// backend keeps one so that a read of a unit holding nothing answers
// without a seek in a tree of a million keys: most users are in no group,
// yet every decision looks up their memberships (3 µs a seek at 1M, most of
// it cache misses).
//
// Invariant: MayHold is false only for a unit that holds no key in any
// state a reader can see. A backend adds a key (Add) before the transaction
// that puts it can be read, and nothing is ever removed — a unit emptied
// since stays "maybe", which costs a seek, as without the filter. A wrong
// "holds nothing" would be a wrong answer (a missed group membership can
// be a missed deny of a group's member, or a wrong allow through a group),
// so everything here errs towards "maybe".
//
// Only data.store ("d") keys at or below their unit's depth are filtered:
// a read of anything else, or of a subtree above a unit, is always "maybe".
//
// The filter grows instead of filling up: when the units added pass its
// capacity, a filter four times larger takes the new units, and MayHold
// asks each filter (at 1M assignments: two or three). Add is safe for
// concurrent use with MayHold and with itself.
type UnitFilter struct {
	seed    maphash.Seed
	mu      sync.Mutex // serialises Add's growing
	filters atomic.Pointer[[]*bloom]
	last    unitBuf // the unit Add added last: sorted keys repeat it
}

type unitBuf struct{ b []byte }

// bloom is one blocked Bloom filter: every unit sets bitsPerUnit bits of
// one 512-bit block (a cache line), so a lookup reads one line.
type bloom struct {
	blocks   []atomic.Uint64 // wordsPerBlock words per block
	nblocks  uint64
	capacity int          // units it takes before the next filter starts
	added    atomic.Int64 // units whose bits were not all set yet
}

const (
	wordsPerBlock = 8  // 512 bits
	bitsPerUnit   = 6  // k
	bitsOfSpace   = 16 // bits of filter per unit of capacity: ~0.2 % false "maybe" when full
	minCapacity   = 1 << 16
	growth        = 4
)

// NewUnitFilter is an empty filter sized for units (at least minCapacity).
func NewUnitFilter(units int) *UnitFilter {
	f := &UnitFilter{seed: maphash.MakeSeed()}
	first := []*bloom{newBloom(max(units, minCapacity))}
	f.filters.Store(&first)
	return f
}

func newBloom(capacity int) *bloom {
	n := uint64(capacity) * bitsOfSpace / (64 * wordsPerBlock)
	n = max(1, n)
	return &bloom{blocks: make([]atomic.Uint64, n*wordsPerBlock), nblocks: n, capacity: capacity}
}

// FilterUnits is the filter of the units of keys (a store's keys in
// ascending order, as a backend reads them at open), sized for them.
func FilterUnits(keys iter.Seq[[]byte]) *UnitFilter {
	seed := maphash.MakeSeed()
	var hashes []uint64
	var last []byte
	for k := range keys {
		if len(last) > 0 && bytes.HasPrefix(k, last) && len(k) > len(last) && k[len(last)] == sep {
			continue // sorted keys: a unit's keys follow each other
		}
		unit, ok := unitOfDoc(k)
		if !ok {
			continue
		}
		last = append(last[:0], unit...)
		hashes = append(hashes, maphash.Bytes(seed, unit))
	}
	f := NewUnitFilter(len(hashes) + len(hashes)/4)
	f.seed = seed
	b := (*f.filters.Load())[0]
	for _, h := range hashes {
		if b.set(h) {
			b.added.Add(1)
		}
	}
	return f
}

// unitOfDoc is the unit of a data.store key (or scan prefix) at or below
// its unit's depth; ok is false for any other key.
func unitOfDoc(key []byte) (unit []byte, ok bool) {
	if len(key) < 2 || key[0] != nsDoc[0] || key[1] != sep {
		return nil, false
	}
	unit = UnitOf(key)
	// UnitOf gives back a key shallower than its unit (or of an unknown
	// index) whole: count its segments to tell.
	first := bytes.IndexByte(key[2:], sep)
	if first < 0 {
		return nil, false
	}
	depth, known := unitDepth[string(key[:2+first])]
	if !known || bytes.Count(unit, []byte{sep})+1 != depth {
		return nil, false
	}
	return unit, true
}

// Add records that key (a key about to be written) holds a value. Keys
// other than data.store's are ignored.
func (f *UnitFilter) Add(key []byte) {
	unit, ok := unitOfDoc(key)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if bytes.Equal(unit, f.last.b) {
		return
	}
	f.last.b = append(f.last.b[:0], unit...)
	fs := *f.filters.Load()
	b := fs[len(fs)-1]
	if b.set(maphash.Bytes(f.seed, unit)) && int(b.added.Add(1)) >= b.capacity {
		grown := append(fs[:len(fs):len(fs)], newBloom(b.capacity*growth))
		f.filters.Store(&grown)
	}
}

// MayHold reports whether the unit of key (a key, or a scan prefix ending
// with the separator) may hold a key: false only for a data.store unit
// never added.
func (f *UnitFilter) MayHold(key []byte) bool {
	unit, ok := unitOfDoc(key)
	if !ok {
		return true
	}
	h := maphash.Bytes(f.seed, unit)
	for _, b := range *f.filters.Load() {
		if b.has(h) {
			return true
		}
	}
	return false
}

// block is the block of hash h: h's share of the blocks, by its high bits
// (no modulo).
func (b *bloom) block(h uint64) []atomic.Uint64 {
	hi, _ := bits.Mul64(h, b.nblocks)
	return b.blocks[hi*wordsPerBlock : (hi+1)*wordsPerBlock]
}

// positions are h's bitsPerUnit bit positions in its block (0–511), nine
// bits each of a remix of h (splitmix64's finaliser), so they do not
// follow the block's choice.
func positions(h uint64) uint64 {
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

// set sets h's bits; it reports whether one of them was not set yet.
func (b *bloom) set(h uint64) bool {
	blk, ps := b.block(h), positions(h)
	fresh := false
	for range bitsPerUnit {
		p := ps & 511
		ps >>= 9
		m := uint64(1) << (p & 63)
		if blk[p>>6].Or(m)&m == 0 {
			fresh = true
		}
	}
	return fresh
}

func (b *bloom) has(h uint64) bool {
	blk, ps := b.block(h), positions(h)
	for range bitsPerUnit {
		p := ps & 511
		ps >>= 9
		if blk[p>>6].Load()&(uint64(1)<<(p&63)) == 0 {
			return false
		}
	}
	return true
}
