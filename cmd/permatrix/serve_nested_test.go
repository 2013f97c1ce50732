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

// A copy into a prefix nested with another fleet's was made: into /p/k/
// inside the fleet at /p/, whose sidecars read its keys as their data; and
// with --force into /q/ around the fleet at /q/k/, whose keys its clearing
// deleted (/q/'s replica holds them as data keys). A copy claims its target
// as serve does: refused, exit 2, nothing of either fleet changed.
func TestStoreCopyRefusesNestedPrefixes(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "src.db")
	if _, stderr, code := run(t, "import", filepath.Join(harness.Root(), "data", "examples", "acme.ndjson"), "--db", db); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	for _, prefix := range []string{"p", "q/k"} {
		if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+db, "--to", cluster.StoreURL(prefix)); code != 0 {
			t.Fatalf("bolt → %s: exit %d\n%s%s", prefix, code, out, stderr)
		}
	}
	before := etcdState(t, cluster)
	for _, c := range []struct{ to, says string }{
		{"p/k", "etcd prefix /p/k/ is inside /p/"},
		{"q", `whose prefix "/q/k/" is inside /q/`},
	} {
		out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+db, "--to", cluster.StoreURL(c.to), "--force")
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Fatalf("copy into %s: exit %d (want 2: %s)\n%s%s", c.to, code, c.says, out, stderr)
		}
		if after := etcdState(t, cluster); after != before {
			t.Fatalf("the refused copy into %s changed the cluster:\n%s\nnow:\n%s", c.to, before, after)
		}
	}
}

// A --store prefix with a control character (%00: a prefix that hides
// inside another fleet's data keys, /p/k/d NUL x/) or a "." or ".."
// segment was served; serve and store copy refuse it, exit 2 as for other
// bad flags, before anything is dialled (no etcd listens here).
func TestStorePrefixNotWhatItShowsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ url, says string }{
		{"etcd://127.0.0.1:1/p/k/d%00x", "control character"},
		{"etcd://127.0.0.1:1/p%0ax", "control character"},
		{"etcd://127.0.0.1:1/p/../q", `".." segment`},
	} {
		_, stderr, code := run(t, "serve", "--addr", "127.0.0.1:0", "--admin-token", copyToken, "--store", c.url, "--replica", filepath.Join(dir, "r.db"))
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Errorf("serve --store %s: exit %d, want 2 saying %q:\n%s", c.url, code, c.says, stderr)
		}
		_, stderr, code = run(t, "store", "copy", "--from", "bolt:"+filepath.Join(dir, "none.db"), "--to", c.url)
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Errorf("store copy --to %s: exit %d, want 2 saying %q:\n%s", c.url, code, c.says, stderr)
		}
	}
}
