package etcd_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
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

	key := store.Key("d", "grants", "user:late", "s", "role", "r", "service")
	planned := &store.Batch{Base: a.Revision(), Epoch: a.Changes().Epoch(), Ops: []store.Op{{Key: key, Value: []byte(`{}`)}}, Reads: [][]byte{store.UnitOf(key)}}
	if err := copier.MarkCopy(ctx, "bolt:test.db"); err != nil {
		t.Fatal(err)
	}
	_, err = a.Commit(ctx, planned)
	var ic *etcd.IncompleteCopyError
	if !errors.As(err, &ic) || permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a commit on a marked prefix: %v", err)
	}
	// The copy's own commits go through.
	mine := &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: store.Key("d", "grants", "user:copied", "s", "role", "r", "service"), Value: []byte(`{}`)}}}
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
	if err := copier.MarkCopy(ctx, "bolt:test.db"); err != nil {
		t.Fatal(err)
	}
	part := &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(), Ops: []store.Op{{Key: store.Key("d", "grants", "user:part", "s", "role", "r", "service"), Value: []byte(`{}`)}}}
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
