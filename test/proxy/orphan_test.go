package proxy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// TestNginxDiesWithTheTest: an nginx started by a test binary killed by go
// test's -timeout or ^C ran on with its port (etcd members and sidecars
// already died with their test). The child test process starts nginx as
// the tests do and is killed (harness.KillChildTest). Its nginx's
// directories (prefix, readiness socket) are left by the killed child in
// the temporary directory KillChildTest gave it — not in the system's,
// where every run of the suite left two.
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
	tmp := harness.KillChildTest(t)
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	for _, want := range []string{"ngx", t.Name()} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, want) }) {
			t.Errorf("the killed child's temporary directory holds %q, no %s… (its nginx's directories went elsewhere)", names, want)
		}
	}
}
