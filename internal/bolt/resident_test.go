//go:build linux

package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// mappedRSS is the resident size in KiB of this process's mappings of path
// (/proc/self/smaps): bbolt's memory map of the store file.
func mappedRSS(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in, found := 0, false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = fields[len(fields)-1] == path
			found = found || in
			continue
		}
		if kb, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(kb), " kB"))
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			total += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s is not mapped", path)
	}
	return total
}

// storeFile is a store file in a new directory, written by fill and
// closed.
func storeFile(t *testing.T, fill func(db *bolt.DB)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "permatrix.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// fillProjects commits batches of 1 000 project records of ~420 bytes
// each (~8 MB of file per 20 batches) and returns the records' value.
func fillProjects(t *testing.T, db *bolt.DB, batches int) []byte {
	t.Helper()
	value := []byte(`{"created_by":"` + strings.Repeat("x", 400) + `","kind":""}`)
	for batch := range batches {
		b := &store.Batch{Base: db.Revision()}
		for i := range 1000 {
			b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "projects", "sys", fmt.Sprintf("p%02d-%04d", batch, i)), Value: value})
		}
		if _, err := db.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return value
}

// TestOpenReleasesCheckedPages: the open check reads every page of the file
// through bbolt's memory map; Open then drops them from the process's
// resident set, reads map what they touch again, and a snapshot that
// scanned much of the store (bulkScan) drops them again when it closes.
func TestOpenReleasesCheckedPages(t *testing.T) {
	var value []byte
	path := storeFile(t, func(db *bolt.DB) { value = fillProjects(t, db, 20) })
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fileKiB := int(fi.Size() / 1024)

	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	after := mappedRSS(t, path)
	t.Logf("file %d KiB; resident of its map after Open: %d KiB", fileKiB, after)
	if after > fileKiB/4 {
		t.Errorf("after Open %d KiB of the %d KiB file stay resident: the pages the check read were not released", after, fileKiB)
	}
	// Reading maps pages again, and reads the data as it was.
	scanAll := func() int {
		t.Helper()
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		n := 0
		if err := snap.Scan(store.Key("d", "projects"), nil, func(_, v []byte) error {
			if string(v) != string(value) {
				return fmt.Errorf("value %.40q", v)
			}
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 20000 {
			t.Fatalf("read %d records back, want 20000", n)
		}
		return mappedRSS(t, path) // before Close
	}
	scanned := scanAll()
	if scanned <= after {
		t.Fatalf("a full scan left the map's resident size at %d KiB (was %d): not read through the map?", scanned, after)
	}
	// A scan under bulkScan bytes (8 MB here, under 64 MiB) keeps its pages.
	if kept := mappedRSS(t, path); kept < scanned/2 {
		t.Errorf("after a small scan closed, %d KiB of %d stay resident: released though under bulkScan", kept, scanned)
	}
	// A bulk scan (an export) releases them when its snapshot closes.
	defer bolt.SetBulkScan(1 << 20)()
	scanned = scanAll()
	if released := mappedRSS(t, path); released > scanned/4 {
		t.Errorf("after a bulk scan closed, %d KiB of %d stay resident: not released", released, scanned)
	}
}

// cachedFraction is the part of path's pages in the page cache (mincore
// over a map of the file).
func cachedFraction(t *testing.T, f *os.File, size int64) float64 {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	ps := os.Getpagesize()
	vec := make([]byte, (int(size)+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	in := 0
	for _, b := range vec {
		in += int(b & 1)
	}
	return float64(in) / float64(len(vec))
}

// TestPrefetchReadsTheFileAhead: Open's check reads the file ahead into
// the page cache (prefetch) before it walks the pages in tree order, which
// from a cold cache is a random read per page.
func TestPrefetchReadsTheFileAhead(t *testing.T) {
	path := storeFile(t, func(db *bolt.DB) { fillProjects(t, db, 10) })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Out of the page cache (the file is synced: its pages are clean).
	drop := func() {
		t.Helper()
		if err := unix.Fadvise(int(f.Fd()), 0, fi.Size(), unix.FADV_DONTNEED); err != nil {
			t.Skipf("fadvise: %v", err)
		}
	}
	// What reading the file through puts in the page cache: the file's
	// holes (bbolt grows it ahead) take no pages.
	drop()
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	full := cachedFraction(t, f, fi.Size())
	// Reading a hole through puts its zeros in the page cache (ext4);
	// the prefetch asks for the file's data only (SEEK_DATA): what it
	// can bring in is the data's share of the file.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		full = min(full, float64(st.Blocks*512)/float64(fi.Size()))
	}
	drop()
	if cold := cachedFraction(t, f, fi.Size()); full < 0.1 || cold > full/2 {
		t.Skipf("%.0f%% of the file in the page cache after FADV_DONTNEED, %.0f%% read through (tmpfs?): nothing to observe", 100*cold, 100*full)
	}
	bolt.Prefetch(f, fi.Size())
	deadline := time.Now().Add(10 * time.Second)
	for {
		warm := cachedFraction(t, f, fi.Size())
		if warm >= 0.9*full {
			t.Logf("%d KiB file: %.0f%% in the page cache after prefetch (%.0f%% read through)", fi.Size()/1024, 100*warm, 100*full)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%.0f%% of the file in the page cache 10 s after prefetch, %.0f%% read through", 100*warm, 100*full)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The prefetch reads ahead the pages the store holds, not the whole file:
// bbolt grows a file ahead of its pages (by up to 1 GiB at a time), and a
// file may claim any size (a sparse tail). Reading the tail ahead filled the
// page cache with it and cost time in proportion to the file's size, not the
// store's (53 s to check a store of 3,000 assignments in a 50 GiB file).
func TestPrefetchStopsAtTheStoresPages(t *testing.T) {
	path := storeFile(t, func(db *bolt.DB) { fillProjects(t, db, 1) })
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	const tail = 256 << 20
	if err := os.Truncate(path, fi.Size()+tail); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Check(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := fi.Size() + tail
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	ps := int64(os.Getpagesize())
	vec := make([]byte, (size+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	cached := 0
	for _, b := range vec[fi.Size()/ps:] {
		cached += int(b & 1)
	}
	if cached > 0 {
		t.Fatalf("%d KiB of the file's %d MiB tail, past the store's pages, in the page cache after the check", cached*int(ps)/1024, tail>>20)
	}
}

// fillMembers commits batches of 1 000 memberships whose entries in the
// admin API's members index ("i", outside the policies' document) are as
// large as fillProjects' values (an index entry's value is not read); the
// memberships themselves are a few bytes each.
func fillMembers(t *testing.T, db *bolt.DB, batches int) {
	t.Helper()
	value := []byte(strings.Repeat("y", 420))
	for batch := range batches {
		b := &store.Batch{Base: db.Revision()}
		for i := range 1000 {
			group, user := fmt.Sprintf("g%02d", batch), fmt.Sprintf("u%04d", i)
			b.Ops = append(b.Ops,
				store.Op{Key: store.Key("d", "memberships", user, group), Value: []byte("true")},
				store.Op{Key: store.Key("i", "members", group, user), Value: value})
		}
		if _, err := db.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResidentPagesStayMapped: with Options.Resident (serve's
// --store-resident), the pages under the prefix — the policies' document,
// all a decision reads — are mapped back in the background when Open's
// check, or a bulk scan's snapshot closing, drops the map's pages, and
// the others are not; a decision then takes no fault to map a page the
// drop took away.
func TestResidentPagesStayMapped(t *testing.T) {
	path := storeFile(t, func(db *bolt.DB) {
		fillProjects(t, db, 20) // ~8 MB under the document's prefix
		fillMembers(t, db, 20)  // as much outside it
	})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fileKiB := int(fi.Size() / 1024)

	db, err := bolt.Open(path, bolt.Options{Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.WaitResident(ctx); err != nil {
		t.Fatal(err)
	}
	resident := mappedRSS(t, path)
	t.Logf("file %d KiB, the document's values %d KiB; resident after Open: %d KiB", fileKiB, documentKiB, resident)
	if resident < documentKiB*9/10 {
		t.Errorf("after Open %d KiB of the map resident, under the document's %d KiB: its pages were not mapped back", resident, documentKiB)
	}

	// A bulk scan of everything maps every page; its close drops them
	// and maps the document's back.
	defer bolt.SetBulkScan(1 << 20)()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := snap.Scan(nil, nil, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	scanned := mappedRSS(t, path)
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitResident(ctx); err != nil {
		t.Fatal(err)
	}
	after := mappedRSS(t, path)
	t.Logf("a scan of %d keys: %d KiB resident, %d KiB after its close", n, scanned, after)
	if resident > scanned*3/4 {
		t.Errorf("after Open %d KiB resident, %d KiB with every page read: the pages outside the document were mapped too", resident, scanned)
	}
	if after < documentKiB*9/10 || after > scanned*3/4 {
		t.Errorf("after a bulk scan's close %d KiB resident (%d during it, the document %d KiB): want the document's pages alone", after, scanned, documentKiB)
	}
}

// TestCloseDuringTheResidentPass: a store closed while its pages are being
// mapped back (Options.Resident) closes — the pass stops, its read
// transaction ends — and a wait for the pass returns.
func TestCloseDuringTheResidentPass(t *testing.T) {
	path := storeFile(t, func(db *bolt.DB) { fillProjects(t, db, 20) })
	for range 5 {
		db, err := bolt.Open(path, bolt.Options{Resident: store.DocumentPrefix()})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.WaitResident(context.Background()); err != nil && !strings.Contains(err.Error(), "closed") {
			t.Fatalf("WaitResident after Close: %v", err)
		}
	}
	// And the file is as it was: opened again, its records are all there.
	db, err := bolt.Open(path, bolt.Options{Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	n := 0
	if err := snap.Scan(store.Key("d", "projects"), nil, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 20000 {
		t.Fatalf("%d projects after the closes, want 20000", n)
	}
}

// documentKiB is about what the 20 000 project records of fillProjects (or
// the resync tests) take: values of ~430 bytes.
const documentKiB = 20000 * 430 / 1024

// residentReplica is a new replica keeping the document resident, closed
// at the test's end, and its file.
func residentReplica(t *testing.T) (*bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replica.db")
	db, err := bolt.Open(path, bolt.Options{Replica: true, Source: "test", Resident: store.DocumentPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

// TestResidentPagesAfterAResync: a replica rebuilt by Resync (a fleet
// sidecar's first synchronisation, or one after etcd's history moved on)
// has written its pages with pwrite, not through the map; with
// Options.Resident the document's are mapped in the background after it.
func TestResidentPagesAfterAResync(t *testing.T) {
	db, path := residentReplica(t)
	value := []byte(`{"created_by":"` + strings.Repeat("x", 400) + `","kind":""}`)
	var ops []store.Op
	for i := range 20000 {
		ops = append(ops, store.Op{Key: store.Key("d", "projects", "sys", fmt.Sprintf("p%05d", i)), Value: value})
	}
	if err := db.Resync(7, ops); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitResident(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resident := mappedRSS(t, path); resident < documentKiB*9/10 {
		t.Errorf("after a resync %d KiB of the map resident, under the document's %d KiB: its pages were not mapped", resident, documentKiB)
	}
}

// TestResidentPagesAfterAResyncReplacingAll: a resync that replaces every
// value (a sidecar whose replica fell behind etcd's compaction) reads the
// old pages through the map as it writes the new ones. With
// Options.Resident the pass after it then left both resident: the
// replaced pages, free in the file, beside the document's — 23 140 KiB
// of the map for a document the pass after the first resync mapped in
// 11 572. The map's pages are dropped after a resync, as after Open's
// check, before the document's are mapped again.
func TestResidentPagesAfterAResyncReplacingAll(t *testing.T) {
	db, path := residentReplica(t)
	resync := func(rev uint64, gen string) int {
		t.Helper()
		value := []byte(`{"created_by":"` + strings.Repeat(gen, 400) + `","kind":""}`)
		var ops []store.Op
		for i := range 20000 {
			ops = append(ops, store.Op{Key: store.Key("d", "projects", "sys", fmt.Sprintf("p%05d", i)), Value: value})
		}
		if err := db.Resync(rev, ops); err != nil {
			t.Fatal(err)
		}
		if err := db.WaitResident(context.Background()); err != nil {
			t.Fatal(err)
		}
		return mappedRSS(t, path)
	}
	first := resync(7, "a")
	second := resync(8, "b")
	t.Logf("resident after a resync: %d KiB; after one replacing every value: %d KiB", first, second)
	if second > first*3/2 {
		t.Errorf("after a resync replacing every value %d KiB of the map resident, after the first %d KiB: the replaced pages stayed mapped", second, first)
	}
}
