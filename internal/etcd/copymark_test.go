package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/store/storetest"
)

// A write a sidecar planned before a store copy marked the prefix, and
// commits after, would land in the middle of the copy (and be
// acknowledged): every commit is refused while the prefix is marked,
// nothing written, saying why — except the copy's own.
func TestCommitRefusedOnMarkedPrefix(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("mark")
	a := openAt(t, prefix, filepath.Join(t.TempDir(), "a.db"))
	write(t, a, "before")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}

	key := store.Key("d", "grants", "user:late", "s", "role", "r", "service")
	planned := &store.Batch{Base: a.Revision(), Epoch: a.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(storetest.RecordValue(key, 1))}}, Reads: [][]byte{store.UnitOf(key)}}
	if err := copier.MarkCopy(ctx, "bolt:test.db"); err != nil {
		t.Fatal(err)
	}
	_, err = a.Commit(ctx, planned)
	var ic *etcd.IncompleteCopyError
	if !errors.As(err, &ic) || permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a commit on a marked prefix: %v", err)
	}
	// The copy's own commits go through.
	mine := &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: store.Key("d", "grants", "user:copied", "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:copied", "s", "role", "r", "service"), 1))}}}
	if _, err := copier.Commit(ctx, mine); err != nil {
		t.Fatalf("the copy's commit: %v", err)
	}
	if err := copier.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx, copier.Revision()); err != nil {
		t.Fatal(err)
	}
	snap, err := a.View()
	if err != nil {
		t.Fatalf("after the copy: %v", err)
	}
	defer snap.Close()
	if v, _ := snap.Get(key); v != nil {
		t.Fatal("the refused commit was written")
	}
}

// A sidecar down while a store copy marks its prefix and writes part of a
// store, and etcd compacted past its replica meanwhile, catches up by a
// resync — which reads the mark at the revision of its pages: it serves
// nothing of the part (not ready, View and Servable refuse), and serves
// again once the copy completes.
func TestResyncReadsTheCopyMark(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("markresync")
	path := filepath.Join(t.TempDir(), "r.db")
	r := openAt(t, prefix, path)
	write(t, r, "before")
	r.Close()

	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.MarkCopy(ctx, "bolt:test.db"); err != nil {
		t.Fatal(err)
	}
	part := &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: store.Key("d", "grants", "user:part", "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:part", "s", "role", "r", "service"), 1))}}}
	last, err := copier.Commit(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t).Compact(ctx, int64(last), clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	r = openURL(t, cluster.StoreURL(prefix), path)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Wait(wctx, last); err != nil {
		t.Fatalf("no resync to %d: %v", last, err)
	}
	var ic *etcd.IncompleteCopyError
	if snap, err := r.View(); !errors.As(err, &ic) || ic.From != "bolt:test.db" {
		if snap != nil {
			snap.Close() // else Close waits for it
		}
		t.Fatalf("View of a resync into a marked prefix: %v", err)
	}
	if err := r.Servable(); !errors.As(err, &ic) {
		t.Fatalf("Servable: %v", err)
	}
	if h := r.Health(); h.Ready || !strings.Contains(h.Error, "incomplete copy") {
		t.Fatalf("Health: %+v", h)
	}
	if err := copier.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(wctx, copier.Revision()); err != nil {
		t.Fatal(err)
	}
	snap, err := r.View()
	if err != nil {
		t.Fatalf("after the copy completed: %v", err)
	}
	snap.Close()
	if h := r.Health(); !h.Ready {
		t.Fatalf("Health after the copy: %+v", h)
	}
}

// One copy into a prefix at a time: a copy's target holds the prefix's
// copy lock (LockCopy) while it runs; a second is refused
// (CopyRunningError). A copy whose lock's lease ended (cut off from etcd,
// or killed) writes nothing more — neither a commit nor the mark — and
// another copy can take the lock.
func TestCopyLock(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("copylock")
	openCopier := func(name string) *etcd.Store {
		o := raised
		o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), name+".db"), true
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	a, b := openCopier("a"), openCopier("b")
	if err := a.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	var running *etcd.CopyRunningError
	if err := b.LockCopy(ctx); !errors.As(err, &running) || permatrix.ErrorCode(err) != permatrix.ECONFLICT || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("a second copy's lock: %v", err)
	}
	commit := func(s *etcd.Store, user string) error {
		_, err := s.Commit(ctx, &store.Batch{Base: s.Revision(), Epoch: s.Changes().Epoch(),
			Ops: []store.Op{{Key: store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), 1))}}})
		return err
	}
	if err := commit(a, "a1"); err != nil {
		t.Fatalf("the copy's commit: %v", err)
	}

	// a's lease ends (as when it is killed, or cut off past its TTL).
	cli := client(t)
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if err := commit(a, "a2"); err == nil || !strings.Contains(err.Error(), "lost the copy lock") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a commit after the lock's lease ended: %v", err)
	}
	if err := a.UnmarkCopy(ctx); err == nil || !strings.Contains(err.Error(), "lost the copy lock") {
		t.Fatalf("removing the mark after the lock's lease ended: %v", err)
	}
	// The id counter's raise does not require the lock (docs/fleet.md):
	// it only moves the counter up, a gap in the ids at worst.
	if err := a.RaiseIDs(ctx, 5000); err != nil {
		t.Fatalf("raising the id counter after the lock's lease ended: %v", err)
	}
	if err := b.LockCopy(ctx); err != nil {
		t.Fatalf("the lock after the first copy's lease ended: %v", err)
	}
	// b sees the mark a left (LockCopy brought its replica to the lock).
	var ic *etcd.IncompleteCopyError
	if err := b.IncompleteCopy(); !errors.As(err, &ic) || ic.From != "bolt:a.db" {
		t.Fatalf("the mark the first copy left: %v", err)
	}
	if err := commit(b, "b1"); err != nil {
		t.Fatal(err)
	}
	if err := b.RaiseIDs(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if n, err := b.NextID(ctx); err != nil || n <= 5000 {
		t.Fatalf("the id after raises to 5000 and 10: %d %v", n, err)
	}
	if err := b.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"a1": true, "a2": false, "b1": true} {
		if v, _ := snap.Get(store.Key("d", "grants", "user:"+user, "s", "role", "r", "service")); (v != nil) != want {
			t.Errorf("%s written: %v, want %v", user, v != nil, want)
		}
	}
	snap.Close() // else Close waits for it
	// Closed, a copy releases the lock at once.
	b.Close()
	if resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the lock after its copy closed: %v %v", resp.Kvs, err)
	}
}

// The mark's value is whatever is at <prefix>m/copying: a hostile or
// corrupt one (a megabyte of source name) made every Servable — asked by
// the decision cache before each answer — and every refused View and
// Health parse it and build an error naming all of it. What is read from
// the mark is bounded (its source cut to maxMarkFrom), and the error is
// built once per mark; a value too large to be a mark a copy made names
// an unknown source.
func TestHostileMarkBounded(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("hostilemark")
	r := openAt(t, prefix, filepath.Join(t.TempDir(), "r.db"))
	write(t, r, "before")
	mark := func(v string) {
		t.Helper()
		resp, err := client(t).Put(ctx, "/"+prefix+"/m/copying", v)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctx, uint64(resp.Header.Revision)); err != nil {
			t.Fatal(err)
		}
	}
	var ic *etcd.IncompleteCopyError
	mark(`{"from":"bolt:` + strings.Repeat("x", 2000) + `","started":"2026-01-02T03:04:05Z"}`)
	if err := r.Servable(); !errors.As(err, &ic) || !strings.HasPrefix(ic.From, "bolt:xxx") || !strings.HasSuffix(ic.From, "x…") || len(ic.From) > 520 ||
		ic.Since.Format(time.RFC3339) != "2026-01-02T03:04:05Z" {
		t.Fatalf("Servable on a long mark: From %d bytes: %.300v", len(ic.From), err)
	}
	if first := r.Servable(); r.Servable() != first || r.IncompleteCopy() != first {
		t.Fatal("the error of one mark is made again on every read")
	}
	mark(`{"from":"bolt:` + strings.Repeat("x", 1<<20) + `","started":"2026-01-02T03:04:05Z"}`)
	if err := r.Servable(); !errors.As(err, &ic) || ic.From != "" || !strings.Contains(err.Error(), "an unknown source") || len(err.Error()) > 2000 {
		t.Fatalf("Servable on a hostile mark: From %d bytes, message %d bytes: %.300v", len(ic.From), len(err.Error()), err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		r.Servable()
		r.IncompleteCopy()
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("40 reads of a marked replica allocated %d bytes", n)
	}
	// A value that is not a mark at all is still a mark (unknown source).
	mark(strings.Repeat("{", 1<<20))
	if err := r.Servable(); !errors.As(err, &ic) || ic.From != "" || !strings.Contains(err.Error(), "an unknown source") || len(err.Error()) > 2000 {
		t.Fatalf("Servable on a corrupt mark: %.300v", err)
	}
	if h := r.Health(); h.Ready || len(h.Error) > 2000 {
		t.Fatalf("Health on a corrupt mark: ready %v, error %d bytes", h.Ready, len(h.Error))
	}
}

// A mark is the key's presence, not its value: one put with an empty value
// (by hand, or a fault) was recorded by the replicas as no mark — they
// went on serving the prefix, a copy into it went ahead without --force,
// and every sidecar commit, whose transaction requires the mark absent,
// failed and was retried as a conflict it never was. Now it is a mark
// of an unknown source like any value not a copy's.
func TestEmptyMarkIsAMark(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("emptymark")
	r := openAt(t, prefix, filepath.Join(t.TempDir(), "r.db"))
	write(t, r, "before")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)

	key := store.Key("d", "grants", "user:late", "s", "role", "r", "service")
	planned := &store.Batch{Base: r.Revision(), Epoch: r.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(storetest.RecordValue(key, 1))}}, Reads: [][]byte{store.UnitOf(key)}}
	resp, err := client(t).Put(ctx, "/"+prefix+"/m/copying", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx, uint64(resp.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	if err := copier.Wait(ctx, uint64(resp.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	var ic *etcd.IncompleteCopyError
	if err := r.Servable(); !errors.As(err, &ic) || !strings.Contains(err.Error(), "an unknown source") {
		t.Fatalf("Servable on an empty mark: %v", err)
	}
	if snap, err := r.View(); !errors.As(err, &ic) {
		if snap != nil {
			snap.Close()
		}
		t.Fatalf("View on an empty mark: %v", err)
	}
	if h := r.Health(); h.Ready || !strings.Contains(h.Error, "incomplete copy") {
		t.Fatalf("Health on an empty mark: %+v", h)
	}
	if err := copier.IncompleteCopy(); !errors.As(err, &ic) {
		t.Fatalf("a copy's IncompleteCopy on an empty mark (it would copy over it without --force): %v", err)
	}
	_, err = r.Commit(ctx, planned)
	var conflict *store.ConflictError
	if !errors.As(err, &ic) || errors.As(err, &conflict) || permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a commit on a prefix with an empty mark: %v", err)
	}

	// A resync reads the empty mark as a mark too.
	r2 := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "r2.db"))
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r2.Wait(wctx, uint64(resp.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	if err := r2.IncompleteCopy(); !errors.As(err, &ic) {
		t.Fatalf("a new replica's first load of a prefix with an empty mark: %v", err)
	}
}

// Close released the copy lock before it stopped the committers, and
// forgot it: a commit (or the mark's removal) sent as the copy closed went
// out with neither the lock's compare (the store held none any more) nor
// the mark's (a copy's target never compares it) — made while another
// copy may hold the lock. Whatever is sent once the lock is released is
// refused, and nothing of it written.
func TestNoCopyWriteAfterItsLockIsReleased(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("closelock")
	openCopier := func(name string) *etcd.Store {
		o := raised
		o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), name+".db"), true
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	a, b := openCopier("a"), openCopier("b")
	if err := a.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "grants", "user:late", "s", "role", "r", "service")
	var lockErr, commitErr, unmarkErr error
	called := false
	etcd.SetTestHookCopyLockReleased(t, func() {
		called = true
		// Another copy takes the lock a released; a's last writes are
		// sent now.
		lockErr = b.LockCopy(ctx)
		_, commitErr = a.Commit(ctx, &store.Batch{Base: a.Revision(), Epoch: a.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(storetest.RecordValue(key, 1))}}})
		unmarkErr = a.UnmarkCopy(ctx)
	})
	a.Close()
	if !called {
		t.Fatal("Close released no copy lock")
	}
	if lockErr != nil {
		t.Fatalf("the lock once the first copy released it: %v", lockErr)
	}
	if commitErr == nil || permatrix.ErrorCode(commitErr) != permatrix.EUNAVAILABLE {
		t.Errorf("a commit sent once the copy lock was released: %v", commitErr)
	}
	if unmarkErr == nil {
		t.Error("the mark removed once the copy lock was released")
	}
	cli := client(t)
	if resp, err := cli.Get(ctx, "/"+prefix+"/k/"+string(key)); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("the commit sent once the lock was released was written: %v %v", resp.Kvs, err)
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/m/copying"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("the mark after its removal was sent once the lock was released: %v %v", resp.Kvs, err)
	}
}

// A sidecar's block of reserved ids does not outlive a store copy into its
// prefix: the copy raises the counter past the copied store's, and the
// block reserved before it would hand out the copied store's numbers (a
// deleted assignment's id coming back).
func TestIDBlockDroppedByACopy(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("idblock")
	open := func(name string, target bool) *etcd.Store {
		o := raised
		o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), name+".db"), target
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	sidecar, copier := open("sidecar", false), open("copier", true)
	first, err := sidecar.NextID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A copy: the mark, the counter raised past the copied store's, the
	// mark removed.
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.MarkCopy(ctx, "bolt:source.db"); err != nil {
		t.Fatal(err)
	}
	const copied = 50000
	if err := copier.RaiseIDs(ctx, copied); err != nil {
		t.Fatal(err)
	}
	if err := copier.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	// The sidecar's watch has seen the mark come and go once it is as new
	// as the copier.
	for deadline := time.Now().Add(20 * time.Second); sidecar.Revision() < copier.Revision(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar's replica stays at %d, the copy's at %d", sidecar.Revision(), copier.Revision())
		}
	}
	next, err := sidecar.NextID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next <= copied {
		t.Fatalf("after a copy whose store used numbers up to %d, the sidecar handed out %d (its first was %d, from the block reserved before the copy)", copied, next, first)
	}
}

// A copy's target that never took the copy lock sent its commits and its
// mark's put and removal with no compare at all (a copy's target does not
// compare the mark, and it held no lock to compare): the API let a caller
// write into a prefix another copy may be locking, marking or filling.
// Nor did UnmarkCopy ask for a copy's target: any store removed a mark.
// Without the lock, each is refused, saying so, and nothing is written.
func TestCopyWritesRequireTheCopyLock(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("unlocked")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	sidecar := openAt(t, prefix, filepath.Join(t.TempDir(), "sidecar.db"))
	cli := client(t)

	key := store.Key("d", "grants", "user:unlocked", "s", "role", "r", "service")
	_, err = copier.Commit(ctx, &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(storetest.RecordValue(key, 1))}}})
	if err == nil || !strings.Contains(err.Error(), "copy lock") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("a copy's commit without the copy lock: %v", err)
	}
	if err := copier.MarkCopy(ctx, "bolt:a.db"); err == nil || !strings.Contains(err.Error(), "copy lock") {
		t.Errorf("a copy's mark without the copy lock: %v", err)
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil {
		t.Fatal(err)
	} else {
		for _, kv := range resp.Kvs {
			if k := string(kv.Key); strings.Contains(k, "/k/") || strings.HasSuffix(k, "/m/copying") {
				t.Errorf("written without the copy lock: %s", k)
			}
		}
	}
	// A mark another copy left: only that copy's successor, holding the
	// lock, removes it.
	if _, err := cli.Put(ctx, "/"+prefix+"/m/copying", `{"from":"bolt:other.db"}`); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*etcd.Store{"a copy's target": copier, "a sidecar": sidecar} {
		if err := s.UnmarkCopy(ctx); err == nil || !strings.Contains(err.Error(), "copy lock") {
			t.Errorf("%s removing the mark without the copy lock: %v", name, err)
		}
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/m/copying"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("the mark after removals without the lock: %v %v", resp, err)
	}
	// With the lock, the same calls go through.
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	if _, err := copier.Commit(ctx, &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(storetest.RecordValue(key, 1))}}}); err != nil {
		t.Fatal(err)
	}
	if err := copier.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
}

// Close racing LockCopy left the lock held until its lease ran out (10 s):
// Close released no lock (LockCopy had not stored it yet), then the lock
// was taken on a lease no one kept alive — or its request, cut short by
// Close, had already put the lock's key. Close now waits for a LockCopy in
// flight (which it cuts short) and releases whatever it took: once both
// have returned, the lock is free, and another copy takes it at once.
func TestLockCopyRacingClose(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("lockclose")
	cli := client(t)
	o := raised
	o.URL, o.CopyTarget = cluster.StoreURL(prefix), true
	next := func(i int) *etcd.Store {
		o.Replica = filepath.Join(t.TempDir(), fmt.Sprintf("copy%d.db", i))
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	held := 0
	for i := range 30 {
		s := next(i)
		var wg sync.WaitGroup
		var lockErr error
		wg.Add(2)
		go func() { defer wg.Done(); lockErr = s.LockCopy(ctx) }()
		go func() {
			defer wg.Done()
			for range i % 10 { // Close at different points of LockCopy
				runtime.Gosched()
				time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
			}
			s.Close()
		}()
		wg.Wait()
		if lockErr == nil {
			held++
		}
		resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 0 {
			t.Fatalf("round %d: the copy lock is held (lease %x) once LockCopy (%v) and Close have returned", i, resp.Kvs[0].Lease, lockErr)
		}
		// LockCopy after Close takes no lock.
		if err := s.LockCopy(ctx); err == nil {
			t.Fatalf("round %d: LockCopy after Close: nil", i)
		}
	}
	t.Logf("LockCopy took the lock before Close in %d of 30 rounds", held)
	// Another copy takes the lock at once.
	if err := next(30).LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
}

// A copy's commits held only while it held the lock — not while the prefix
// was marked: a commit made before the mark, or after its removal (the
// copy's last commit, sent and cut short by Ctrl-C, reaching etcd after
// the failed copy removed the mark of a prefix it found empty), put part
// of a store into a prefix the sidecars serve. A copy's commits also
// require the mark: without it nothing is written.
func TestCopyCommitsOnlyIntoAMarkedPrefix(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("unmarked")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	commit := func(user string) error {
		_, err := copier.Commit(ctx, &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(),
			Ops: []store.Op{{Key: store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), 1))}}})
		return err
	}
	if err := commit("before"); err == nil || !strings.Contains(err.Error(), "not marked") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("a copy's commit before its mark: %v", err)
	}
	if err := copier.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	if err := commit("during"); err != nil {
		t.Fatal(err)
	}
	if err := copier.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := commit("after"); err == nil || !strings.Contains(err.Error(), "not marked") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("a copy's commit after its mark's removal: %v", err)
	}
	resp, err := client(t).Get(ctx, "/"+prefix+"/k/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range resp.Kvs {
		got = append(got, string(kv.Key))
	}
	if len(got) != 1 || !strings.Contains(got[0], "user:during") {
		t.Errorf("the prefix holds %q, want the commit made while marked only", got)
	}
}

// A copy that lost its lock before its mark's put was told "nothing was
// written; the prefix stays marked as holding an incomplete copy" — of a
// prefix its refused put left unmarked, as it was. The put's refusal says
// the prefix is as it was; a commit's or the mark's removal's, that the
// mark stays.
func TestLostLockMarkSaysPrefixAsItWas(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("lostmark")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	cli := client(t)
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	err = copier.MarkCopy(ctx, "bolt:a.db")
	if err == nil || !strings.Contains(err.Error(), "lost the copy lock") || strings.Contains(err.Error(), "stays marked") || !strings.Contains(err.Error(), "as it was") {
		t.Errorf("the mark's put after the lock was lost: %v", err)
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/m/copying"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the mark: %v %v", resp, err)
	}
}

// A key under the copy lock's prefix that no running copy keeps — put by
// hand with no lease, or on a long lease not a copy's — blocked every copy
// into the prefix, while the refusal said a copy was running and that a
// killed one's lock lasts 10s more. The refusal names the key and says
// what holds it: no lease (it stays until deleted, and how to delete it),
// another lease (its TTL), or a copy's lease (a running copy, or one
// killed within the last 10s).
func TestCopyLockHeldByAKeyNoCopyKeeps(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("copylockstuck")
	cli := client(t)
	openCopier := func() *etcd.Store {
		o := raised
		o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	refused := func(what string, says ...string) {
		t.Helper()
		err := openCopier().LockCopy(ctx)
		var running *etcd.CopyRunningError
		if !errors.As(err, &running) || permatrix.ErrorCode(err) != permatrix.ECONFLICT {
			t.Fatalf("%s: %v", what, err)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%s: the refusal does not say %q:\n%v", what, s, err)
			}
		}
		if strings.Contains(err.Error(), "holds 10s more") {
			t.Fatalf("%s: the refusal says a killed copy's lock lasts 10s more:\n%v", what, err)
		}
	}
	stuck := "/" + prefix + "/c/copy/stuck"
	if _, err := cli.Put(ctx, stuck, ""); err != nil {
		t.Fatal(err)
	}
	refused("a key on no lease", stuck, "on no lease", "stays until it is deleted", "etcdctl del "+stuck)
	if _, err := cli.Delete(ctx, stuck); err != nil {
		t.Fatal(err)
	}

	long, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, stuck, "", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	refused("a key on a lease of an hour", stuck, fmt.Sprintf("on lease %x", long.ID), "granted for 3600s", "etcdctl del "+stuck)
	if _, err := cli.Revoke(ctx, long.ID); err != nil {
		t.Fatal(err)
	}

	// A copy running: its lease is of 10s, kept alive.
	running := openCopier()
	if err := running.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	refused("a running copy's lock", "a store copy into etcd prefix /"+prefix+"/ is running", "10s", "wait until it ends")
}

// A copy that lost its lock had its commit and its mark's removal refused
// with "nothing was written; the prefix stays marked as holding an
// incomplete copy" — though another copy, which took the lock since, may
// have completed and removed the mark: the prefix then unmarked and
// served, and the copy's "run it again with --force" a copy over it. The
// refusal says whether the prefix is marked, as etcd has it then.
func TestLostLockSaysWhetherThePrefixIsMarked(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("lostunmarked")
	openCopier := func(name string) *etcd.Store {
		o := raised
		o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), name+".db"), true
		s, err := etcd.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waitReady(t, s)
		return s
	}
	commit := func(s *etcd.Store, user string) error {
		_, err := s.Commit(ctx, &store.Batch{Base: s.Revision(), Epoch: s.Changes().Epoch(),
			Ops: []store.Op{{Key: store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:"+user, "s", "role", "r", "service"), 1))}}})
		return err
	}
	a := openCopier("a")
	if err := a.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	cli := client(t)
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil { // a's lease ends
		t.Fatal(err)
	}
	// Another copy takes the lock and marks the prefix: a's writes are
	// refused, the prefix marked.
	b := openCopier("b")
	if err := b.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkCopy(ctx, "bolt:b.db"); err != nil {
		t.Fatal(err)
	}
	if err := commit(a, "a1"); err == nil || !strings.Contains(err.Error(), "lost the copy lock") || !strings.Contains(err.Error(), "the prefix is marked") {
		t.Errorf("a's commit, the lock lost and the prefix marked: %v", err)
	}
	// It completes: the prefix is served.
	if err := commit(b, "b"); err != nil {
		t.Fatal(err)
	}
	if err := b.UnmarkCopy(ctx); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{"commit": commit(a, "a2"), "mark's removal": a.UnmarkCopy(ctx)} {
		if err == nil || !strings.Contains(err.Error(), "lost the copy lock") || strings.Contains(err.Error(), "stays marked") || !strings.Contains(err.Error(), "not marked") {
			t.Errorf("a's %s, the lock lost and the prefix unmarked by the copy that took it: %v", what, err)
		}
		var lost *etcd.LostCopyLockError
		if !errors.As(err, &lost) || lost.Marked {
			t.Errorf("a's %s: %#v, want a *LostCopyLockError, not Marked", what, err)
		}
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/m/copying"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the mark: %v %v", resp, err)
	}
}

// LockCopy called again once its lease had ended answered nil — "you hold
// the lock" — while every commit of the copy was refused for the lock
// lost. It asks etcd: a lock whose key is gone (or another's since) is
// lost, and LockCopy says so (a *LostCopyLockError); a lock still held
// answers nil.
func TestLockCopyAfterItsLeaseEnded(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("relock")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatalf("LockCopy again, the lock held: %v", err)
	}
	cli := client(t)
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	err = copier.LockCopy(ctx)
	var lost *etcd.LostCopyLockError
	if !errors.As(err, &lost) || permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "lost the copy lock") {
		t.Fatalf("LockCopy once its lease ended: %v", err)
	}
}

// The mark's removal by a copy's target already closed went to a closed
// client and was answered as a *MetaWriteError, "sent to etcd and not
// answered: it may or may not have been made" — of a request never sent.
// It says the store is closed and nothing was sent, and the mark stays.
func TestMarkWriteAfterCloseNotSent(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("markclosed")
	o := raised
	o.URL, o.Replica, o.CopyTarget = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "copy.db"), true
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	copier.Close()
	err = copier.UnmarkCopy(ctx)
	var mw *etcd.MetaWriteError
	if err == nil || errors.As(err, &mw) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("the mark's removal by a closed store: %v", err)
	}
	if resp, err := client(t).Get(ctx, "/"+prefix+"/m/copying"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the mark: %v %v", resp, err)
	}
}
