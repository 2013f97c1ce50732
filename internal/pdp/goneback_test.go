package pdp_test

import (
	"context"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// wentBack is a store that went back between a consistency token's wait
// and the snapshot: it has published a revision, but its View shows an
// older one — what a fleet's replica found on another cluster's history
// shows while it is emptied and loaded again (internal/etcd). The
// snapshot is a real one of the bbolt file, taken before the write.
type wentBack struct {
	store.Backend
	old store.Snapshot
}

func (w wentBack) View() (store.Snapshot, error) { return kept{w.old}, nil }

// kept is a snapshot whose Close leaves it open for the next View.
type kept struct{ store.Snapshot }

func (kept) Close() error { return nil }

// TestTokenNeverAnsweredBelow: a check or a user's permissions asked with
// a consistency token are never answered at a revision below it, even when
// the store goes back after the wait saw the token's revision applied: the
// answer is 503 ("retry"), not a decision that says it was made at the
// older revision (found by reading, by the fleet attack: pdp trusted the
// wait and did not look at the snapshot's revision).
func TestTokenNeverAnsweredBelow(t *testing.T) {
	ctx := context.Background()
	db, svc := newBoltService(t)
	old, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	a := permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	_, rev, err := svc.Assign(ctx, a, "")
	if err != nil || rev <= old.Revision() {
		t.Fatalf("revision %d after %d: %v", rev, old.Revision(), err)
	}
	back := pdp.New(wentBack{db, old}, opa.NewEngine(db), nil, nil)
	if _, err := back.Activate(ctx, svc.Policy().Bundle()); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users", MinRevision: rev}
	for range 3 { // asked again: the cache's turn too
		d, err := back.Check(ctx, check)
		if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
			t.Fatalf("answered %+v, %v: want 503, the store is below the token", d, err)
		}
	}
	if _, _, err := back.Permissions(ctx, "ann", nil, permatrix.ServiceScope, rev); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Fatalf("permissions: %v, want 503", err)
	}
	// Without a token the older snapshot answers, saying which it is.
	check.MinRevision = 0
	if d, err := back.Check(ctx, check); err != nil || d.Revision != old.Revision() || d.Allow {
		t.Fatalf("%+v %v: want a deny at revision %d", d, err, old.Revision())
	}
}
