package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// unitKeys are a key below each kind of data.store unit, of n units each,
// with the unit each belongs to.
func unitKeys(r *rand.Rand, n int, tag string) (keys, units [][]byte) {
	for i := range n {
		id := fmt.Sprintf("%s%d-%d", tag, i, r.IntN(1<<30))
		for _, k := range [][]string{
			{"d", "grants", "user:" + id, "celonis", "role", "analyst", "service"},
			{"d", "memberships", id, "g1"},
			{"d", "roles", "blueprism", id},
			{"d", "projects", "uipath", id},
			{"d", "scopes", "celonis", "project:" + id, "a1"},
		} {
			keys = append(keys, Key(k...))
			units = append(units, UnitOf(Key(k...)))
		}
	}
	return keys, units
}

// TestUnitFilterNeverRulesOutAnAddedUnit: every key added, its unit's scan
// prefix, and every other key of its unit may be held — also across the
// filter's growth (a filter sized for no unit taking 300 000).
func TestUnitFilterNeverRulesOutAnAddedUnit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	f := NewUnitFilter(0)
	keys, units := unitKeys(r, 60000, "u")
	for _, k := range keys {
		f.Add(k)
	}
	if n := len(*f.filters.Load()); n < 2 {
		t.Fatalf("%d units in a filter of capacity %d: %d filter(s), want it grown", len(units), minCapacity, n)
	}
	for i, k := range keys {
		other := append(append([]byte{}, units[i]...), []byte("\x00other\x00key")...)
		for _, q := range [][]byte{k, units[i], append(append([]byte{}, units[i]...), sep), other} {
			if !f.MayHold(q) {
				t.Fatalf("%q ruled out, its unit %q was added", Segments(q), Segments(units[i]))
			}
		}
	}
}

// TestUnitFilterRulesOutMost: units never added are ruled out but for a
// few false "maybe"s; keys the filter does not cover are always "maybe".
func TestUnitFilterRulesOutMost(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keys, _ := unitKeys(r, 40000, "in")
	f := NewUnitFilter(len(keys))
	for _, k := range keys {
		f.Add(k)
	}
	absent, _ := unitKeys(r, 40000, "out")
	maybe := 0
	for _, k := range absent {
		if f.MayHold(k) {
			maybe++
		}
	}
	if rate := float64(maybe) / float64(len(absent)); rate > 0.01 {
		t.Fatalf("%d of %d units never added may be held (%.2f %%): the filter rules out too little", maybe, len(absent), 100*rate)
	}
	for _, k := range [][]byte{
		Key("d", "grants", "user:nobody"),    // above a unit: a subtree of several
		Prefix("d", "grants", "user:nobody"), // the same, as a scan prefix
		Prefix("d", "memberships"),           // an index
		Key("d"), Key(), Prefix("d"),         // the root
		Key("i", "assignments", "a1"),               // not data.store
		Key("d", "nosuchindex", "x", "y", "z", "w"), // not in the layout
	} {
		if !f.MayHold(k) {
			t.Errorf("%q ruled out: only a data.store unit can be", Segments(k))
		}
	}
}

// TestFilterUnits: the filter built from a snapshot holds every unit of
// it, and is not the same as an empty one.
func TestFilterUnits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m := NewMemory()
	keys, units := unitKeys(r, 3000, "s")
	b := &Batch{}
	for _, k := range keys {
		b.Ops = append(b.Ops, Op{Key: k, Value: []byte("true")})
	}
	b.Ops = append(b.Ops, Op{Key: Key("i", "assignments", "a1"), Value: []byte("x")})
	if _, err := m.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	snap, err := m.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	f := FilterUnits(func(yield func([]byte) bool) {
		_ = snap.Scan(nil, nil, func(k, _ []byte) error {
			if !yield(k) {
				return ErrStop
			}
			return nil
		})
	})
	for _, u := range units {
		if !f.MayHold(u) {
			t.Fatalf("%q ruled out, the snapshot holds it", Segments(u))
		}
	}
	absent, _ := unitKeys(r, 1000, "none")
	ruledOut := 0
	for _, k := range absent {
		if !f.MayHold(k) {
			ruledOut++
		}
	}
	if ruledOut < len(absent)*99/100 {
		t.Fatalf("%d of %d absent units ruled out", ruledOut, len(absent))
	}
}

// TestUnitFilterConcurrent: a unit is "maybe" from the moment its Add
// returns, to readers racing the adds and the filter's growth (run with
// -race: test/race).
func TestUnitFilterConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	f := NewUnitFilter(0)
	keys, _ := unitKeys(r, 30000, "c") // 150 000 units: the filter grows
	added := make(chan []byte, 1024)
	var wg sync.WaitGroup
	failed := make(chan string, 1)
	for range 2 {
		wg.Go(func() {
			for k := range added {
				if !f.MayHold(k) {
					select {
					case failed <- fmt.Sprintf("%q ruled out after its Add returned", Segments(k)):
					default:
					}
				}
			}
		})
	}
	half := len(keys) / 2
	var adders sync.WaitGroup
	for _, part := range [][][]byte{keys[:half], keys[half:]} {
		adders.Go(func() {
			for _, k := range part {
				f.Add(k)
				added <- k
			}
		})
	}
	adders.Wait()
	close(added)
	wg.Wait()
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
}
