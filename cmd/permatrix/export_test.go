package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// exportIn runs permatrix export in this process (its context bounds it)
// and returns what it wrote and its error.
func exportIn(ctx context.Context, args ...string) (string, error) {
	cmd := newExport()
	var out, errs bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errs)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// An export of an etcd store through a replica file an earlier run left
// (its default, ./permatrix-replica.db, is the same file every time) is of
// the store as it is, not as the file last saw it: the replica answers at
// once from what it holds, so export read it before catching up — a grant
// made since was missing, and with etcd unreachable the file's old state
// was exported, exit 0, without a word.
func TestExportOfEtcdIsFresh(t *testing.T) {
	dir := t.TempDir()
	cluster := harness.StartEtcdCluster(t, 1)
	url := cluster.StoreURL("exportfresh")
	imp := func(subject string) {
		t.Helper()
		file := filepath.Join(dir, subject+".ndjson")
		if err := os.WriteFile(file, []byte(grantBody("user:"+subject, tm, "analyst", `{"type":"service"}`)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, stderr, code := run(t, "import", file, "--store", url, "--replica", filepath.Join(dir, "import.db")); code != 0 {
			t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
		}
	}
	replica := filepath.Join(dir, "export.db")
	export := func(ctx context.Context) (string, error) {
		return exportIn(ctx, "--store", url, "--replica", replica, "--format", "ndjson", "--log-level", "error")
	}
	imp("first")
	if out, err := export(context.Background()); err != nil || !strings.Contains(out, `"user:first"`) {
		t.Fatalf("the first export: %v\n%s", err, out)
	}
	imp("second")
	if out, err := export(context.Background()); err != nil || !strings.Contains(out, `"user:second"`) {
		t.Fatalf("an export through the replica the first left: %v\n%s", err, out)
	}
	imp("third")
	// etcd gone: the replica's file is not the store.
	for _, m := range cluster.Members {
		m.Kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := export(ctx); err == nil || out != "" || !strings.Contains(err.Error(), "not exported") {
		t.Fatalf("an export with etcd unreachable: %v\n%s", err, out)
	} else {
		t.Logf("with etcd unreachable: %v", err)
	}
}
