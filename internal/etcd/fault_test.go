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
	"github.com/permatrix/permatrix/test/harness"
)

// TestClusterWipedWhileRunning: the cluster loses everything while the
// sidecars run — every member's disk, or a restore from a snapshot older
// than all they have seen (same cluster id, revisions from 1 again), or
// another cluster started on the same addresses. As at a start, their
// replicas must not be followed from their revisions: they would answer
// from what etcd no longer holds, and never apply what it is given until
// its revision passes theirs. A write acknowledged after the wipe is seen
// by a check on the same sidecar, and an idle sidecar comes to hold what
// etcd holds (its heartbeat finds the cluster behind it).
func TestClusterWipedWhileRunning(t *testing.T) {
	for _, newID := range []bool{false, true} {
		t.Run(fmt.Sprintf("newID=%v", newID), func(t *testing.T) { wipedWhileRunning(t, newID) })
	}
}

func wipedWhileRunning(t *testing.T, newID bool) {
	c := harness.StartEtcdCluster(t, 1)
	prefix := newPrefix("wiped")
	sidecar := func(name string) *etcd.Store {
		s, err := etcd.Open(context.Background(), etcd.Options{URL: c.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	idle, writer := sidecar("idle.db"), sidecar("writer.db")
	write(t, writer, "alice")
	var rev uint64
	for i := range 20 { // the replicas' revision well ahead of the wiped cluster's
		rev = write(t, writer, fmt.Sprintf("u%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := idle.Wait(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if err := c.Wipe(newID); err != nil {
		t.Fatal(err)
	}
	bob := permatrix.Assignment{Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		rev, err = store.Update(ctx, writer, func(tx *store.Tx) error { return tx.CreateAssignment(&bob) })
		cancel()
		if err == nil {
			break
		}
		if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("writing after the wipe: %v", err)
		}
		t.Logf("writing after the wipe: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	got, at := subjects(t, writer)
	if !got["user:bob"] || got["user:alice"] {
		t.Fatalf("bob acknowledged at revision %d, but a check on the same sidecar right after reads %v at revision %d: etcd holds bob alone", rev, got, at)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		got, at = subjects(t, idle)
		if !got["user:alice"] && got["user:bob"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the wipe the idle sidecar's replica at revision %d holds %v: etcd holds bob alone", at, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
