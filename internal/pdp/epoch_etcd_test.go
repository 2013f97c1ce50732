package pdp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/test/harness"
)

// TestVerdictsOfAWipedReplicaNotTaken: on a fleet's store, a replica
// emptied and loaded afresh (the etcd cluster wiped, or replaced) numbers
// its revisions anew, and the index of its changes starts over (a new
// epoch): an import chunk planned before, whose verdicts were judged ahead
// on the old state, cannot be told changed by revision. Here the new
// cluster holds user:x as a Celonis member, given after the wipe, while the
// chunk planned on the old state (user:x holding nothing) took its last
// line, edit_users for user:x, as allowed. The chunk's commit must be
// refused for its epoch and the chunk judged again on the new state: the
// line is refused (members are granted nothing) and nothing of the chunk
// is stored. (The new numbering is made to pass the chunk's base with
// user:x's change below it, so that revisions alone would let the chunk
// through.)
func TestVerdictsOfAWipedReplicaNotTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster and wipes it")
	}
	ctx := context.Background()
	// Transactions large enough for the chunk's 100 lines in one commit.
	cluster := harness.StartEtcdCluster(t, 1, "--max-txn-ops", "2048")
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(fmt.Sprintf("epoch%d", time.Now().UnixNano())),
		Replica: filepath.Join(t.TempDir(), "replica.db"), MaxTxnOps: 2048,
		MaxStaleness: 150 * time.Millisecond, Logger: discard}) // a heartbeat every 50 ms finds the wipe
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	svc := pdp.New(s, opa.NewEngine(s), discard, nil)
	bundle, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	retry(t, "activating the bundle", func() error { _, err := svc.Activate(ctx, bundle); return err })
	// Something before the wipe, so that the old numbering is ahead.
	for i := range 5 {
		retry(t, "writing before the wipe", func() error {
			_, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:old%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, "")
			return err
		})
	}

	var lines []pdp.ImportLine
	for i := 1; i < 100; i++ {
		lines = append(lines, pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{Subject: fmt.Sprintf("user:a%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}})
	}
	x := permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}
	lines = append(lines, pdp.ImportLine{Line: 100, Assignment: x})
	taken := pdp.AheadTaken(svc)
	epoch, base := s.Changes().Epoch(), s.Revision()
	release, result := pdp.HeldChunk(ctx, svc, lines)
	if pdp.AheadTaken(svc) == taken {
		t.Fatal("the chunk's first plan took no verdict judged ahead")
	}

	if err := cluster.Wipe(true); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); s.Changes().Epoch() == epoch; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replica was not loaded afresh within 30 s of the wipe")
		}
	}
	retry(t, "making user:x a member after the wipe", func() error {
		_, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:x", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, "")
		return err
	})
	// The new numbering passes the chunk's base, user:x's change below it:
	// by revision alone, nothing the chunk read changed after its base.
	for i := 0; s.Revision() <= base+2; i++ {
		retry(t, "writing after the wipe", func() error {
			_, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:new%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, "")
			return err
		})
	}

	release()
	select {
	case err = <-result:
	case <-time.After(60 * time.Second):
		t.Fatal("the chunk did not end within 60 s")
	}
	if permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE || !strings.Contains(err.Error(), "line 100") {
		t.Fatalf("the chunk planned before the wipe: %v, want its line 100 refused on the new state", err)
	}
	list, _, err := svc.Assignments(ctx, permatrix.AssignmentFilter{System: "celonis-task-mining"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if (a.Subject != "user:x" || a.Role != "member") && !strings.HasPrefix(a.Subject, "user:new") {
			t.Errorf("stored after the refused chunk: %+v (the new state holds user:x's member role alone)", a)
		}
	}
}

// retry runs f until it succeeds, while the store is unavailable (a
// replica being loaded), at most 30 s.
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := f()
		if err == nil {
			return
		}
		if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}
