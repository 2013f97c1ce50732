package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// This file checks the bbolt page structure of a store file by reading it
// (never through the mmap), before bbolt opens it: every page a reader or
// bbolt's own consistency check (tx.Check) would follow must lie inside the
// file, be of the right type and be referenced once, so that following it
// cannot fault, loop or allocate without bound. The layout is bbolt's
// (go.etcd.io/bbolt/internal/common, format version 2), in the host's byte
// order as bbolt writes it.

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaSize       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10

	bucketLeaf = 0x01

	noFreelist = ^uint64(0)

	// maxProblems bounds a report: a badly damaged file has many.
	maxProblems = 20

	// maxPageRun bounds a page with its overflow pages, which the check
	// reads whole: the claim of a damaged header (up to 2^32 pages) is
	// not allocated. A store's largest are its freelist's, 8 bytes a free
	// page: 1 GiB is 512 GiB of free pages.
	maxPageRun = 1 << 30
)

var ne = binary.NativeEndian

type meta struct {
	pageSize           uint32
	root, freelist, hw uint64
	txid               uint64
}

// readMeta decodes and validates the meta page at off.
func readMeta(f io.ReaderAt, off int64) (meta, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return meta{}, fmt.Errorf("meta page at byte %d: %w", off, err)
	}
	m := buf[pageHeaderSize:]
	switch {
	case ne.Uint16(buf[8:]) != metaPage:
		return meta{}, fmt.Errorf("meta page at byte %d: not a meta page", off)
	case ne.Uint32(m[0:]) != boltMagic:
		return meta{}, fmt.Errorf("meta page at byte %d: not a bbolt file (bad magic)", off)
	case ne.Uint32(m[4:]) != boltVersion:
		return meta{}, fmt.Errorf("meta page at byte %d: bbolt format %d, want %d", off, ne.Uint32(m[4:]), boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return meta{}, fmt.Errorf("meta page at byte %d: checksum mismatch", off)
	}
	ps := ne.Uint32(m[8:])
	if ps < 1024 || ps > 65536 || ps&(ps-1) != 0 {
		return meta{}, fmt.Errorf("meta page at byte %d: page size %d", off, ps)
	}
	return meta{pageSize: ps, root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]), hw: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, nil
}

// checkPages reads the file's page structure as bbolt will follow it and
// returns what is wrong (nothing for a sound file).
func checkPages(f *os.File, size int64) []string {
	var problems []string
	add := func(format string, args ...any) bool {
		problems = append(problems, fmt.Sprintf(format, args...))
		return len(problems) < maxProblems
	}

	// The meta bbolt will use: the valid one with the higher txid.
	m0, err0 := readMeta(f, 0)
	ps := int64(4096)
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, ps)
	if err0 != nil && err1 != nil {
		for _, p := range []int64{1024, 2048, 8192, 16384, 32768, 65536} {
			if m, err := readMeta(f, p); err == nil && int64(m.pageSize) == p {
				m1, err1, ps = m, nil, p
				break
			}
		}
	}
	// bbolt falls back to the other meta page when one is invalid: the
	// state before the last write, silently losing it. A meta page sits in
	// the first bytes of its page, which a disk writes atomically, so an
	// invalid one is damage, not a torn write: refused.
	var m meta
	switch {
	case err0 != nil || err1 != nil:
		add("invalid meta page (bbolt would fall back to the state before the last write, losing it): %v", errors.Join(err0, err1))
		return problems
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	ps = int64(m.pageSize)
	// Without a freelist bbolt builds one at open from every page below
	// the high-water mark that the tree does not hold, 8 bytes each in
	// memory, and serves the file: a sparse file claiming 16 TiB of pages
	// took 32 GiB. permatrix always writes a freelist (bbolt's default).
	if m.freelist == noFreelist {
		add("the meta page names no freelist: permatrix always writes one")
		return problems
	}
	if m.hw < 3 || m.hw > uint64(size/ps) {
		add("the store is truncated or its meta page is wrong: it holds %d pages, the file has room for %d", m.hw, size/ps)
		return problems
	}
	// The checks below and verifyOpen's read every page the store holds, in
	// tree order: read them ahead — those, not the file's tail past them
	// (bbolt grows a file ahead of its pages; a file may claim any size).
	prefetch(f, int64(m.hw)*ps)

	seen := make(map[uint64]bool)
	// readPage returns page id with its overflow pages, after checking it
	// lies inside the file and overlaps no page seen before.
	readPage := func(id uint64, what string) ([]byte, bool) {
		if id < 2 || id >= m.hw {
			add("%s: page %d is outside the file's %d pages", what, id, m.hw)
			return nil, false
		}
		hdr := make([]byte, pageHeaderSize)
		if _, err := f.ReadAt(hdr, int64(id)*ps); err != nil {
			add("%s: page %d: %v", what, id, err)
			return nil, false
		}
		overflow := uint64(ne.Uint32(hdr[12:]))
		switch {
		case int64(overflow+1)*ps > maxPageRun:
			add("%s: page %d runs over %d pages, more than a store's page holds", what, id, overflow+1)
			return nil, false
		case ne.Uint64(hdr) != id:
			add("%s: page %d says it is page %d", what, id, ne.Uint64(hdr))
			return nil, false
		case id+overflow >= m.hw:
			add("%s: page %d runs %d pages past the end of the file", what, id, id+overflow+1-m.hw)
			return nil, false
		}
		for p := id; p <= id+overflow; p++ {
			if seen[p] {
				add("%s: page %d is referenced twice", what, p)
				return nil, false
			}
			seen[p] = true
		}
		buf := make([]byte, int64(overflow+1)*ps)
		if _, err := f.ReadAt(buf, int64(id)*ps); err != nil && err != io.EOF {
			add("%s: page %d: %v", what, id, err)
			return nil, false
		}
		return buf, true
	}

	// The tree: every bucket's pages from the root bucket down.
	type todo struct {
		id   uint64
		what string
	}
	stack := []todo{{m.root, "root bucket"}}
	var walkLeaf func(p []byte, what string) bool
	walkLeaf = func(p []byte, what string) bool {
		count := int(ne.Uint16(p[10:]))
		if pageHeaderSize+count*elementSize > len(p) {
			return add("%s: %d elements overflow the page", what, count)
		}
		for i := range count {
			at := pageHeaderSize + i*elementSize
			e := p[at:]
			pos, ksize, vsize := int(ne.Uint32(e[4:])), int(ne.Uint32(e[8:])), int(ne.Uint32(e[12:]))
			if start := at + pos; pos < 0 || start+ksize+vsize > len(p) || start+ksize+vsize < start {
				if !add("%s: element %d lies outside its page", what, i) {
					return false
				}
				continue
			}
			if ne.Uint32(e)&bucketLeaf == 0 {
				continue
			}
			v := p[at+pos+ksize : at+pos+ksize+vsize]
			if len(v) < 16 {
				if !add("%s: bucket %q has a %d-byte header", what, p[at+pos:at+pos+ksize], len(v)) {
					return false
				}
				continue
			}
			name := fmt.Sprintf("bucket %q", p[at+pos:at+pos+ksize])
			if root := ne.Uint64(v); root != 0 {
				stack = append(stack, todo{root, name})
			} else if inline := v[16:]; len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != leafPage {
				if !add("%s: inline %s is not a leaf page", what, name) {
					return false
				}
			} else if !walkLeaf(inline, "inline "+name) {
				return false
			}
		}
		return true
	}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, ok := readPage(t.id, t.what)
		if !ok {
			if len(problems) >= maxProblems {
				return problems
			}
			continue
		}
		what := fmt.Sprintf("%s, page %d", t.what, t.id)
		switch ne.Uint16(p[8:]) {
		case branchPage:
			count := int(ne.Uint16(p[10:]))
			if count == 0 || pageHeaderSize+count*elementSize > len(p) {
				if !add("%s: branch page with %d elements", what, count) {
					return problems
				}
				continue
			}
			for i := range count {
				// bbolt's check compares the branch keys in a goroutine
				// of its own, where no recover or SetPanicOnFault of
				// ours reaches: a key past the end of the file is a
				// fault that kills the process. Checked here, as a
				// leaf's are.
				at := pageHeaderSize + i*elementSize
				e := p[at:]
				pos, ksize := int(ne.Uint32(e)), int(ne.Uint32(e[4:]))
				if start := at + pos; start+ksize > len(p) || start+ksize < start {
					if !add("%s: element %d lies outside its page", what, i) {
						return problems
					}
					continue
				}
				stack = append(stack, todo{ne.Uint64(e[8:]), t.what})
			}
		case leafPage:
			if !walkLeaf(p, what) {
				return problems
			}
		default:
			if !add("%s: page of type %#x where a branch or leaf page belongs", what, ne.Uint16(p[8:])) {
				return problems
			}
		}
	}

	// The freelist: pages inside the file, none also in the tree.
	if m.freelist != noFreelist {
		p, ok := readPage(m.freelist, "freelist")
		if !ok {
			return problems
		}
		if ne.Uint16(p[8:]) != freelistPage {
			add("freelist page %d is of type %#x", m.freelist, ne.Uint16(p[8:]))
			return problems
		}
		count, ids := uint64(ne.Uint16(p[10:])), p[pageHeaderSize:]
		if count == 0xFFFF {
			count, ids = ne.Uint64(ids), ids[8:]
		}
		if count > uint64(len(ids)/8) {
			add("freelist page %d lists %d pages, it has room for %d", m.freelist, count, len(ids)/8)
			return problems
		}
		free := make(map[uint64]bool) // no size hint: count is the file's claim
		for i := range count {
			id := ne.Uint64(ids[i*8:])
			if id < 2 || id >= m.hw {
				if !add("freelist: page %d is outside the file's %d pages", id, m.hw) {
					return problems
				}
			} else if seen[id] {
				if !add("freelist: page %d is both free and in use", id) {
					return problems
				}
			}
			free[id] = true
		}
		// Every page below the high-water mark is in use or free: bbolt's
		// check tests it last, page by page, with an error for each page
		// that is neither — minutes for a file whose meta page claims
		// terabytes of pages (a sparse file: 1 TiB of holes takes no
		// room). Counted here, in no time, before that check runs.
		if len(problems) == 0 {
			if accounted := 2 + uint64(len(seen)) + uint64(len(free)); accounted < m.hw {
				add("%d of the file's %d pages are neither in use nor free: its meta page claims pages the store never wrote", m.hw-accounted, m.hw)
			}
		}
	}
	return problems
}
