package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
)

// Memory is a Backend in memory: for what works on a throwaway state (the
// matrix's probe store, a replay over an export) and for tests of the
// layers above. It keeps every promise of Backend except durability.
// Snapshots are copy-on-write clones of the tree, so a View is cheap and
// never sees a later commit.
type Memory struct {
	mu      sync.Mutex
	tree    *btree.BTreeG[pending]
	rev     uint64
	seq     atomic.Uint64
	changes *Changes
	applied chan struct{}
}

// NewMemory returns an empty store at revision 0.
func NewMemory() *Memory {
	return &Memory{tree: btree.NewG(16, lessPending), changes: NewChanges(0, 0), applied: make(chan struct{})}
}

// View returns a snapshot of the current state.
func (m *Memory) View() (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &memSnapshot{tree: m.tree.Clone(), rev: m.rev}, nil
}

// Commit applies b if none of its reads changed after its base.
func (m *Memory) Commit(ctx context.Context, b *Batch) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changes.ChangedAfter(b.Base, b.Reads) {
		return 0, ErrConflict
	}
	if len(b.Ops) == 0 {
		return m.rev, nil
	}
	m.rev++
	for _, op := range b.Ops {
		if op.Delete {
			m.tree.Delete(pending{key: op.Key})
		} else {
			m.tree.ReplaceOrInsert(pending{key: bytes.Clone(op.Key), value: bytes.Clone(op.Value)})
		}
	}
	m.changes.Record(m.rev, b.Writes())
	close(m.applied)
	m.applied = make(chan struct{})
	return m.rev, nil
}

// Revision is the latest revision.
func (m *Memory) Revision() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// Wait returns once the revision is at least rev.
func (m *Memory) Wait(ctx context.Context, rev uint64) error {
	for {
		m.mu.Lock()
		cur, ch := m.rev, m.applied
		m.mu.Unlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Fresh has nothing to wait for: every commit is made here.
func (m *Memory) Fresh(context.Context) error { return nil }

// NextID reserves the next assignment number.
func (m *Memory) NextID(context.Context) (uint64, error) { return m.seq.Add(1), nil }

// Changes is the index of recent unit changes.
func (m *Memory) Changes() *Changes { return m.changes }

// Health is always ready.
func (m *Memory) Health() Health { return Health{Ready: true, Revision: m.Revision()} }

// Close does nothing.
func (m *Memory) Close() error { return nil }

type memSnapshot struct {
	tree *btree.BTreeG[pending]
	rev  uint64
}

func (s *memSnapshot) Revision() uint64 { return s.rev }

func (s *memSnapshot) Get(key []byte) ([]byte, error) {
	if p, ok := s.tree.Get(pending{key: key}); ok {
		return p.value, nil
	}
	return nil, nil
}

func (s *memSnapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		start = append(bytes.Clone(after), 0)
	}
	var err error
	s.tree.AscendGreaterOrEqual(pending{key: start}, func(p pending) bool {
		if !bytes.HasPrefix(p.key, prefix) {
			return false
		}
		err = fn(bytes.Clone(p.key), p.value)
		return err == nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

func (s *memSnapshot) Close() error { return nil }
