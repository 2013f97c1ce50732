package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// StoreEnv selects the store Start runs servers on: "bolt" (the default) or
// "etcd" (a three-member etcd cluster shared by the test process, one key
// prefix per server, a replica file per server).
const StoreEnv = "PERMATRIX_TEST_STORE"

// StoreKind is the store Start uses in this process.
func StoreKind() string {
	if os.Getenv(StoreEnv) == "etcd" {
		return "etcd"
	}
	return "bolt"
}

var shared struct {
	once    sync.Once
	cluster *EtcdCluster
	dir     string
	err     error
	n       atomic.Int64
}

// sharedCluster starts the process's etcd cluster the first time, its
// data in memory (MemoryDir): what runs on it are the API's tests, which
// restart no member; each write waited on the members' disk syncs, a few
// milliseconds to tens of them on a busy machine.
func sharedCluster() (*EtcdCluster, error) {
	shared.once.Do(func() {
		shared.dir, shared.err = MemoryTempDir("permatrix-etcd")
		if shared.err == nil {
			shared.cluster, shared.err = NewEtcdCluster(shared.dir, 3)
		}
	})
	return shared.cluster, shared.err
}

// openStore opens the store of a test server: a bbolt file at path, or a
// fresh prefix of the shared etcd cluster with its replica at path.
func openStore(t testing.TB, path string) (store.Backend, string) {
	t.Helper()
	if StoreKind() == "bolt" {
		db, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return db, "bolt:" + path
	}
	c, err := sharedCluster()
	if err != nil {
		t.Fatal(err)
	}
	url := c.StoreURL(fmt.Sprintf("test-%d-%d", os.Getpid(), shared.n.Add(1)))
	s, err := etcd.Open(context.Background(), etcd.Options{URL: url, Replica: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := s.View()
		if err == nil {
			snap.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd store %s: replica not ready: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, url
}

// RunOnBothStores is a TestMain body for packages whose tests hold for any
// store: it runs them on bbolt files, then runs the test binary again with
// StoreEnv=etcd so that every test also runs on a real etcd cluster, and
// exits with the worse of the two.
func RunOnBothStores(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Close()
		os.RemoveAll(shared.dir)
	}
	if StoreKind() == "bolt" && os.Getenv(StoreEnv) == "" {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), StoreEnv+"=etcd")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Fprintf(os.Stderr, "--- the same tests on an etcd store (%s=etcd)\n", StoreEnv)
		if err := cmd.Run(); err != nil && code == 0 {
			code = 1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
	}
	os.Exit(code)
}

// MemoryDir is a directory on a memory file system (/dev/shm when it is a
// tmpfs with room to spare), where fsync costs nothing, for data that no
// test reads back after the machine stops; "" (the temporary directory)
// when there is none. A container's /dev/shm is often 64 MiB: an etcd
// member preallocates a 64 MiB write-ahead log, so a tmpfs with less than
// memoryDirRoom free is not used.
func MemoryDir() string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &fs); err == nil && fs.Type == tmpfsMagic &&
		uint64(fs.Bavail)*uint64(fs.Bsize) >= memoryDirRoom {
		return "/dev/shm"
	}
	return ""
}

// memoryDirRoom is the free space MemoryDir asks of a tmpfs: the clusters
// of the packages that may run at once, three members each.
const memoryDirRoom = 2 << 30

// tmpfsMagic is statfs(2)'s f_type of a tmpfs.
const tmpfsMagic = 0x01021994

// MemoryTempDir makes a directory in MemoryDir named pattern-PID-…, PID
// the test process's, and removes those of the pattern whose process is
// gone: a test process killed before it removed its own (go test
// -timeout, ^C) left its data taking memory until the machine restarts —
// 367 MB for a 3-member etcd cluster just started.
func MemoryTempDir(pattern string) (string, error) {
	base := MemoryDir()
	if base == "" {
		base = os.TempDir()
	}
	removeAbandoned(base, pattern)
	return os.MkdirTemp(base, fmt.Sprintf("%s-%d-", pattern, os.Getpid()))
}

// removeAbandoned removes what dir holds named prefix-PID-… whose test
// process PID is gone (killed before it removed its own). A name of
// another form (prefix-defaults-PID-…, another pattern's) is left.
func removeAbandoned(dir, prefix string) {
	old, _ := filepath.Glob(filepath.Join(dir, prefix+"-*"))
	for _, d := range old {
		var pid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(filepath.Base(d), prefix+"-"), "%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
