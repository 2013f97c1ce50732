package main

// `permatrix store copy` refuses a copy of a store onto itself, however the
// two sides name it, before it writes or clears anything.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/test/harness"
)

// One bbolt file named two ways — a relative path spelt otherwise, a
// symbolic link, a hard link — is one store: refused, as the same store,
// and the file is left as it was (no staged copy beside it either).
func TestStoreCopyRefusesOneFileNamedTwice(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	if _, stderr, code := harness.Run(t, "", bin, "import", filepath.Join(harness.Root(), "data", "examples", "acme.ndjson"), "--db", db); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	if err := os.Symlink("a.db", filepath.Join(dir, "sym.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(db, filepath.Join(dir, "hard.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{
		{"bolt:a.db", "bolt:./a.db"},
		{"bolt:./a.db", "bolt:sub/../a.db"},
		{"bolt:a.db", "bolt:sym.db"},
		{"bolt:sym.db", "bolt:a.db"},
		{"bolt:a.db", "bolt:hard.db"},
		{"bolt:hard.db", "bolt:" + db},
	} {
		out, stderr, code := harness.Run(t, dir, bin, "store", "copy", "--from", c[0], "--to", c[1], "--force")
		if code != 2 || !strings.Contains(stderr, "the same store") || !strings.Contains(stderr, "one file") {
			t.Fatalf("--from %s --to %s: exit %d (want 2, the same store)\n%s%s", c[0], c[1], code, out, stderr)
		}
		after, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, before) {
			t.Fatalf("--from %s --to %s: the refused copy changed the file", c[0], c[1])
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*.copying")); len(left) > 0 {
			t.Fatalf("--from %s --to %s: the refused copy left %v", c[0], c[1], left)
		}
	}
	if got := rawKeys(t, db); len(got) == 0 {
		t.Fatal("the store is empty")
	}
}

// etcdState is every key of a cluster with its value and the revision it
// was last written at, and the cluster's revision: a copy that wrote or
// deleted anything (a lock key, a mark, a key cleared) changes it.
func etcdState(t *testing.T, cluster *harness.EtcdCluster) string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "revision %d\n", resp.Header.Revision)
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%q=%q @%d\n", kv.Key, kv.Value, kv.ModRevision)
	}
	return b.String()
}

// One etcd store named two ways — another member of its cluster, localhost
// for 127.0.0.1, the prefix with a slash more — was copied onto itself
// (the URLs differ as strings), and --force cleared the source it was
// reading; so was a prefix inside the other (/p/x/ inside /p/: their keys
// are one range). The cluster is known by its id, the prefixes compared as
// etcd keys: each is refused before anything is written — the cluster is
// exactly as it was. Another cluster under the same prefix, or a prefix
// beside it (/px/ is not inside /p/), is another store: copied.
func TestStoreCopyRefusesOneEtcdStoreNamedTwice(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "src.db")
	if _, stderr, code := run(t, "import", filepath.Join(harness.Root(), "data", "examples", "acme.ndjson"), "--db", db); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	a := harness.StartEtcdCluster(t, 3)
	host := func(i int) string { return strings.TrimPrefix(a.Members[i].ClientURL, "http://") }
	at := func(i int, prefix string) string { return "etcd://" + host(i) + prefix }
	for _, prefix := range []string{"/p", "/staged"} {
		if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+db, "--to", at(0, prefix)); code != 0 {
			t.Fatalf("bolt → %s: exit %d\n%s%s", prefix, code, out, stderr)
		}
	}
	// A store at /p/x/ inside /p/: a copy refuses to make one (the
	// prefixes nest, TestStoreCopyRefusesNestedPrefixes), so its keys are
	// moved there.
	moveKeys(t, a, "/staged/", "/p/x/")
	before := etcdState(t, a)
	localhost := "etcd://" + strings.Replace(host(0), "127.0.0.1", "localhost", 1) + "/p"
	for _, c := range []struct{ from, to, says string }{
		{at(0, "/p"), localhost, "the same prefix /p/"},
		{at(0, "/p"), at(1, "/p"), "the same prefix /p/"},
		{at(1, "/p/"), at(2, "//p"), "the same prefix /p/"},
		{at(0, "/p"), at(1, "/p/x"), "prefix /p/x/ is inside /p/"},
		{at(2, "/p/x/"), at(0, "/p"), "prefix /p/x/ is inside /p/"},
	} {
		out, stderr, code := run(t, "store", "copy", "--from", c.from, "--to", c.to, "--force")
		if code != 2 || !strings.Contains(stderr, "the same store") || !strings.Contains(stderr, c.says) {
			t.Fatalf("--from %s --to %s: exit %d (want 2, the same store: %s)\n%s%s", c.from, c.to, code, c.says, out, stderr)
		}
		if after := etcdState(t, a); after != before {
			t.Fatalf("--from %s --to %s: the refused copy changed the cluster:\n%s\nnow:\n%s", c.from, c.to, before, after)
		}
	}

	// Another cluster, the same prefix: another store.
	b := harness.StartEtcdCluster(t, 1)
	if out, stderr, code := run(t, "store", "copy", "--from", at(0, "/p"), "--to", b.StoreURL("p")); code != 0 {
		t.Fatalf("to another cluster: exit %d\n%s%s", code, out, stderr)
	}
	// A prefix beside /p/ in the same cluster.
	if out, stderr, code := run(t, "store", "copy", "--from", at(0, "/p"), "--to", at(1, "/px")); code != 0 {
		t.Fatalf("to /px/ beside /p/: exit %d\n%s%s", code, out, stderr)
	}
	for _, u := range []string{at(0, "/p"), at(0, "/p/x"), b.StoreURL("p"), at(0, "/px")} {
		copied := filepath.Join(dir, fmt.Sprintf("check%d.db", len(u)))
		os.Remove(copied)
		if _, stderr, code := run(t, "store", "copy", "--from", u, "--to", "bolt:"+copied); code != 0 {
			t.Fatalf("%s → bolt: %s", u, stderr)
		}
		if got, want := rawKeys(t, copied), rawKeys(t, db); !slices.Equal(got, want) {
			t.Fatalf("%s does not hold the store copied into it:\n%v\n%v", u, got, want)
		}
	}
}

// A copy into bolt:b.db is made in b.db.copying: a copy from that file
// into b.db was refused as "b.db.copying is locked: is another store copy
// into it running?" (none was). It says what the file is, and leaves it
// as it was.
func TestStoreCopyRefusesItsOwnStagingFile(t *testing.T) {
	dir := t.TempDir()
	staging := filepath.Join(dir, "b.db.copying")
	if _, stderr, code := harness.Run(t, "", bin, "import", filepath.Join(harness.Root(), "data", "examples", "acme.ndjson"), "--db", staging); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	before, err := os.ReadFile(staging)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"bolt:b.db", "bolt:./b.db"} {
		out, stderr, code := harness.Run(t, dir, bin, "store", "copy", "--from", "bolt:b.db.copying", "--to", to, "--force")
		if code != 2 || !strings.Contains(stderr, "is the file a copy into --to "+to+" is made in") || strings.Contains(stderr, "locked") {
			t.Fatalf("--from bolt:b.db.copying --to %s: exit %d\n%s%s", to, code, out, stderr)
		}
		if after, err := os.ReadFile(staging); err != nil || !bytes.Equal(after, before) {
			t.Fatalf("--to %s: the refused copy changed its source (%v)", to, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "b.db")); err == nil {
			t.Fatalf("--to %s: the refused copy made b.db", to)
		}
	}
}

// moveKeys moves every key under the prefix from to the prefix to.
func moveKeys(t *testing.T, cluster *harness.EtcdCluster, from, to string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, from, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if _, err := cli.Put(ctx, to+strings.TrimPrefix(string(kv.Key), from), string(kv.Value)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, from, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
}
