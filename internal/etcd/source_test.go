package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// subjects are the assignment subjects s's replica holds now, and its
// revision.
func subjects(t *testing.T, s *etcd.Store) (map[string]bool, uint64) {
	t.Helper()
	snap, err := s.View()
	if err != nil {
		return nil, 0
	}
	defer snap.Close()
	list, _, err := store.Assignments(snap, permatrix.AssignmentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range list {
		out[a.Subject] = true
	}
	return out, snap.Revision()
}

// offline opens the replica file at path as a tool would, whatever it
// replicates, hands it to fn and closes it.
func offline(t *testing.T, path string, fn func(db *bolt.DB) error) {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{Replica: true, AcceptSource: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	err = fn(db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// recordedSource is what the replica file at path records it replicates.
func recordedSource(t *testing.T, path string) (src string) {
	t.Helper()
	offline(t, path, func(db *bolt.DB) error { src = db.Source(); return nil })
	return src
}

// storeURL is the store URL of prefix with the endpoints (host:port) in
// the order given.
func storeURL(prefix string, endpoints ...string) string {
	return "etcd://" + strings.Join(endpoints, ",") + "/" + prefix
}

// TestReplicaKeptAcrossEndpointLists: the endpoint list is how the cluster
// is reached, not what the replica replicates. Restarted with the members
// in another order, or with one of them left out, a sidecar answers at once
// from its replica at the revision it had, then follows the cluster.
func TestReplicaKeptAcrossEndpointLists(t *testing.T) {
	prefix, path, rev := closedReplica(t, "eps")
	if src := recordedSource(t, path); !strings.HasPrefix(src, "etcd cluster ") {
		t.Fatalf("the replica records %q, want its cluster", src)
	}
	eps := strings.Split(cluster.Endpoints(), ",")
	for _, list := range [][]string{{eps[2], eps[1], eps[0]}, {eps[1], eps[2]}} {
		s := openURL(t, storeURL(prefix, list...), path)
		got, at := subjects(t, s)
		if !got["user:alice"] || at < rev {
			t.Fatalf("restarted on %v: the replica at once holds %v at revision %d, want alice at %d or later", list, got, at, rev)
		}
		rev = write(t, s, fmt.Sprintf("u%d", len(list)))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplicaOfAnotherClusterRebuilt: a replica pointed at another cluster
// under the same prefix (or at its own cluster restored from a snapshot: a
// new cluster id, revisions that may be behind the replica's) is not
// followed from its revision — it would miss or mix data — but rebuilt from
// the new cluster.
func TestReplicaOfAnotherClusterRebuilt(t *testing.T) {
	other := defaultCluster(t)
	prefix := newPrefix("moved")
	path := filepath.Join(t.TempDir(), "replica.db")
	first := openAt(t, prefix, path)
	write(t, first, "alice")
	for i := range 20 { // the first cluster's revision well ahead of the other's
		write(t, first, fmt.Sprintf("u%d", i))
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// The other cluster holds zed under the same prefix.
	o := raised
	o.MaxTxnOps, o.MaxRequestBytes = 0, 0 // the other cluster's limits are etcd's defaults
	o.URL, o.Replica = other.StoreURL(prefix), filepath.Join(t.TempDir(), "writer.db")
	writer, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	waitReady(t, writer)
	write(t, writer, "zed")

	o.Replica = path
	moved, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("the replica on another cluster: %v", err)
	}
	defer moved.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, at := subjects(t, moved)
		if got["user:zed"] {
			if got["user:alice"] {
				t.Fatalf("the rebuilt replica mixes the two clusters: %v at %d", got, at)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica on the other cluster never shows its data: %v at revision %d", got, at)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rev := write(t, moved, "yan")
	if got, at := subjects(t, moved); !got["user:yan"] || !got["user:zed"] || at < rev {
		t.Fatalf("after a write on the other cluster: %v at %d, want yan and zed at %d", got, at, rev)
	}
}

// TestReplicaOfEarlierReleaseKept: a replica made before the cluster was
// recorded names the endpoint list as written. With the same list it is
// kept (and learns its cluster); with another list it is refused as
// before — it may be another cluster's.
func TestReplicaOfEarlierReleaseKept(t *testing.T) {
	prefix := newPrefix("old")
	eps := strings.Split(cluster.Endpoints(), ",")
	var withScheme []string
	for _, e := range eps {
		withScheme = append(withScheme, "http://"+e)
	}
	old := func() string {
		path := filepath.Join(t.TempDir(), "replica.db")
		db, err := bolt.Open(path, bolt.Options{Replica: true, Source: strings.Join(withScheme, ",") + "/" + prefix + "/"})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := old()
	s := openURL(t, storeURL(prefix, eps...), path)
	waitReady(t, s)
	write(t, s, "alice")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if src := recordedSource(t, path); !strings.HasPrefix(src, "etcd cluster ") || !strings.HasSuffix(src, " prefix /"+prefix+"/") {
		t.Fatalf("the replica records %q after its first contact, want its cluster and prefix", src)
	}
	o := raised
	o.URL, o.Replica = storeURL(prefix, eps[1], eps[0]), old()
	if s, err := etcd.Open(context.Background(), o); err == nil {
		s.Close()
		t.Fatal("a replica of an earlier release opened with another endpoint list")
	} else if !strings.Contains(err.Error(), "replicates") {
		t.Fatalf("refused with %v, want the replicates error", err)
	}
}

// TestReplicaAheadOfClusterRebuilt: a replica at a revision the cluster has
// not reached (the cluster restored from an older snapshot, its id kept)
// would watch from a revision in the cluster's future and miss what is
// written before it: it is rebuilt instead.
func TestReplicaAheadOfClusterRebuilt(t *testing.T) {
	prefix, path, rev := closedReplica(t, "ahead")
	// What the restored cluster lost: the revisions up to one far ahead.
	offline(t, path, func(db *bolt.DB) error { return db.Apply(rev+100_000, nil, nil) })
	s := openURL(t, storeURL(prefix, strings.Split(cluster.Endpoints(), ",")...), path)
	deadline := time.Now().Add(10 * time.Second)
	for s.Revision() > rev+10 {
		if time.Now().After(deadline) {
			t.Fatalf("the replica ahead of the cluster was not rebuilt: revision %d, the cluster's about %d", s.Revision(), rev)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitReady(t, s)
	if got, _ := subjects(t, s); !got["user:alice"] {
		t.Fatalf("the rebuilt replica holds %v, want alice", got)
	}
	next := write(t, s, "carol")
	if got, at := subjects(t, s); !got["user:carol"] || at < next {
		t.Fatalf("after a write: %v at %d, want carol at %d", got, at, next)
	}
}

// heldProxy forwards TCP connections to target, but holds every connection
// (accepted, nothing forwarded) until release is called: etcd as a sidecar
// sees it while the network is not there yet.
func heldProxy(t *testing.T, target string) (addr string, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				<-open
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
			}()
		}
	}()
	var once sync.Once
	t.Cleanup(func() { ln.Close(); once.Do(func() { close(open) }) })
	return ln.Addr().String(), func() { once.Do(func() { close(open) }) }
}

// TestNoCommitOnUncheckedReplica: a write planned on a replica that turns
// out, once etcd answers, to be ahead of the cluster (restored from an
// older snapshot) is not committed on what that replica said: its base
// revision is in the cluster's future, so every guard compare would pass.
// Here the stale replica holds role s/admin, which the cluster does not:
// a write that sets s/granted only while s/admin exists must find it
// absent.
func TestNoCommitOnUncheckedReplica(t *testing.T) {
	prefix, path, rev := closedReplica(t, "unchecked")
	// The keys of s/admin, as a store writes them.
	scratch, err := bolt.Open(filepath.Join(t.TempDir(), "scratch.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	if _, err := store.Update(context.Background(), scratch, func(tx *store.Tx) error { return setCounter(tx, "admin", 1) }); err != nil {
		t.Fatal(err)
	}
	var admin []store.Op
	snap, err := scratch.View()
	if err != nil {
		t.Fatal(err)
	}
	err = snap.Scan(nil, nil, func(k, v []byte) error {
		admin = append(admin, store.Op{Key: bytes.Clone(k), Value: bytes.Clone(v)})
		return nil
	})
	snap.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The replica ahead of the cluster, with the admin the cluster lost.
	offline(t, path, func(db *bolt.DB) error { return db.Apply(rev+100_000, admin, nil) })

	addr, release := heldProxy(t, strings.Split(cluster.Endpoints(), ",")[0])
	s := openURL(t, storeURL(prefix, addr), path)
	if n := readCounter(t, s, "admin"); n != 1 {
		t.Fatalf("the restarted replica answers admin=%d, want the stale 1", n)
	}
	// A consistency token (a revision another sidecar acknowledged a write
	// at) is not reached by a replica whose revision may not be this
	// cluster's.
	wctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = s.Wait(wctx, rev+1)
	cancel()
	if err == nil {
		t.Fatalf("token %d reached on the unchecked replica at %d", rev+1, s.Revision())
	}
	planned := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := store.Update(ctx, s, func(tx *store.Tx) error {
			select {
			case planned <- struct{}{}:
			default:
			}
			if n, err := counter(tx, "admin"); err != nil || n != 1 {
				return err
			}
			return setCounter(tx, "granted", 1)
		})
		done <- err
	}()
	<-planned
	time.Sleep(200 * time.Millisecond) // the commit is on its way to etcd
	release()
	err = <-done
	t.Logf("the write: %v", err)
	waitReady(t, s)
	settleToCluster(t, s)
	if n := readCounter(t, s, "granted"); n != 0 {
		t.Fatalf("s/granted was committed on the stale replica's s/admin (the cluster has none)")
	}
	if n := readCounter(t, s, "admin"); n != 0 {
		t.Fatalf("the rebuilt replica still holds the stale admin")
	}
}

// TestBatchOfAnotherEpochRefused: a batch planned before the replica was
// emptied and loaded afresh (a new epoch of the store's changes) names
// revisions of the old numbering: its commit is refused as a conflict,
// whatever its base, and store.Update plans it again and commits it.
func TestBatchOfAnotherEpochRefused(t *testing.T) {
	s := open(t)
	write(t, s, "alice")
	epoch := s.Changes().Epoch()
	snap, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	tx := store.NewTx(context.Background(), snap, s.NextID)
	bob := permatrix.Assignment{Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	if err := tx.CreateAssignment(&bob); err != nil {
		t.Fatal(err)
	}
	batch := tx.Batch()
	batch.Epoch = epoch
	snap.Close()
	s.Changes().Forget() // as a wipe does, between the plan and the commit
	if _, err := s.Commit(context.Background(), batch); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a batch of epoch %d committed in epoch %d: %v, want ErrConflict", epoch, s.Changes().Epoch(), err)
	}
	rev := write(t, s, "carol") // store.Update plans in the current epoch
	if got, at := subjects(t, s); !got["user:carol"] || got["user:bob"] || at < rev {
		t.Fatalf("after the refused batch: %v at %d", got, at)
	}
}

// closedReplica is a sidecar's replica of a new prefix (named name…) where
// alice was granted at rev, the sidecar stopped.
func closedReplica(t *testing.T, name string) (prefix, path string, rev uint64) {
	t.Helper()
	prefix, path = newPrefix(name), filepath.Join(t.TempDir(), "replica.db")
	first := openAt(t, prefix, path)
	rev = write(t, first, "alice")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	return prefix, path, rev
}
