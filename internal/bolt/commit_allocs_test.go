package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

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
			if err := putOps(btx.Bucket(bucketKV), b.Ops); err != nil {
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
