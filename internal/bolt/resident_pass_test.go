//go:build linux

package bolt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestResidentPassAllocatesPerPassNotPerKey: a pass (Options.Resident)
// over a document of 20 000 keys, some of them values of many pages
// (overflow pages), allocates what a pass over 100 does — its transaction
// and cursor: the memory it takes is bounded whatever the store holds.
func TestResidentPassAllocatesPerPassNotPerKey(t *testing.T) {
	allocs := func(keys int) float64 {
		db, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		head, tail := `{"created_by":"`, `","kind":""}`
		big := []byte(head + string(bytes.Repeat([]byte("x"), 256<<10)) + tail)
		b := &store.Batch{Base: db.Revision()}
		for i := range keys {
			b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "memberships", fmt.Sprintf("u%06d", i), "g"), Value: []byte("true")})
		}
		for i := range 8 {
			b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "projects", "sys", fmt.Sprintf("p%d", i)), Value: big})
		}
		if _, err := db.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(5, func() {
			if err := mapResident(db.bolt, store.DocumentPrefix(), db.stop, db.brokenErr); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(100), allocs(20000)
	t.Logf("a pass allocates %v times over 108 keys, %v over 20 008", few, many)
	if many > few+2 {
		t.Errorf("a pass over 20 008 keys allocates %v times, over 108 keys %v: it allocates per key", many, few)
	}
}
