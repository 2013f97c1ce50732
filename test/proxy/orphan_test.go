package proxy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// TestNginxDiesWithTheTest: an nginx started by a test binary killed by go
// test's -timeout or ^C ran on with its port (etcd members and sidecars
// already died with their test: harness.dieWithTest). The child test
// process below starts nginx as the tests do and is killed with SIGKILL;
// nginx must be gone (or a zombie nobody reaps).
func TestNginxDiesWithTheTest(t *testing.T) {
	if os.Getenv("PERMATRIX_TEST_NGINX_PARENT") != "" {
		var dir string
		harness.StartNginx(t, func(d, addr, readiness string) string {
			dir = d
			server := "server { listen " + addr + "; return 204; }"
			return strings.NewReplacer("{{dir}}", d, "{{readiness}}", readiness, "{{server}}", server).Replace(nginxMain)
		})
		pid, err := os.ReadFile(filepath.Join(dir, "nginx.pid"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("started %s\n", strings.TrimSpace(string(pid)))
		select {}
	}
	harness.Nginx(t) // unpacked here, not in the child
	cmd := exec.Command(os.Args[0], "-test.run", "^TestNginxDiesWithTheTest$")
	cmd.Env = append(os.Environ(), "PERMATRIX_TEST_NGINX_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pid int
	for lines := bufio.NewScanner(out); lines.Scan(); {
		if p, ok := strings.CutPrefix(lines.Text(), "started "); ok {
			if pid, err = strconv.Atoi(p); err != nil {
				t.Fatalf("the child test process said %q", lines.Text())
			}
			break
		}
	}
	if pid == 0 {
		t.Fatal("the child test process did not start nginx")
	}
	if !alive(pid) {
		t.Fatalf("nginx (%d) is not running before its test process is killed", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("nginx (%d) still runs 10 s after the test process that started it was killed", pid)
		}
	}
}

// alive says whether pid is a process that exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}
