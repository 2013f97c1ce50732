package bolt

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/debian"
)

// TestFailedCommitVisible: a commit that failed once bbolt had written its
// meta page (its fdatasync failed) is what every new transaction starts
// from — bbolt reads the meta pages from its memory map. Such a commit is
// the store's revision: published, its changes recorded, and not a
// revision the next commit names again. The test runs itself again under
// strace, which fails the fdatasync of the second commit's meta page (the
// committer thread's 4th: faultyStore); without strace, or where it may
// not trace, it is skipped, saying so. By hand:
//
//	go test -c -o /tmp/bolt.test ./internal/bolt/
//	PERMATRIX_FSYNC_FAULT=1 PERMATRIX_FSYNC_DIR=$(mktemp -d) strace -f -qq -o /dev/null \
//	  -e trace=fdatasync -e inject=fdatasync:error=EIO:when=4 \
//	  /tmp/bolt.test -test.run TestFailedCommitVisible -test.v
func TestFailedCommitVisible(t *testing.T) {
	db := faultyStore(t, "PERMATRIX_FSYNC_FAULT", Options{})
	if db == nil {
		return // run under strace, and checked
	}
	ctx := context.Background()
	a := store.Key("d", "memberships", "u", "a")
	b := store.Key("d", "memberships", "v", "b") // b and c: users of their own, units of their own
	c := store.Key("d", "memberships", "w", "c")
	commit := func(k []byte) (uint64, error) {
		return db.Commit(ctx, &store.Batch{Base: db.Revision(), Reads: [][]byte{store.UnitOf(k)}, Ops: []store.Op{{Key: k, Value: []byte("true")}}})
	}
	if _, err := commit(a); err != nil {
		t.Fatal(err)
	}
	before := db.Revision()
	if _, err := commit(b); err == nil {
		t.Fatal("the second commit did not fail: no fault was injected (has the count of bbolt's fdatasyncs per commit changed? strace's when=4)")
	} else {
		t.Logf("the second commit failed: %v", err)
	}
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	shown, _ := snap.Get(b)
	snapRev := snap.Revision()
	snap.Close()
	if published := db.Revision(); snapRev != published {
		t.Errorf("after the failed commit returned: a snapshot at revision %d, published %d (its key: %q)", snapRev, published, shown)
	}
	if shown != nil && !db.Changes().ChangedAfter(before, [][]byte{store.UnitOf(b)}) {
		t.Errorf("the failed commit's key is in the store at revision %d, and the index says its unit did not change after %d: a decision cached then is served now", snapRev, before)
	}
	revC, err := commit(c)
	if err != nil {
		t.Fatal(err)
	}
	if revC <= snapRev {
		t.Errorf("the next commit answered revision %d, which a snapshot showed as another state", revC)
	}
}

// faultyStore is the store of a fault test t: in the process strace runs
// with the fault injected (env set), a new store opened with o, closed when t ends; in
// the test's own process nil, once it has run t under strace
// (underStrace) and checked the outcome.
//
// strace counts a syscall's invocations per thread (when=4 is a thread's
// 4th fdatasync), and Go runs a goroutine on whichever thread is free: the
// commits' fdatasyncs, spread over threads, would meet the fault on none
// of them — or on another commit's. So the test's goroutine, which opens
// the store (its layout's fdatasyncs), and the committer, which makes
// every commit, are each locked to a thread of their own: the committer's
// 4th fdatasync is the second commit's meta page's, on every run.
func faultyStore(t *testing.T, env string, o Options) *DB {
	t.Helper()
	if os.Getenv(env) == "" {
		underStrace(t, t.Name(), env)
		return nil
	}
	runtime.LockOSThread() // until the test's goroutine ends
	testHookCommitter = runtime.LockOSThread
	t.Cleanup(func() { testHookCommitter = nil })
	db, err := Open(filepath.Join(os.Getenv("PERMATRIX_FSYNC_DIR"), "permatrix.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// underStrace runs the test name in a new process of this test binary
// under strace, with the fault injected into the committer's 4th
// fdatasync (env set to 1 tells it so), and fails with its output if it
// fails.
func underStrace(t *testing.T, name, env string) {
	// strace is not on a fresh machine: Debian's, unpacked into the cache.
	strace := debian.Binary(t, "strace", "strace", "usr/bin/strace")
	cmd := exec.Command(strace, "-f", "-qq", "-o", "/dev/null",
		"-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO:when=4",
		os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"=1", "PERMATRIX_FSYNC_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil && (bytes.Contains(out, []byte("PTRACE")) || bytes.Contains(out, []byte("Operation not permitted"))) {
		t.Skipf("strace may not trace here: %s", bytes.TrimSpace(out))
	}
	if err != nil || !bytes.Contains(out, []byte("the second commit failed")) {
		t.Fatalf("under strace: %v\n%s", err, out)
	}
	t.Logf("under strace:\n%s", out)
}
