package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// A sidecar serving --store etcd://…/p and another at …/p/k read each
// other's keys: only store copy refused nested prefixes. serve refuses a
// prefix nested with another fleet's — inside it, or around it — exit 2
// as for other configuration errors, naming both; a prefix beside it is
// served.
func TestServeRefusesNestedPrefixes(t *testing.T) {
	dir := t.TempDir()
	cluster := harness.StartEtcdCluster(t, 1)
	outer := serveOn(t, "--store", cluster.StoreURL("p"), "--replica", filepath.Join(dir, "p.db"))
	waitReady(t, outer)
	refused := func(prefix string, says ...string) {
		t.Helper()
		p, err := harness.StartProcess(t, bin, copyToken, nil, "--addr", "127.0.0.1:0", "--admin-token", copyToken,
			"--store", cluster.StoreURL(prefix), "--replica", filepath.Join(dir, strings.ReplaceAll(prefix, "/", "_")+".db"))
		if err == nil || !strings.Contains(err.Error(), "exit status 2") {
			t.Fatalf("serve at %s: %v, want exit 2\n%s", prefix, err, p.Logs())
		}
		for _, s := range says {
			if !strings.Contains(p.Logs(), s) {
				t.Fatalf("serve at %s: the refusal does not say %q:\n%s", prefix, s, p.Logs())
			}
		}
	}
	refused("p/k", "etcd prefix /p/k/ is inside /p/", "another permatrix fleet")
	beside := serveOn(t, "--store", cluster.StoreURL("px"), "--replica", filepath.Join(dir, "px.db"))
	waitReady(t, beside)
	outer.Stop(t)
	beside.Stop(t)

	inner := serveOn(t, "--store", cluster.StoreURL("q/k"), "--replica", filepath.Join(dir, "qk.db"))
	waitReady(t, inner)
	refused("q", `"/q/k/m/fleet"`, "whose prefix \"/q/k/\" is inside /q/")
}
