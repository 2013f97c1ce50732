//go:build linux

package bolt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestCloseWhileTheResidentPassFaults: a store file truncated under a
// server (broken_test.go) as Close begins, before the resident pass
// (Options.Resident) reads it: the pass's Begin faults on the meta page
// and leaves bbolt's meta lock held. Close had seen the store whole, waited
// for the pass, and then closed bbolt's handle, which waits for that lock
// for ever: serve's shutdown hung. Close answers the store's fault.
func TestCloseWhileTheResidentPassFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	testHookResidentPass = func() { close(entered); <-release }
	defer func() { testHookResidentPass = nil }()
	db, err = Open(path, Options{Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Close has seen the store whole and stopped the committer: the pass
	// faults now, under the Close waiting for it.
	<-db.done
	close(release)
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("Close of a store the resident pass found truncated: %v, want the store's fault", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close of a store the resident pass found truncated did not return in 30 s")
	}
}

// TestResidentPassWhenAReadBreaksTheStore: a file truncated under the
// server while the resident pass reads it, and a decision's snapshot
// faulting first, in the Begin that holds bbolt's meta lock (broken_test.go).
// The pass then faults too, and its transaction's Rollback waited for that
// lock for ever: the pass never ended, and a wait for it (WaitResident)
// never returned. A snapshot of a broken store is not rolled back (its
// Close): nor is the pass's transaction.
func TestResidentPassWhenAReadBreaksTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := store.Key("d", "roles", "s", "r")
	if _, err := db.Commit(context.Background(), &store.Batch{Base: db.Revision(), Ops: []store.Op{{Key: key, Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	begun, release := make(chan struct{}), make(chan struct{})
	testHookResidentBegun = sync.OnceFunc(func() { close(begun); <-release })
	defer func() { testHookResidentBegun = nil }()
	db, err = Open(path, Options{Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	<-begun
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.View(); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Fatalf("View of a truncated file: %v, want EUNAVAILABLE", err)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.WaitResident(ctx); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("WaitResident on a store broken during the pass: %v, want the store's fault (not the context's end: the pass did not end)", err)
	}
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Close: %v, want the store's fault", err)
	}
}
