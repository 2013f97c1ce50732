package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// assign commits n assignments of user u, one commit each.
func assign(t *testing.T, db *DB, u string, n int) {
	t.Helper()
	for i := range n {
		_, err := store.Update(context.Background(), db, func(tx *store.Tx) error {
			return tx.CreateAssignment(&permatrix.Assignment{Subject: "user:" + u, System: "s", Role: fmt.Sprintf("r%d", i), Scope: permatrix.ServiceScope})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// writeHook is a file that runs a function before each write.
type writeHook struct {
	f      *os.File
	before func(call int) error
	calls  int
}

func (w *writeHook) Write(p []byte) (int, error) {
	w.calls++
	if err := w.before(w.calls); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

// TestBackupIsTheFileAtItsRevision: commits made while a backup is being
// written (between its writes) neither block it nor show in it; the copy
// is a sound store at the backup's revision with what was committed
// before it, and opens for serving.
func TestBackupIsTheFileAtItsRevision(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(filepath.Join(dir, "live.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	assign(t, db, "before", 300)
	b, err := db.Backup()
	if err != nil {
		t.Fatal(err)
	}
	rev := b.Revision()
	if rev != db.Revision() || b.Format() != formatVersion {
		t.Fatalf("backup at revision %d format %d; the store is at %d format %d", rev, b.Format(), db.Revision(), formatVersion)
	}
	f, err := os.Create(filepath.Join(dir, "backup.db"))
	if err != nil {
		t.Fatal(err)
	}
	during := 0
	n, err := b.WriteTo(&writeHook{f: f, before: func(int) error {
		if during < 100 {
			assign(t, db, fmt.Sprintf("during%d", during), 3)
			during++
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n != b.Size() {
		t.Fatalf("wrote %d bytes, Size says %d", n, b.Size())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if during == 0 || db.Revision() == rev {
		t.Fatalf("no commit was made during the backup (%d)", during)
	}
	r, err := Check(f.Name())
	if err != nil {
		t.Fatalf("the backup is not a sound store: %v", err)
	}
	if r.Revision != rev || r.Assignments != 300 {
		t.Fatalf("backup holds revision %d with %d assignments, want %d with 300", r.Revision, r.Assignments, rev)
	}
	copyDB, err := Open(f.Name(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	if _, err := store.Update(context.Background(), copyDB, func(tx *store.Tx) error {
		return tx.AddMember(permatrix.Membership{Group: "g", User: "after"})
	}); err != nil {
		t.Fatalf("the backup takes no write: %v", err)
	}
}

// TestBackupWriterError: a writer's failure (the client gone) is returned
// as it is, not as the store's.
func TestBackupWriterError(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "live.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	assign(t, db, "u", 10)
	b, err := db.Backup()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gone := errors.New("client gone")
	f, err := os.Create(filepath.Join(t.TempDir(), "part.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = b.WriteTo(&writeHook{f: f, before: func(call int) error {
		if call == 3 {
			return gone
		}
		return nil
	}})
	if !errors.Is(err, gone) {
		t.Fatalf("got %v, want the writer's error", err)
	}
}
