package harness

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel kill cmd's process when the test process
// that starts it dies (PR_SET_PDEATHSIG): an etcd member or a sidecar
// left by a test binary killed by go test's -timeout or ^C kept its ports,
// and a member its in-memory data (MemoryDir), until someone killed it by
// hand. The signal follows the OS thread that started the process; Go
// ends a thread only when a goroutine locked to it exits, which no test
// starting processes does.
func dieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
