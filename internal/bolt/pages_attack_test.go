package bolt

import (
	"bytes"
	"context"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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

// claim rewrites both meta pages of a store file's bytes to claim hw pages
// (and no freelist, with noFree), with their checksums made right, as a
// hostile file would.
func claim(b []byte, hw uint64, noFree ...bool) {
	for _, off := range []int{0, 4096} {
		m := b[off+pageHeaderSize:]
		ne.PutUint64(m[40:], hw)
		if len(noFree) > 0 {
			ne.PutUint64(m[32:], noFreelist)
		}
		h := fnv.New64a()
		h.Write(m[:56])
		ne.PutUint64(m[56:], h.Sum64())
	}
}

// TestClaimedPagesNeverWritten: a file whose meta pages claim far more
// pages than the store wrote — a sparse file, whose holes take no room —
// is refused at once. The page check read ahead every page claimed
// (fadvise: the holes' zeros into the page cache), and bbolt's check then
// tested every page below the claim, with an error for each: a 64 GiB
// claim took 75 s (store check and open) before the file was refused, a
// terabyte would take twenty minutes. And a page whose header claims
// gigabytes of overflow pages, in such a file, was read into one buffer of
// that size (3.3 GB resident for this test's 2 GiB claim).
func TestClaimedPagesNeverWritten(t *testing.T) {
	_, orig := branchStore(t)
	const size = 64 << 30
	write := func(t *testing.T, b []byte) string {
		p := filepath.Join(t.TempDir(), "claims.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	refused := func(t *testing.T, p, want string) {
		start := time.Now()
		_, err := Check(p)
		wantDamaged(t, err, want)
		db, err := Open(p, Options{})
		if err == nil {
			db.Close()
		}
		wantDamaged(t, err, want)
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("refused after %v", d)
		}
	}
	t.Run("pages", func(t *testing.T) {
		b := append([]byte(nil), orig...)
		claim(b, size/4096)
		refused(t, write(t, b), "neither in use nor free")
	})
	// Without a freelist bbolt makes one at open, of every page below the
	// claim that the tree does not hold: 8 bytes a page, 128 MiB for
	// 64 GiB, 32 GiB for 16 TiB; and then serves the file. permatrix
	// always writes a freelist.
	t.Run("no freelist", func(t *testing.T) {
		b := append([]byte(nil), orig...)
		claim(b, size/4096, true)
		refused(t, write(t, b), "no freelist")
	})
	t.Run("overflow", func(t *testing.T) {
		b := append([]byte(nil), orig...)
		claim(b, size/4096)
		m, err := readMeta(bytes.NewReader(b), 0)
		if err != nil {
			t.Fatal(err)
		}
		m1, _ := readMeta(bytes.NewReader(b), 4096)
		if m1.txid > m.txid {
			m = m1
		}
		ne.PutUint32(b[int(m.freelist)*4096+12:], 2<<30/4096) // 2 GiB of overflow pages
		refused(t, write(t, b), "more than a store's page holds")
	})
}
