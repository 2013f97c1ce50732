package harness

import (
	"os/exec"
	"testing"
)

// TestProcessesDieWithTheTest: a test binary killed while its etcd
// members or sidecars ran (go test's -timeout, ^C) left them running,
// holding their ports and a member its in-memory data. Processes started
// with dieWithTest are killed with it: the child test process starts a
// long sleep as the harness starts etcd members and sidecars, and is
// killed (KillChildTest).
func TestProcessesDieWithTheTest(t *testing.T) {
	if KilledChild() {
		sleep := exec.Command("sleep", "600")
		dieWithTest(sleep)
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		StartedChild(sleep.Process.Pid)
	}
	KillChildTest(t)
}
