package bolt_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestOverlayMatchesAModel: random pending writes (puts, deletes, a key
// written again, the plan cut back with Truncate) laid over a real bbolt
// snapshot read as a plain map of the same writes does — every Get, and
// every Scan of a prefix from a cursor, whose keys and values the callback
// keeps without copying (the overlay hands over its pending keys'
// bytes; the snapshot's stay valid while it is open) — and the
// operations, committed, leave the file holding the map.
func TestOverlayMatchesAModel(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	rng := rand.New(rand.NewPCG(30, 9))
	// Keys below a unit (memberships, grants), keys that are units
	// (roles), keys of an index without units (nope); k1 and k10 share
	// a prefix mid-segment.
	key := func() []byte {
		k, x := fmt.Sprintf("k%d", rng.IntN(12)), fmt.Sprintf("x%d", rng.IntN(3))
		switch rng.IntN(4) {
		case 0:
			return store.Key("d", "memberships", k, x)
		case 1:
			return store.Key("d", "roles", k, x)
		case 2:
			return store.Key("d", "grants", k, x, fmt.Sprintf("l%d", rng.IntN(3)))
		default:
			return store.Key("d", "nope", k, x)
		}
	}
	// Scans above the units, at a unit, below one, across an index
	// without units, mid-segment, and of everything.
	prefix := func() []byte {
		k, x := fmt.Sprintf("k%d", rng.IntN(12)), fmt.Sprintf("x%d", rng.IntN(3))
		ix := []string{"memberships", "roles", "grants", "nope"}[rng.IntN(4)]
		switch rng.IntN(7) {
		case 0:
			return store.Prefix("d", ix)
		case 1:
			return store.Prefix("d", ix, k)
		case 2:
			return store.Prefix("d", ix, k, x)
		case 3:
			return store.Prefix("d", "grants", k, x, "l1")
		case 4:
			return store.Key("d", ix, "k1") // k1 and k10, k11
		case 5:
			return store.Prefix("d")
		default:
			return nil
		}
	}
	model := map[string]string{}
	for round := range 60 {
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		o := store.NewOverlay(snap)
		base := maps.Clone(model)
		var ops []store.Op // what the overlay was given, for the model
		want := func() map[string]string {
			m := maps.Clone(base)
			for _, op := range ops {
				if op.Delete {
					delete(m, string(op.Key))
				} else {
					m[string(op.Key)] = string(op.Value)
				}
			}
			return m
		}
		for step := range 40 {
			switch n := rng.IntN(10); {
			case n < 4:
				k, v := key(), []byte(fmt.Sprintf(`"%d.%d"`, round, step))
				o.Put(k, v)
				ops = append(ops, store.Op{Key: slices.Clone(k), Value: slices.Clone(v)})
			case n < 6:
				k := key()
				o.Delete(k)
				ops = append(ops, store.Op{Key: slices.Clone(k), Delete: true})
			case n == 6 && len(ops) > 0:
				cut := rng.IntN(len(ops) + 1)
				o.Truncate(cut)
				ops = ops[:cut]
			case n == 7:
				k := key()
				got, err := o.Get(k)
				w, ok := want()[string(k)]
				if err != nil || (got != nil) != ok || string(got) != w {
					t.Fatalf("round %d step %d: Get %q = %q, %v; want %q (%v)", round, step, store.Segments(k), got, err, w, ok)
				}
			default:
				prefix := prefix()
				var after []byte
				if rng.IntN(2) == 0 {
					after = key()
				}
				var kept [][2][]byte
				err := o.Scan(prefix, after, func(k, v []byte) error {
					kept = append(kept, [2][]byte{k, v})
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var got, expect []string
				for _, kv := range kept {
					got = append(got, string(kv[0])+"="+string(kv[1]))
				}
				m := want()
				for _, k := range slices.Sorted(maps.Keys(m)) {
					if strings.HasPrefix(k, string(prefix)) && (after == nil || k > string(after)) {
						expect = append(expect, k+"="+m[k])
					}
				}
				if !slices.Equal(got, expect) {
					t.Fatalf("round %d step %d: Scan(%q, %q) kept\n%q\nwant\n%q", round, step, prefix, after, got, expect)
				}
			}
		}
		batch := &store.Batch{Base: snap.Revision(), Ops: slices.Clone(o.Ops())}
		model = want()
		snap.Close()
		if len(batch.Ops) > 0 {
			if _, err := db.Commit(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		after, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		err = after.Scan(nil, nil, func(k, v []byte) error { got[string(k)] = string(v); return nil })
		after.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, model) {
			t.Fatalf("round %d: the file holds\n%q\nthe model\n%q", round, got, model)
		}
	}
}
