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

// TestProcessesDieWithTheTest: a test binary killed while its etcd
// members or sidecars ran (go test's -timeout, ^C) left them running,
// holding their ports and a member its in-memory data. Processes started
// with dieWithTest are killed with it. The child test process below
// starts one and is killed with SIGKILL; the process it started must be
// gone (or a zombie nobody reaps, in a container whose init does not).
func TestProcessesDieWithTheTest(t *testing.T) {
	if os.Getenv("PERMATRIX_TEST_ORPHAN_PARENT") != "" {
		orphanParent()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestProcessesDieWithTheTest$")
	cmd.Env = append(os.Environ(), "PERMATRIX_TEST_ORPHAN_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the child test process said nothing: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "started ")))
	if err != nil {
		t.Fatalf("the child test process said %q", line)
	}
	if !running(pid) {
		t.Fatalf("process %d is not running before its test process is killed", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs 10 s after the test process that started it was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orphanParent is the child test process: it starts a long sleep as the
// harness starts etcd members and sidecars, says its pid, and waits to be
// killed.
func orphanParent() {
	sleep := exec.Command("sleep", "600")
	dieWithTest(sleep)
	if err := sleep.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("started %d\n", sleep.Process.Pid)
	select {}
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
