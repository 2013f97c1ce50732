package bolt_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
)

// A store maps far more address space than its file needs (16 GiB on
// 64-bit platforms), so that bbolt seldom remaps: a remap waits for every
// read transaction — an export streaming the whole store — and every
// decision's snapshot begun meanwhile waits behind it. A million
// assignments (~940 MiB) were mapped in 1 GiB: a store of that size was
// remapped as it grew, and its decisions stalled behind its exports.
func TestStoreMapsSixteenGiB(t *testing.T) {
	if strconv.IntSize != 64 {
		t.Skip("32-bit: bbolt maps at most 2 GiB")
	}
	path := filepath.Join(t.TempDir(), "permatrix.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size, err := mappedSize(path)
	if err != nil {
		t.Fatal(err)
	}
	if size < 16<<30 {
		t.Fatalf("the store's file is mapped in %d MiB, want 16 GiB", size>>20)
	}
	// Address space, not memory: the resident set does not grow by it.
	if rss := residentKiB(t); rss > 1<<20 {
		t.Fatalf("resident set %d MiB after opening an empty store", rss>>10)
	}
}

// mappedSize is the size of this process's mappings of path
// (/proc/self/maps).
func mappedSize(path string) (uint64, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[len(fields)-1] != path {
			continue
		}
		var start, end uint64
		if _, err := fmt.Sscanf(fields[0], "%x-%x", &start, &end); err != nil {
			return 0, err
		}
		total += end - start
	}
	if total == 0 {
		return 0, fmt.Errorf("%s is not mapped", path)
	}
	return total, sc.Err()
}

// residentKiB is this process's resident set (VmRSS), in KiB.
func residentKiB(t *testing.T) uint64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
