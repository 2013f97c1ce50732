package bolt

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A read that finds nothing, or a scan's seek, allocates nothing of its
// own: the fault check after every read (breakOnFault) allocated its
// errors.As target on each, a healthy read's error nil or not (two or
// three allocations of every decision at 1M).
func TestReadsAllocateNothing(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = store.Update(context.Background(), db, func(tx *store.Tx) error {
		return tx.CreateAssignment(&permatrix.Assignment{Subject: "user:u1", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope})
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	missing, prefix := []byte("d\x00grants\x00user:nobody"), []byte("d\x00grants\x00user:u1\x00")
	found := 0
	scan := func(k, v []byte) error { found++; return nil }
	allocs := testing.AllocsPerRun(100, func() {
		if v, err := snap.Get(missing); v != nil || err != nil {
			t.Fatalf("Get of a missing key: %q, %v", v, err)
		}
		if err := snap.Scan(missing, nil, scan); err != nil {
			t.Fatal(err)
		}
		if err := snap.Scan(prefix, nil, scan); err != nil {
			t.Fatal(err)
		}
	})
	if found == 0 {
		t.Fatalf("the scan of %q found nothing", prefix)
	}
	if allocs != 0 {
		t.Errorf("%v allocations a Get and two Scans", allocs)
	}
}
