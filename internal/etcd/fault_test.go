package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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
// etcd holds (its heartbeat finds the cluster behind it). Each rebuilds
// its replica once: the answer to a request sent before the rebuild (a
// heartbeat sent during the wipe; the sidecars beat every 50 ms, so one
// is on its way then) is not judged against the rebuilt replica — which
// would take it for another wipe, and stop serving right after the write.
func TestClusterWipedWhileRunning(t *testing.T) {
	for _, newID := range []bool{false, true} {
		t.Run(fmt.Sprintf("newID=%v", newID), func(t *testing.T) { wipedWhileRunning(t, newID) })
	}
}

func wipedWhileRunning(t *testing.T, newID bool) {
	c := harness.StartEtcdCluster(t, 1)
	prefix := newPrefix("wiped")
	rebuilds := map[string]*atomic.Int32{}
	sidecar := func(name string) *etcd.Store {
		rebuilds[name] = &atomic.Int32{}
		log := slog.New(&rebuildCounter{Handler: slog.Default().Handler(), n: rebuilds[name]})
		// A heartbeat every 50 ms (MaxStaleness/3).
		s, err := etcd.Open(context.Background(), etcd.Options{URL: c.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), name),
			MaxStaleness: 150 * time.Millisecond, Logger: log})
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
	for name, n := range rebuilds {
		if n.Load() != 1 {
			t.Errorf("the sidecar of %s rebuilt its replica %d times after one wipe; want once", name, n.Load())
		}
	}
}

// rebuildCounter counts the rebuilds of a sidecar's replica: the records
// checkCluster logs when it empties the replica (the only ones with a
// cluster_revision).
type rebuildCounter struct {
	slog.Handler
	n *atomic.Int32
}

func (h *rebuildCounter) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "cluster_revision" {
			h.n.Add(1)
			return false
		}
		return true
	})
	return h.Handler.Handle(ctx, r)
}

func (h *rebuildCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &rebuildCounter{Handler: h.Handler.WithAttrs(as), n: h.n}
}

func (h *rebuildCounter) WithGroup(name string) slog.Handler {
	return &rebuildCounter{Handler: h.Handler.WithGroup(name), n: h.n}
}

// cuttingProxy forwards TCP connections to target. Once armed, the next
// bytes etcd sends back on any connection are dropped, and 200 ms later
// (etcd carries out what it received meanwhile) that connection is closed:
// the answer to a request etcd received is lost on the way.
func cuttingProxy(t *testing.T, target string) (addr string, arm func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var armed atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && armed.CompareAndSwap(true, false) {
						time.Sleep(200 * time.Millisecond)
						return
					}
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { armed.Store(true) }
}

// TestCommitAnswerLost: the connection breaks after etcd received a
// commit and before its answer came back. etcd made the write; the client
// was not told, and must be told it may have been made (all or nothing,
// retrying is safe) — not only "store unavailable", which reads as
// nothing written.
func TestCommitAnswerLost(t *testing.T) {
	addr, arm := cuttingProxy(t, strings.Split(cluster.Endpoints(), ",")[0])
	s := openURL(t, storeURL(newPrefix("lost"), addr), filepath.Join(t.TempDir(), "r.db"))
	waitReady(t, s)
	write(t, s, "alice") // reserves ids: the next write's only request is its commit
	bob := permatrix.Assignment{Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := store.Update(ctx, s, func(tx *store.Tx) error { return tx.CreateAssignment(&bob) })
	cancel()
	if err == nil {
		t.Skip("the answer came through: the proxy cut another one")
	}
	settleToCluster(t, s)
	made, _ := subjects(t, s)
	t.Logf("made: %v; the client was told: %v", made["user:bob"], err)
	if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "made entirely or not at all") {
		t.Fatalf("a commit whose answer was lost (made: %v) failed with %v: it does not say the write may have been made", made["user:bob"], err)
	}
}

// TestReplacedClusterNeverMixed: another cluster replaces the one a
// sidecar follows, on the same addresses, and is soon past the sidecar's
// revision (another sidecar writes to it at once). The idle sidecar's
// watch, resumed from its revision on the new cluster, would apply the new
// cluster's writes on top of the lost ones: no view of its replica may
// show both.
func TestReplacedClusterNeverMixed(t *testing.T) {
	c := harness.StartEtcdCluster(t, 1)
	prefix := newPrefix("replaced")
	open := func(name string) *etcd.Store {
		s, err := etcd.Open(context.Background(), etcd.Options{URL: c.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	idle := open("idle.db")
	waitReady(t, idle)
	write(t, idle, "alice")
	for i := range 5 {
		write(t, idle, fmt.Sprintf("u%d", i))
	}
	if err := c.Wipe(true); err != nil {
		t.Fatal(err)
	}
	writer := open("writer.db")
	waitReady(t, writer)
	stop := make(chan struct{})
	mixed := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, at := subjects(t, idle)
			for u := range got {
				if got["user:alice"] && strings.HasPrefix(u, "user:n") {
					mixed <- fmt.Sprintf("at revision %d: %v", at, got)
					return
				}
			}
		}
	}()
	for i := range 30 {
		write(t, writer, fmt.Sprintf("n%d", i))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := subjects(t, idle)
		if !got["user:alice"] && got["user:n29"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle sidecar holds %v 20 s after the replacement", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	select {
	case m := <-mixed:
		t.Fatalf("a view of the idle sidecar showed the lost cluster's alice with the new cluster's writes, %s", m)
	default:
	}
}

// authCluster is a one-member cluster with authentication on: user "ro"
// (password "s3cret") may read prefix and not write it. Before that, a
// store without credentials wrote alice under prefix; its replica is at
// the path returned.
func authCluster(t *testing.T, prefix string) (c *harness.EtcdCluster, replica string) {
	t.Helper()
	c = harness.StartEtcdCluster(t, 1)
	ctx := context.Background()
	replica = filepath.Join(t.TempDir(), "r.db")
	s, err := etcd.Open(ctx, etcd.Options{URL: c.StoreURL(prefix), Replica: replica})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, s)
	write(t, s, "alice")
	s.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[0].ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	p := "/" + prefix + "/"
	for i, step := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "ro"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "ro", p, clientv3.GetPrefixRangeEnd(p), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "ro", "s3cret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "ro", "ro"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("etcd setup step %d: %v", i, err)
		}
	}
	return c, replica
}

// writeErr creates user's assignment through s, within 10 s.
func writeErr(s *etcd.Store, user string) error {
	a := permatrix.Assignment{Subject: "user:" + user, System: "s", Role: "r", Scope: permatrix.ServiceScope}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.Update(ctx, s, func(tx *store.Tx) error { return tx.CreateAssignment(&a) })
	return err
}

// TestCommitRefusedSaysNothingWritten: etcd refuses a commit (its user
// may read the prefix, not write it): the client is told nothing was
// written — not that it may have been.
func TestCommitRefusedSaysNothingWritten(t *testing.T) {
	prefix := newPrefix("ro")
	c, replica := authCluster(t, prefix)
	s, err := etcd.Open(context.Background(), etcd.Options{URL: c.StoreURL(prefix), Replica: replica, Username: "ro", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = writeErr(s, "bob")
	if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "permission denied") ||
		!strings.Contains(err.Error(), "nothing was written") || strings.Contains(err.Error(), "made entirely") {
		t.Fatalf("a commit etcd refused (permission denied) failed with %v; want it to say nothing was written", err)
	}
}

// TestUncheckedSaysWhy: a sidecar started without credentials on a
// cluster with authentication on cannot check its replica against the
// cluster; a write is refused, saying what etcd answered — not that etcd
// has not answered.
func TestUncheckedSaysWhy(t *testing.T) {
	prefix := newPrefix("nouser")
	c, replica := authCluster(t, prefix)
	s, err := etcd.Open(context.Background(), etcd.Options{URL: c.StoreURL(prefix), Replica: replica, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = writeErr(s, "bob")
	if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "user name is empty") {
		t.Fatalf("a write through a sidecar without etcd credentials failed with %v; want etcd's answer (user name is empty)", err)
	}
}

// slowProxy forwards TCP connections to target; once armed, what etcd
// sends back is held for a while (slow etcd, or a slow network).
func slowProxy(t *testing.T, target string, hold time.Duration) (addr string, arm func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var armed atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && armed.CompareAndSwap(true, false) {
						time.Sleep(hold)
					}
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { armed.Store(true) }
}

// TestCommitOutlivesItsRequest: the request's own deadline (the HTTP
// server's request timeout) passes while its commit is in etcd's hands,
// and etcd makes it. The client — still there, unlike one that left — is
// answered, and must be told the write may have been made, not only that
// its request timed out.
func TestCommitOutlivesItsRequest(t *testing.T) {
	addr, arm := slowProxy(t, strings.Split(cluster.Endpoints(), ",")[0], 1500*time.Millisecond)
	s := openURL(t, storeURL(newPrefix("slow"), addr), filepath.Join(t.TempDir(), "r.db"))
	waitReady(t, s)
	write(t, s, "alice") // reserves ids: the next write's only request is its commit
	bob := permatrix.Assignment{Subject: "user:bob", System: "s", Role: "r", Scope: permatrix.ServiceScope}
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := store.Update(ctx, s, func(tx *store.Tx) error { return tx.CreateAssignment(&bob) })
	cancel()
	if err == nil {
		t.Skip("the commit was answered in time: the proxy held another answer")
	}
	settleToCluster(t, s)
	made, _ := subjects(t, s)
	t.Logf("made: %v; the client was told: %v", made["user:bob"], err)
	if !strings.Contains(err.Error(), "made entirely or not at all") && !strings.Contains(err.Error(), "committed") {
		t.Fatalf("a commit that outlived its request's deadline (made: %v) failed with %v: it does not say the write may have been made", made["user:bob"], err)
	}
}

// TestRestartWithCredentialsWhileEtcdDown: a sidecar configured with etcd
// credentials (the documented production setup) restarts while etcd is
// unreachable. Like one without credentials, it answers at once from its
// replica and connects when etcd is back — it does not refuse to start
// because it could not log in yet.
func TestRestartWithCredentialsWhileEtcdDown(t *testing.T) {
	prefix, path, rev := closedReplica(t, "credsdown")
	addr, release := heldProxy(t, strings.Split(cluster.Endpoints(), ",")[0])
	o := raised
	o.URL, o.Replica = storeURL(prefix, addr), path
	// The shared cluster has authentication off: etcd takes any
	// credentials then (clientv3 logs in, etcd answers "not enabled").
	o.Username, o.Password = "permatrix", "s3cret"
	o.DialTimeout, o.RequestTimeout = time.Second, 2*time.Second
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("a sidecar with etcd credentials did not start while etcd is unreachable: %v", err)
	}
	defer s.Close()
	if got, at := subjects(t, s); !got["user:alice"] || at < rev {
		t.Fatalf("the restarted sidecar answers %v at revision %d, want alice at %d", got, at, rev)
	}
	release()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := writeErr(s, "bob"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no write once etcd is back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got, _ := subjects(t, s); !got["user:bob"] {
		t.Fatalf("bob acknowledged, the replica holds %v", got)
	}
}

// TestMarkCopyOutcomeUnknown: the mark's put reaches etcd, and its answer
// does not come back before the copy's context ends (Ctrl-C, a
// deadline). MarkCopy said "context deadline exceeded" and nothing else,
// which the copy took for nothing done ("nothing was copied"), though etcd
// made the mark — and no sidecar serves a marked prefix. The error says the
// mark may have been made (a *MetaWriteError), not only that time ran out.
func TestMarkCopyOutcomeUnknown(t *testing.T) {
	addr, arm := slowProxy(t, strings.Split(cluster.Endpoints(), ",")[0], 1500*time.Millisecond)
	prefix := newPrefix("markunknown")
	o := raised
	o.URL, o.Replica, o.CopyTarget = storeURL(prefix, addr), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(context.Background()); err != nil {
		t.Fatal(err)
	}
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = copier.MarkCopy(ctx, "bolt:a.db")
	cancel()
	if err == nil {
		t.Skip("the mark was answered in time: the proxy held another answer")
	}
	settleToCluster(t, copier)
	resp, gerr := client(t).Get(context.Background(), "/"+prefix+"/m/copying")
	if gerr != nil {
		t.Fatal(gerr)
	}
	t.Logf("marked: %v; MarkCopy said: %v", len(resp.Kvs) == 1, err)
	var mw *etcd.MetaWriteError
	if !errors.As(err, &mw) || !strings.Contains(err.Error(), "made") || strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a mark whose answer did not come back (made: %v) failed with %v: it does not say the mark may have been made", len(resp.Kvs) == 1, err)
	}
	if len(resp.Kvs) == 1 && !mw.Made && !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("the mark was made, and MarkCopy said: %v", err)
	}
}

// TestBrokenReplicaFollowsNoMore: a replica whose file faulted is broken
// (internal/bolt: nothing more enters it until serve restarts), and its
// sidecar followed etcd on regardless: at every event the watch failed to
// apply it and began again from the replica's revision — a warning, and
// etcd sending every event since, every 5 s at most for as long as the
// sidecar ran; compacted past, a full read of the prefix each time. It
// stops following, saying so once.
func TestBrokenReplicaFollowsNoMore(t *testing.T) {
	prefix := newPrefix("broken")
	path := filepath.Join(t.TempDir(), "broken.db")
	records := &messages{}
	a, err := etcd.Open(context.Background(), etcd.Options{URL: cluster.StoreURL(prefix), Replica: path,
		Logger: slog.New(records)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			a.Close()
		}
	})
	waitReady(t, a)
	b := openAt(t, prefix, filepath.Join(t.TempDir(), "b.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if err := a.Wait(ctx, write(t, b, "alice")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.View(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a read of the truncated replica: %v, want EUNAVAILABLE, broken", err)
	}
	write(t, b, "bob") // an event the broken replica cannot apply
	stopped := records.wait(t, "follows etcd no more")
	for _, u := range []string{"carol", "dave"} {
		write(t, b, u)
	}
	a.Close() // the follow loop has returned
	closed = true
	if n := records.countAfter(stopped, "etcd watch ended; resuming"); n != 0 {
		t.Errorf("%d watches begun again after following stopped, want 0", n)
	}
	if h := a.Health(); h.Ready {
		t.Errorf("Health of a sidecar with a broken replica: %+v, want not ready", h)
	}
}

// messages is a slog.Handler keeping the messages logged, in order.
type messages struct {
	mu   sync.Mutex
	msgs []string
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m *messages) WithGroup(string) slog.Handler            { return m }
func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, r.Message)
	return nil
}

// wait returns the index of the first message holding s, once logged.
func (m *messages) wait(t *testing.T, s string) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // a guard only
		m.mu.Lock()
		for i, msg := range m.msgs {
			if strings.Contains(msg, s) {
				m.mu.Unlock()
				return i
			}
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Fatalf("nothing logged holding %q; logged: %q", s, m.msgs)
	return 0
}

// countAfter counts the messages after the ith holding s.
func (m *messages) countAfter(i int, s string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, msg := range m.msgs[i+1:] {
		if strings.Contains(msg, s) {
			n++
		}
	}
	return n
}

// latencyProxy forwards TCP connections to target; once armed, everything
// etcd sends back arrives latency after it was sent (a slow etcd, or a far
// one), answers still flowing one after another, not one at a time.
func latencyProxy(t *testing.T, target string, latency time.Duration) (addr string, arm func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var armed atomic.Bool
	type chunk struct {
		due  time.Time
		data []byte
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				chunks := make(chan chunk, 1024)
				go func() {
					defer close(chunks)
					for {
						buf := make([]byte, 64<<10)
						n, err := u.Read(buf)
						if n > 0 {
							due := time.Now()
							if armed.Load() {
								due = due.Add(latency)
							}
							chunks <- chunk{due, buf[:n]}
						}
						if err != nil {
							return
						}
					}
				}()
				for ch := range chunks {
					time.Sleep(time.Until(ch.due))
					if _, err := c.Write(ch.data); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { armed.Store(true) }
}

// TestSlowEtcdIsHeardFrom: an etcd answering later than the heartbeat's
// interval (a third of --max-staleness), but well within --max-staleness,
// is heard from — the store stays ready. A heartbeat that gave up on its
// request after an interval never heard an answer, and called a live etcd
// silent: a sidecar on a loaded machine, or a far etcd, turned not ready.
func TestSlowEtcdIsHeardFrom(t *testing.T) {
	const maxStaleness, latency = 4 * time.Second, 2 * time.Second
	addr, arm := latencyProxy(t, strings.Split(cluster.Endpoints(), ",")[0], latency)
	o := raised
	o.URL, o.Replica, o.MaxStaleness = storeURL(newPrefix("far"), addr), filepath.Join(t.TempDir(), "r.db"), maxStaleness
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitReady(t, s)
	arm()
	// Twice --max-staleness: a store that hears nothing is not ready after
	// one; one that hears an answer every latency stays ready throughout.
	for end := time.Now().Add(2 * maxStaleness); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if h := s.Health(); !h.Ready {
			r := s.Replication()
			t.Fatalf("not ready with etcd answering in %s, --max-staleness %s: %s (last contact %s ago; %s)",
				latency, maxStaleness, h.Error, time.Since(r.LastContact).Round(time.Millisecond), r.LastError)
		}
	}
}
