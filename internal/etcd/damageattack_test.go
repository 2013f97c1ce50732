package etcd_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// TestDamagedKeysLoose: keys and values that decode loosely are damage
// too: the empty key under k/ (no segment at all), a key longer than the
// replica's bbolt takes (a role's, 40 000 bytes: a valid role else), a grant under its key
// holding its scope twice in two cases (store.unmarshalRecord), a valid
// grant's value under another grant's key, keys below the scope index a
// bucketed replica cannot hold. Each refuses the replica, a
// running one (the watch) and one started then (its load), until deleted,
// and both serve again after.
func TestDamagedKeysLoose(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("loose")
	s := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), etcd.Options{})
	write(t, s, "alice")
	snap := mustView(t, s)
	var grantKey, grantValue []byte
	if err := snap.Scan(store.Prefix("d", "grants"), nil, func(k, v []byte) error {
		grantKey, grantValue = bytes.Clone(k), bytes.Clone(v)
		return store.ErrStop
	}); err != nil && err != store.ErrStop {
		t.Fatal(err)
	}
	if grantKey == nil {
		t.Fatal("no grant written")
	}
	cli := client(t)
	other := bytes.Replace(grantKey, []byte("user:alice"), []byte("user:mallory"), 1)
	loose := strings.Replace(string(grantValue), `"scope":{"type":"service"}`, `"scope":{"type":"service"},"Scope":{"type":"service"}`, 1)
	if loose == string(grantValue) {
		t.Fatalf("the grant's value %s has no service scope to shadow", grantValue)
	}
	for _, c := range []struct{ key, value string }{
		{"/" + prefix + "/k/", "1"},
		{"/" + prefix + "/k/" + string(store.Key("d", "roles", "s", strings.Repeat("r", 40000))), `{"permissions":["view"]}`},
		{"/" + prefix + "/k/" + string(grantKey), loose},
		{"/" + prefix + "/k/" + string(other), string(grantValue)},
		// Below the scope index, a key not of its layout, and one whose
		// key in a bucketed replica (internal/bolt, format 3) is longer
		// than bbolt takes: the replica refuses both.
		{"/" + prefix + "/k/" + string(store.Key("d", "scopes", "s", "project:p1", "a000000000001", "extra")), "true"},
		{"/" + prefix + "/k/" + string(store.Key("d", "scopes", "s", "project:p1", strings.Repeat("a", bbolt.MaxKeySize-30))), "true"},
	} {
		put, err := cli.Put(ctx, c.key, c.value)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
		err = s.Wait(wctx, uint64(put.Header.Revision))
		cancel()
		if err != nil {
			t.Fatalf("%q: %v", c.key, err)
		}
		refusedNaming(t, s, etcd.ShownKey(c.key))
		// A sidecar started now loads the damage (resync) and refuses
		// it too.
		fresh := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "fresh.db"))
		refusedNaming(t, fresh, etcd.ShownKey(c.key))
		if c.key == "/"+prefix+"/k/"+string(grantKey) {
			_, err = cli.Put(ctx, c.key, string(grantValue))
		} else {
			_, err = cli.Delete(ctx, c.key)
		}
		if err != nil {
			t.Fatal(err)
		}
		servedAgain(t, s)
		servedAgain(t, fresh)
	}
}

// logLines is how many of logs' JSON lines are at level.
func logLines(logs *harness.LockedBuffer, level string) int {
	return strings.Count(logs.String(), `"level":"`+level+`"`)
}

// TestDamagedKeysBurst: a writer planting a thousand keys permatrix does
// not write, each put on its own (a revision each), and a hundred in one
// transaction, makes the replica refuse, names at most the keys asked for
// and counts them all, and logs a bounded number of lines — not a line a
// key; deleting them all serves again.
func TestDamagedKeysBurst(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("burst")
	var logs harness.LockedBuffer
	s := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), etcd.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	write(t, s, "alice")
	cli := client(t)
	key := func(i int) string { return "/" + prefix + "/k/" + string(store.Key("x", fmt.Sprint("planted-", i))) }
	const single = 1000
	for i := range single {
		if _, err := cli.Put(ctx, key(i), "1"); err != nil {
			t.Fatal(err)
		}
	}
	var ops []clientv3.Op
	for i := single; i < single+100; i++ {
		ops = append(ops, clientv3.OpPut(key(i), "1"))
	}
	last, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second) // a guard only
	defer cancel()
	if err := s.Wait(wctx, uint64(last.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	refusedNaming(t, s, key(0))
	if keys, n := s.DamagedKeys(10); len(keys) != 10 || n != single+100 {
		t.Errorf("DamagedKeys(10): %d named of %d, want 10 of %d", len(keys), n, single+100)
	}
	// Ten keys named one by one, then a line each time the count doubles.
	if n := logLines(&logs, "ERROR"); n > 30 {
		t.Errorf("%d error lines logged for %d damaged keys, want a bounded number", n, single+100)
	}
	if _, err := cli.Delete(ctx, "/"+prefix+"/k/"+string(store.Key("x", "")), clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	servedAgain(t, s)
}

// TestDamagedLongKeysNamedShort: a damaged key is named in full in View's
// and Health's errors, the log and DamagedKeys (the /metrics label) only
// up to a bound: two keys of 30 000 bytes (the largest etcd and the
// replica take are ~1.5 MB and 32 KB) sharing their first 20 000 are
// named in under 1 000 bytes each, and apart.
func TestDamagedLongKeysNamedShort(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("long")
	var logs harness.LockedBuffer
	s := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), etcd.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	cli := client(t)
	long := func(tail string) string {
		return "/" + prefix + "/k/" + string(store.Key("x", strings.Repeat("y", 20000)+strings.Repeat(tail, 10000)))
	}
	if _, err := cli.Put(ctx, long("a"), "1"); err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, long("b"), "1")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
	defer cancel()
	if err := s.Wait(wctx, uint64(put.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	_, err = s.View()
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("View: %d bytes of error (%.100v), want a refusal under 1 000", len(fmt.Sprint(err)), err)
	}
	if h := s.Health(); h.Ready || len(h.Error) > 1000 {
		t.Errorf("Health: ready %v, %d bytes of error", h.Ready, len(h.Error))
	}
	names, n := s.DamagedKeys(10)
	if n != 2 || len(names) != 2 || names[0] == names[1] {
		t.Fatalf("DamagedKeys: %d names of %d, want 2 apart", len(names), n)
	}
	for _, k := range names {
		if len(k) > 1000 {
			t.Errorf("DamagedKeys names a key in %d bytes", len(k))
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 2000 {
			t.Errorf("a log line of %d bytes: %.200s", len(line), line)
		}
	}
}
