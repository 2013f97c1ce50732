package store_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// The assignments at one scope without a system are every system's: a
// system whose id extends another's (sys, sys-x, sys.y) is listed too. The
// walk from one system to the next once sought past "sys" followed by 0xff,
// beyond "sys-x" and "sys.y", whose keys it skipped.
// A bolt file of format 3 keeps the scope index by id bucket: its scans
// are held to the same listing.
func TestScopeListingEverySystemSharingAPrefix(t *testing.T) {
	t.Run("memory", func(t *testing.T) { scopeListingEverySystem(t, store.NewMemory()) })
	t.Run("bolt", func(t *testing.T) {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "scopes.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		scopeListingEverySystem(t, db)
	})
}

func scopeListingEverySystem(t *testing.T, b store.Backend) {
	ctx := context.Background()
	project := permatrix.Scope{Type: "project", ID: "p1"}
	var want []string
	if _, err := store.Update(ctx, b, func(tx *store.Tx) error {
		for _, system := range []string{"sys", "sys-x", "sys.y", "sysz", "sy"} {
			a := permatrix.Assignment{Subject: "user:u1", System: system, Role: "r", Scope: project}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
			want = append(want, a.ID)
		}
		// Another scope, not listed.
		return tx.CreateAssignment(&permatrix.Assignment{Subject: "user:u1", System: "sys-x", Role: "r", Scope: permatrix.Scope{Type: "project", ID: "p2"}})
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	snap, err := b.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	for _, limit := range []int{1, 2, 100} {
		var got []string
		f := permatrix.AssignmentFilter{ScopeType: project.Type, ScopeID: project.ID, Limit: limit}
		for range 10 {
			list, next, err := store.Assignments(snap, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range list {
				got = append(got, a.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %v, want %v", limit, got, want)
		}
	}
}
