package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestBucketedScopeIndexReadsAsStored holds a file whose scope index is
// kept by id bucket (format 3) to store.Memory, the store's keys as they
// are: the same random writes — scope index keys of ids in many buckets,
// ids shorter than a bucket's name, and keys around the index — then every
// Get and every Scan of prefixes at each depth, from cursors before, inside
// and after each part, must give the same keys, values and order.
func TestBucketedScopeIndexReadsAsStored(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { bucketedReadsAsStored(t, seed) })
	}
}

func bucketedReadsAsStored(t *testing.T, seed uint64) {
	pair := newBesideMemory(t)
	rng := rand.New(rand.NewPCG(7, 11+seed))
	systems := []string{"blueprism", "celonis-task-mining", "uipath-task-mining-cloud"}
	scopes := []string{"project:p1", "project:p10", "project:p2", "space:s", "group:g-1"}
	id := func() string {
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprintf("a%012d", rng.IntN(100)) // one bucket
		case 1:
			return fmt.Sprintf("a%012d", rng.IntN(1_000_000)) // many
		case 2:
			return fmt.Sprintf("x%d", rng.IntN(50)) // shorter than a bucket's name
		default:
			return fmt.Sprintf("a%012d%d", rng.IntN(30_000), rng.IntN(3)) // longer
		}
	}
	key := func() []byte {
		switch rng.IntN(6) {
		case 0:
			return store.Key("d", "grants", fmt.Sprintf("user:u%d", rng.IntN(20)), systems[rng.IntN(len(systems))], "role", "r", "service")
		case 1:
			return store.Key("i", "assignments", id())
		case 2:
			return store.Key("d", "roles", systems[rng.IntN(len(systems))], fmt.Sprintf("r%d", rng.IntN(5)))
		default:
			return store.Key("d", "scopes", systems[rng.IntN(len(systems))], scopes[rng.IntN(len(scopes))], id())
		}
	}
	var keys [][]byte
	for round := range 40 {
		var ops []store.Op
		for range 1 + rng.IntN(60) {
			k := key()
			if len(keys) > 0 && rng.IntN(5) == 0 {
				k = keys[rng.IntN(len(keys))]
				ops = append(ops, store.Op{Key: k, Delete: true})
				continue
			}
			keys = append(keys, k)
			ops = append(ops, store.Op{Key: k, Value: []byte(fmt.Sprintf(`{"round":%d}`, round))})
		}
		slices.SortStableFunc(ops, func(a, b store.Op) int { return bytes.Compare(a.Key, b.Key) })
		pair.commit(t, ops)
	}
	got, want := pair.views(t)

	probes := [][]byte{nil}
	for _, k := range keys[:min(len(keys), 200)] {
		probes = append(probes, k, append(slices.Clip(k), 0), k[:len(k)-1], append(slices.Clip(k), 0xff))
	}
	for _, k := range keys[:min(len(keys), 400)] {
		if g, w := read(t, got.Get, k), read(t, want.Get, k); !bytes.Equal(g, w) {
			t.Fatalf("Get(%q) = %q, want %q", k, g, w)
		}
	}
	prefixes := [][]byte{{}, store.Prefix("d"), store.Prefix("d", "scopes"), []byte("d\x00scope"), store.Key("d", "scopes"),
		store.Prefix("d", "scopes", "celonis-task-mining"), []byte("d\x00scopes\x00celonis"),
		store.Prefix("d", "scopes", "celonis-task-mining", "project:p1"), store.Prefix("d", "scopes", "blueprism", "group:g-1"),
		store.Prefix("d", "scopes", "uipath-task-mining-cloud", "project:p1", "a00000000"), store.Prefix("d", "grants"), store.Prefix("i")}
	for _, p := range prefixes {
		for _, after := range probes {
			g, w := scan(t, got, p, after), scan(t, want, p, after)
			if !slices.EqualFunc(g, w, bytes.Equal) {
				t.Fatalf("Scan(%q, after %q): %d keys, want %d\n got %q\nwant %q", p, after, len(g), len(w), head(g), head(w))
			}
		}
	}
	// A scan stopped early stops there.
	var n int
	if err := got.Scan(store.Prefix("d", "scopes"), nil, func(_, _ []byte) error {
		if n++; n == 3 {
			return store.ErrStop
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("a scan stopped at its third key read %d (%v)", n, err)
	}
}

func read(t *testing.T, get func([]byte) ([]byte, error), k []byte) []byte {
	t.Helper()
	v, err := get(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// scan is every key and value a scan gives, in order: key, value, key….
func scan(t *testing.T, s store.Snapshot, prefix, after []byte) [][]byte {
	t.Helper()
	var out [][]byte
	if err := s.Scan(prefix, after, func(k, v []byte) error {
		out = append(out, bytes.Clone(k), bytes.Clone(v))
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q, %q): %v", prefix, after, err)
	}
	return out
}

func head(list [][]byte) [][]byte { return list[:min(len(list), 12)] }

// besideMemory is a new bolt file (format 3) and a store.Memory given the
// same writes, to hold the file to.
type besideMemory struct {
	db  store.Backend
	mem *store.Memory
}

func newBesideMemory(t *testing.T) *besideMemory {
	return &besideMemory{db: open(t), mem: store.NewMemory()}
}

// commit commits ops to both.
func (b *besideMemory) commit(t *testing.T, ops []store.Op) {
	t.Helper()
	for _, s := range []store.Backend{b.db, b.mem} {
		if _, err := s.Commit(context.Background(), &store.Batch{Base: s.Revision(), Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
}

// views are a snapshot of the file and one of the memory store, closed
// when the test ends.
func (b *besideMemory) views(t *testing.T) (got, want store.Snapshot) {
	t.Helper()
	got, err := b.db.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { got.Close() })
	want, _ = b.mem.View()
	t.Cleanup(func() { want.Close() })
	return got, want
}
