package pdp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// scanCounted counts the passes a listing's check makes over a snapshot.
type scanCounted struct {
	store.Snapshot
	scans *int
}

func (s scanCounted) Scan(prefix, after []byte, fn func(k, v []byte) error) error {
	*s.scans++
	return s.Snapshot.Scan(prefix, after, fn)
}

// TestAssignedSystemsPassesBounded: a misspelt ?system= read the whole
// assignment index again at every new store revision — 0.22–0.38 s on a
// store of 1M assignments (3.3M index entries) — so a client writing
// between typos had the server make that pass on every request, and the
// listings that asked waited on it. A large store's set is now read again
// only once assignedSystemsGap times its last read's duration has passed;
// before that, a changed revision is answered as held (an empty page, as
// a listing is never refused for what it might find), and a read at the
// revision it was made answers as before.
func TestAssignedSystemsPassesBounded(t *testing.T) {
	ctx := context.Background()
	db := store.NewMemory()
	create := func(i int) {
		t.Helper()
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:u%03d", i), System: "kept", Permission: "read", Scope: permatrix.ServiceScope}
		if _, err := store.Update(ctx, db, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		create(i)
	}
	clock := time.Unix(0, 0)
	a := assignedSystems{large: 10, now: func() time.Time { return clock }}
	scans := 0
	holds := func(system string) bool {
		t.Helper()
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		held, err := a.holds(scanCounted{snap, &scans}, system)
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	if holds("typo") || !holds("kept") || scans != 1 {
		t.Fatalf("at one revision: typo held %v, kept held %v, %d passes; want false, true, 1", holds("typo"), holds("kept"), scans)
	}
	for i := range 5 { // a write between typos, no time passing
		create(100 + i)
		if !holds("typo") {
			t.Errorf("typo after write %d, inside the gap: not held (a 400 from a stale read)", i)
		}
	}
	if scans != 1 {
		t.Errorf("5 typos, each after a write, inside the gap: %d passes over the index, want 1", scans)
	}
	clock = clock.Add(time.Hour) // past any gap: read again, exact
	if holds("typo") || scans != 2 {
		t.Errorf("past the gap: typo held or %d passes, want not held after 2", scans)
	}

	// A small store (fewer entries than large) is read at every revision.
	a = assignedSystems{large: 1000, now: func() time.Time { return clock }}
	scans = 0
	for i := range 3 {
		create(200 + i)
		if holds("typo") {
			t.Errorf("small store, typo %d: held", i)
		}
	}
	if scans != 3 {
		t.Errorf("small store: %d passes for 3 typos at 3 revisions, want 3", scans)
	}
}
