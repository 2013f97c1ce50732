package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// answerHoldingProxy forwards TCP connections to target; once armed, it
// holds what etcd sends back until the test ends: a request sent then is
// carried out, and its answer does not come back.
func answerHoldingProxy(t *testing.T, target string) (addr string, arm func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	release := make(chan struct{})
	var conns sync.WaitGroup
	t.Cleanup(func() { close(release); ln.Close(); conns.Wait() })
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
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && armed.Load() {
						<-release
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

// A copy interrupted (Ctrl-C) while its mark's put was in etcd's hands
// said "…: context canceled; nothing was copied" — though etcd made the
// mark, and no sidecar serves the prefix until a copy completes. The copy
// says what is known: no key copied or deleted, the prefix may be marked,
// and how to find out and clear it.
func TestStoreCopyMarkOutcomeUnknown(t *testing.T) {
	cluster := harness.StartEtcdCluster(t, 1)
	addr, arm := answerHoldingProxy(t, strings.TrimPrefix(strings.Split(cluster.Endpoints(), ",")[0], "http://"))
	prefix := "markunknown"
	to := "etcd://" + addr + "/" + prefix
	target, err := etcd.Open(context.Background(), etcd.Options{URL: to, Replica: filepath.Join(t.TempDir(), "to.db"),
		CopyTarget: true, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := waitReadable(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	if err := target.LockCopy(context.Background()); err != nil {
		t.Fatal(err)
	}
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // the operator's Ctrl-C
	err = target.MarkCopy(ctx, "bolt:permatrix.db")
	cancel()
	if err == nil {
		t.Fatal("the mark's put was answered through a proxy holding every answer")
	}
	cli, cerr := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if cerr != nil {
		t.Fatal(cerr)
	}
	defer cli.Close()
	resp, gerr := cli.Get(context.Background(), "/"+prefix+"/m/copying")
	if gerr != nil {
		t.Fatal(gerr)
	}
	msg := markFailed(to, err, false).Error()
	t.Logf("marked: %v; the copy said: %s", len(resp.Kvs) == 1, msg)
	if strings.Contains(msg, "nothing was copied") || !strings.Contains(msg, "may now be marked") || !strings.Contains(msg, "--force") {
		t.Fatalf("a copy whose mark's put went unanswered (marked: %v) said: %s", len(resp.Kvs) == 1, msg)
	}
}

// A copy interrupted (Ctrl-C) while the removal of its mark — after its
// last key — was in etcd's hands said "copy stopped after N of N keys:
// interrupted (… stays marked as holding an incomplete copy …: run the
// copy again with --force)", though etcd may have removed the mark: the
// copy is then complete, and served. It says what is known.
func TestStoreCopyUnmarkOutcomeUnknown(t *testing.T) {
	cluster := harness.StartEtcdCluster(t, 1)
	addr, arm := answerHoldingProxy(t, strings.Split(cluster.Endpoints(), ",")[0])
	prefix := "unmarkunknown"
	to := "etcd://" + addr + "/" + prefix
	target, err := etcd.Open(context.Background(), etcd.Options{URL: to, Replica: filepath.Join(t.TempDir(), "to.db"),
		CopyTarget: true, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := waitReadable(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	if err := target.LockCopy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := target.MarkCopy(context.Background(), "bolt:permatrix.db"); err != nil {
		t.Fatal(err)
	}
	arm()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // the operator's Ctrl-C
	err = target.UnmarkCopy(ctx)
	cancel()
	var mw *etcd.MetaWriteError
	if !errors.As(err, &mw) {
		t.Fatalf("the mark's removal through a proxy holding every answer: %v", err)
	}
	cli, cerr := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if cerr != nil {
		t.Fatal(cerr)
	}
	defer cli.Close()
	resp, gerr := cli.Get(context.Background(), "/"+prefix+"/m/copying")
	if gerr != nil {
		t.Fatal(gerr)
	}
	msg := unmarkFailed(7, to, mw, true).Error()
	t.Logf("still marked: %v; the copy said: %s", len(resp.Kvs) == 1, msg)
	if strings.Contains(msg, "copy stopped") || !strings.Contains(msg, "if the removal was made, the copy is complete") || !strings.Contains(msg, "7 keys") {
		t.Fatalf("a copy whose mark's removal went unanswered (still marked: %v) said: %s", len(resp.Kvs) == 1, msg)
	}
}

// A copy that failed with the prefix empty removed its mark (unmarkEmpty)
// even when the prefix was marked before it: an interrupted copy's, which
// had cleared the store it copied over (--force) before it was killed.
// The sidecars, 503 until then ("holds an incomplete copy"), served an
// empty store, ready, denying everything, and the copy said "(… is
// empty, as it was)". The mark of a prefix marked before the copy stays.
func TestFailedCopyKeepsAnEarlierMark(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 100 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%03d", i), tm, "analyst", `{"type":"service"}`) + "\n")
	}
	file, src := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "src.db")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	prefix := "earliermark"
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(context.Background(), "/"+prefix+"/m/copying", `{"from":"bolt:old.db","started":"2026-01-02T03:04:05Z"}`); err != nil {
		t.Fatal(err)
	}
	// Told a larger --max-txn-ops than the cluster's: etcd refuses the
	// first batch, nothing is copied.
	out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", cluster.StoreURL(prefix), "--force", "--etcd-max-txn-ops", "1000")
	if code != 2 || !strings.Contains(stderr, "copy stopped after 0 of") {
		t.Fatalf("a copy whose first batch etcd refuses: exit %d\n%s%s", code, out, stderr)
	}
	if !marked(t, cluster, prefix) || strings.Contains(stderr, "as it was") {
		t.Fatalf("a failed copy into a prefix an earlier copy marked: marked %v after it, and it said:\n%s", marked(t, cluster, prefix), stderr)
	}
}

// A copy that failed while clearing the target (--force) said only
// "clearing etcd://…: <why>", of a prefix it had marked — served by no
// sidecar until a copy completes — and may have half cleared: not a word
// of the mark, nor of what to do. It says the prefix stays marked, and
// that a copy run again with --force completes it.
func TestFailedClearSaysThePrefixStaysMarked(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 100 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%03d", i), tm, "analyst", `{"type":"service"}`) + "\n")
	}
	file, src := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "src.db")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	prefix := "clearfails"
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", cluster.StoreURL(prefix)); code != 0 {
		t.Fatalf("copy into etcd: exit %d\n%s%s", code, out, stderr)
	}
	// Told a larger --max-txn-ops than the cluster's: etcd refuses the
	// clearing's first batch.
	out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", cluster.StoreURL(prefix), "--force", "--etcd-max-txn-ops", "1000")
	if code != 2 || !strings.Contains(stderr, "clearing") {
		t.Fatalf("a copy whose clearing etcd refuses: exit %d\n%s%s", code, out, stderr)
	}
	if !marked(t, cluster, prefix) || !strings.Contains(stderr, "stays marked") || !strings.Contains(stderr, "--force") {
		t.Fatalf("a copy that failed clearing the prefix it marked (marked: %v) said:\n%s", marked(t, cluster, prefix), stderr)
	}
}

// A copy that lost its copy lock (cut off from etcd past its lease) and
// stopped said "(… stays marked as holding an incomplete copy, which
// sidecars do not serve: run the copy again with --force)" — though the
// copy that took the lock since may have completed into the prefix and
// removed the mark: the sidecars serve it, and the copy run again with
// --force, as told, replaces it. It says what etcd's refusal says of the
// mark, and no more.
func TestLostLockCopySaysWhatEtcdHas(t *testing.T) {
	cluster := harness.StartEtcdCluster(t, 1)
	ctx := context.Background()
	prefix := "lostlockcopy"
	to := cluster.StoreURL(prefix)
	open := func(name string) *etcd.Store {
		s, err := etcd.Open(ctx, etcd.Options{URL: to, Replica: filepath.Join(t.TempDir(), name+".db"), CopyTarget: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := waitReadable(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := s.LockCopy(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkCopy(ctx, "bolt:"+name+".db"); err != nil {
			t.Fatal(err)
		}
		return s
	}
	commit := func(s *etcd.Store, user string) error {
		_, err := s.Commit(ctx, &store.Batch{Base: s.Revision(), Epoch: s.Changes().Epoch(),
			Ops: []store.Op{{Key: store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), Value: []byte(`{}`)}}})
		return err
	}
	a := open("a")
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil { // a is cut off past its lease
		t.Fatal(err)
	}
	b := open("b") // another copy, which completes
	// Marked, by the copy running: a copy again waits until it ends.
	if msg := copyStopped(3, 100, to, commit(a, "a0")).Error(); !strings.Contains(msg, "the prefix is marked") || !strings.Contains(msg, "refused while one is") {
		t.Errorf("a copy that lost its lock to one running said: %s", msg)
	}
	if err := commit(b, "b"); err != nil {
		t.Fatal(err)
	}
	if err := b.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	err = commit(a, "a")
	if err == nil {
		t.Fatal("a copy that lost its lock committed")
	}
	for _, msg := range []string{copyStopped(3, 100, to, err).Error(), clearFailed(to, err).Error()} {
		if marked(t, cluster, prefix) || strings.Contains(msg, "stays marked") || strings.Contains(msg, "run the copy again with --force") || !strings.Contains(msg, "not marked") {
			t.Errorf("a copy that lost its lock to one that completed (marked: %v) said: %s", marked(t, cluster, prefix), msg)
		}
	}
}

// A copy interrupted (Ctrl-C) during its first batch found the prefix
// empty and removed its mark (unmarkEmpty) — but its committer sends a
// batch it took all the same, and one reaching etcd between the look and
// the removal left part of a store in the prefix, unmarked: served, and
// the copy said "(… is empty, as it was)". The mark is removed only with
// the prefix empty in the same transaction.
func TestUnmarkEmptyOnlyIfEmpty(t *testing.T) {
	cluster := harness.StartEtcdCluster(t, 1)
	ctx := context.Background()
	prefix := "unmarkempty"
	target, err := etcd.Open(ctx, etcd.Options{URL: cluster.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), "to.db"), CopyTarget: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := waitReadable(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := target.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := target.MarkCopy(ctx, "bolt:permatrix.db"); err != nil {
		t.Fatal(err)
	}
	// Empty still: the mark goes.
	if !unmarkEmpty(target) || marked(t, cluster, prefix) {
		t.Fatalf("a copy that copied nothing into an empty prefix: mark removed? marked %v", marked(t, cluster, prefix))
	}
	if err := target.MarkCopy(ctx, "bolt:permatrix.db"); err != nil {
		t.Fatal(err)
	}
	var landed error
	testHookUnmarkEmpty = func() {
		// The interrupted copy's batch reaches etcd now.
		_, landed = target.Commit(ctx, &store.Batch{Base: target.Revision(), Epoch: target.Changes().Epoch(),
			Ops: []store.Op{{Key: store.Key("d", "grants", "user:late", "s", "role", "r", "service"), Value: []byte(`{}`)}}})
	}
	t.Cleanup(func() { testHookUnmarkEmpty = nil })
	removed := unmarkEmpty(target)
	if landed != nil {
		t.Fatal(landed)
	}
	if removed || !marked(t, cluster, prefix) {
		t.Fatalf("a copy's batch landed as it removed its mark from the prefix it found empty: removed %v, marked %v", removed, marked(t, cluster, prefix))
	}
}
