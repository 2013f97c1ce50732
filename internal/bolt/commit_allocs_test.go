package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestCommitAllocs: a commit alone in its group allocates what bbolt's
// transaction of its operations does, and a few allocations more — not one
// a unit it writes (an import chunk writes three a line): the units of a
// group's requests are noted by string only for the requests that follow
// in it.
func TestCommitAllocs(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "permatrix.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	tx := store.NewTx(ctx, snap, func(context.Context) (uint64, error) { seq++; return seq, nil })
	for i := range 200 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}
		if err := tx.CreateAssignment(&a); err != nil {
			t.Fatal(err)
		}
	}
	b := tx.Batch()
	snap.Close()
	commit := testing.AllocsPerRun(10, func() {
		b.Base = db.Revision()
		if _, err := db.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	})
	raw := testing.AllocsPerRun(10, func() {
		err := db.bolt.Update(func(btx *bbolt.Tx) error {
			if err := putOps(btx.Bucket(bucketKV), true, b.Ops); err != nil {
				return err
			}
			meta := btx.Bucket(bucketMeta)
			if err := meta.Put(keyRevision, u64(db.rev.Load())); err != nil {
				return err
			}
			return meta.Put(keyIDSeq, u64(db.seq.Load()))
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if units := len(b.Writes()); commit-raw > float64(units)/4 {
		t.Errorf("a commit of %d operations (%d units written) allocates %v times, its bbolt transaction %v", len(b.Ops), units, commit, raw)
	}
}

// TestCommitBytes: a commit alone in its group records the units its batch
// writes as the batch lists them, not a copy (a list as long as an import
// chunk's operations): it allocates what bbolt's transaction does, and
// less than a copy of its units' list more.
func TestCommitBytes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "permatrix.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	tx := store.NewTx(ctx, snap, func(context.Context) (uint64, error) { seq++; return seq, nil })
	for i := range 2000 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}
		if err := tx.CreateAssignment(&a); err != nil {
			t.Fatal(err)
		}
	}
	b := tx.Batch()
	snap.Close()
	bytesOf := func(f func()) uint64 {
		f() // warmed up: bbolt's pages as they will be
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 5 {
			f()
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 5
	}
	commit := bytesOf(func() {
		b.Base = db.Revision()
		if _, err := db.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	})
	raw := bytesOf(func() {
		err := db.bolt.Update(func(btx *bbolt.Tx) error {
			if err := putOps(btx.Bucket(bucketKV), true, b.Ops); err != nil {
				return err
			}
			meta := btx.Bucket(bucketMeta)
			if err := meta.Put(keyRevision, u64(db.rev.Load())); err != nil {
				return err
			}
			return meta.Put(keyIDSeq, u64(db.seq.Load()))
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	list := uint64(len(b.Writes())) * uint64(unsafe.Sizeof([]byte(nil)))
	if commit > raw+list {
		t.Errorf("a commit of %d units written allocates %d bytes, its bbolt transaction %d, a list of its units %d", len(b.Writes()), commit, raw, list)
	}
}
