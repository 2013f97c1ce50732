package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMemoryTempDirRemovesAbandoned: the etcd clusters' data moved to
// /dev/shm (fd5cc46, 397e031), 367 MB of memory for a 3-member cluster
// just started (du of its directory). A test process killed before its
// TestMain removed it (go test -timeout, ^C) left that memory taken until
// the machine restarts, one cluster a killed run. A directory made now
// removes those of the same pattern whose process is gone, and keeps the
// ones of running processes.
func TestMemoryTempDirRemovesAbandoned(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	abandoned, err := os.MkdirTemp(MemoryDir(), fmt.Sprintf("permatrix-test-abandoned-%d-", gone.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(abandoned, "wal"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(abandoned)
	running, err := MemoryTempDir("permatrix-test-abandoned")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(running)

	mine, err := MemoryTempDir("permatrix-test-abandoned")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(mine)
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("%s, of process %d that has exited: still there (%v)", abandoned, gone.Process.Pid, err)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("%s, of this running process: %v", running, err)
	}
}
