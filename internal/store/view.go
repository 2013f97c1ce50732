package store

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"
)

// Overlay is a snapshot with a batch's pending operations laid over it: the
// state as it will be once they are applied. Planning the k-th write of a
// batch reads through it, so it sees the writes before it.
type Overlay struct {
	base    Snapshot
	ops     []Op
	tree    *btree.BTreeG[pending]
	written map[string]struct{} // WriteUnits of every pending key
	writes  [][]byte            // the same units, in the order first written (Batch.Writes)
	units   [][]byte            // add's buffer of one key's write units
	strs    unitStrings         // written's keys
	// opBytes and writtenBytes measure ops and written (Size).
	opBytes, writtenBytes int
}

// pending is an operation in the tree, its key and value as Put was given
// them (the operations keep them too): no copy of either.
type pending struct {
	key     []byte
	value   []byte
	deleted bool
}

func lessPending(a, b pending) bool { return bytes.Compare(a.key, b.key) < 0 }

// NewOverlay lays no operations over base yet.
func NewOverlay(base Snapshot) *Overlay {
	return &Overlay{base: base, tree: btree.NewG(16, lessPending), written: map[string]struct{}{}}
}

// Put records a pending write of key. The overlay keeps key and value (its
// operations are the commit's): neither is to be changed after.
func (o *Overlay) Put(key, value []byte) {
	o.add(Op{Key: key, Value: value})
}

// grow makes room for n more operations and written units (Tx.Grow).
func (o *Overlay) grow(n int) {
	o.ops = slices.Grow(o.ops, n)
	o.writes = slices.Grow(o.writes, n)
	// The map too, while empty (a map is not grown in place): grown by
	// doubling, each doubling a copy, it was a tenth of an import's
	// allocated bytes with the Tx's map of reads (Tracked.grow).
	if len(o.written) == 0 {
		o.written = make(map[string]struct{}, n)
	}
}

// Delete records a pending removal of key.
func (o *Overlay) Delete(key []byte) {
	o.add(Op{Key: key, Delete: true})
}

func (o *Overlay) add(op Op) {
	o.ops = append(o.ops, op)
	o.tree.ReplaceOrInsert(pending{key: op.Key, value: op.Value, deleted: op.Delete})
	o.opBytes += len(op.Key) + len(op.Value)
	// A key's units go from its own to the root, and a unit is written
	// with every one after it (they depend on it alone): from the first
	// one written already, the rest are too. Each looked up was some
	// sixteen map lookups an import line on its serial planning.
	o.units = AppendWriteUnits(o.units[:0], op.Key)
	for _, u := range o.units {
		if _, ok := o.written[string(u)]; ok {
			break
		}
		o.written[o.strs.of(u)] = struct{}{}
		o.writes = append(o.writes, u)
		o.writtenBytes += len(u)
	}
}

// Truncate drops the pending operations after the first n: the overlay is
// as it was when it had n. (Rebuilt from the ops kept: a rare step, taken
// at most once per commit planned.)
func (o *Overlay) Truncate(n int) {
	if n >= len(o.ops) {
		return
	}
	ops := o.ops[:n]
	o.ops, o.tree, o.written, o.writes, o.opBytes, o.writtenBytes = nil, btree.NewG(16, lessPending), map[string]struct{}{}, nil, 0, 0
	o.strs = unitStrings{}
	for _, op := range ops {
		o.add(op)
	}
}

// Changes reports whether the pending operations change any of units: a
// read recorded as one of them (Tracked) may read something else now.
func (o *Overlay) Changes(units [][]byte) bool {
	for _, u := range units {
		if _, ok := o.written[string(u)]; ok {
			return true
		}
	}
	return false
}

// Ops are the pending operations in the order they were made.
func (o *Overlay) Ops() []Op { return o.ops }

// Size measures the pending operations and the units they write (the reads
// are the Tracked's).
func (o *Overlay) Size() Size {
	return Size{Ops: len(o.ops), OpBytes: o.opBytes, Writes: len(o.written), WriteBytes: o.writtenBytes}
}

// Revision is the base snapshot's.
func (o *Overlay) Revision() uint64 { return o.base.Revision() }

// Get returns the pending value of key if there is one, else the base's.
// A key whose unit no pending operation writes is not pending: one map
// lookup rather than a search of the tree (an import line's two lookups in
// its plan, of its grant and of its new id, are of keys nothing pending
// has, and the tree's search was a tenth of the plan).
func (o *Overlay) Get(key []byte) ([]byte, error) {
	if _, ok := o.written[string(UnitOf(key))]; !ok {
		return o.base.Get(key)
	}
	if p, ok := o.tree.Get(pending{key: key}); ok {
		if p.deleted {
			return nil, nil
		}
		return p.value, nil
	}
	return o.base.Get(key)
}

// Scan merges the base's keys with the pending ones, pending winning.
func (o *Overlay) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	var mine []pending
	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		start = append(append(make([]byte, 0, len(after)+1), after...), 0) // the smallest key after `after`
	}
	o.tree.AscendGreaterOrEqual(pending{key: start}, func(p pending) bool {
		if !bytes.HasPrefix(p.key, prefix) {
			return false
		}
		mine = append(mine, p)
		return true
	})
	if len(mine) == 0 {
		return o.base.Scan(prefix, after, fn)
	}
	// The base's scan ends without an error when fn stops it: stopped
	// keeps the pending keys after that point from being emitted.
	stopped := false
	stop := fn
	fn = func(k, v []byte) error {
		err := stop(k, v)
		if errors.Is(err, ErrStop) {
			stopped = true
		}
		return err
	}
	i := 0
	emitBefore := func(k []byte) error {
		for ; i < len(mine) && (k == nil || bytes.Compare(mine[i].key, k) < 0); i++ {
			if !mine[i].deleted {
				if err := fn(mine[i].key, mine[i].value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := o.base.Scan(prefix, after, func(k, v []byte) error {
		if err := emitBefore(k); err != nil {
			return err
		}
		if i < len(mine) && bytes.Equal(mine[i].key, k) {
			p := mine[i]
			i++
			if p.deleted {
				return nil
			}
			return fn(k, p.value)
		}
		return fn(k, v)
	})
	if err == nil && !stopped {
		err = emitBefore(nil)
	}
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// Close closes the base snapshot.
func (o *Overlay) Close() error { return o.base.Close() }

// Tracked is a snapshot that records the unit of every key and prefix read
// through it: the read set a commit is guarded by. Its record is safe for
// concurrent use; reads from several goroutines at once also need a
// Snapshot that allows them (Snapshot: a bolt snapshot does not).
type Tracked struct {
	Snapshot
	mu    sync.Mutex
	units map[string]int // unit → how many units were recorded before it (Forget)
	bytes int            // of the units
	strs  unitStrings    // units' keys
}

// Track starts recording reads of s.
func Track(s Snapshot) *Tracked { return &Tracked{Snapshot: s, units: map[string]int{}} }

func (t *Tracked) record(key []byte) {
	u := UnitOf(key)
	t.mu.Lock()
	t.add(u)
	t.mu.Unlock()
}

// add records u (t.mu held).
func (t *Tracked) add(u []byte) {
	if _, ok := t.units[string(u)]; !ok {
		t.units[t.strs.of(u)] = len(t.units)
		t.bytes += len(u)
	}
}

// grow makes room for n units in the map while it is empty (Tx.Grow).
func (t *Tracked) grow(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.units) == 0 {
		t.units = make(map[string]int, n)
	}
}

// Reset forgets every unit recorded: the Tracked records anew, as a new
// one would. Its map keeps its room: one Tracked reset between the
// verdicts judged ahead of an import's lines (pdp's prejudge) was a map
// and its growth a line.
func (t *Tracked) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.units)
	t.bytes = 0
}

// Len is how many units are recorded.
func (t *Tracked) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.units)
}

// Forget drops the units recorded after the first n (Len): reads made for
// a change that is taken back (Tx.Rollback).
func (t *Tracked) Forget(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for u, i := range t.units {
		if i >= n {
			delete(t.units, u)
			t.bytes -= len(u)
		}
	}
}

// size is the Size of the reads.
func (t *Tracked) size() (n, bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.units), t.bytes
}

// Get records the key's unit and reads it.
func (t *Tracked) Get(key []byte) ([]byte, error) {
	t.record(key)
	return t.Snapshot.Get(key)
}

// Scan records the prefix's unit and scans it. A scan of a prefix deeper than
// a unit records that unit; shallower, the prefix itself (see UnitOf).
func (t *Tracked) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	t.record(prefix)
	return t.Snapshot.Scan(prefix, after, fn)
}

// Note records units as read: reads made elsewhere, over a snapshot at the
// same revision, that the Tracked's user relies on.
func (t *Tracked) Note(units [][]byte) {
	t.mu.Lock()
	for _, u := range units {
		t.add(u)
	}
	t.mu.Unlock()
}

// Units are the recorded units, sorted: copies in one buffer, each unit's
// capacity its length (an append to one does not write into the next).
func (t *Tracked) Units() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, 0, len(t.units))
	buf := make([]byte, 0, t.bytes)
	for u := range t.units {
		buf = append(buf, u...)
		out = append(out, buf[len(buf)-len(u):len(buf):len(buf)])
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

// unitStrings makes the strings a map of units is keyed by, many from one
// block: a string a unit was an allocation a unit (an import line reads
// two new ones and writes four). Each is a copy of the unit's bytes (a
// reader's key may be a buffer it reuses) in a block only appended to, and
// a block stays while a string of it is kept. Blocks grow from small (a
// decision reads a few units) to blockMax.
type unitStrings struct{ b strings.Builder }

const blockMin, blockMax = 256, 16 << 10

// of is a string of u's bytes.
func (s *unitStrings) of(u []byte) string {
	if s.b.Cap()-s.b.Len() < len(u) {
		size := min(max(blockMin, 2*s.b.Cap()), blockMax)
		// A new block: the strings of the old one keep it.
		s.b = strings.Builder{}
		s.b.Grow(max(size, len(u)))
	}
	start := s.b.Len()
	s.b.Write(u)
	return s.b.String()[start:]
}

// UnitBlocks are the room lists of units are cut from (Tracked.UnitsFrom):
// a list and its bytes are two allocations; from blocks, two a few hundred
// lists (a verdict judged ahead lists its units once per import line).
type UnitBlocks struct {
	list [][]byte
	buf  []byte
}

const unitListBlock, unitBytesBlock = 512, 16 << 10

// UnitsFrom is Units, cut from b's blocks: the list and its units are
// capped at their lengths (an append to one does not write into another),
// and no later list is cut from their room.
func (t *Tracked) UnitsFrom(b *UnitBlocks) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cap(b.list)-len(b.list) < len(t.units) {
		b.list = make([][]byte, 0, max(unitListBlock, len(t.units)))
	}
	if cap(b.buf)-len(b.buf) < t.bytes {
		b.buf = make([]byte, 0, max(unitBytesBlock, t.bytes))
	}
	start := len(b.list)
	for u := range t.units {
		from := len(b.buf)
		b.buf = append(b.buf, u...)
		b.list = append(b.list, b.buf[from:len(b.buf):len(b.buf)])
	}
	out := b.list[start:len(b.list):len(b.list)]
	slices.SortFunc(out, bytes.Compare)
	return out
}

// Empty is a snapshot of an empty store at rev.
func Empty(rev uint64) Snapshot { return emptySnapshot(rev) }

type emptySnapshot uint64

func (e emptySnapshot) Revision() uint64                                { return uint64(e) }
func (emptySnapshot) Get([]byte) ([]byte, error)                        { return nil, nil }
func (emptySnapshot) Scan(_, _ []byte, _ func(k, v []byte) error) error { return nil }
func (emptySnapshot) Close() error                                      { return nil }

// AtRevision is s, reporting rev as its revision (a document rebuilt from
// another copy of the keys, e.g. etcd's own).
func AtRevision(s Snapshot, rev uint64) Snapshot { return revSnapshot{s, rev} }

type revSnapshot struct {
	Snapshot
	rev uint64
}

func (r revSnapshot) Revision() uint64 { return r.rev }
