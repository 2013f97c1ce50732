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

// TestCommitsFillPages: chunks of assignments committed one after another,
// as an import makes them (subjects in import order, u1 … u9999, whose keys
// interleave: u19 sorts between u189 and u190), leave the kv bucket's leaf
// pages mostly full (fillPercent). At bbolt's default, half full, the 1M
// store took 838 MiB for 407 MiB of keys; here such pages would be at
// about 0.5, and fail.
func TestCommitsFillPages(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "permatrix.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const lines, chunk = 10000, 1000
	for start := 0; start < lines; start += chunk {
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		tx := store.NewTx(ctx, snap, db.NextID)
		for i := start; i < start+chunk; i++ {
			a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", i), System: "sys", Role: "r", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
			if err := tx.CreateAssignment(&a); err != nil {
				t.Fatal(err)
			}
		}
		b := tx.Batch()
		snap.Close()
		if _, err := db.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var st bbolt.BucketStats
	if err := db.bolt.View(func(btx *bbolt.Tx) error {
		st = btx.Bucket(bucketKV).Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
	t.Logf("%d keys in %d leaf pages, %.2f full", st.KeyN, st.LeafPageN, fill)
	if fill < 0.75 {
		t.Errorf("the kv bucket's leaf pages are %.2f full after %d lines in chunks of %d, want at least 0.75 (fillPercent %.2f)", fill, lines, chunk, fillPercent)
	}
}
