package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// IDFloor is a backend whose assignment-number counter can be raised: after
// a copy, new ids must come after the copied ones.
type IDFloor interface {
	// RaiseIDs makes every number NextID hands out from now on greater
	// than n.
	RaiseIDs(ctx context.Context, n uint64) error
}

// CopyOptions tune Copy.
type CopyOptions struct {
	// BatchOps bounds the operations of one commit, the guards it writes
	// included (default 10,000). Into a backend whose commits have a size
	// limit (Bounded: etcd), a batch is also kept within it.
	BatchOps int
	// Progress, if set, is told how many keys each commit wrote.
	Progress func(keys int)
}

// filling is a batch being filled up to a number of operations (guards
// included) and the limits of a Bounded backend.
type filling struct {
	Batch
	maxOps  int
	bounded Bounded // nil: no limit but maxOps
	units   map[string]bool
	size    Size
}

func newFilling(to Backend, maxOps int) *filling {
	if maxOps <= 0 {
		maxOps = 10_000
	}
	b, _ := to.(Bounded)
	return &filling{maxOps: maxOps, bounded: b, units: map[string]bool{}}
}

// full reports whether op would take the batch past its limits (never
// while it is empty: a key that fits no batch is the commit's to refuse).
func (f *filling) full(op Op) bool {
	if len(f.Ops) == 0 {
		return false
	}
	next := f.size
	next.Ops++
	next.OpBytes += len(op.Key) + len(op.Value)
	for _, u := range WriteUnits(op.Key) {
		if !f.units[string(u)] {
			next.Writes++
			next.WriteBytes += len(u)
		}
	}
	if next.Ops+next.Writes > f.maxOps {
		return true
	}
	return f.bounded != nil && f.bounded.Fits(next) != nil
}

func (f *filling) add(op Op) {
	f.Ops = append(f.Ops, op)
	f.size.Ops++
	f.size.OpBytes += len(op.Key) + len(op.Value)
	for _, u := range WriteUnits(op.Key) {
		if !f.units[string(u)] {
			f.units[string(u)] = true
			f.size.Writes++
			f.size.WriteBytes += len(u)
		}
	}
}

// commit commits the batch, if it holds anything, and empties it.
func (f *filling) commit(ctx context.Context, to Backend) (int, error) {
	n := len(f.Ops)
	if n == 0 {
		return 0, nil
	}
	f.Epoch = to.Changes().Epoch() // planned on nothing of to's but its revision
	f.Base = to.Revision()
	if _, err := to.Commit(ctx, &f.Batch); err != nil {
		return 0, err
	}
	f.Batch, f.size = Batch{}, Size{}
	clear(f.units)
	return n, nil
}

// Copy writes every key of from into to, in key order, a batch at a time,
// and raises to's id counter above the copied assignment ids. Keys — ids
// included — are copied as they are. It returns the keys written.
func Copy(ctx context.Context, from Snapshot, to Backend, o CopyOptions) (int, error) {
	var maxID uint64
	batch := newFilling(to, o.BatchOps)
	n := 0
	flush := func() error {
		k, err := batch.commit(ctx, to)
		if err != nil {
			return err
		}
		n += k
		if o.Progress != nil && k > 0 {
			o.Progress(k)
		}
		return nil
	}
	err := from.Scan(nil, nil, func(k, v []byte) error {
		if id, ok := assignmentNumber(k); ok {
			maxID = max(maxID, id)
		}
		op := Op{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)}
		if batch.full(op) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch.add(op)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, err
	}
	if f, ok := to.(IDFloor); ok && maxID > 0 {
		if err := f.RaiseIDs(ctx, maxID); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Clear deletes every key of a backend, a batch at a time (batchOps as
// CopyOptions.BatchOps).
func Clear(ctx context.Context, b Backend, batchOps int) (int, error) {
	snap, err := b.View()
	if err != nil {
		return 0, err
	}
	var keys [][]byte
	err = snap.Scan(nil, nil, func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	snap.Close()
	if err != nil {
		return 0, err
	}
	batch := newFilling(b, batchOps)
	n := 0
	for _, k := range keys {
		op := Op{Key: k, Delete: true}
		if batch.full(op) {
			c, err := batch.commit(ctx, b)
			if err != nil {
				return n, err
			}
			n += c
		}
		batch.add(op)
	}
	c, err := batch.commit(ctx, b)
	return n + c, err
}

// Count is the number of keys of a snapshot.
func Count(s Snapshot) (int, error) {
	n := 0
	err := s.Scan(nil, nil, func(_, _ []byte) error { n++; return nil })
	return n, err
}

// HighestAssignmentNumber is the highest number of the ids snap holds in
// the form IDFormat gives (0: none): where a counter found missing is
// raised from (internal/etcd). One pass over the assignments' index.
func HighestAssignmentNumber(snap Snapshot) (uint64, error) {
	var highest uint64
	err := snap.Scan(Prefix(nsIndex, ixAssignments), nil, func(k, _ []byte) error {
		if n, ok := assignmentNumber(k); ok {
			highest = max(highest, n)
		}
		return nil
	})
	return highest, err
}

// assignmentNumber is the number of an "i assignments" key's id, if it has
// the form IDFormat gives.
func assignmentNumber(k []byte) (uint64, bool) {
	prefix := string(Prefix(nsIndex, ixAssignments))
	id, ok := strings.CutPrefix(string(k), prefix)
	if !ok || !strings.HasPrefix(id, "a") {
		return 0, false
	}
	n, err := strconv.ParseUint(id[1:], 10, 64)
	if err != nil || fmt.Sprintf(IDFormat, n) != id {
		return 0, false
	}
	return n, true
}
