package bolt

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// branchStore makes a real store file of format 3 large enough for its kv
// bucket to have branch pages, and returns its bytes.
func branchStore(t *testing.T) (path string, b []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "store.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(context.Background(), db, func(tx *store.Tx) error {
		for i := range 400 {
			a := permatrix.Assignment{Subject: "user:u" + strconv.Itoa(i%37), System: "s" + strconv.Itoa(i%3), Role: "r",
				Scope: permatrix.Scope{Type: "project", ID: "p" + strconv.Itoa(i)}}
			if err := tx.CreateAssignment(&a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// TestBranchKeyOutsideTheFile: a branch page element whose key position
// (pos, ksize) is damaged points bbolt's consistency check (tx.Check) past
// the end of the file. tx.Check reads the keys in a goroutine of its own,
// where neither the open check's recover nor SetPanicOnFault reaches: the
// SIGBUS killed the process (serve --db, store check) with a stack dump.
// The page check must refuse such an element first, as it does a leaf's.
func TestBranchKeyOutsideTheFile(t *testing.T) {
	path, orig := branchStore(t)
	const ps = 4096
	var branches []int
	for pg := 2; (pg+1)*ps <= len(orig); pg++ {
		p := orig[pg*ps:]
		if ne.Uint64(p) == uint64(pg) && ne.Uint16(p[8:]) == branchPage && ne.Uint16(p[10:]) > 1 {
			branches = append(branches, pg)
		}
	}
	if len(branches) == 0 {
		t.Fatal("no branch page in the store")
	}
	for _, field := range []struct {
		name string
		at   int // in the element
		v    uint32
	}{{"pos", 0, 0x4000000}, {"ksize", 4, 0x4000000}} {
		for _, elem := range []int{0, 1} {
			t.Run(field.name+" of element "+strconv.Itoa(elem), func(t *testing.T) {
				b := append([]byte(nil), orig...)
				for _, pg := range branches {
					ne.PutUint32(b[pg*ps+pageHeaderSize+elem*elementSize+field.at:], field.v)
				}
				p := filepath.Join(t.TempDir(), "damaged.db")
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				_, err := Check(p)
				wantDamaged(t, err, "outside its page")
				db, err := Open(p, Options{})
				if err == nil {
					db.Close()
				}
				wantDamaged(t, err, "outside its page")
			})
		}
	}
	_ = path
}
