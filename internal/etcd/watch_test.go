package etcd_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// The watch follows the data keys (and the id counter), not the guards. These
// tests hold it to what that must not break: every revision a sidecar
// acknowledges, reports or is asked to wait for reaches every sidecar.

// TestCommitWithoutDataEvents: a commit whose key operations leave etcd's
// data as it was — a key put and deleted again in one plan, so the
// transaction deletes a key etcd does not have — still writes the guards
// and makes a revision. It must be acknowledged at once, and the other
// sidecars' Fresh (the root guard's revision) must not wait for a revision
// no data event carries.
func TestCommitWithoutDataEvents(t *testing.T) {
	ctx := context.Background()
	// A request timeout far past the bounds below: a commit or a wait held
	// for it is told from one answered at once, however slow the machine.
	o := etcd.Options{RequestTimeout: 2 * time.Minute}
	a, b := pair(t, o)
	start := time.Now()
	rev, err := store.Update(ctx, a, func(tx *store.Tx) error {
		x := permatrix.Assignment{Subject: "user:u", System: "s", Role: "r", Scope: permatrix.ServiceScope}
		if err := tx.CreateAssignment(&x); err != nil {
			return err
		}
		_, err := tx.DeleteAssignment(x.ID)
		return err
	})
	if err != nil {
		t.Fatalf("a commit that changes no data key (after %s): %v", time.Since(start).Round(time.Millisecond), err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the commit took %s", took)
	}
	for name, s := range map[string]*etcd.Store{"a": a, "b": b} {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
		err := s.Wait(wctx, rev)
		cancel()
		if err != nil {
			t.Errorf("sidecar %s never reaches the commit's revision %d (applied %d): %v", name, rev, s.Revision(), err)
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
		err = s.Fresh(fctx)
		cancel()
		if err != nil {
			t.Errorf("sidecar %s: Fresh after the commit: %v", name, err)
		}
	}
}

// TestIDCounterRevisionReachesEverySidecar: a revision that only moves the id
// counter (the last one after `store copy`'s RaiseIDs, or after an import
// refused once its ids were reserved) is the revision a new sidecar's first
// load reports — its decisions' consistency token. Every other sidecar must
// reach it (min_revision waits for it), and /health's lag must come back
// to 0.
func TestIDCounterRevisionReachesEverySidecar(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("idrev")
	o := etcd.Options{MaxStaleness: 300 * time.Millisecond} // a heartbeat every 100 ms: the lag is seen soon
	a := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), o)
	write(t, a, "u1")
	if err := a.RaiseIDs(ctx, 1_000_000); err != nil {
		t.Fatal(err)
	}
	// A new sidecar loads the replica at the cluster's revision: the
	// counter's.
	c := sidecar(t, prefix, filepath.Join(t.TempDir(), "c.db"), o)
	token := c.Revision()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
	defer cancel()
	if err := a.Wait(wctx, token); err != nil {
		t.Errorf("sidecar a never reaches revision %d, which sidecar c reports (a applied %d): %v", token, a.Revision(), err)
	}
	awaitNoLag(t, a, token)
}

// awaitNoLag waits for s's /health lag to be 0 with the replica at rev or
// later (30 s, a guard only: a heartbeat every 100 ms does it at once).
func awaitNoLag(t *testing.T, s *etcd.Store, rev uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.Replication()
		if r.Lag == 0 && r.AppliedRevision >= rev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lag stays %d (applied %d, latest %d; want revision %d)", r.Lag, r.AppliedRevision, r.LatestRevision, rev)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLagOnSharedCluster: another fleet's writes on the same cluster (another
// prefix) move the cluster's revision with no event for this prefix; the
// heartbeat's progress request brings the replica to it, so /health's lag
// comes back to 0 without a write or a consistency token here.
func TestLagOnSharedCluster(t *testing.T) {
	o := etcd.Options{MaxStaleness: 300 * time.Millisecond} // a heartbeat every 100 ms
	ours := sidecar(t, newPrefix("lag"), filepath.Join(t.TempDir(), "ours.db"), o)
	write(t, ours, "alice")
	theirs := open(t)
	var last uint64
	for i := range 5 {
		last = write(t, theirs, fmt.Sprintf("u%d", i))
	}
	awaitNoLag(t, ours, last)
}
