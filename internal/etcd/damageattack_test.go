package etcd_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// TestDamagedKeysLoose: keys and values that decode loosely are damage
// too: the empty key under k/ (no segment at all), a key longer than the
// replica's bbolt takes (a role's, 40 000 bytes: a valid role else), a grant under its key
// holding its scope twice in two cases (store.unmarshalRecord), a valid
// grant's value under another grant's key. Each refuses the replica, a
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
		refusedNaming(t, s, c.key)
		// A sidecar started now loads the damage (resync) and refuses
		// it too.
		fresh := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "fresh.db"))
		refusedNaming(t, fresh, c.key)
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
