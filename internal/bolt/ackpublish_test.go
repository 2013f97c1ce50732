package bolt_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestNothingToDoAnsweredOncePublished: a write that finds nothing to do
// (the member is there already) answers with the revision of the snapshot
// it planned on, which bbolt shows as soon as it has committed it — before
// the revision's changes are recorded and the revision published. A check
// started once that answer is back must be decided at that revision or
// later (the contract: "a check made after a write that returned revision
// N is decided at revision ≥ N"); the decision cache answers at the
// published revision, and with what was true there: the grant revoked at
// the unpublished revision was still allowed.
func TestNothingToDoAnsweredOncePublished(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	a, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}, "")
	if err != nil {
		t.Fatal(err)
	}
	m := permatrix.Membership{Group: "ops", User: "bob"}
	if _, err := svc.AddMember(ctx, m, ""); err != nil {
		t.Fatal(err)
	}
	ch := permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users"}
	for range 3 { // kept, then answered from the cache
		if d, err := svc.Check(ctx, ch); err != nil || !d.Allow {
			t.Fatalf("before the revocation: %+v %v, want an allow", d, err)
		}
	}

	held, release := make(chan uint64, 1), make(chan struct{})
	restore := bolt.SetHookBeforePublish(func(rev uint64) { held <- rev; <-release })
	defer restore()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	revoked := make(chan error, 1)
	go func() {
		_, err := svc.Unassign(ctx, a.ID, "")
		revoked <- err
	}()
	revocation := <-held // committed in bbolt, not yet published

	type answer struct {
		rev uint64
		err error
	}
	added := make(chan answer, 1)
	go func() {
		rev, err := svc.AddMember(ctx, m, "") // there already: nothing to do
		added <- answer{rev, err}
	}()
	var got answer
	select {
	case got = <-added:
	case <-time.After(300 * time.Millisecond):
		// Not answered before the revocation is published: release it.
		close(release)
		released = true
		got = <-added
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	d, err := svc.Check(ctx, ch) // started after the write's answer
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision < got.rev {
		t.Errorf("a check made after a write answered revision %d was decided at revision %d", got.rev, d.Revision)
	}
	if d.Revision >= revocation && d.Allow {
		t.Errorf("at revision %d, after the revocation at %d: allowed", d.Revision, revocation)
	}
	if !released {
		close(release)
		released = true
	}
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
}
