package etcd_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
)

// A key that permatrix does not write — put under the fleet's prefix by
// another writer, or left by a manual repair half done — is found as the
// replica applies it: the sidecar serves nothing from the replica (no
// snapshot, no answer from the decision cache, not ready), naming the key
// and not its value, until the key is repaired or deleted. These tests put
// the damage straight into etcd with the etcd client.

// secretValue is the damaged keys' value: no message may show it.
const secretValue = `{"secret":"hunter2"`

// refusedNaming waits (30 s, a guard only) until s refuses to serve, and
// checks that View, Servable and Health all refuse naming key, never the
// value.
func refusedNaming(t *testing.T, s *etcd.Store, raw string) {
	t.Helper()
	key := strconv.Quote(raw) // as messages name it: a key may hold any byte (0x00 between segments)
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := s.View()
		if err != nil && strings.Contains(err.Error(), key) {
			break
		}
		if err == nil {
			snap.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica of a prefix holding the damaged key %q is still served (View: %v)", key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := s.View()
	if permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Errorf("View of a damaged replica: %v (code %q), want %s", err, permatrix.ErrorCode(err), permatrix.EUNAVAILABLE)
	}
	if err := s.Servable(); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("Servable of a damaged replica: %v, want an error naming %q", err, key)
	}
	h := s.Health()
	if h.Ready || !strings.Contains(h.Error, key) {
		t.Errorf("Health of a damaged replica: ready %v, error %q; want not ready, naming %q", h.Ready, h.Error, key)
	}
	for _, msg := range []string{err.Error(), h.Error} {
		if strings.Contains(msg, "hunter2") {
			t.Errorf("a message shows the damaged key's value: %s", msg)
		}
	}
	if keys, n := s.DamagedKeys(10); n == 0 || !containsString(keys, raw) {
		t.Errorf("DamagedKeys: %q of %d, want %q among them", keys, n, key)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// servedAgain waits (30 s, a guard only) until s serves again, ready.
func servedAgain(t *testing.T, s *etcd.Store) {
	t.Helper()
	waitReady(t, s)
	if err := s.Servable(); err != nil {
		t.Errorf("Servable once the damage is gone: %v", err)
	}
	if h := s.Health(); !h.Ready {
		t.Errorf("Health once the damage is gone: not ready, %q", h.Error)
	}
	if _, n := s.DamagedKeys(10); n != 0 {
		t.Errorf("DamagedKeys once the damage is gone: %d", n)
	}
}

// TestDamagedKeyIsNotServed: a value under a data key that is not what
// permatrix writes (a grant key holding a truncated JSON object) and a key
// outside the layout (k/ + "x" 0 "y") stop a running sidecar (the watch),
// a new one (its first load) and a restarted one (its replica set aside and
// loaded again) from serving; deleting the first and repairing nothing
// else keeps them refusing; deleting the second serves again.
func TestDamagedKeyIsNotServed(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("damage")
	running := sidecar(t, prefix, filepath.Join(t.TempDir(), "running.db"), etcd.Options{})
	write(t, running, "alice")
	waitReady(t, running)

	cli := client(t)
	grant := "/" + prefix + "/k/" + string(store.Key("d", "grants", "user:mallory", "s", "role", "admin", "service"))
	outside := "/" + prefix + "/k/" + string(store.Key("x", "y"))
	if _, err := cli.Put(ctx, grant, secretValue); err != nil {
		t.Fatal(err)
	}
	refusedNaming(t, running, grant)
	// A write reads the replica first: refused, nothing sent.
	if err := writeErr(running, "bob"); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE {
		t.Errorf("a write on a damaged replica: %v, want %s", err, permatrix.EUNAVAILABLE)
	}

	if _, err := cli.Put(ctx, outside, "1"); err != nil {
		t.Fatal(err)
	}
	fresh := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "fresh.db"))
	refusedNaming(t, fresh, grant) // the least key damaged is named, the others counted
	if keys, n := fresh.DamagedKeys(10); n != 2 || !containsString(keys, outside) {
		t.Errorf("DamagedKeys: %q of %d, want %q and %q", keys, n, grant, outside)
	}
	if _, err := fresh.View(); err == nil || !strings.Contains(err.Error(), "and 1 more key(s)") {
		t.Errorf("View does not count the other damaged key: %v", err)
	}

	// Restarted on its replica, which holds the damage: set aside as
	// damaged, loaded again from etcd, and still refused.
	replica := filepath.Join(t.TempDir(), "restarted.db")
	first := openURL(t, cluster.StoreURL(prefix), replica)
	refusedNaming(t, first, grant)
	first.Close()
	restarted := openURL(t, cluster.StoreURL(prefix), replica)
	refusedNaming(t, restarted, grant)

	// The grant key deleted, the other still there: still refused.
	if _, err := cli.Delete(ctx, grant); err != nil {
		t.Fatal(err)
	}
	del, err := cli.Delete(ctx, outside+"-never") // a revision after the first delete
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*etcd.Store{running, fresh, restarted} {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
		err := s.Wait(wctx, uint64(del.Header.Revision))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		refusedNaming(t, s, outside)
		if keys, n := s.DamagedKeys(10); n != 1 {
			t.Errorf("after the grant key's delete: damaged keys %q, want only %q", keys, outside)
		}
	}
	if _, err := cli.Delete(ctx, outside); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*etcd.Store{running, fresh, restarted} {
		servedAgain(t, s)
	}
	write(t, running, "carol")
}

// TestDamagedKeyRepaired: a role whose value is not a role is refused; the
// same key put again with a role's value serves again — on a sidecar that
// follows the watch, and on one that resynchronises after the watch's
// history is compacted away.
func TestDamagedKeyRepaired(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("repair")
	s := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), etcd.Options{})
	write(t, s, "alice")
	cli := client(t)
	role := "/" + prefix + "/k/" + string(store.Key("d", "roles", "s", "custom"))
	if _, err := cli.Put(ctx, role, secretValue); err != nil {
		t.Fatal(err)
	}
	refusedNaming(t, s, role)
	if _, err := cli.Put(ctx, role, `{"permissions":["view"]}`); err != nil {
		t.Fatal(err)
	}
	servedAgain(t, s)
	r, err := store.Role(mustView(t, s), "s", "custom")
	if err != nil || len(r.Permissions) != 1 {
		t.Errorf("the repaired role: %+v, %v", r, err)
	}
}

func mustView(t *testing.T, s *etcd.Store) store.Snapshot {
	t.Helper()
	snap, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	return snap
}

// TestDamagedIDCounter: the assignment id counter (m/idseq) holding what
// permatrix does not write — a value that is no number, or one so near
// 2^64 that the next block of ids wraps past it to 0 and hands out again
// numbers handed out before — stops a running sidecar (the watch), a new
// one (its first load) and a restarted one (its replica loaded before the
// damage came, followed from its revision) from serving, naming the key,
// and no sidecar hands out an id from it; the counter repaired, they serve
// again and hand out ids above it.
func TestDamagedIDCounter(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("idseq")
	running := sidecar(t, prefix, filepath.Join(t.TempDir(), "running.db"), etcd.Options{})
	write(t, running, "alice")
	replica := filepath.Join(t.TempDir(), "restarted.db")
	sidecar(t, prefix, replica, etcd.Options{}).Close() // loaded before the damage

	cli := client(t)
	counter := "/" + prefix + "/m/idseq"
	for _, damaged := range []string{"18446744073709551615", "hunter2"} {
		if _, err := cli.Put(ctx, counter, damaged); err != nil {
			t.Fatal(err)
		}
		fresh := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "fresh.db"))
		restarted := openURL(t, cluster.StoreURL(prefix), replica)
		for _, s := range []*etcd.Store{running, fresh, restarted} {
			refusedNaming(t, s, counter)
		}
		// An id is reserved from etcd's counter, not the replica: a
		// sidecar that has not yet applied the damage refuses it too.
		if _, err := restarted.NextID(ctx); permatrix.ErrorCode(err) != permatrix.EUNAVAILABLE || !strings.Contains(err.Error(), strconv.Quote(counter)) || strings.Contains(err.Error(), damaged) {
			t.Errorf("an id from the counter holding %q: %v, want %s naming the key and not its value", damaged, err, permatrix.EUNAVAILABLE)
		}
		fresh.Close()
		restarted.Close()
	}

	if _, err := cli.Put(ctx, counter, "5000"); err != nil {
		t.Fatal(err)
	}
	restarted := openURL(t, cluster.StoreURL(prefix), replica)
	for _, s := range []*etcd.Store{running, restarted} {
		servedAgain(t, s)
	}
	if id, err := restarted.NextID(ctx); err != nil || id <= 5000 {
		t.Errorf("an id from the repaired counter: %d %v, want one above 5000", id, err)
	}
}

// TestDamageHeldWhileMarkedIsFoundWhenTheMarkGoes: a replica restarted
// while its prefix is marked as holding an unfinished store copy skips its
// open check (a marked replica holds half a store, bolt), so a damaged key
// it applied before the restart is not known to the restarted sidecar.
// When the mark is removed, the replica's records are checked before the
// removal is applied: the key is found, named, and not served; deleted,
// the replica serves again.
func TestDamageHeldWhileMarkedIsFoundWhenTheMarkGoes(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("markdamage")
	replica := filepath.Join(t.TempDir(), "replica.db")
	first := sidecar(t, prefix, replica, etcd.Options{})
	write(t, first, "alice")

	cli := client(t)
	mark := "/" + prefix + "/m/copying"
	grant := "/" + prefix + "/k/" + string(store.Key("d", "grants", "user:mallory", "s", "role", "admin", "service"))
	if _, err := cli.Put(ctx, mark, `{"from":"bolt:elsewhere.db"}`); err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, grant, secretValue)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a guard only
	defer cancel()
	if err := first.Wait(wctx, uint64(put.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	first.Close()

	restarted := openURL(t, cluster.StoreURL(prefix), replica)
	if err := restarted.Wait(wctx, uint64(put.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.View(); err == nil {
		t.Fatal("a marked replica is served")
	}
	if _, err := cli.Delete(ctx, mark); err != nil {
		t.Fatal(err)
	}
	refusedNaming(t, restarted, grant)
	if _, err := cli.Delete(ctx, grant); err != nil {
		t.Fatal(err)
	}
	servedAgain(t, restarted)
}
