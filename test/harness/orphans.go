package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test process KillChildTest starts.
const childEnv = "PERMATRIX_TEST_KILLED_CHILD"

// KilledChild says whether this test process is the child KillChildTest
// started for the test: the test then starts its process, says its pid
// with StartedChild, and waits to be killed.
func KilledChild() bool { return os.Getenv(childEnv) != "" }

// StartedChild says pid to KillChildTest and blocks until the child test
// process is killed.
func StartedChild(pid int) {
	fmt.Printf("started %d\n", pid)
	select {}
}

// KillChildTest runs the test t again in a child test process, where
// KilledChild is true, reads the pid of the process that child starts,
// kills the child with SIGKILL and fails t unless that process is gone
// (or a zombie nobody reaps, in a container whose init does not) within
// ten seconds: what a test binary killed by go test's -timeout or ^C
// leaves running. The child's temporary directory (TMPDIR) is tmp, one of
// t's: what the child made there, never removed by the killed child
// itself, goes when t ends.
func KillChildTest(t *testing.T) (tmp string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$")
	tmp = t.TempDir()
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := 0
	for lines := bufio.NewScanner(out); pid == 0 && lines.Scan(); {
		if p, ok := strings.CutPrefix(lines.Text(), "started "); ok {
			if pid, err = strconv.Atoi(p); err != nil {
				t.Fatalf("the child test process said %q", lines.Text())
			}
		}
	}
	if pid == 0 {
		t.Fatal("the child test process started nothing")
	}
	if !running(pid) {
		t.Fatalf("process %d is not running before its test process is killed", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs 10 s after the test process that started it was killed", pid)
		}
	}
	return tmp
}

// running says whether pid is a live process: one that exists and is not
// a zombie.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
