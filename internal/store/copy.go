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
	// included (etcd refuses a transaction over --max-txn-ops, 128 by
	// default).
	BatchOps int
	// Progress, if set, is told how many keys each commit wrote.
	Progress func(keys int)
}

// Copy writes every key of from into to, in key order, a batch at a time,
// and raises to's id counter above the copied assignment ids. Keys — ids
// included — are copied as they are. It returns the keys written.
func Copy(ctx context.Context, from Snapshot, to Backend, o CopyOptions) (int, error) {
	if o.BatchOps <= 0 {
		o.BatchOps = 10_000
	}
	var maxID uint64
	var batch Batch
	units := map[string]bool{}
	n := 0
	flush := func() error {
		if len(batch.Ops) == 0 {
			return nil
		}
		batch.Base = to.Revision()
		if _, err := to.Commit(ctx, &batch); err != nil {
			return err
		}
		n += len(batch.Ops)
		if o.Progress != nil {
			o.Progress(len(batch.Ops))
		}
		batch = Batch{}
		clear(units)
		return nil
	}
	err := from.Scan(nil, nil, func(k, v []byte) error {
		if id, ok := assignmentNumber(k); ok {
			maxID = max(maxID, id)
		}
		fresh := 0
		for _, u := range WriteUnits(k) {
			if !units[string(u)] {
				fresh++
			}
		}
		if len(batch.Ops)+1+len(units)+fresh > o.BatchOps {
			if err := flush(); err != nil {
				return err
			}
		}
		for _, u := range WriteUnits(k) {
			units[string(u)] = true
		}
		batch.Ops = append(batch.Ops, Op{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
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

// Clear deletes every key of a backend, a batch at a time.
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
	if batchOps <= 0 {
		batchOps = 10_000
	}
	step := max(1, batchOps/4) // room for the guards of each key's units
	for i := 0; i < len(keys); i += step {
		batch := &Batch{Base: b.Revision()}
		for _, k := range keys[i:min(i+step, len(keys))] {
			batch.Ops = append(batch.Ops, Op{Key: k, Delete: true})
		}
		if _, err := b.Commit(ctx, batch); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// Count is the number of keys of a snapshot.
func Count(s Snapshot) (int, error) {
	n := 0
	err := s.Scan(nil, nil, func(_, _ []byte) error { n++; return nil })
	return n, err
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
