package console_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/permatrix/permatrix/test/harness"
)

// TestChromiumDiesWithTheTest: a console test binary killed by go test's
// -timeout or ^C must not leave Chromium running — neither the browser
// nor the processes it forked (zygote, renderers, GPU, network service),
// which only its main process is told of (chromedp starts that one with
// a parent-death signal). The child test process opens a page, so that a
// renderer runs, says the browser's pid and is killed
// (harness.KillChildTest, which waits for the browser to die); then no
// process with the child's profile directory on its command line may run.
func TestChromiumDiesWithTheTest(t *testing.T) {
	if harness.KilledChild() {
		ctx := browser.Tab(t, time.Minute)
		if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		if len(profileProcesses(browser.ProfileDir())) < 2 {
			t.Fatal("Chromium runs no process beside its main one")
		}
		harness.StartedChild(browser.PID())
	}
	tmp := harness.KillChildTest(t)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left := profileProcesses(tmp)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the test process was killed, Chromium's processes %v still run", left)
		}
	}
}

// profileProcesses are the live processes whose command line names a path
// under dir (Chromium passes --user-data-dir to every process it starts).
func profileProcesses(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		cmdline, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie nobody reaps
		}
		pids = append(pids, pid)
	}
	return pids
}
