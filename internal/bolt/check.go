package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix/internal/store"
)

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common/meta.go),
// read before bbolt maps the file: bbolt trusts the meta's high-water mark
// and would fault reading past the end of a truncated file.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumLen     = 56 // the meta's bytes covered by its checksum
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // high-water mark: pages in use
	txid     uint64
}

// precheck reads an existing file's two meta pages and refuses a file that
// is not bbolt's, or shorter than its valid meta says. A missing file is
// fine (it will be created).
func precheck(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	m0, err0 := readMeta(f, 0)
	pageSize := int64(os.Getpagesize())
	if err0 == nil {
		pageSize = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, pageSize)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return fmt.Errorf("no valid bbolt meta page (page 0: %v; page 1: %v)", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil:
		m = m0
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	need := int64(m.hwm) * int64(m.pageSize)
	if fi.Size() < need {
		return fmt.Errorf("the file is %d bytes but its meta page says %d pages of %d bytes (%d bytes): truncated", fi.Size(), m.hwm, m.pageSize, need)
	}
	if m.root >= m.hwm || (m.freelist >= m.hwm && m.freelist != ^uint64(0)) {
		return fmt.Errorf("the meta page points past the end of the file (root %d, freelist %d, %d pages)", m.root, m.freelist, m.hwm)
	}
	return nil
}

func readMeta(f io.ReaderAt, off int64) (boltMeta, error) {
	buf := make([]byte, pageHeaderSize+metaSumLen+8)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, fmt.Errorf("unreadable: %v", err)
	}
	b := buf[pageHeaderSize:]
	le := binary.LittleEndian
	switch {
	case le.Uint32(b[0:]) != boltMagic:
		return boltMeta{}, errors.New("no bbolt magic number")
	case le.Uint32(b[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("bbolt format version %d", le.Uint32(b[4:]))
	}
	h := fnv.New64a()
	h.Write(b[:metaSumLen])
	if h.Sum64() != le.Uint64(b[metaSumLen:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	m := boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		hwm: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	return m, nil
}

// Problem is one thing wrong with a store file.
type Problem struct {
	Where string `json:"where"`
	What  string `json:"what"`
}

// Verify checks the open file in depth: bbolt's own consistency check (every
// page reachable once, no page both free and used), every value's checksum,
// and the store's records (keys of the layout, values that decode, indexes
// that agree). It reads the whole file. At most max problems are reported.
func (db *DB) Verify(max int) ([]Problem, error) {
	var out []Problem
	add := func(where, what string) bool {
		out = append(out, Problem{Where: where, What: what})
		return len(out) < max
	}
	err := faultGuard(func() error {
		return db.bolt.View(func(btx *bbolt.Tx) error {
			for err := range btx.Check() { // drained: Check's goroutine sends until done
				if len(out) < max {
					add("bbolt", err.Error())
				}
			}
			if len(out) > 0 {
				return nil // the records cannot be trusted to be walkable
			}
			c := btx.Bucket(bucketKV).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if _, err := unseal(k, v); err != nil {
					if !add(fmt.Sprintf("%q", store.Segments(k)), err.Error()) {
						return nil
					}
				}
			}
			if len(out) > 0 {
				return nil
			}
			s := &snapshot{tx: btx, kv: btx.Bucket(bucketKV)}
			for _, p := range store.Verify(s, max-len(out)) {
				if !add(p.Where, p.What) {
					return nil
				}
			}
			return nil
		})
	})
	return out, err
}

// quickCheck is bbolt's consistency check, run at every Open: a file whose
// pages do not add up is refused before anything reads its records.
func (db *DB) quickCheck() error {
	return faultGuard(func() error {
		return db.bolt.View(func(btx *bbolt.Tx) error {
			var first error
			for err := range btx.Check() { // drained: Check's goroutine sends until done
				if first == nil {
					first = fmt.Errorf("bbolt consistency check: %v", err)
				}
			}
			return first
		})
	})
}
