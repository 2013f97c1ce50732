// Package storetest holds the conformance tests every store.Backend passes
// (internal/bolt and internal/etcd run them against a real file and a real
// etcd cluster): the promises of store.Backend and the layout's invariants.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Open returns a new, empty backend; the test cleans it up.
type Open func(t *testing.T) store.Backend

// Run runs every conformance test against backends made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"Empty", testEmpty},
		{"CommitAndView", testCommitAndView},
		{"LastOperationOfAKeyWins", testLastOperationWins},
		{"SnapshotIsolation", testSnapshotIsolation},
		{"Conflict", testConflict},
		{"DisjointUnitsBothCommit", testDisjoint},
		{"ShallowReadGuardsSubtree", testShallowRead},
		{"EmptyBatch", testEmptyBatch},
		{"ConcurrentCommits", testConcurrent},
		{"NextIDUnique", testNextID},
		{"Assignments", testAssignments},
		{"WhenAnIDComesBack", testWhenAnIDComesBack},
		{"Pagination", testPagination},
		{"ListingHoldsAPage", testListingHoldsAPage},
		{"ListingByIDReadsABudget", testListingByIDReadsABudget},
		{"WithGroupsReadsAPage", testWithGroupsReadsAPage},
		{"DeletingAnAssignedRoleReadsABound", testDeletingAnAssignedRoleReadsABound},
		{"AssignmentsWithGroups", testAssignmentsWithGroups},
		{"Memberships", testMemberships},
		{"MembersPage", testMembersPage},
		{"Roles", testRoles},
		{"Projects", testProjects},
		{"DeletingAProjectRacingAnAssignment", testDeletingAProjectRacingAnAssignment},
		{"UpdateRetriesConflicts", testUpdateRetriesConflicts},
		{"ConflictsAmongDisjointCommits", testMixedConcurrent},
		{"VerifyClean", testVerifyClean},
		{"ReadsKeepNoKey", testReadsKeepNoKey},
		{"UnitReadsSeeEveryKey", testUnitReads},
		{"ReadsInsideAScan", testReadsInsideAScan},
		{"RandomPlansMatchTheirView", testRandomPlansMatchTheirView},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var ctx = context.Background()

func view(t *testing.T, b store.Backend) store.Snapshot {
	t.Helper()
	s, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, s store.Snapshot, key []byte) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func commit(t *testing.T, b store.Backend, batch *store.Batch) uint64 {
	t.Helper()
	rev, err := b.Commit(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// noCreator is a project's value as permatrix writes one registered
// without a creator or kind.
const noCreator = `{"created_by":"","kind":""}`

func put(k, v string) store.Op { return store.Op{Key: []byte(k), Value: []byte(v)} }

func keyOf(segs ...string) string { return string(store.Key(segs...)) }

// RecordValue is a value of the record key k names, as permatrix writes
// one (store.CheckRecord passes it: a backend replicating a source it
// checks — an etcd replica — serves no other), that carries n where the
// record has room: a grant's assignment id, a role's permission, a
// project's creator. A membership's and a scope's use's value is "true"
// whatever n.
func RecordValue(k []byte, n int) string {
	v := recordValueOf(k, n)
	if err := store.CheckRecord(k, []byte(v)); err != nil {
		panic(fmt.Sprintf("storetest: the value %s of %q: %v", v, store.Segments(k), err))
	}
	return v
}

func recordValueOf(k []byte, n int) string {
	segs := store.Segments(k)
	switch {
	case len(segs) == 7 && segs[0] == "d" && segs[1] == "grants":
		scope, _ := json.Marshal(scopeOf(segs[6]))
		name := "permission"
		if segs[4] == "role" {
			name = "role"
		}
		return fmt.Sprintf(`{"kind":%q,%q:%q,"scope":%s,"via":%q,"assignment":"a%d"}`, segs[4], name, segs[5], scope, segs[2], n)
	case len(segs) > 1 && segs[0] == "d" && (segs[1] == "memberships" || segs[1] == "scopes"):
		return "true"
	case len(segs) > 1 && segs[0] == "d" && segs[1] == "roles":
		return fmt.Sprintf(`{"permissions":["p%d"]}`, n)
	case len(segs) > 1 && segs[0] == "d" && segs[1] == "projects":
		return fmt.Sprintf(`{"created_by":"u%d","kind":""}`, n)
	}
	return fmt.Sprint(n) // an index entry: its value is not read
}

// scopeOf is the scope of a grant key's last segment (store.ScopeKey).
func scopeOf(key string) permatrix.Scope {
	typ, id, _ := strings.Cut(key, ":")
	return permatrix.Scope{Type: typ, ID: id}
}

func testEmpty(t *testing.T, open Open) {
	b := open(t)
	s := view(t, b)
	if get(t, s, store.Key("d", "grants", "user:a")) != nil {
		t.Fatal("empty store has a value")
	}
	n := 0
	if err := s.Scan(nil, nil, func(k, v []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("scan of an empty store: %d keys, %v", n, err)
	}
	if s.Revision() != b.Revision() {
		t.Fatalf("snapshot revision %d, backend %d", s.Revision(), b.Revision())
	}
}

func testCommitAndView(t *testing.T, open Open) {
	b := open(t)
	r0 := b.Revision()
	k1, k2 := keyOf("d", "projects", "s", "p1"), keyOf("d", "projects", "s", "p2")
	rev := commit(t, b, &store.Batch{Base: r0, Ops: []store.Op{put(k1, RecordValue([]byte(k1), 1)), put(k2, RecordValue([]byte(k2), 2))}})
	if rev <= r0 {
		t.Fatalf("revision %d after %d", rev, r0)
	}
	if err := b.Wait(ctx, rev); err != nil {
		t.Fatal(err)
	}
	s := view(t, b)
	if s.Revision() < rev || string(get(t, s, []byte(k1))) != RecordValue([]byte(k1), 1) {
		t.Fatalf("view after commit: rev %d, %q", s.Revision(), get(t, s, []byte(k1)))
	}
	var keys []string
	if err := s.Scan(store.Prefix("d", "projects", "s"), nil, func(k, v []byte) error {
		keys = append(keys, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{k1, k2}) {
		t.Fatalf("scan: %q", keys)
	}
	keys = nil
	s.Scan(store.Prefix("d", "projects", "s"), []byte(k1), func(k, v []byte) error { keys = append(keys, string(k)); return nil })
	if !slices.Equal(keys, []string{k2}) {
		t.Fatalf("scan after k1: %q", keys)
	}
	rev2 := commit(t, b, &store.Batch{Base: rev, Ops: []store.Op{{Key: []byte(k1), Delete: true}}})
	b.Wait(ctx, rev2)
	if rev2 <= rev || get(t, view(t, b), []byte(k1)) != nil {
		t.Fatal("delete not applied")
	}
}

// A batch whose operations are out of key order, several on one key: each
// key ends as its last operation left it (a backend may apply them in key
// order — bbolt does, stably).
func testLastOperationWins(t *testing.T, open Open) {
	b := open(t)
	r := rand.New(rand.NewPCG(3, 5))
	var ops []store.Op
	want := map[string]string{} // "" for deleted
	for i := range 60 {
		k := keyOf("d", "projects", "s", fmt.Sprintf("p%d", r.IntN(20)))
		if r.IntN(3) == 0 {
			ops = append(ops, store.Op{Key: []byte(k), Delete: true})
			want[k] = ""
			continue
		}
		v := RecordValue([]byte(k), i)
		ops = append(ops, put(k, v))
		want[k] = v
	}
	rev := commit(t, b, &store.Batch{Base: b.Revision(), Ops: ops})
	if err := b.Wait(ctx, rev); err != nil {
		t.Fatal(err)
	}
	s := view(t, b)
	for k, v := range want {
		if got := string(get(t, s, []byte(k))); got != v {
			t.Errorf("%s: %q, want %q (its last operation)", k, got, v)
		}
	}
}

func testSnapshotIsolation(t *testing.T, open Open) {
	b := open(t)
	k := keyOf("d", "projects", "s", "p")
	before := view(t, b)
	rev := commit(t, b, &store.Batch{Base: b.Revision(), Ops: []store.Op{put(k, noCreator)}})
	b.Wait(ctx, rev)
	if get(t, before, []byte(k)) != nil {
		t.Fatal("a snapshot saw a later commit")
	}
	if get(t, view(t, b), []byte(k)) == nil {
		t.Fatal("a new snapshot does not see the commit")
	}
}

func testConflict(t *testing.T, open Open) {
	b := open(t)
	base := b.Revision()
	unit := store.UnitOf(store.Key("d", "grants", "user:a", "sys"))
	k := keyOf("d", "grants", "user:a", "sys", "role", "r", "service")
	commit(t, b, &store.Batch{Base: base, Reads: [][]byte{unit}, Ops: []store.Op{put(k, RecordValue([]byte(k), 1))}})
	_, err := b.Commit(ctx, &store.Batch{Base: base, Reads: [][]byte{unit}, Ops: []store.Op{put(keyOf("d", "projects", "s", "x"), noCreator)}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second writer on the same unit at the same base: %v, want ErrConflict", err)
	}
	if get(t, view(t, b), store.Key("d", "projects", "s", "x")) != nil {
		t.Fatal("a conflicting batch was applied")
	}
}

func testDisjoint(t *testing.T, open Open) {
	b := open(t)
	base := b.Revision()
	ua := store.UnitOf(store.Key("d", "grants", "user:a", "sys"))
	ub := store.UnitOf(store.Key("d", "grants", "user:b", "sys"))
	commit(t, b, &store.Batch{Base: base, Reads: [][]byte{ua}, Ops: []store.Op{put(keyOf("d", "grants", "user:a", "sys", "role", "r", "service"), RecordValue([]byte(keyOf("d", "grants", "user:a", "sys", "role", "r", "service")), 1))}})
	commit(t, b, &store.Batch{Base: base, Reads: [][]byte{ub}, Ops: []store.Op{put(keyOf("d", "grants", "user:b", "sys", "role", "r", "service"), RecordValue([]byte(keyOf("d", "grants", "user:b", "sys", "role", "r", "service")), 1))}})
}

func testShallowRead(t *testing.T, open Open) {
	b := open(t)
	base := b.Revision()
	commit(t, b, &store.Batch{Base: base, Ops: []store.Op{put(keyOf("d", "grants", "user:a", "sys", "role", "r", "service"), RecordValue([]byte(keyOf("d", "grants", "user:a", "sys", "role", "r", "service")), 1))}})
	for _, read := range [][]byte{store.UnitOf(store.Prefix("d", "grants")), store.UnitOf(store.Prefix("d")), {}, store.UnitOf(store.Prefix("d", "grants", "user:a"))} {
		_, err := b.Commit(ctx, &store.Batch{Base: base, Reads: [][]byte{read}, Ops: []store.Op{put(keyOf("d", "projects", "s", "x"), noCreator)}})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("read of %q at the old base: %v, want ErrConflict", store.Segments(read), err)
		}
	}
	// A read of another principal's subtree is not affected.
	commit(t, b, &store.Batch{Base: base, Reads: [][]byte{store.UnitOf(store.Prefix("d", "grants", "user:b"))}, Ops: []store.Op{put(keyOf("d", "projects", "s", "x"), noCreator)}})
}

func testEmptyBatch(t *testing.T, open Open) {
	b := open(t)
	base := b.Revision()
	rev := commit(t, b, &store.Batch{Base: base})
	if rev != base {
		t.Fatalf("empty batch moved the revision %d → %d", base, rev)
	}
	unit := store.UnitOf(store.Key("d", "memberships", "u"))
	commit(t, b, &store.Batch{Base: base, Ops: []store.Op{put(keyOf("d", "memberships", "u", "g"), "true")}})
	if _, err := b.Commit(ctx, &store.Batch{Base: base, Reads: [][]byte{unit}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("an empty batch whose reads changed: %v, want ErrConflict", err)
	}
}

func testConcurrent(t *testing.T, open Open) {
	b := open(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	revs := make(chan uint64, writers*each)
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := store.Key("d", "projects", "s", fmt.Sprintf("w%d-%d", w, i))
				rev, err := b.Commit(ctx, &store.Batch{Base: b.Revision(), Reads: [][]byte{store.UnitOf(k)}, Ops: []store.Op{{Key: k, Value: []byte(noCreator)}}})
				if err != nil {
					errs <- err
					return
				}
				revs <- rev
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(revs)
	for err := range errs {
		t.Fatal(err)
	}
	var last uint64
	for r := range revs {
		last = max(last, r)
	}
	b.Wait(ctx, last)
	n := 0
	view(t, b).Scan(store.Prefix("d", "projects", "s"), nil, func(k, v []byte) error { n++; return nil })
	if n != writers*each {
		t.Fatalf("%d keys after %d acknowledged commits", n, writers*each)
	}
}

func testNextID(t *testing.T, open Open) {
	b := open(t)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				n, err := b.NextID(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("id %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// update plans fn and commits it, failing the test on error.
func update(t *testing.T, b store.Backend, fn func(tx *store.Tx) error) uint64 {
	t.Helper()
	rev, err := store.Update(ctx, b, fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, rev); err != nil {
		t.Fatal(err)
	}
	return rev
}

func assign(subject, system, role, perm string, scope permatrix.Scope) permatrix.Assignment {
	return permatrix.Assignment{Subject: subject, System: system, Role: role, Permission: perm, Scope: scope}
}

func testAssignments(t *testing.T, open Open) {
	b := open(t)
	a := assign("user:alice", "sys", "admin", "", permatrix.ServiceScope)
	rev1 := update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&a) })
	if a.ID == "" {
		t.Fatal("no id")
	}
	// Idempotent: the same grant again gets the same id and changes nothing.
	dup := assign("user:alice", "sys", "admin", "", permatrix.ServiceScope)
	rev2 := update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&dup) })
	if dup.ID != a.ID || rev2 != rev1 {
		t.Fatalf("duplicate: id %s (want %s), revision %d (want %d)", dup.ID, a.ID, rev2, rev1)
	}
	got, err := store.Assignment(view(t, b), a.ID)
	if err != nil || got != a {
		t.Fatalf("read back %+v, %v; want %+v", got, err, a)
	}
	// A taken explicit id is a conflict; a new explicit id is kept.
	taken := assign("user:bob", "sys", "", "p", permatrix.Scope{Type: "project", ID: "p1"})
	taken.ID = a.ID
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.CreateAssignment(&taken) }); permatrix.ErrorCode(err) != permatrix.ECONFLICT {
		t.Fatalf("taken id: %v", err)
	}
	given := taken
	given.ID = "x-given"
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&given) })
	if got, err := store.Assignment(view(t, b), "x-given"); err != nil || got != given {
		t.Fatalf("given id: %+v %v", got, err)
	}
	if ok, _ := store.HasAssignmentsOn(view(t, b), "sys", permatrix.Scope{Type: "project", ID: "p1"}); !ok {
		t.Fatal("HasAssignmentsOn misses p1")
	}
	// Invalid shapes plan nothing.
	for _, bad := range []permatrix.Assignment{
		assign("alice", "sys", "r", "", permatrix.ServiceScope),
		assign("user:a\x01", "sys", "r", "", permatrix.ServiceScope),
		assign("user:a", "sys", "r", "p", permatrix.ServiceScope),
		assign("user:a", "sys", "r", "", permatrix.Scope{Type: "project"}),
		assign("user:a", "sys", "r", "", permatrix.Scope{Type: "service", ID: "x"}),
	} {
		if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.CreateAssignment(&bad) }); permatrix.ErrorCode(err) != permatrix.EINVALID {
			t.Fatalf("%+v: %v, want EINVALID", bad, err)
		}
	}
	var removed permatrix.Assignment
	update(t, b, func(tx *store.Tx) (err error) { removed, err = tx.DeleteAssignment(a.ID); return err })
	if removed != a {
		t.Fatalf("deleted %+v", removed)
	}
	if _, err := store.Assignment(view(t, b), a.ID); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(a.ID); return err }); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
	// An id is never handed out again.
	again := assign("user:alice", "sys", "admin", "", permatrix.ServiceScope)
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&again) })
	if again.ID == a.ID {
		t.Fatal("a deleted assignment's id was reused")
	}
}

// testWhenAnIDComesBack holds the store to what doc.go says of ids: a
// number the sequence handed out is never handed out again, but the store
// keeps no record of deleted assignments, so a deleted id given explicitly
// (an import line's "id") is stored again as given, and a deleted id given
// explicitly in the sequence's form ahead of it is handed out when the
// sequence reaches it.
func testWhenAnIDComesBack(t *testing.T, open Open) {
	b := open(t)
	ctx := context.Background()
	first := assign("user:a", "sys", "admin", "", permatrix.ServiceScope)
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&first) })
	var n uint64
	if _, err := fmt.Sscanf(first.ID, store.IDFormat, &n); err != nil {
		t.Fatalf("a generated id %q: %v", first.ID, err)
	}
	remove := func(id string) {
		t.Helper()
		update(t, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(id); return err })
	}
	// Given explicitly after its deletion: stored again, naming another
	// assignment.
	remove(first.ID)
	back := assign("user:b", "sys", "admin", "", permatrix.ServiceScope)
	back.ID = first.ID
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&back) })
	if got, err := store.Assignment(view(t, b), first.ID); err != nil || got.Subject != "user:b" {
		t.Fatalf("a deleted id given again: %+v %v", got, err)
	}
	// Given in the sequence's form ahead of it, then deleted: the sequence
	// hands it out when it gets there.
	ahead := fmt.Sprintf(store.IDFormat, n+1)
	given := assign("user:c", "sys", "admin", "", permatrix.ServiceScope)
	given.ID = ahead
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&given) })
	remove(ahead)
	next := assign("user:d", "sys", "admin", "", permatrix.ServiceScope)
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.CreateAssignment(&next) }); err != nil {
		t.Fatal(err)
	}
	if next.ID != ahead {
		t.Fatalf("the next generated id is %s, not the deleted %s given ahead of the sequence (doc.go says it is)", next.ID, ahead)
	}
	// Never a number the sequence handed out.
	again := assign("user:e", "sys", "admin", "", permatrix.ServiceScope)
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&again) })
	if again.ID == first.ID || again.ID == next.ID {
		t.Fatalf("a generated id handed out again: %s", again.ID)
	}
}

func testPagination(t *testing.T, open Open) {
	b := open(t)
	var ids []string
	update(t, b, func(tx *store.Tx) error {
		ids = ids[:0]
		for i := range 25 {
			sys := "s1"
			if i%2 == 1 {
				sys = "s2"
			}
			a := assign(fmt.Sprintf("user:u%d", i%5), sys, "r", "", permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)})
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			ids = append(ids, a.ID)
		}
		return nil
	})
	slices.Sort(ids)
	s := view(t, b)
	for _, f := range []permatrix.AssignmentFilter{{}, {System: "s1"}, {Subject: "user:u3"}, {Subject: "user:u3", System: "s2"}, {ScopeType: "project", ScopeID: "p7"}} {
		var want []string
		for _, id := range ids {
			a, _ := store.Assignment(s, id)
			if f.Match(a) {
				want = append(want, id)
			}
		}
		var got []string
		f.Limit = 4
		for pages := 0; ; pages++ {
			list, next, err := store.Assignments(s, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > 4 || pages > 30 {
				t.Fatalf("page of %d", len(list))
			}
			for _, a := range list {
				got = append(got, a.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("filter %+v: %v, want %v", f, got, want)
		}
	}
	if _, _, err := store.Assignments(s, permatrix.AssignmentFilter{Limit: 1001}); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("limit 1001: %v", err)
	}
}

func testMemberships(t *testing.T, open Open) {
	b := open(t)
	m := permatrix.Membership{Group: "ops", User: "alice"}
	rev := update(t, b, func(tx *store.Tx) error { return tx.AddMember(m) })
	if again := update(t, b, func(tx *store.Tx) error { return tx.AddMember(m) }); again != rev {
		t.Fatal("adding a present member changed the store")
	}
	s := view(t, b)
	if users, _ := store.Members(s, "ops"); !slices.Equal(users, []string{"alice"}) {
		t.Fatalf("members %v", users)
	}
	if groups, _ := store.Groups(s, "alice"); !slices.Equal(groups, []string{"ops"}) {
		t.Fatalf("groups %v", groups)
	}
	update(t, b, func(tx *store.Tx) error { return tx.RemoveMember(m) })
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.RemoveMember(m) }); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("removing a non-member: %v", err)
	}
	if users, _ := store.Members(view(t, b), "ops"); len(users) != 0 {
		t.Fatalf("members after removal %v", users)
	}
}

func testRoles(t *testing.T, open Open) {
	b := open(t)
	r := permatrix.Role{System: "bp", Name: "ops", Permissions: []string{"b", "a", "b"}}
	update(t, b, func(tx *store.Tx) error { return tx.PutRole(r) })
	got, err := store.Role(view(t, b), "bp", "ops")
	if err != nil || !slices.Equal(got.Permissions, []string{"a", "b"}) {
		t.Fatalf("role %+v %v", got, err)
	}
	a := assign("user:u", "bp", "ops", "", permatrix.ServiceScope)
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&a) })
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.DeleteRole("bp", "ops") }); permatrix.ErrorCode(err) != permatrix.ECONFLICT {
		t.Fatalf("deleting an assigned role: %v", err)
	}
	update(t, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(a.ID); return err })
	update(t, b, func(tx *store.Tx) error { return tx.DeleteRole("bp", "ops") })
	if roles, _ := store.Roles(view(t, b), ""); len(roles) != 0 {
		t.Fatalf("roles left: %v", roles)
	}
}

func testProjects(t *testing.T, open Open) {
	b := open(t)
	p := permatrix.Project{System: "s", ID: "p1", CreatedBy: "alice", Kind: "assisted"}
	rev := update(t, b, func(tx *store.Tx) error { return tx.PutProject(p) })
	if again := update(t, b, func(tx *store.Tx) error { return tx.PutProject(p) }); again != rev {
		t.Fatal("an identical project changed the store")
	}
	other := p
	other.CreatedBy = "bob"
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.PutProject(other) }); permatrix.ErrorCode(err) != permatrix.ECONFLICT {
		t.Fatalf("changing the creator: %v", err)
	}
	kind := p
	kind.Kind = "unassisted"
	update(t, b, func(tx *store.Tx) error { return tx.PutProject(kind) })
	if got, _ := store.Project(view(t, b), "s", "p1"); got != kind {
		t.Fatalf("project %+v", got)
	}
	// Deleted only with no assignment on it; once, not twice.
	on := assign("user:a", "s", "", "x", permatrix.Scope{Type: "project", ID: "p1"})
	update(t, b, func(tx *store.Tx) error { return tx.CreateAssignment(&on) })
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.DeleteProject("s", "p1") }); permatrix.ErrorCode(err) != permatrix.ECONFLICT {
		t.Fatalf("deleting a project with an assignment on it: %v", err)
	}
	update(t, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(on.ID); return err })
	update(t, b, func(tx *store.Tx) error { return tx.DeleteProject("s", "p1") })
	if _, err := store.Project(view(t, b), "s", "p1"); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("a deleted project: %v", err)
	}
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.DeleteProject("s", "p1") }); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("deleting an absent project: %v", err)
	}
}

// testDeletingAProjectRacingAnAssignment: a project's deletion and an
// assignment on it, planned at once over one snapshot, and committed one
// after the other. The deletion read the project's scope index empty: an
// assignment committed first makes its commit a conflict (retried, the
// deletion is then 409), so no project is deleted with an assignment on
// it. Committed first, the deletion lets the assignment commit: an
// assignment may be made on a project not registered.
func testDeletingAProjectRacingAnAssignment(t *testing.T, open Open) {
	b := open(t)
	p := permatrix.Project{System: "s", ID: "p1", CreatedBy: "alice", Kind: "assisted"}
	for _, assignmentFirst := range []bool{true, false} {
		update(t, b, func(tx *store.Tx) error { return tx.PutProject(p) })
		snap := view(t, b)
		del := store.NewTx(ctx, snap, b.NextID)
		if err := del.DeleteProject("s", "p1"); err != nil {
			t.Fatal(err)
		}
		on := assign("user:a", "s", "", "x", permatrix.Scope{Type: "project", ID: "p1"})
		add := store.NewTx(ctx, snap, b.NextID)
		if err := add.CreateAssignment(&on); err != nil {
			t.Fatal(err)
		}
		first, second := add, del
		if !assignmentFirst {
			first, second = del, add
		}
		rev := commit(t, b, first.Batch())
		if err := b.Wait(ctx, rev); err != nil {
			t.Fatal(err)
		}
		_, err := b.Commit(ctx, second.Batch())
		switch {
		case assignmentFirst && !errors.Is(err, store.ErrConflict):
			t.Fatalf("the deletion committed after an assignment on the project: %v, want ErrConflict", err)
		case assignmentFirst:
			if _, err := store.Update(ctx, b, func(tx *store.Tx) error { return tx.DeleteProject("s", "p1") }); permatrix.ErrorCode(err) != permatrix.ECONFLICT {
				t.Fatalf("the deletion retried with the assignment there: %v, want ECONFLICT", err)
			}
		case err != nil:
			t.Fatalf("an assignment after the deletion: %v", err)
		}
		update(t, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(on.ID); return err })
	}
}

// testUpdateRetriesConflicts runs writers that each read a shared unit and
// write it: every Update succeeds (after retries), and the counter they
// increment counts every one of them — no lost update.
// testMixedConcurrent runs writers that conflict (one shared counter)
// beside writers that do not (a counter each) — a backend that commits
// concurrent writes together (etcd's group commit) must refuse exactly the
// conflicting ones and lose none of the others.
func testMixedConcurrent(t *testing.T, open Open) {
	b := open(t)
	const writers, each = 12, 12
	incr := func(name string) error {
		_, err := store.Update(ctx, b, func(tx *store.Tx) error {
			n := 0
			r, err := tx.Role("s", name)
			switch {
			case err == nil:
				fmt.Sscanf(r.Permissions[0], "n%d", &n)
			case permatrix.ErrorCode(err) != permatrix.ENOTFOUND:
				return err
			}
			return tx.PutRole(permatrix.Role{System: "s", Name: name, Permissions: []string{fmt.Sprintf("n%d", n+1)}})
		})
		return err
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "shared"
			if w%2 == 1 {
				name = fmt.Sprintf("own%d", w)
			}
			for range each {
				if err := incr(name); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.Wait(deadline, b.Revision())
	snap := view(t, b)
	want := map[string]int{"shared": writers / 2 * each}
	for w := 1; w < writers; w += 2 {
		want[fmt.Sprintf("own%d", w)] = each
	}
	for name, n := range want {
		r, err := store.Role(snap, "s", name)
		if err != nil || r.Permissions[0] != fmt.Sprintf("n%d", n) {
			t.Errorf("counter %s: %+v %v, want n%d: an update was lost or doubled", name, r, err, n)
		}
	}
}

func testUpdateRetriesConflicts(t *testing.T, open Open) {
	b := open(t)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := store.Update(ctx, b, func(tx *store.Tx) error {
					n := 0
					r, err := tx.Role("s", "counter")
					switch {
					case err == nil:
						fmt.Sscanf(r.Permissions[0], "n%d", &n)
					case permatrix.ErrorCode(err) != permatrix.ENOTFOUND:
						return err
					}
					return tx.PutRole(permatrix.Role{System: "s", Name: "counter", Permissions: []string{fmt.Sprintf("n%d", n+1)}})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.Wait(deadline, b.Revision())
	r, err := store.Role(view(t, b), "s", "counter")
	if err != nil || r.Permissions[0] != fmt.Sprintf("n%d", writers*each) {
		t.Fatalf("counter %+v %v, want n%d: an update was lost", r, err, writers*each)
	}
}

func testVerifyClean(t *testing.T, open Open) {
	b := open(t)
	update(t, b, func(tx *store.Tx) error {
		for i := range 20 {
			a := assign(fmt.Sprintf("user:u%d", i), "s", "r", "", permatrix.Scope{Type: "project", ID: "p"})
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			if err := tx.AddMember(permatrix.Membership{Group: "g", User: fmt.Sprintf("u%d", i)}); err != nil {
				return err
			}
		}
		return tx.PutRole(permatrix.Role{System: "s", Name: "r2", Permissions: []string{}})
	})
	if problems := store.Verify(view(t, b), 10); len(problems) > 0 {
		t.Fatalf("a clean store has problems: %v", problems)
	}
}

// testReadsKeepNoKey: a read keeps no reference to the key it is given —
// the snapshot itself, a Tracked recording its unit, an Overlay over it.
// internal/opa builds every lookup's key in one buffer per evaluation and
// writes the next key over it right after the read.
func testReadsKeepNoKey(t *testing.T, open Open) {
	b := open(t)
	a := store.Key("d", "grants", "user:a", "sys-a", "role", "r", "service")
	z := store.Key("d", "grants", "user:z", "sys-z", "role", "r", "service")
	batch := &store.Batch{}
	batch.Ops = append(batch.Ops, store.Op{Key: a, Value: []byte(RecordValue(a, 1))}, store.Op{Key: z, Value: []byte(RecordValue(z, 2))})
	commit(t, b, batch)
	base := view(t, b)
	overlay := store.NewOverlay(base)
	overlay.Put(store.Key("d", "grants", "user:p", "sys-p", "role", "r", "service"), []byte("3"))
	for name, s := range map[string]store.Snapshot{"snapshot": base, "tracked": store.Track(base), "overlay": overlay, "tracked overlay": store.Track(overlay)} {
		buf := append([]byte(nil), a...)
		if v := get(t, s, buf); string(v) != RecordValue(a, 1) {
			t.Fatalf("%s: Get %q = %q, want a1's", name, store.Segments(a), v)
		}
		// The buffer becomes the next key (as long, so no reallocation).
		copy(buf, z)
		if v := get(t, s, buf); string(v) != RecordValue(z, 2) {
			t.Fatalf("%s: Get %q = %q, want a2's", name, store.Segments(z), v)
		}
		prefix := append([]byte(nil), store.Prefix("d", "grants", "user:a")...)
		n := 0
		if err := s.Scan(prefix, nil, func(k, _ []byte) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("%s: scan of %q: %d keys, %v; want 1", name, store.Segments(prefix), n, err)
		}
		copy(prefix, store.Prefix("d", "grants", "user:p")) // the buffer reused after the scan
		if v := get(t, s, a); string(v) != RecordValue(a, 1) {
			t.Fatalf("%s: Get %q after reuse = %q, want a1's", name, store.Segments(a), v)
		}
		if tr, ok := s.(*store.Tracked); ok {
			units := map[string]bool{}
			for _, u := range tr.Units() {
				units[string(u)] = true
			}
			for _, want := range [][]byte{store.UnitOf(a), store.UnitOf(z), store.UnitOf(store.Prefix("d", "grants", "user:a"))} {
				if !units[string(want)] {
					t.Errorf("%s: the reads %q lack %q (a key's buffer reused after the read)", name, tr.Units(), store.Segments(want))
				}
			}
		}
	}
}

// testUnitReads: random puts and deletes over the units of every
// data.store index, each read back after its commit — every key by Get,
// every unit, its parent and its index by Scan — against a model. A
// backend that skips reads of units it believes empty (bolt's unit filter)
// must never skip one that holds a key, also one emptied and filled again.
func testUnitReads(t *testing.T, open Open) {
	b := open(t)
	r := rand.New(rand.NewPCG(11, 12))
	var keys [][]byte // every key a round may write
	for i := range 6 {
		p, g := fmt.Sprintf("user:u%d", i), fmt.Sprintf("g%d", i%3)
		keys = append(keys,
			store.Key("d", "grants", p, "sys", "role", "r", "service"),
			store.Key("d", "grants", p, "sys", "permission", "x", "project:p1"),
			store.Key("d", "grants", p, "other", "role", "r", "service"),
			store.Key("d", "memberships", fmt.Sprintf("u%d", i), g),
			store.Key("d", "roles", "sys", fmt.Sprintf("r%d", i)),
			store.Key("d", "projects", "sys", fmt.Sprintf("p%d", i)),
			store.Key("d", "scopes", "sys", fmt.Sprintf("project:p%d", i), fmt.Sprintf("a%d", i)),
			store.Key("i", "members", g, fmt.Sprintf("u%d", i)),
		)
	}
	model := map[string]string{}
	scanned := func(s store.Snapshot, prefix []byte) []string {
		var got []string
		if err := s.Scan(prefix, nil, func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for round := range 40 {
		batch := &store.Batch{Base: b.Revision()}
		for _, k := range keys {
			switch r.IntN(4) {
			case 0:
				v := RecordValue(k, round)
				batch.Ops = append(batch.Ops, store.Op{Key: k, Value: []byte(v)})
				model[string(k)] = v
			case 1:
				if _, ok := model[string(k)]; ok {
					batch.Ops = append(batch.Ops, store.Op{Key: k, Delete: true})
					delete(model, string(k))
				}
			}
		}
		if len(batch.Ops) == 0 {
			continue
		}
		rev := commit(t, b, batch)
		if err := b.Wait(ctx, rev); err != nil {
			t.Fatal(err)
		}
		s := view(t, b)
		for _, k := range keys {
			if got := get(t, s, k); string(got) != model[string(k)] || (got == nil) != (model[string(k)] == "") {
				t.Fatalf("round %d: Get %q = %q, want %q", round, store.Segments(k), got, model[string(k)])
			}
			segs := store.Segments(k)
			for n := 1; n < len(segs); n++ { // every prefix: index, units, their parents
				prefix := store.Prefix(segs[:n]...)
				var want []string
				for mk, mv := range model {
					if len(mk) > len(prefix) && mk[:len(prefix)] == string(prefix) {
						want = append(want, mk+"="+mv)
					}
				}
				slices.Sort(want)
				if got := scanned(s, prefix); !slices.Equal(got, want) {
					t.Fatalf("round %d: Scan %q = %q, want %q", round, segs[:n], got, want)
				}
			}
		}
		s.Close()
	}
}

// testReadsInsideAScan: a Get and a Scan made inside a Scan's callback (as
// a listing reads each assignment's grant) answer as alone, and the outer
// scan goes on where it was.
func testReadsInsideAScan(t *testing.T, open Open) {
	b := open(t)
	batch := &store.Batch{}
	var outer []string
	for i := range 50 {
		k := store.Key("d", "projects", "sys", fmt.Sprintf("p%02d", i))
		outer = append(outer, string(k))
		role := store.Key("d", "roles", "sys", fmt.Sprintf("r%02d", i))
		batch.Ops = append(batch.Ops, store.Op{Key: k, Value: []byte(RecordValue(k, i))},
			store.Op{Key: role, Value: []byte(RecordValue(role, i))})
	}
	if err := b.Wait(ctx, commit(t, b, batch)); err != nil {
		t.Fatal(err)
	}
	s := view(t, b)
	var seen []string
	err := s.Scan(store.Prefix("d", "projects", "sys"), nil, func(k, v []byte) error {
		seen = append(seen, string(k))
		i := len(seen) - 1
		role := store.Key("d", "roles", "sys", fmt.Sprintf("r%02d", (i*7)%50))
		if got := get(t, s, role); string(got) != RecordValue(role, (i*7)%50) {
			t.Fatalf("Get %q inside a scan = %q", store.Segments(role), got)
		}
		n := 0
		if err := s.Scan(store.Prefix("d", "roles", "sys"), nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 50 {
			t.Fatalf("a scan inside a scan: %d keys, %v", n, err)
		}
		if string(v) != RecordValue(k, i) {
			t.Fatalf("outer scan at %q: value %q after the inner reads", store.Segments(k), v)
		}
		return nil
	})
	if err != nil || !slices.Equal(seen, outer) {
		t.Fatalf("outer scan: %d keys (%v), want %d in order", len(seen), err, len(outer))
	}
}

// countingSnapshot counts the records a listing reads (values handed to a
// Scan's callback, and Gets), and can measure the heap a listing holds as
// it reads.
type countingSnapshot struct {
	store.Snapshot
	reads int
	// atRead, when set, is called at every every-th read.
	every  int
	atRead func()
}

func (c *countingSnapshot) Get(key []byte) ([]byte, error) {
	c.count()
	return c.Snapshot.Get(key)
}

func (c *countingSnapshot) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	return c.Snapshot.Scan(prefix, after, func(k, v []byte) error {
		c.count()
		return fn(k, v)
	})
}

func (c *countingSnapshot) count() {
	c.reads++
	if c.atRead != nil && c.reads%c.every == 0 {
		c.atRead()
	}
}

// listing is the function whose allocations heldBy counts.
const listing = "github.com/permatrix/permatrix/internal/store.Assignments"

// heldBy is how many bytes the objects allocated under a call of fn (a
// function's full name on the allocation's stack) hold that a full
// collection finds still reachable: what fn holds, whatever the rest of the
// process does meanwhile. It counts what the heap profile sampled:
// everything while runtime.MemProfileRate is 1. runtime.GC publishes the
// profile as of the collection it made.
func heldBy(fn string) int64 {
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var held int64
	for i := range recs {
		frames := runtime.CallersFrames(recs[i].Stack())
		for {
			f, more := frames.Next()
			if f.Function == fn {
				held += recs[i].InUseBytes()
				break
			}
			if !more {
				break
			}
		}
	}
	return held
}

// bigStore gives n role grants on n projects of system s1, every fifth to
// group:g and the others to group:h, made in that order (so g's ids are
// one in five of the assignment index), and user:u one grant on project p7
// of s0, s1 and s2; committed a hundred at a time (an etcd transaction
// holds a few hundred operations). It returns g's and h's ids, sorted.
func bigStore(t *testing.T, b store.Backend, n int) (g, h []string) {
	for i := 0; i < n; i += 100 {
		var made []permatrix.Assignment
		update(t, b, func(tx *store.Tx) error {
			made = made[:0]
			for j := i; j < i+100 && j < n; j++ {
				subject := "group:h"
				if j%5 == 0 {
					subject = "group:g"
				}
				a := assign(subject, "s1", "r", "", permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", j)})
				if err := tx.CreateAssignment(&a); err != nil {
					return err
				}
				made = append(made, a)
			}
			return nil
		})
		for _, a := range made {
			if a.Subject == "group:g" {
				g = append(g, a.ID)
			} else {
				h = append(h, a.ID)
			}
		}
	}
	update(t, b, func(tx *store.Tx) error {
		for _, sys := range []string{"s1", "s0", "s2"} {
			a := assign("user:u", sys, "", "x", permatrix.Scope{Type: "project", ID: "p7"})
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	})
	slices.Sort(g)
	slices.Sort(h)
	return g, h
}

// testListingHoldsAPage: a listing reads and holds what its page needs,
// not every grant its filter matches.
//
//   - A subject's page is first looked for in id order, from the cursor in
//     the assignment index: group:h (four in five of the index) and
//     group:g (one in five) get a page of 1 or 10 reading a few times
//     that, where the cursor is (not their 40 000 and 10 000 grants).
//   - Where that would read too far (g's page of 1 000: fewer than 1 001 of
//     g's among the entries it may read), the subject's grants are scanned
//     in key order and reduced to the limit+1 smallest ids as they go: what
//     the listing holds during the scan is a page (a quarter of a
//     megabyte), not 10 000 assignments (several megabytes). It is counted,
//     not measured: the bytes still reachable of those allocated by the
//     listing's calls (heldBy), not the process's live heap, which a
//     backend's own goroutines (an etcd sidecar's watch and heartbeat, the
//     harness's copy of etcd's output) move by as much at any time.
//   - A page of one project's assignments seeks its cursor in the scopes
//     index, in one system or in each.
func testListingHoldsAPage(t *testing.T, open Open) {
	const n = 50000
	b := open(t)
	gIDs, hIDs := bigStore(t, b, n)
	s := view(t, b)

	for _, tc := range []struct {
		subject string
		ids     []string
	}{{"group:g", gIDs}, {"group:h", hIDs}} {
		for _, limit := range []int{1, 10} {
			for _, from := range []int{0, len(tc.ids) / 2, len(tc.ids) - limit - 1} {
				f := permatrix.AssignmentFilter{Subject: tc.subject, System: "s1", Limit: limit}
				if tc.subject == "group:h" {
					f.System = ""
				}
				if from > 0 {
					f.Cursor = tc.ids[from-1]
				}
				c := &countingSnapshot{Snapshot: s}
				list, next, err := store.Assignments(c, f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, a := range list {
					got = append(got, a.ID)
				}
				if !slices.Equal(got, tc.ids[from:from+limit]) || next != got[len(got)-1] {
					t.Fatalf("%+v: %v next %q, want %v", f, got, next, tc.ids[from:from+limit])
				}
				if c.reads > 6*(limit+1)+10 {
					t.Fatalf("%+v: %d records read for a page of %d", f, c.reads, limit)
				}
			}
		}
	}

	f := permatrix.AssignmentFilter{Subject: "group:g", Limit: 1000}
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1 // every allocation in the profile, with its stack
	for page := 0; page < 2; page++ {
		var peak int64
		c := &countingSnapshot{Snapshot: s}
		c.every, c.atRead = 2000, func() { peak = max(peak, heldBy(listing)) }
		list, next, err := store.Assignments(c, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1000 || list[0].ID != gIDs[page*1000] || next != gIDs[page*1000+999] {
			t.Fatalf("%+v: %d listed, next %q", f, len(list), next)
		}
		if c.reads < len(gIDs) {
			t.Fatalf("%+v: %d records read; the test wants the scan of the subject's %d grants", f, c.reads, len(gIDs))
		}
		t.Logf("%+v page %d: %d bytes held during the scan", f, page, peak)
		if peak > 3<<18 {
			t.Fatalf("%+v page %d: %d bytes held during the scan", f, page, peak)
		}
		// Each assignment kept holds its id at least (13 bytes, in 16):
		// fewer is a count that missed the listing's allocations.
		if peak < 16*int64(f.Limit) {
			t.Fatalf("%+v page %d: %d bytes held during the scan: not even the page's ids (is %s on the profile's stacks?)", f, page, peak, listing)
		}
		f.Cursor = next
	}

	// One project's assignments: a page seeks, whatever the store's size
	// (in each of the 3 systems, without a system).
	for _, f := range []permatrix.AssignmentFilter{
		{System: "s1", ScopeType: "project", ScopeID: "p7"},
		{System: "s1", ScopeType: "project", ScopeID: "p7", Limit: 1},
		{ScopeType: "project", ScopeID: "p7"},
		{ScopeType: "project", ScopeID: "p7", Limit: 1},
		{ScopeType: "project", ScopeID: "p7", Limit: 2},
	} {
		want, systems := 2, 1
		if f.System == "" {
			want, systems = 4, 3
		}
		var got []string
		for page := 0; page < 10; page++ {
			c := &countingSnapshot{Snapshot: s}
			list, next, err := store.Assignments(c, f)
			if err != nil {
				t.Fatal(err)
			}
			if c.reads > systems*(3*(len(list)+1)+2)+1 {
				t.Fatalf("%+v: %d records read for a page of %d", f, c.reads, len(list))
			}
			for _, a := range list {
				if a.Scope.ID != "p7" {
					t.Fatalf("%+v listed %+v", f, a)
				}
				got = append(got, a.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if len(got) != want || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != want {
			t.Fatalf("%+v: %v, want the %d assignments on p7 by id", f, got, want)
		}
	}
}

// testListingByIDReadsABudget: a filter that no index serves (a system,
// a scope type, a scope id without its type) walks the assignment index by
// id from the cursor; a page stops after a budget of entries, full or not,
// with the cursor of where it stopped, so that a filter matching few of
// many (or none) costs each page about what a page costs, not a walk of the
// whole index. The pages list every match once, in order.
func testListingByIDReadsABudget(t *testing.T, open Open) {
	const n = 20000
	b := open(t)
	bigStore(t, b, n) // s1: n on projects; s0 and s2: one each, the last ids
	s := view(t, b)
	for _, f := range []permatrix.AssignmentFilter{
		{System: "s0", Limit: 10},
		{System: "s9", Limit: 10},
		{System: "s9", Limit: 1},
		{ScopeType: "service", Limit: 10},
		{ScopeID: "p7", Limit: 10},
		{System: "s1", ScopeType: "project", Limit: 10},
	} {
		var want []string
		for cursor := ""; ; {
			page, next, err := store.Assignments(s, permatrix.AssignmentFilter{Limit: permatrix.MaxPageLimit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				if f.Match(a) {
					want = append(want, a.ID)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		var got []string
		pages := 0
		limit := f.Limit
		for ; pages <= n; pages++ {
			c := &countingSnapshot{Snapshot: s}
			list, next, err := store.Assignments(c, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > limit || c.reads > 2*(16*(limit+1)+1024)+2 {
				t.Fatalf("%+v: %d listed, %d records read", f, len(list), c.reads)
			}
			for _, a := range list {
				got = append(got, a.ID)
			}
			if next == "" {
				break
			}
			if len(list) > 0 && next < list[len(list)-1].ID {
				t.Fatalf("%+v: next %q before the page's last %q", f, next, list[len(list)-1].ID)
			}
			f.Cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: %d listed in %d pages, want %d", f, len(got), pages+1, len(want))
		}
		if len(want) < n/2 && pages < n/(16*(limit+1)+1024) {
			t.Fatalf("%+v: %d pages: each read more than its budget", f, pages+1)
		}
	}
}

// testWithGroupsReadsAPage: a user's listing with its groups' read every
// grant of the user and of each group on every page: a user in a group
// holding most of the store (group:h, four in five of the assignments)
// read most of the store for a page of 10. As a subject's, its page is
// first looked for by id from the cursor — a group's grant counted by the
// user's membership of the group —, reading about a page where the
// user's and its groups' grants are dense in id order. The pages list
// every one once, in order.
func testWithGroupsReadsAPage(t *testing.T, open Open) {
	const n = 20000
	b := open(t)
	_, hIDs := bigStore(t, b, n)
	update(t, b, func(tx *store.Tx) error {
		return tx.AddMember(permatrix.Membership{Group: "h", User: "w"})
	})
	s := view(t, b)
	const limit = 10
	for _, from := range []int{0, len(hIDs) / 2, len(hIDs) - limit - 1} {
		f := permatrix.AssignmentFilter{Subject: "user:w", WithGroups: true, Limit: limit}
		if from > 0 {
			f.Cursor = hIDs[from-1]
		}
		c := &countingSnapshot{Snapshot: s}
		list, next, err := store.Assignments(c, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range list {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, hIDs[from:from+limit]) || next != got[len(got)-1] {
			t.Fatalf("%+v: %v next %q, want %v", f, got, next, hIDs[from:from+limit])
		}
		if c.reads > 3*(4*(limit+1)+64)+10 {
			t.Fatalf("%+v: %d records read for a page of %d", f, c.reads, limit)
		}
	}
	var got []string
	f := permatrix.AssignmentFilter{Subject: "user:w", WithGroups: true, Limit: permatrix.MaxPageLimit}
	for page := 0; page <= n/permatrix.MaxPageLimit+1; page++ {
		list, next, err := store.Assignments(s, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			got = append(got, a.ID)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if !slices.Equal(got, hIDs) {
		t.Fatalf("user:w with its groups': %d listed, want h's %d", len(got), len(hIDs))
	}
}

// testDeletingAnAssignedRoleReadsABound: deleting a custom role still
// assigned is refused (ECONFLICT); the refusal counted every use of the
// role, reading an index entry for each (a million for a role a million
// hold) to say how many. It counts up to a bound and says "more than".
func testDeletingAnAssignedRoleReadsABound(t *testing.T, open Open) {
	const n = 1500
	b := open(t)
	update(t, b, func(tx *store.Tx) error {
		return tx.PutRole(permatrix.Role{System: "s1", Name: "r", Permissions: []string{"x"}})
	})
	bigStore(t, b, n) // n assignments of role r in s1
	c := &countingSnapshot{Snapshot: view(t, b)}
	tx := store.NewTx(ctx, c, func(context.Context) (uint64, error) { return 0, errors.New("no id is needed") })
	err := tx.DeleteRole("s1", "r")
	if permatrix.ErrorCode(err) != permatrix.ECONFLICT || !strings.Contains(permatrix.ErrorMessage(err), "more than 1000 times") {
		t.Fatalf("deleting a role assigned %d times: %v", n, err)
	}
	if c.reads > 1000+10 {
		t.Fatalf("deleting a role assigned %d times: %d records read", n, c.reads)
	}
	if !tx.Empty() {
		t.Fatal("a refused deletion planned a change")
	}
}

// testMembersPage: a page of a group's members reads limit+1 of them
// whatever the group's size, and pages list every member once, in order.
func testMembersPage(t *testing.T, open Open) {
	const n = 1000
	b := open(t)
	var want []string
	for i := 0; i < n; i += 100 {
		update(t, b, func(tx *store.Tx) error {
			for j := i; j < i+100; j++ {
				if err := tx.AddMember(permatrix.Membership{Group: "g", User: fmt.Sprintf("u%04d", j)}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for j := range n {
		want = append(want, fmt.Sprintf("u%04d", j))
	}
	update(t, b, func(tx *store.Tx) error { return tx.AddMember(permatrix.Membership{Group: "g2", User: "x"}) })
	s := view(t, b)
	for _, limit := range []int{1, 7, 1000} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			c := &countingSnapshot{Snapshot: s}
			users, next, err := store.MembersPage(c, "g", cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) > limit || c.reads > limit+1 || page > n {
				t.Fatalf("limit %d page %d: %d users, %d records read", limit, page, len(users), c.reads)
			}
			got = append(got, users...)
			if next == "" {
				break
			}
			if next != users[len(users)-1] {
				t.Fatalf("next %q after %v", next, users)
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d members paged, want %d", limit, len(got), len(want))
		}
	}
	if users, next, err := store.MembersPage(s, "none", "", 5); err != nil || len(users) != 0 || users == nil || next != "" {
		t.Fatalf("unknown group: %v %q %v", users, next, err)
	}
}

// testAssignmentsWithGroups: a user's listing WithGroups is the user's
// assignments and those of the groups the user is stored in (read inside
// the scan of the user's memberships), by id, paged, filters applied.
func testAssignmentsWithGroups(t *testing.T, open Open) {
	b := open(t)
	var want, atP1 []string
	update(t, b, func(tx *store.Tx) error {
		want, atP1 = want[:0], atP1[:0]
		for _, m := range []permatrix.Membership{{Group: "ga", User: "u"}, {Group: "gb", User: "u"}, {Group: "gc", User: "other"}} {
			if err := tx.AddMember(m); err != nil {
				return err
			}
		}
		for i, subject := range []string{"group:gb", "user:u", "group:ga", "group:gc", "user:other", "group:gb", "group:ga", "user:u"} {
			a := assign(subject, "s1", fmt.Sprintf("r%d", i), "", permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%2)})
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			if subject != "group:gc" && subject != "user:other" {
				want = append(want, a.ID)
				if a.Scope.ID == "p1" {
					atP1 = append(atP1, a.ID)
				}
			}
		}
		return nil
	})
	slices.Sort(want)
	slices.Sort(atP1)
	s := view(t, b)
	for _, tc := range []struct {
		f    permatrix.AssignmentFilter
		want []string
	}{
		{permatrix.AssignmentFilter{Subject: "user:u", WithGroups: true, Limit: 2}, want},
		{permatrix.AssignmentFilter{Subject: "user:u", WithGroups: true, System: "s1", ScopeType: "project", ScopeID: "p1", Limit: 1}, atP1},
	} {
		var got []string
		f := tc.f
		for page := 0; page < 10; page++ {
			list, next, err := store.Assignments(s, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range list {
				got = append(got, a.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
	if _, _, err := store.Assignments(s, permatrix.AssignmentFilter{Subject: "group:ga", WithGroups: true}); permatrix.ErrorCode(err) != permatrix.EINVALID {
		t.Fatalf("a group WithGroups: %v", err)
	}
}

// unitsChanged fails the test unless every unit a write of key bumps is
// recorded as changed at rev.
func unitsChanged(t *testing.T, b store.Backend, round int, rev uint64, key string) {
	t.Helper()
	for _, u := range store.WriteUnits([]byte(key)) {
		if !b.Changes().ChangedAfter(rev-1, [][]byte{u}) {
			t.Errorf("round %d: key %q changed at %d, its unit %q not recorded as changed", round, key, rev, u)
		}
	}
}

// testRandomPlansMatchTheirView: random plans of writes (assignments made
// and removed, memberships, roles written twice, projects, part of a plan
// taken back to a mark), each committed alone. After each commit the store
// reads exactly what the plan's own view read before it (every key and
// value: the overlay's pending keys and values are the operations'
// bytes, and a buffer reused under them shows here), the batch's write
// units are the units its operations write (Batch.Writes of a plan is the
// overlay's list; a stale one shows here), and the units of every key it
// changed are recorded as changed at the commit's revision (a plan that
// read one before now would conflict).
func testRandomPlansMatchTheirView(t *testing.T, open Open) {
	b := open(t)
	rng := rand.New(rand.NewPCG(30, 8))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	scope := func() permatrix.Scope {
		if rng.IntN(2) == 0 {
			return permatrix.ServiceScope
		}
		return permatrix.Scope{Type: "project", ID: pick("p0", "p1")}
	}
	all := func(s store.Snapshot) map[string]string {
		t.Helper()
		out := map[string]string{}
		if err := s.Scan(nil, nil, func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// plan makes one random change; an error is one the change may meet
	// (nothing planned then).
	plan := func(tx *store.Tx) error {
		switch rng.IntN(7) {
		case 0, 1:
			a := permatrix.Assignment{Subject: pick("user:", "group:") + pick("u0", "u1", "g0"), System: pick("s0", "s1"), Scope: scope()}
			if rng.IntN(2) == 0 {
				a.Role = pick("r0", "r1")
			} else {
				a.Permission = pick("read", "write")
			}
			return tx.CreateAssignment(&a)
		case 2:
			list, _, err := store.Assignments(tx.View(), permatrix.AssignmentFilter{Subject: pick("user:u0", "user:u1", "group:g0")})
			if err != nil || len(list) == 0 {
				return err
			}
			_, err = tx.DeleteAssignment(list[rng.IntN(len(list))].ID)
			return err
		case 3:
			return tx.AddMember(permatrix.Membership{Group: pick("g0", "g1"), User: pick("u0", "u1")})
		case 4:
			return tx.RemoveMember(permatrix.Membership{Group: pick("g0", "g1"), User: pick("u0", "u1")})
		case 5:
			r := permatrix.Role{System: pick("s0", "s1"), Name: pick("r0", "r1"), Permissions: []string{pick("read", "write", "admin")}}
			if err := tx.PutRole(r); err != nil {
				return err
			}
			r.Permissions = append(r.Permissions, "audit")
			return tx.PutRole(r)
		default:
			if rng.IntN(2) == 0 {
				return tx.DeleteRole(pick("s0", "s1"), pick("r0", "r1"))
			}
			return tx.PutProject(permatrix.Project{System: pick("s0", "s1"), ID: pick("p0", "p1"), CreatedBy: "u0"})
		}
	}
	committed := 0
	for round := range 40 {
		snap, err := b.View()
		if err != nil {
			t.Fatal(err)
		}
		before := all(snap)
		tx := store.NewTx(ctx, snap, b.NextID)
		var mark *store.Mark
		for range 1 + rng.IntN(10) {
			if rng.IntN(6) == 0 {
				if mark == nil {
					m := tx.Mark()
					mark = &m
				} else {
					tx.Rollback(*mark)
					mark = nil
				}
				continue
			}
			if err := plan(tx); err != nil {
				switch permatrix.ErrorCode(err) {
				case permatrix.ENOTFOUND, permatrix.ECONFLICT:
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		want := all(tx.View())
		batch := tx.Batch()
		planned := slices.Clone(batch.Writes())
		found := (&store.Batch{Ops: slices.Clone(batch.Ops)}).Writes()
		if !slices.EqualFunc(planned, found, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("round %d: the batch's writes %q, its operations write %q", round, planned, found)
		}
		snap.Close()
		if len(batch.Ops) == 0 {
			continue
		}
		rev := commit(t, b, batch)
		if err := b.Wait(ctx, rev); err != nil {
			t.Fatal(err)
		}
		committed++
		after := view(t, b)
		if got := all(after); !maps.Equal(got, want) {
			t.Fatalf("round %d: the store after the commit\n%q\nthe plan's view before it\n%q", round, got, want)
		}
		// A unit whose keys the commit changed is recorded as changed (a
		// key put and deleted again in one plan, absent before and after,
		// changes nothing: etcd's watch, which feeds a fleet's index,
		// sees nothing of it).
		for k, v := range want {
			if w, ok := before[k]; !ok || w != v {
				unitsChanged(t, b, round, rev, k)
			}
		}
		for k := range before {
			if _, ok := want[k]; !ok {
				unitsChanged(t, b, round, rev, k)
			}
		}
	}
	if committed < 20 {
		t.Fatalf("%d of 40 random plans committed: the test planned too little", committed)
	}
}
