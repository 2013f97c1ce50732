package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A Tx rolled back to a mark is the Tx as it was at the mark: the same
// batch (operations and reads), the same size, the same view; and its Size
// always measures its Batch.
func TestTxRollback(t *testing.T) {
	ctx := context.Background()
	b := store.NewMemory()
	// Something to read: u0's grants, a role.
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error {
		if err := tx.PutRole(permatrix.Role{System: "bp", Name: "ops", Permissions: []string{"a"}}); err != nil {
			return err
		}
		return tx.CreateAssignment(&permatrix.Assignment{Subject: "user:u0", System: "s", Role: "r", Scope: permatrix.ServiceScope})
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tx := store.NewTx(ctx, snap, b.NextID)
	sizeIsBatch := func(when string) {
		t.Helper()
		if got, want := tx.Size(), tx.Batch().Size(); got != want {
			t.Fatalf("%s: Size %+v, Batch().Size() %+v", when, got, want)
		}
	}
	sizeIsBatch("empty")
	a1 := permatrix.Assignment{Subject: "user:u1", System: "s", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	if err := tx.CreateAssignment(&a1); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Role("bp", "ops"); err != nil {
		t.Fatal(err)
	}
	sizeIsBatch("one assignment")
	mark := tx.Mark()
	before, beforeSize := tx.Batch(), tx.Size()

	// Past the mark: more assignments (one sharing units with a1), a
	// membership, reads of other units, a delete, a key written twice.
	for i := range 5 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", 1+i%2), System: "s", Permission: fmt.Sprintf("p%d", i), Scope: permatrix.ServiceScope}
		if err := tx.CreateAssignment(&a); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.AddMember(permatrix.Membership{Group: "g", User: "u1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Groups("u9"); err != nil {
		t.Fatal(err)
	}
	old, _, err := store.Assignments(snap, permatrix.AssignmentFilter{Subject: "user:u0"})
	if err != nil || len(old) != 1 {
		t.Fatal(old, err)
	}
	if _, err := tx.DeleteAssignment(old[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.PutRole(permatrix.Role{System: "bp", Name: "ops", Permissions: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.PutRole(permatrix.Role{System: "bp", Name: "ops", Permissions: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	sizeIsBatch("past the mark")
	if tx.Size() == beforeSize {
		t.Fatal("planning past the mark did not grow the Tx")
	}

	tx.Rollback(mark)
	sizeIsBatch("rolled back")
	// The same batch: what it commits, compared (its planning's ordered
	// tree is another one, rebuilt).
	commits := func(b *store.Batch) any {
		return []any{b.Base, b.Reads, b.Ops, b.Writes(), slices.Collect(b.InKeyOrder())}
	}
	if after := tx.Batch(); !reflect.DeepEqual(commits(after), commits(before)) || tx.Size() != beforeSize {
		t.Fatalf("rolled back:\n%+v\nwant\n%+v", commits(after), commits(before))
	}
	// The view is the mark's: what was planned after it is gone, what was
	// planned before it is there, and the snapshot shows through again.
	if _, err := tx.Assignment(old[0].ID); err != nil {
		t.Fatalf("a delete past the mark still shows: %v", err)
	}
	if _, err := tx.Assignment(a1.ID); err != nil {
		t.Fatalf("a1, planned before the mark: %v", err)
	}
	if gs, err := tx.Groups("u1"); err != nil || len(gs) != 0 {
		t.Fatalf("a membership past the mark still shows: %v %v", gs, err)
	}
	if r, err := tx.Role("bp", "ops"); err != nil || !reflect.DeepEqual(r.Permissions, []string{"a"}) {
		t.Fatalf("the role's writes past the mark still show: %+v %v", r, err)
	}
	// Planning goes on from the mark and commits what the Tx holds.
	a2 := permatrix.Assignment{Subject: "user:u2", System: "s", Permission: "p", Scope: permatrix.ServiceScope}
	if err := tx.CreateAssignment(&a2); err != nil {
		t.Fatal(err)
	}
	sizeIsBatch("planned on")
	if _, err := b.Commit(ctx, tx.Batch()); err != nil {
		t.Fatal(err)
	}
	got, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, id := range []string{a1.ID, a2.ID, old[0].ID} {
		if _, err := store.Assignment(got, id); err != nil {
			t.Fatalf("%s after the commit: %v", id, err)
		}
	}
	if gs, _ := store.Groups(got, "u1"); len(gs) != 0 {
		t.Fatalf("a membership rolled back was committed: %v", gs)
	}
}
