package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"

	"github.com/google/btree"
)

// Backend is an ordered key-value store with revisions: the one thing the
// bolt and etcd packages implement. It knows nothing of assignments.
//
// Every implementation keeps these promises (storetest checks them):
//
//   - A revision names one state. View returns a snapshot of one revision;
//     the revision only grows.
//   - Commit is atomic and conditional: it applies a batch's operations only
//     if no unit in b.Reads changed after b.Base (else ErrConflict and nothing
//     is applied), and returns only once the change is durable and visible to
//     View — a View after Commit returned revision N sees revision ≥ N.
//     A batch with no operations writes nothing: its answer holds at the
//     revision returned, which is at least b.Base (Unchanged).
//   - A failed Commit applied nothing — or, when the backend lost contact
//     while committing (an EUNAVAILABLE error saying so), everything or
//     nothing; never a part.
type Backend interface {
	// View returns a snapshot of the applied state. Close it promptly: a
	// snapshot can hold resources (a bbolt read transaction).
	View() (Snapshot, error)
	// Commit applies b if none of b.Reads changed after b.Base.
	Commit(ctx context.Context, b *Batch) (revision uint64, err error)
	// Revision is the latest applied revision.
	Revision() uint64
	// Wait returns once the applied revision is at least rev, or ctx ends.
	Wait(ctx context.Context, rev uint64) error
	// Fresh returns once the applied state holds every commit acknowledged
	// before the call, anywhere (a fleet's other sidecars included): a
	// write judged after Fresh never meets a state older than one a client
	// was already told about. A store whose commits all go through this
	// process has nothing to wait for.
	Fresh(ctx context.Context) error
	// NextID reserves the next assignment sequence number. Numbers are never
	// handed out twice, also across restarts and processes; gaps are fine.
	NextID(ctx context.Context) (uint64, error)
	// Changes is the index of recent unit changes (for the decision cache).
	Changes() *Changes
	// Health says whether the store can serve, and why not.
	Health() Health
	// Close releases the backend.
	Close() error
}

// Servable is a backend that can say, without a snapshot, that it serves
// nothing now (an etcd replica being loaded, or of a prefix a store copy
// has not completed): the decision cache asks it before answering from
// what it kept — a kept decision is checked against the units changed
// since it was made, not against whether the state is one to serve. It is
// asked after the revision the answer is given at was read: a backend
// makes a revision it must not serve known here before it publishes it.
type Servable interface {
	Servable() error
}

// Damaged is a backend whose source may hold keys permatrix did not write
// (an etcd replica: another writer under the fleet's prefix), which it
// then does not serve. DamagedKeys names at most max of them, in key
// order, and counts them all: the /metrics gauges.
type Damaged interface {
	DamagedKeys(max int) (keys []string, total int)
}

// Snapshot is a read view of one revision. The byte slices it hands out are
// valid only until Close (they may point into a memory map): copy to keep.
// A snapshot is read by one goroutine at a time unless its backend says
// otherwise (a bolt snapshot counts what its scans read and keeps one
// cursor for its reads). A read made inside a Scan's callback is allowed.
type Snapshot interface {
	// Revision is the revision the snapshot shows.
	Revision() uint64
	// Get returns the value of key, or nil if absent. An error means the
	// value could not be read (corruption), never "absent".
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every key with the prefix that sorts after after
	// (all of them when after is nil), in ascending key order, until fn
	// returns a non-nil error; ErrStop ends the scan without an error.
	Scan(prefix, after []byte, fn func(key, value []byte) error) error
	// Close releases the snapshot.
	Close() error
}

// Health is a backend's state, for /health.
type Health struct {
	// Ready is false while the store cannot be trusted to answer or to take
	// writes: a disk that refuses writes, a replica not loaded yet or too
	// far behind.
	Ready bool `json:"ready"`
	// Revision is the latest applied revision.
	Revision uint64 `json:"revision"`
	// Error says why the store is not ready, since ErrorAt.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitzero"`
	// Replication is what a fleet backend reports of its source (etcd: the
	// latest revision heard of, the lag, the last contact).
	Replication any `json:"replication,omitempty"`
}

// Batch is one atomic commit.
type Batch struct {
	// Base is the revision of the snapshot the batch was planned and judged
	// against.
	Base uint64
	// Reads are the units the planning and the judgement read (UnitOf); the
	// commit fails with ErrConflict if any of them changed after Base.
	Reads [][]byte
	// Ops are applied in order. A batch Tx.Batch made knows the units they
	// write (Writes) while no operation is added or taken away: an
	// operation is not to be changed in place.
	Ops []Op
	// Epoch is the store's epoch (Changes.Epoch) read before the snapshot
	// the batch was planned on (Update sets it). A backend whose store was
	// emptied and loaded afresh since (a new epoch: its revisions are
	// numbered anew, so Base and the guards compare nothing) refuses it
	// with ErrConflict. 0 is a batch planned without one (a test's, made
	// by hand): not compared.
	Epoch uint64
	// planned are Writes as the planning found them (Tx.Batch).
	planned plannedWrites
}

// plannedWrites are a planned batch's Writes, found as its operations
// were planned (the overlay's), while the batch has ops operations: a
// commit does not find them again (every key's units looked up, a string
// made of each new one: an import line's four keys write some fifteen
// units, and the commit found them twice over).
type plannedWrites struct {
	units [][]byte
	ops   int
	// tree is the planning's ordered tree of pending operations, the
	// last of each key (a clone: the Tx may plan on); nil for none.
	tree *btree.BTreeG[pending]
}

// InKeyOrder yields the batch's operations in key order, only the last
// of each key: applied so, they leave a store as Ops applied in order do.
// A planned batch's come from its planning's ordered tree: a sorted copy
// of an import chunk's operations (a list as long as them, sorted on a
// backend's serial commit) was 4 % of an import's CPU. Any other batch's
// are a stably sorted copy of Ops.
func (b *Batch) InKeyOrder() iter.Seq[Op] {
	if b.planned.tree != nil && b.planned.ops == len(b.Ops) {
		tree := b.planned.tree
		return func(yield func(Op) bool) {
			tree.Ascend(func(p pending) bool {
				return yield(Op{Key: p.key, Value: p.value, Delete: p.deleted})
			})
		}
	}
	ops := slices.Clone(b.Ops)
	slices.SortStableFunc(ops, func(a, b Op) int { return bytes.Compare(a.Key, b.Key) })
	return func(yield func(Op) bool) {
		for i, op := range ops {
			if i+1 < len(ops) && bytes.Equal(op.Key, ops[i+1].Key) {
				continue // a later one of the key is applied after it
			}
			if !yield(op) {
				return
			}
		}
	}
}

// Unchanged answers the commit of a batch with nothing to write — an
// answer from its snapshot alone: ErrConflict if a unit it read may have
// changed after its base, else the revision the answer holds at. applied
// is the backend's published revision (Revision), read here before the
// check: a backend records a revision's changes (Changes.Record) before it
// publishes the revision, so the check covers every revision up to it.
//
// The answer is at least b.Base. A snapshot shows a revision as soon as
// it is committed, which is before it is published: a batch planned on it
// has a base the published revision has not reached yet. Answering with
// the published revision then named one at which the answer need not hold
// (the member found at base may have been added there, after it).
//
// A batch planned in another epoch (Batch.Epoch: the store emptied and
// loaded afresh since) conflicts: its base names the old numbering.
func Unchanged(b *Batch, changes *Changes, applied func() uint64) (uint64, error) {
	rev := applied()
	if changes.ChangedAfter(b.Base, b.Reads) || (b.Epoch != 0 && b.Epoch != changes.Epoch()) {
		return 0, ErrConflict
	}
	return max(rev, b.Base), nil
}

// Op is one key operation.
type Op struct {
	Key    []byte
	Value  []byte // nil with Delete
	Delete bool
}

// Writes are the units the batch's operations bump (WriteUnits of each key),
// without repeats, in the order first written: a planned batch's as its
// planning found them (Tx.Batch). The list is not to be changed.
func (b *Batch) Writes() [][]byte {
	if b.planned.ops > 0 && b.planned.ops == len(b.Ops) {
		return b.planned.units
	}
	seen := make(map[string]struct{}, len(b.Ops))
	var out, units [][]byte
	for _, op := range b.Ops {
		units = AppendWriteUnits(units[:0], op.Key)
		for _, u := range units {
			if _, ok := seen[string(u)]; !ok {
				seen[string(u)] = struct{}{}
				out = append(out, u)
			}
		}
	}
	return out
}

// Size is how large a commit is, in Batch's terms: what a backend with
// limits (Bounded) holds against them.
type Size struct {
	// Ops, Reads and Writes count the batch's key operations, the units it
	// read and the units its operations write (Batch.Writes).
	Ops, Reads, Writes int
	// OpBytes are the bytes of the operations' keys and values; ReadBytes
	// and WriteBytes those of the units read and written.
	OpBytes, ReadBytes, WriteBytes int
}

// Size measures the batch.
func (b *Batch) Size() Size {
	s := Size{Ops: len(b.Ops), Reads: len(b.Reads)}
	for _, op := range b.Ops {
		s.OpBytes += len(op.Key) + len(op.Value)
	}
	for _, u := range b.Reads {
		s.ReadBytes += len(u)
	}
	for _, u := range b.Writes() {
		s.Writes++
		s.WriteBytes += len(u)
	}
	return s
}

// Bounded is a backend that takes a commit only up to a size: an etcd
// transaction holds at most --max-txn-ops operations and --max-request-bytes
// bytes. A write made of separable changes (an import's lines) is planned
// to fit, a commit at a time (pdp); a commit that cannot fit is refused
// before anything is sent, with ETOOLARGE.
type Bounded interface {
	// Fits is nil if a commit of size s can be made, else an ETOOLARGE
	// *permatrix.Error naming the limit s passes and what to do.
	Fits(s Size) error
	// MaxOps is the most key operations one commit can hold.
	MaxOps() int
}

// Backuper is a backend that can copy itself whole, from one read snapshot,
// as a file of its own kind (a bbolt store: the file at that revision,
// which `store copy` restores). An etcd store is not one: its sidecar's
// replica is a cache, and the cluster is copied with `store copy` from etcd.
type Backuper interface {
	// Backup opens a copy of the applied state. Close it promptly: it
	// holds a read snapshot (a bbolt read transaction) until then.
	Backup() (Backup, error)
}

// Backup is a copy of a store at one revision, being written.
type Backup interface {
	// Revision is the revision the copy holds.
	Revision() uint64
	// Format is the layout version of the copy (the backend's file format).
	Format() uint64
	// Size is how many bytes WriteTo writes.
	Size() int64
	// WriteTo writes the copy to w, Size bytes in the order a reader can
	// write them to a file; it holds no more than a buffer in memory.
	WriteTo(w io.Writer) (int64, error)
	// Close releases the snapshot.
	Close() error
}

var (
	// ErrStop ends a Scan early without an error.
	ErrStop = errors.New("store: stop scan")
	// ErrConflict means a unit the batch read changed after its base
	// revision: nothing was applied; plan and judge again. A backend may
	// return a *ConflictError saying from which revision on to plan.
	ErrConflict = errors.New("store: conflicting concurrent write")
)

// ConflictError is ErrConflict with the revision the backend had reached
// when it refused: planning again is useful only once the snapshot is at
// least that new.
type ConflictError struct{ Revision uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: conflicting concurrent write (store at revision %d)", e.Revision)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
