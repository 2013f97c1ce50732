package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/store/storetest"
	"github.com/permatrix/permatrix/test/harness"
)

// cluster is a real three-member etcd cluster shared by the package's tests;
// each test works under a prefix of its own. Its transactions may be
// larger than etcd's defaults (the conformance suite commits a few hundred
// operations at once): raised, the stores are told (raised). The limits
// themselves are tested on a cluster at etcd's defaults (limits_test.go).
var cluster *harness.EtcdCluster

var raised = etcd.Options{MaxTxnOps: 1024, MaxRequestBytes: 8 << 20}

func TestMain(m *testing.M) {
	// In memory: no test restarts a member of this cluster or reads its
	// disk, and each write waited on three members' fsyncs.
	dir, err := harness.MemoryTempDir("permatrix-etcd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster, err = harness.NewEtcdCluster(dir, 3,
		"--max-txn-ops", fmt.Sprint(raised.MaxTxnOps), "--max-request-bytes", fmt.Sprint(raised.MaxRequestBytes))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cluster.Close()
	if defaults.cluster != nil {
		defaults.cluster.Close()
	}
	if defaults.dir != "" {
		os.RemoveAll(defaults.dir)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

// newPrefix is a key prefix no other test, run or process uses.
func newPrefix(name string) string {
	return fmt.Sprintf("%s%d-%d", name, time.Now().UnixNano(), prefixes.Add(1))
}

// open connects a new store under a fresh prefix with a fresh replica.
func open(t *testing.T) *etcd.Store {
	t.Helper()
	return openAt(t, newPrefix("t"), filepath.Join(t.TempDir(), "replica.db"))
}

func openAt(t *testing.T, prefix, replica string) *etcd.Store {
	t.Helper()
	s := openURL(t, cluster.StoreURL(prefix), replica)
	waitReady(t, s)
	return s
}

// openURL opens the replica at path on url, as a (re)started sidecar does,
// without waiting for its first load.
func openURL(t *testing.T, url, path string) *etcd.Store {
	t.Helper()
	o := raised
	o.URL, o.Replica = url, path
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("opening the replica %s on %s: %v", path, url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitReady waits for the first synchronisation of a new replica.
func waitReady(t *testing.T, s *etcd.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := s.View()
		if err == nil {
			snap.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return open(t) })
}

func client(t *testing.T) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, m := range cluster.Members {
		eps = append(eps, m.ClientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestTwoSidecars: a write through one sidecar is seen by another once it
// has applied the write's revision, and guards hold across sidecars.
func TestTwoSidecars(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("two-%d", time.Now().UnixNano())
	a := openAt(t, prefix, filepath.Join(t.TempDir(), "a.db"))
	b := openAt(t, prefix, filepath.Join(t.TempDir(), "b.db"))
	x := permatrix.Assignment{Subject: "user:alice", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	rev, err := store.Update(ctx, a, func(tx *store.Tx) error { return tx.CreateAssignment(&x) })
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Wait(wctx, rev); err != nil {
		t.Fatalf("sidecar b never applied revision %d: %v", rev, err)
	}
	snap, _ := b.View()
	got, err := store.Assignment(snap, x.ID)
	snap.Close()
	if err != nil || got != x {
		t.Fatalf("b reads %+v %v, want %+v", got, err, x)
	}
	// b plans on alice's grants at an old base while a changes them: b's
	// commit must conflict.
	old, _ := b.View()
	tx := store.NewTx(ctx, old, b.NextID)
	if _, err := tx.Assignment(x.ID); err != nil {
		t.Fatal(err)
	}
	y := permatrix.Assignment{Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	if err := tx.CreateAssignment(&y); err != nil {
		t.Fatal(err)
	}
	batch := tx.Batch()
	old.Close()
	if _, err := store.Update(ctx, a, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(x.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, batch); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("b's stale commit: %v, want ErrConflict", err)
	}
	// Ids from the two sidecars never collide.
	seen := map[uint64]bool{}
	for range 1500 {
		for _, s := range []*etcd.Store{a, b} {
			n, err := s.NextID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if seen[n] {
				t.Fatalf("id %d handed out twice", n)
			}
			seen[n] = true
		}
	}
}

// TestRestartCatchesUp: a sidecar stopped while others write answers at once
// from its replica when started again, then catches up from its revision.
func TestRestartCatchesUp(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("restart-%d", time.Now().UnixNano())
	writer := openAt(t, prefix, filepath.Join(t.TempDir(), "w.db"))
	path := filepath.Join(t.TempDir(), "r.db")
	r, err := etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: path})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, r)
	first := write(t, writer, "u1")
	r.Wait(ctx, first)
	r.Close()
	last := write(t, writer, "u2")

	r, err = etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap, err := r.View() // at once, from the replica
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() < first {
		t.Fatalf("restarted replica at %d, had applied %d", snap.Revision(), first)
	}
	snap.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Wait(wctx, last); err != nil {
		t.Fatalf("restarted replica did not catch up to %d: %v", last, err)
	}
}

func write(t *testing.T, s *etcd.Store, user string) uint64 {
	t.Helper()
	a := permatrix.Assignment{Subject: "user:" + user, System: "s", Role: "r", Scope: permatrix.ServiceScope}
	rev, err := store.Update(context.Background(), s, func(tx *store.Tx) error { return tx.CreateAssignment(&a) })
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestCompactedReplicaResyncs: a replica whose revision etcd compacted away
// is brought up to date by a full read, deletions included.
func TestCompactedReplicaResyncs(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("compact-%d", time.Now().UnixNano())
	writer := openAt(t, prefix, filepath.Join(t.TempDir(), "w.db"))
	path := filepath.Join(t.TempDir(), "r.db")
	r, err := etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: path})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, r)
	gone := permatrix.Assignment{Subject: "user:gone", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	rev, err := store.Update(ctx, writer, func(tx *store.Tx) error { return tx.CreateAssignment(&gone) })
	if err != nil {
		t.Fatal(err)
	}
	r.Wait(ctx, rev)
	r.Close()
	// While r is down: a deletion and new writes, then a compaction past
	// r's revision.
	if _, err := store.Update(ctx, writer, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(gone.ID); return err }); err != nil {
		t.Fatal(err)
	}
	last := write(t, writer, "new")
	cli := client(t)
	if _, err := cli.Compact(ctx, int64(last), clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Reopened as serve opens it (--store-resident): the resync drops the
	// map's pages and maps the document's again (bolt.Options.Resident).
	r, err = etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: path, Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Wait(wctx, last); err != nil {
		t.Fatalf("no resync to %d: %v", last, err)
	}
	snap, _ := r.View()
	defer snap.Close()
	if _, err := store.Assignment(snap, gone.ID); permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
		t.Fatalf("the deleted assignment survived the resync: %v", err)
	}
	list, _, _ := store.Assignments(snap, permatrix.AssignmentFilter{Subject: "user:new"})
	if len(list) != 1 {
		t.Fatalf("resync lost a write: %v", list)
	}
	if problems := store.Verify(snap, 5); len(problems) > 0 {
		t.Fatalf("replica after resync: %v", problems)
	}
}

// TestTokenFromAnotherPrefix: on a cluster shared with another fleet, a
// consistency token may be a revision that fleet's write made (a sidecar's
// first load reports the cluster's revision). No event under this prefix
// carries it; Wait still reaches it, through a progress notification, and
// the replica goes on applying its own prefix's writes after it.
func TestTokenFromAnotherPrefix(t *testing.T) {
	ours, theirs := open(t), open(t)
	write(t, ours, "alice")
	token := write(t, theirs, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ours.Wait(ctx, token); err != nil {
		t.Fatalf("waiting for the other prefix's revision %d: %v (the replica is at %d)", token, err, ours.Revision())
	}
	t.Logf("reached revision %d in %s", token, time.Since(start))
	if got := ours.Revision(); got < token {
		t.Fatalf("revision %d after Wait(%d)", got, token)
	}
	rev := write(t, ours, "carol")
	if err := ours.Wait(ctx, rev); err != nil {
		t.Fatal(err)
	}
	users, at := subjects(t, ours)
	if !users["user:alice"] || !users["user:carol"] || users["user:bob"] || at < rev {
		t.Fatalf("the replica at %d holds %v; want alice and carol, not the other prefix's bob", at, users)
	}
}
