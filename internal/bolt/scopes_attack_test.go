package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// TestBucketedScanAdversarialKeys holds a format 3 file to store.Memory
// over keys chosen to stress the mapping: systems, scopes and ids that are
// prefixes of one another or hold the bytes around the separator, ids
// shorter than, as long as and longer than a bucket's name (a multi-byte
// UTF-8 rune cut by it), and keys just before and after the scope index
// ("d scopes" itself, "d scopes\x01"). Every prefix cut of every key and
// every after near every key must scan the same.
func TestBucketedScanAdversarialKeys(t *testing.T) {
	pair := newBesideMemory(t)
	systems := []string{"", "a", "a\x01", "ab", "a\xff", "é"}
	scopes := []string{"", "p", "p\x01", "project:p1", "π"}
	ids := []string{"x", "\x01", "a0000000", "a00000000", "a000000000", "a00000000\x01", "a00000001",
		"aaaaaaaa\xc3\xa9", "aaaaaaaa\xc3\xa9z", "aaaaaaaaé", "\xff\xff", "a000000001x", "a0000000\x01"}
	var keys [][]byte
	for _, s := range systems {
		for _, sc := range scopes {
			for _, id := range ids {
				keys = append(keys, store.Key("d", "scopes", s, sc, id))
			}
		}
	}
	keys = append(keys, []byte("d"), []byte("d\x00scopes"), []byte("d\x00scope"), []byte("d\x00scopes\x01"),
		[]byte("d\x00scopes\x01x"), []byte("d\x00scopet"), []byte("d\x00scopes\x02"), []byte("c\xff"), []byte("e"),
		store.Key("d", "roles", "a", "r"), store.Key("i", "assignments", "a000000001"))
	rng := rand.New(rand.NewPCG(1, attackSeed))
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for round := 0; round*40 < len(keys); round++ {
		var ops []store.Op
		for _, k := range keys[round*40 : min(len(keys), round*40+40)] {
			ops = append(ops, store.Op{Key: k, Value: []byte(fmt.Sprintf("%q", k))})
		}
		// And delete a few written before.
		for range 3 {
			if k := keys[rng.IntN(len(keys))]; !slices.ContainsFunc(ops, func(o store.Op) bool { return bytes.Equal(o.Key, k) }) && rng.IntN(4) == 0 {
				ops = append(ops, store.Op{Key: k, Delete: true})
			}
		}
		slices.SortStableFunc(ops, func(a, b store.Op) int { return bytes.Compare(a.Key, b.Key) })
		pair.commit(t, ops)
	}
	got, want := pair.views(t)
	for _, k := range keys {
		if g, w := read(t, got.Get, k), read(t, want.Get, k); !bytes.Equal(g, w) {
			t.Fatalf("Get(%q) = %q, want %q", k, g, w)
		}
	}
	cut := func() []byte {
		k := keys[rng.IntN(len(keys))]
		if seg := store.Segments(k); len(seg) == 5 && seg[1] == "scopes" && rng.IntN(3) == 0 {
			// As the file keeps it: the id's bucket after the system.
			k = store.Key("d", "scopes", seg[2], seg[4][:min(len(seg[4]), 9)], seg[3], seg[4])
		}
		k = slices.Clip(k[:rng.IntN(len(k)+1)])
		switch rng.IntN(5) {
		case 0:
			k = append(k, 0)
		case 1:
			k = append(k, 1)
		case 2:
			k = append(k, 0xff)
		}
		return k
	}
	check := func(p, after []byte) {
		t.Helper()
		g, w := scan(t, got, p, after), scan(t, want, p, after)
		if !slices.EqualFunc(g, w, bytes.Equal) {
			t.Fatalf("Scan(%q, after %q): %d keys, want %d\n got %q\nwant %q", p, after, len(g)/2, len(w)/2, head(g), head(w))
		}
	}
	// A callback that stops (ErrStop, wrapped or not) or fails after n
	// keys: the same keys seen, the same outcome.
	errOwn := errors.New("own")
	stopAt := func(s store.Snapshot, p, after []byte, n int, stop error) (seen [][]byte, err error) {
		err = s.Scan(p, after, func(k, _ []byte) error {
			seen = append(seen, bytes.Clone(k))
			if len(seen) == n {
				return stop
			}
			return nil
		})
		return seen, err
	}
	for i := range 3000 {
		p, after := cut(), cut()
		if i%2 == 0 {
			p, after = store.Prefix("d", "scopes"), nil
		}
		n := 1 + rng.IntN(40)
		for _, stop := range []error{store.ErrStop, fmt.Errorf("wrapped: %w", store.ErrStop), errOwn} {
			g, gerr := stopAt(got, p, after, n, stop)
			w, werr := stopAt(want, p, after, n, stop)
			if !slices.EqualFunc(g, w, bytes.Equal) || gerr != werr {
				t.Fatalf("Scan(%q, after %q) stopped at %d by %v: %q, %v; want %q, %v", p, after, n, stop, g, gerr, w, werr)
			}
		}
	}
	check(nil, nil)
	check([]byte("d"), nil)
	for range attackIters {
		p := cut()
		var after []byte
		if rng.IntN(4) > 0 {
			after = cut()
		}
		check(p, after)
	}
}

// TestBucketedScanKeepsKeyAtScopesEnd: the key right after the scope index,
// "d scopes\x01", is a key like any other; a scan from before the index
// must give it (it was skipped as if it were the after of the scan).
func TestBucketedScanKeepsKeyAtScopesEnd(t *testing.T) {
	pair := newBesideMemory(t)
	ops := []store.Op{
		{Key: store.Key("d", "scopes", "sys", "project:p1", "a000000000001"), Value: []byte("1")},
		{Key: []byte("d\x00scopes\x01"), Value: []byte("2")},
	}
	pair.commit(t, ops)
	got, want := pair.views(t)
	for _, p := range [][]byte{nil, []byte("d"), []byte("d\x00scopes")} {
		if g, w := scan(t, got, p, nil), scan(t, want, p, nil); !slices.EqualFunc(g, w, bytes.Equal) {
			t.Errorf("Scan(%q): %q, want %q", p, g, w)
		}
	}
}

// TestBucketedRefusesScopeKeyNotOfLayout: a key below "d scopes" that is
// not d scopes <system> <scope> <id> has no place in a bucketed index: it
// was kept as it is, where it could be the bucketed key of another store
// key ("d scopes sys c b c" is where "d scopes sys b c" is kept, its id c
// its bucket) — writing it destroyed that key's value (a checksum error
// on every read) — or made every scan of the index fail. It is refused,
// and what was stored stays readable.
func TestBucketedRefusesScopeKeyNotOfLayout(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := store.Key("d", "scopes", "sys", "b", "c")
	if _, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: good, Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{
		store.Key("d", "scopes", "sys", "c", "b", "c"),
		store.Key("d", "scopes", "sys", "project:p1"),
		store.Key("d", "scopes", "sys", "project:p1", ""),
		[]byte("d\x00scopes\x00"),
		[]byte("d\x00scopes\x00sys"),
	} {
		if _, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: bad, Value: []byte("2")}}}); err == nil {
			t.Errorf("a commit of %q, not of the scope index's layout, was accepted", bad)
		}
		// Nor deleted: its delete would be the other key's.
		if _, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: bad, Delete: true}}}); err == nil {
			t.Errorf("a delete of %q, not of the scope index's layout, was accepted", bad)
		}
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		if v, err := snap.Get(good); err != nil || string(v) != "1" {
			t.Errorf("after a commit of %q: Get(%q) = %q, %v; want \"1\"", bad, good, v, err)
		}
		if err := snap.Scan(store.Prefix("d", "scopes"), nil, func(_, _ []byte) error { return nil }); err != nil {
			t.Errorf("after a commit of %q: scan of the scope index: %v", bad, err)
		}
		snap.Close()
	}
}

// attackSeed and attackIters: TestBucketedScanAdversarialKeys's shuffle and
// how many scans it compares (raised by hand for a longer search).
var attackSeed, attackIters = uint64(2), 20000

// TestBucketedGetOfKeyNotOfLayout: a Get of a key below the scope index
// that is not of its layout (none is stored) finds nothing, as store.Memory
// does — not the bucketed key of another store key that it equals
// ("d scopes sys c b c" is where "d scopes sys b c" is kept), read as a
// checksum error.
func TestBucketedGetOfKeyNotOfLayout(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := store.Key("d", "scopes", "sys", "b", "c")
	if _, err := db.Commit(ctx, &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: good, Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	for _, k := range [][]byte{store.Key("d", "scopes", "sys", "c", "b", "c"), store.Key("d", "scopes", "sys", "c", "b")} {
		if v, err := snap.Get(k); v != nil || err != nil {
			t.Errorf("Get(%q) = %q, %v; want nothing", k, v, err)
		}
	}
}

// TestBucketedReplicaReadsAsMemory: a replica (a new file: format 3)
// written by Load, Resync, Apply and Wipe reads as store.Memory given the
// same operations — scope index keys put, overwritten and deleted.
func TestBucketedReplicaReadsAsMemory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "replica.db")
	db, err := bolt.Open(path, bolt.Options{Replica: true, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mem := store.NewMemory()
	sk := func(sys, scope, id string) []byte { return store.Key("d", "scopes", sys, scope, id) }
	put := func(k []byte, v string) store.Op { return store.Op{Key: k, Value: []byte(v)} }
	del := func(k []byte) store.Op { return store.Op{Key: k, Delete: true} }
	memApply := func(ops ...store.Op) {
		if _, err := mem.Commit(ctx, &store.Batch{Base: mem.Revision(), Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	same := func(when string) {
		t.Helper()
		got, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		want, _ := mem.View()
		defer want.Close()
		for _, p := range [][]byte{nil, store.Prefix("d", "scopes"), store.Prefix("d", "scopes", "s", "project:p1")} {
			if g, w := scan(t, got, p, nil), scan(t, want, p, nil); !slices.EqualFunc(g, w, bytes.Equal) {
				t.Fatalf("%s: Scan(%q) = %q, want %q", when, p, g, w)
			}
		}
	}
	first := []store.Op{put(sk("s", "project:p1", "a000000000001"), "1"), put(sk("s", "project:p1", "a000000010001"), "2"),
		put(sk("s", "project:p2", "x"), "3"), put(store.Key("d", "roles", "s", "r"), "{}")}
	if err := db.Load(first); err != nil {
		t.Fatal(err)
	}
	if err := db.Resync(3, nil); err != nil {
		t.Fatal(err)
	}
	memApply(first...)
	same("after Load and Resync")
	second := []store.Op{del(sk("s", "project:p1", "a000000000001")), put(sk("s", "project:p1", "a000000010001"), "2b"),
		put(sk("t", "project:p1", "a000000000001"), "4")}
	if err := db.Apply(4, second, nil); err != nil {
		t.Fatal(err)
	}
	memApply(second...)
	same("after Apply")
	if err := db.Wipe(); err != nil {
		t.Fatal(err)
	}
	mem = store.NewMemory()
	same("after Wipe")
	if err := db.Load(second[1:]); err != nil {
		t.Fatal(err)
	}
	if err := db.Resync(9, nil); err != nil {
		t.Fatal(err)
	}
	memApply(second[1:]...)
	same("after Wipe, Load and Resync")
}

// TestBucketedScanCallbackReads: a callback that reads the snapshot (Get of
// the key it was given, a Scan of its scope) inside a bucketed Scan sees
// what store.Memory's does, and the outer scan goes on unchanged.
func TestBucketedScanCallbackReads(t *testing.T) {
	pair := newBesideMemory(t)
	var ops []store.Op
	for i, id := range []string{"a000000000001", "a000000010001", "a7", "a000000020001"} {
		for _, scope := range []string{"project:p1", "project:p2"} {
			ops = append(ops, store.Op{Key: store.Key("d", "scopes", "s", scope, id), Value: []byte(fmt.Sprint(i))})
		}
	}
	slices.SortFunc(ops, func(a, b store.Op) int { return bytes.Compare(a.Key, b.Key) })
	pair.commit(t, ops)
	trace := func(s store.Snapshot) []string {
		var out []string
		err := s.Scan(store.Prefix("d", "scopes"), nil, func(k, v []byte) error {
			got, err := s.Get(k)
			out = append(out, fmt.Sprintf("%q=%q get %q %v", k, v, got, err))
			scope := k[:bytes.LastIndexByte(k, 0)+1]
			return s.Scan(scope, k, func(k2, _ []byte) error {
				out = append(out, fmt.Sprintf("  then %q", k2))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := pair.views(t)
	if g, w := trace(got), trace(want); !slices.Equal(g, w) {
		t.Fatalf("reads inside a scan:\n%s\nwant\n%s", g, w)
	}
}
