package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/permatrix/permatrix"
)

// The bounds below are of what planning and committing an import line
// allocates (docs/performance.md): counts, not times, so they hold on any
// machine. Each is the count the code makes, with the reason beside it.

// TestWriteUnitsAppend: AppendWriteUnits is WriteUnits, appended to dst
// (the units of keys of every index, of an unknown one, of a prefix, of
// the root), and appends into dst's room without allocating.
func TestWriteUnitsAppend(t *testing.T) {
	keys := [][]byte{
		Key("d", "grants", "user:u", "sys", "role", "r", "service"),
		Key("i", "assignments", "a000000000001"),
		Key("i", "role_uses", "sys", "r", "a000000000001"),
		Key("d", "scopes", "sys", "project:p", "a000000000001"),
		Key("d", "memberships", "u", "g"),
		Key("d", "nope", "a", "b"),
		Prefix("d", "grants"),
		Key("d"),
		{},
	}
	dst := make([][]byte, 0, 64)
	for _, k := range keys {
		before := len(dst)
		dst = AppendWriteUnits(dst, k)
		if got, want := dst[before:], WriteUnits(k); !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("AppendWriteUnits(%q) = %q, want %q", k, got, want)
		}
	}
	k := keys[0]
	if n := testing.AllocsPerRun(100, func() { dst = AppendWriteUnits(dst[:0], k) }); n != 0 {
		t.Errorf("AppendWriteUnits allocates %v times with room in dst", n)
	}
}

// TestOverlayAllocs: a Put whose units the overlay has already written
// allocates nothing but the growth of its operations' slice (by doubling:
// under one per Put on average) — its write units are found without a
// slice of them per key, and its key is kept as given, not copied to a
// string —; a Get of a pending key allocates nothing.
func TestOverlayAllocs(t *testing.T) {
	o := NewOverlay(Empty(1))
	k := Key("d", "grants", "user:u", "sys", "role", "r", "service")
	v := []byte(`{}`)
	o.Put(k, v)
	if n := testing.AllocsPerRun(100, func() { o.Put(k, v) }); n != 0 {
		t.Errorf("a Put of a key whose units are written allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = o.Get(k) }); n != 0 {
		t.Errorf("a Get of a pending key allocates %v times", n)
	}
}

// TestTrackedUnitsAllocs: the units a Tracked recorded are listed, sorted,
// in two allocations whatever their number (the list and one buffer of
// their bytes): a verdict judged ahead lists its units once per import
// line.
func TestTrackedUnitsAllocs(t *testing.T) {
	tr := Track(Empty(1))
	var want []string
	for i := range 10 {
		k := Key("d", "grants", "user:u"+string(rune('9'-i)), "sys", "role", "r", "service")
		if _, err := tr.Get(k); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(UnitOf(k)))
	}
	slices.Sort(want)
	got := tr.Units()
	if !slices.Equal(stringsOf(got), want) {
		t.Fatalf("Units = %q, want %q", got, want)
	}
	// Each unit is its own: appending to one does not write into the next.
	_ = append(got[0], 'x')
	if !slices.Equal(stringsOf(got), want) {
		t.Fatalf("after an append to the first, Units = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { tr.Units() }); n > 2 {
		t.Errorf("Units of 10 units allocates %v times, want at most 2", n)
	}
}

func stringsOf(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestBatchWritesOfAPlan: a planned batch carries the units its
// operations write, found while they were planned (the overlay's), so a
// commit lists them without finding them again: the same list, in the
// same order, as Writes finds from the operations — after a rollback too,
// and for operations changed after the batch was made.
func TestBatchWritesOfAPlan(t *testing.T) {
	ctx := context.Background()
	b := NewMemory()
	if _, err := Update(ctx, b, func(tx *Tx) error {
		return tx.CreateAssignment(&permatrix.Assignment{ID: "a1", Subject: "user:u0", System: "s", Role: "r", Scope: permatrix.ServiceScope})
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tx := NewTx(ctx, snap, b.NextID)
	same := func(when string, got *Batch) {
		t.Helper()
		want := (&Batch{Ops: slices.Clone(got.Ops)}).Writes()
		if !slices.Equal(stringsOf(got.Writes()), stringsOf(want)) {
			t.Errorf("%s: Writes %q, from its operations %q", when, got.Writes(), want)
		}
	}
	for i := range 6 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", 1+i%3), System: "s", Permission: fmt.Sprintf("p%d", i), Scope: permatrix.Scope{Type: "project", ID: "p"}}
		if err := tx.CreateAssignment(&a); err != nil {
			t.Fatal(err)
		}
	}
	same("assignments", tx.Batch())
	mark := tx.Mark()
	if err := tx.AddMember(permatrix.Membership{Group: "g", User: "u1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.DeleteAssignment("a1"); err != nil {
		t.Fatal(err)
	}
	same("a membership and a delete", tx.Batch())
	tx.Rollback(mark)
	same("rolled back", tx.Batch())
	batch := tx.Batch()
	if n := testing.AllocsPerRun(100, func() { batch.Writes() }); n != 0 {
		t.Errorf("Writes of a planned batch allocates %v times", n)
	}
	batch.Ops = append(batch.Ops, Op{Key: Key("d", "memberships", "u9", "g"), Value: []byte("true")})
	same("an operation added after", batch)
}

// TestTrackedReset: a Tracked reset records anew, as a new one would —
// the units read before are gone from its Units and its size — and its
// reads after are recorded.
func TestTrackedReset(t *testing.T) {
	tr := Track(Empty(1))
	before := Key("d", "grants", "user:a", "sys", "role", "r", "service")
	after := Key("d", "grants", "user:b", "sys", "role", "r", "service")
	if _, err := tr.Get(before); err != nil {
		t.Fatal(err)
	}
	tr.Reset()
	if n, b := tr.size(); n != 0 || b != 0 || len(tr.Units()) != 0 {
		t.Fatalf("after Reset: %d units of %d bytes, Units %q", n, b, tr.Units())
	}
	if _, err := tr.Get(after); err != nil {
		t.Fatal(err)
	}
	if got, want := stringsOf(tr.Units()), []string{string(UnitOf(after))}; !slices.Equal(got, want) {
		t.Errorf("Units = %q, want %q", got, want)
	}
	if _, b := tr.size(); b != len(UnitOf(after)) {
		t.Errorf("size: %d bytes, want %d", b, len(UnitOf(after)))
	}
}

// TestCreateAssignmentAllocs: planning a new assignment allocates its grant
// key, its id, one buffer for its other keys and its leaf, and what the
// overlay and the tracked view note of its units (a string each new unit:
// its grants, its id's, its role's uses, its scope's uses; the reads of
// its grant and its id) — not each key on its own, the id's key twice, nor
// the leaf through json.Marshal and an interface.
func TestCreateAssignmentAllocs(t *testing.T) {
	const n = 2000
	as := make([]permatrix.Assignment, n+1)
	for i := range as {
		as[i] = permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	}
	var seq uint64
	tx := NewTx(context.Background(), Empty(1), func(context.Context) (uint64, error) { seq++; return seq, nil })
	i := 0
	got := testing.AllocsPerRun(n, func() {
		if err := tx.CreateAssignment(&as[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	// 3 allocations, and the strings of the units new to the overlay and
	// the tracked view with the growth of their maps, slices and tree
	// (8 in all, measured; 15 before the keys shared a buffer).
	if want := 8.5; got > want {
		t.Errorf("planning a new assignment allocates %v times, want at most %v", got, want)
	}
	for _, a := range as[:i] {
		b, err := tx.Assignment(a.ID)
		if err != nil || b != a {
			t.Errorf("assignment %s reads back %+v, %v; want %+v", a.ID, b, err, a)
		}
	}
}

// TestAppendGrantLeaf: the leaf of a grant is json.Marshal's, byte for
// byte (and grantLeafLen long), or refused (ok false, nothing appended)
// where json.Marshal escapes one of its strings.
func TestAppendGrantLeaf(t *testing.T) {
	for _, c := range []struct {
		l     grantLeaf
		plain bool
	}{
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.ServiceScope, Via: "user:u", Assignment: "a000000000001"}, true},
		{grantLeaf{Kind: KindPermission, Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}, Via: "group:g", Assignment: "x y"}, true},
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.Scope{Type: "project", ID: `p"1`}, Via: "user:u", Assignment: "a1"}, false},
		{grantLeaf{Kind: KindRole, Role: "r<b>", Scope: permatrix.ServiceScope, Via: "user:u", Assignment: "a1"}, false},
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.ServiceScope, Via: "user:u&v", Assignment: "a1"}, false},
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.ServiceScope, Via: "user:é", Assignment: "a1"}, false},
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.ServiceScope, Via: "user:u", Assignment: `a\1`}, false},
		{grantLeaf{Kind: KindRole, Role: "r", Scope: permatrix.ServiceScope, Via: "user:u\u2028", Assignment: "a1"}, false},
	} {
		want, err := json.Marshal(c.l)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendGrantLeaf([]byte("x"), c.l)
		switch {
		case ok != c.plain:
			t.Errorf("appendGrantLeaf(%+v): ok %v, want %v", c.l, ok, c.plain)
		case !ok && string(got) != "x":
			t.Errorf("appendGrantLeaf(%+v) refused, yet appended: %q", c.l, got)
		case ok && (string(got[1:]) != string(want) || len(got)-1 != grantLeafLen(c.l)):
			t.Errorf("appendGrantLeaf(%+v) = %s (%d bytes, grantLeafLen %d), json.Marshal %s", c.l, got[1:], len(got)-1, grantLeafLen(c.l), want)
		}
	}
}

// TestFormatID: formatID is fmt.Sprintf(IDFormat, n), to the widest n.
func TestFormatID(t *testing.T) {
	for _, n := range []uint64{0, 1, 42, 999_999_999_999, 1_000_000_000_000, 1<<64 - 1} {
		if got, want := formatID(n), fmt.Sprintf(IDFormat, n); got != want {
			t.Errorf("formatID(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestUnitStringsAllocs: the units a Tracked records and those an Overlay
// writes are kept as strings cut from a few blocks, not one allocation a
// unit (an import line reads two and writes four new ones). Each is its
// own: the key it was read from may be a buffer its reader reuses.
func TestUnitStringsAllocs(t *testing.T) {
	const n = 1000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = Key("d", "grants", fmt.Sprintf("user:u%d", i), "sys", "role", "r", "service")
	}
	scratch := make([]byte, 0, 64)
	tr := Track(Empty(1))
	i := 0
	tracked := testing.AllocsPerRun(n-1, func() {
		// A reader's scratch key, overwritten by the next read.
		scratch = append(scratch[:0], keys[i]...)
		if _, err := tr.Get(scratch); err != nil {
			t.Fatal(err)
		}
		i++
	})
	want := make([]string, n)
	for i, k := range keys {
		want[i] = string(UnitOf(k))
	}
	slices.Sort(want)
	if got := stringsOf(tr.Units()); !slices.Equal(got, want) {
		t.Errorf("the tracked units are not those read: %d of %d", len(got), len(want))
	}

	o := NewOverlay(Empty(1))
	v := []byte(`{}`)
	i = 0
	overlaid := testing.AllocsPerRun(n-1, func() {
		o.Put(keys[i], v)
		i++
	})
	for _, k := range keys {
		if !o.Changes([][]byte{UnitOf(k)}) {
			t.Errorf("the overlay does not know its write of %q", UnitOf(k))
		}
	}
	// Besides the units: the growth of the map (and, for the overlay, of
	// its operations and tree), a tenth of an allocation a unit or so.
	if tracked > 0.25 || overlaid > 0.5 {
		t.Errorf("a new unit allocates %v times in a Tracked, %v in an Overlay", tracked, overlaid)
	}
}

// TestTrackedUnitsFromAllocs: the units of many Trackeds (one reset between
// verdicts judged ahead) are listed from shared blocks: no allocation a
// list but a block's now and then, each list its units sorted and left as
// it was by the lists after it.
func TestTrackedUnitsFromAllocs(t *testing.T) {
	const n = 1000
	keys := make([][][]byte, n)
	want := make([][]string, n)
	for i := range keys {
		for _, who := range []string{"user:b", "user:a"} {
			k := Key("d", "grants", fmt.Sprintf("%s%d", who, i), "sys", "role", "r", "service")
			keys[i] = append(keys[i], k)
			want[i] = append(want[i], string(UnitOf(k)))
		}
		slices.Sort(want[i])
	}
	tr := Track(Empty(1))
	var blocks UnitBlocks
	lists := make([][][]byte, 0, n)
	i := 0
	got := testing.AllocsPerRun(n-1, func() {
		tr.Reset()
		for _, k := range keys[i] {
			if _, err := tr.Get(k); err != nil {
				t.Fatal(err)
			}
		}
		lists = append(lists, tr.UnitsFrom(&blocks))
		i++
	})
	if got != 0 {
		t.Errorf("a list of 2 units allocates %v times", got)
	}
	for i, l := range lists {
		if !slices.Equal(stringsOf(l), want[i]) {
			t.Fatalf("list %d = %q, want %q", i, l, want[i])
		}
	}
	// Each unit is its own: appending to one does not write into the next.
	_ = append(lists[0][0], 'x')
	if !slices.Equal(stringsOf(lists[0]), want[0]) {
		t.Fatalf("after an append to its first, list 0 = %q, want %q", lists[0], want[0])
	}
}

// TestBatchBytes: a Tx's Batch holds its operations and written units as
// planned, not copies (an import chunk's: some 20,000 operations, a MiB
// each list) — it allocates the list of its reads and little more —, and
// a plan after it leaves the Batch as it was.
func TestBatchBytes(t *testing.T) {
	var seq uint64
	tx := NewTx(context.Background(), Empty(1), func(context.Context) (uint64, error) { seq++; return seq, nil })
	for i := range 2000 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.ServiceScope}
		if err := tx.CreateAssignment(&a); err != nil {
			t.Fatal(err)
		}
	}
	bytesOf := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var b *Batch
	reads := bytesOf(func() { tx.view.Units() }) // the Batch's list of its reads
	if n := bytesOf(func() { b = tx.Batch() }); n > reads+4<<10 {
		t.Errorf("the Batch of %d operations allocates %d bytes, the list of its reads %d", len(b.Ops), n, reads)
	}
	ops, writes := slices.Clone(b.Ops), slices.Clone(b.Writes())
	a := permatrix.Assignment{Subject: "user:after", System: "sys", Role: "r", Scope: permatrix.ServiceScope}
	if err := tx.CreateAssignment(&a); err != nil {
		t.Fatal(err)
	}
	_ = append(b.Ops, Op{Key: []byte("x")})
	if !slices.EqualFunc(b.Ops, ops, func(x, y Op) bool { return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) }) ||
		!slices.EqualFunc(b.Writes(), writes, func(x, y []byte) bool { return string(x) == string(y) }) {
		t.Error("a plan after the Batch changed it")
	}
}

// TestTxGrow: a plan that knows its size makes room for its operations
// once (Tx.Grow), not by doubling its lists (a copy of an import chunk's
// each time): planning 2,000 assignments after Grow allocates less than
// without it by more than their operations' list, and plans the same.
func TestTxGrow(t *testing.T) {
	const n = 2000
	plan := func(grow bool) (*Tx, uint64) {
		var seq uint64
		tx := NewTx(context.Background(), Empty(1), func(context.Context) (uint64, error) { seq++; return seq, nil })
		as := make([]permatrix.Assignment, n)
		for i := range as {
			as[i] = permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if grow {
			tx.Grow(4 * n)
		}
		for i := range as {
			if err := tx.CreateAssignment(&as[i]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return tx, after.TotalAlloc - before.TotalAlloc
	}
	grown, withGrow := plan(true)
	doubled, without := plan(false)
	list := uint64(4*n) * uint64(unsafe.Sizeof(Op{}))
	if withGrow+list > without {
		t.Errorf("planning %d assignments allocates %d bytes after Grow, %d without (their operations' list: %d)", n, withGrow, without, list)
	}
	if !slices.EqualFunc(grown.Batch().Ops, doubled.Batch().Ops, func(x, y Op) bool { return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value) }) {
		t.Error("Grow changed the plan")
	}
}

// TestKeysOfAreTheKeys: a new assignment's keys cut from one buffer
// (keysOf) are the keys the rest of the store reads and deletes it by
// (assignmentKey, roleUseKey, scopeUseKey), and scopeKeyLen is ScopeKey's
// length: two ways of writing each, held to one.
func TestKeysOfAreTheKeys(t *testing.T) {
	for _, a := range []permatrix.Assignment{
		{ID: "a000000000001", Subject: "user:u", System: "sys", Role: "r", Scope: permatrix.ServiceScope},
		{ID: "a000000000002", Subject: "group:g", System: "sys", Permission: "p", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{ID: "a000000000003", Subject: "user:u", System: "sys", Role: "r", Scope: permatrix.Scope{Type: "bucket", ID: "b:with:colons"}},
		{ID: "a000000000004", Subject: "user:u", System: "sys", Role: "r", Scope: permatrix.Scope{Type: "space"}},
	} {
		k := keysOf(a)
		if !bytes.Equal(k.id, assignmentKey(a.ID)) {
			t.Errorf("%s: id key %q, want %q", a.ID, k.id, assignmentKey(a.ID))
		}
		var roleUse []byte
		if a.Role != "" {
			roleUse = roleUseKey(a.System, a.Role, a.ID)
		}
		if !bytes.Equal(k.roleUse, roleUse) {
			t.Errorf("%s: role use key %q, want %q", a.ID, k.roleUse, roleUse)
		}
		var scopeUse []byte
		if !a.Scope.IsService() {
			scopeUse = scopeUseKey(a.System, a.Scope, a.ID)
		}
		if !bytes.Equal(k.scopeUse, scopeUse) {
			t.Errorf("%s: scope use key %q, want %q", a.ID, k.scopeUse, scopeUse)
		}
		if n := scopeKeyLen(a.Scope); n != len(ScopeKey(a.Scope)) {
			t.Errorf("%s: scopeKeyLen %d, want %d", a.ID, n, len(ScopeKey(a.Scope)))
		}
	}
}

// TestBatchInKeyOrder: a batch's operations in key order, the last of each
// key, leave a store as its operations applied in order do — a planned
// batch's taken from its planning's ordered tree, without a sorted copy
// of its operations (a list as long as an import chunk's, sorted on the
// serial commit); and so after a rollback, after the Tx planned more, and
// for operations added to the batch after it was made.
func TestBatchInKeyOrder(t *testing.T) {
	tx := NewTx(context.Background(), Empty(1), func(context.Context) (uint64, error) { return 0, nil })
	key := func(i int) []byte { return Key("d", "grants", fmt.Sprintf("user:u%d", i%997), "s", "r") }
	for i := range 2000 { // keys out of order, some written again, some deleted
		if i%7 == 3 {
			tx.overlay.Delete(key(i * 31))
		} else {
			tx.overlay.Put(key(i*31), []byte(fmt.Sprint(i)))
		}
	}
	same := func(when string, b *Batch) {
		t.Helper()
		want := map[string]string{}
		for _, op := range b.Ops {
			if op.Delete {
				want[string(op.Key)] = "deleted"
			} else {
				want[string(op.Key)] = string(op.Value)
			}
		}
		got := map[string]string{}
		var last []byte
		for op := range b.InKeyOrder() {
			if last != nil && bytes.Compare(last, op.Key) >= 0 {
				t.Fatalf("%s: %q after %q", when, op.Key, last)
			}
			last = op.Key
			if op.Delete {
				got[string(op.Key)] = "deleted"
			} else {
				got[string(op.Key)] = string(op.Value)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: in key order %v\nin order %v", when, got, want)
		}
	}
	batch := tx.Batch()
	same("planned", batch)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range batch.InKeyOrder() {
	}
	runtime.ReadMemStats(&after)
	// A sorted copy is a list of them: half one is more than any other
	// goroutine of the test allocates meanwhile.
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(batch.Ops))*uint64(unsafe.Sizeof(Op{}))/2 {
		t.Errorf("a planned batch of %d operations allocated %d bytes to yield them in key order", len(batch.Ops), n)
	}
	mark := tx.Mark()
	tx.overlay.Put(key(5), []byte("later"))
	tx.overlay.Delete(key(6))
	same("the Tx planned more after it", batch)
	same("planned more", tx.Batch())
	tx.Rollback(mark)
	same("rolled back", tx.Batch())
	batch.Ops = append(batch.Ops, Op{Key: key(8), Value: []byte("added")})
	same("an operation added after", batch)
}

// TestTxGrowSizesItsMaps: a Tx grown for the operations of a plan (an
// import chunk's) makes its maps of written and read units once, for as
// many as it plans operations: grown only in its lists of operations and
// units, each map grows by doubling, each doubling a copy of the map
// (a tenth of an import's allocated bytes, on its serial planning).
func TestTxGrowSizesItsMaps(t *testing.T) {
	const n = 2000
	assignments := make([]permatrix.Assignment, n)
	for i := range assignments {
		assignments[i] = permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "s", Role: "r", Scope: permatrix.ServiceScope}
	}
	plan := func(grow func(tx *Tx)) (mallocs uint64) {
		next := uint64(0)
		tx := NewTx(context.Background(), Empty(1), func(context.Context) (uint64, error) { next++; return next, nil })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		grow(tx)
		for i := range assignments {
			a := assignments[i]
			if err := tx.CreateAssignment(&a); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		if w, r := tx.overlay.Size().Writes, tx.view.Len(); w < n || r < n {
			t.Fatalf("%d units written and %d read planning %d assignments", w, r, n)
		}
		return after.Mallocs - before.Mallocs
	}
	listsOnly := plan(func(tx *Tx) {
		tx.overlay.ops = slices.Grow(tx.overlay.ops, 3*n)
		tx.overlay.writes = slices.Grow(tx.overlay.writes, 3*n)
	})
	grown := plan(func(tx *Tx) { tx.Grow(3 * n) })
	// Each map doubles some ten times growing past n units: grown, not.
	if grown+10 > listsOnly {
		t.Errorf("planning %d assignments allocated %d times in a Tx grown for them, %d in one grown in its lists only", n, grown, listsOnly)
	}
}
