package proxy_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// TestNginxDiesWithTheTest: an nginx started by a test binary killed by go
// test's -timeout or ^C ran on with its port (etcd members and sidecars
// already died with their test). The child test process starts nginx as
// the tests do and is killed (harness.KillChildTest).
func TestNginxDiesWithTheTest(t *testing.T) {
	if harness.KilledChild() {
		var dir string
		harness.StartNginx(t, func(d, addr, readiness string) string {
			dir = d
			server := "server { listen " + addr + "; return 204; }"
			return strings.NewReplacer("{{dir}}", d, "{{readiness}}", readiness, "{{server}}", server).Replace(nginxMain)
		})
		raw, err := os.ReadFile(filepath.Join(dir, "nginx.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		harness.StartedChild(pid)
	}
	harness.Nginx(t) // unpacked here, not in the child
	harness.KillChildTest(t)
}
