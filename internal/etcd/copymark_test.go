package etcd_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

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
