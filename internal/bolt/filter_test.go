package bolt_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// grantKey is a grant of principal u in system sys: one key of the unit
// (d grants user:u sys).
func grantKey(u int, sys string) []byte {
	return store.Key("d", "grants", fmt.Sprintf("user:u%d", u), sys, "role", "r", "service")
}

// readsAll fails t unless every key of keys reads back (Get, and a Scan of
// its unit) in a snapshot of db.
func readsAll(t *testing.T, db store.Backend, keys [][]byte, when string) {
	t.Helper()
	s, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range keys {
		if v, err := s.Get(k); err != nil || v == nil {
			t.Fatalf("%s: Get %q = %q, %v", when, store.Segments(k), v, err)
		}
		n := 0
		if err := s.Scan(append(store.UnitOf(k), 0), nil, func(_, _ []byte) error { n++; return nil }); err != nil || n == 0 {
			t.Fatalf("%s: Scan of %q's unit: %d keys, %v", when, store.Segments(k), n, err)
		}
	}
}

// rulesOut is how many of n units never written db's filter rules out
// (grants and memberships alternately).
func rulesOut(db *bolt.DB, n int) int {
	out := 0
	for i := range n {
		k := grantKey(1_000_000+i, "sys")
		if i%2 == 1 {
			k = store.Key("d", "memberships", fmt.Sprintf("nobody%d", i), "g1")
		}
		if !db.UnitFilter().MayHold(k) {
			out++
		}
	}
	return out
}

// TestUnitFilterOverReopen: the filter Open builds from the file holds
// every unit in it, and rules out units never written: a store reopened
// reads what it held.
func TestUnitFilterOverReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "permatrix.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Memberships: Open checks the layout, and a membership is two keys.
	var keys [][]byte
	b := &store.Batch{}
	for u := range 2000 {
		user, group := fmt.Sprintf("u%d", u), fmt.Sprintf("g%d", u%7)
		k := store.Key("d", "memberships", user, group)
		keys = append(keys, k)
		b.Ops = append(b.Ops, store.Op{Key: k, Value: []byte("true")},
			store.Op{Key: store.Key("i", "members", group, user), Value: []byte{}})
	}
	if _, err := db.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	readsAll(t, db, keys, "after the commit")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = bolt.Open(path, bolt.Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	readsAll(t, db, keys, "reopened")
	if out := rulesOut(db, 1000); out < 990 {
		t.Fatalf("the filter built at open rules out %d of 1000 units never written", out)
	}
}

// TestUnitFilterOfReplica: a replica's filter takes the keys of Load,
// Resync and Apply, also after a Wipe (a fleet sidecar's first
// synchronisation and its catching up).
func TestUnitFilterOfReplica(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "replica.db"), bolt.Options{Replica: true, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ops := func(from, to int, sys string) ([]store.Op, [][]byte) {
		var o []store.Op
		var keys [][]byte
		for u := from; u < to; u++ {
			k := grantKey(u, sys)
			o = append(o, store.Op{Key: k, Value: []byte("true")})
			keys = append(keys, k)
		}
		return o, keys
	}
	for round, sys := range []string{"first", "again"} {
		loaded, k1 := ops(0, 500, sys)
		if err := db.Load(loaded); err != nil {
			t.Fatal(err)
		}
		resynced, k2 := ops(500, 600, sys)
		if err := db.Resync(10, resynced); err != nil {
			t.Fatal(err)
		}
		applied, k3 := ops(600, 700, sys)
		units := make([][]byte, len(k3))
		for i, k := range k3 {
			units[i] = store.UnitOf(k)
		}
		if err := db.Apply(11, applied, units); err != nil {
			t.Fatal(err)
		}
		readsAll(t, db, append(append(k1, k2...), k3...), fmt.Sprintf("round %d", round))
		if out := rulesOut(db, 1000); out < 990 {
			t.Fatalf("round %d: the filter rules out %d of 1000 units never written", round, out)
		}
		if err := db.Wipe(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnitFilterReadersDuringCommits: readers viewing while commits add
// units to the filter see every unit whose commit returned (run with
// -race: test/race).
func TestUnitFilterReadersDuringCommits(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var done atomic.Int64 // users whose membership's commit returned
	stop := make(chan struct{})
	errs := make(chan error, 2)
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := done.Load()
				if n == 0 {
					continue
				}
				s, err := db.View()
				if err != nil {
					errs <- err
					return
				}
				u := rand.Int64N(n)
				found := 0
				err = s.Scan(store.Prefix("d", "memberships", fmt.Sprintf("u%d", u)), nil, func(_, _ []byte) error { found++; return nil })
				s.Close()
				if err != nil || found != 1 {
					errs <- fmt.Errorf("user u%d, committed, has %d memberships in a later view (%v)", u, found, err)
					return
				}
			}
		})
	}
	for u := range 1500 {
		user := fmt.Sprintf("u%d", u)
		b := &store.Batch{Ops: []store.Op{
			{Key: store.Key("d", "memberships", user, "g"), Value: []byte("true")},
			{Key: store.Key("i", "members", "g", user), Value: []byte{}},
		}}
		if _, err := db.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		done.Store(int64(u + 1))
	}
	close(stop)
	readers.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
