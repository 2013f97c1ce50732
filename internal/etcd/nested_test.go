package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/test/harness"
)

// claim opens a store at prefix and claims it, as serve does.
func claim(t *testing.T, prefix string) error {
	t.Helper()
	// Not waiting for its first load, as serve claims before it serves:
	// a replica of a prefix around another fleet's holds its keys, which
	// are not the store's (damage.go), and is never served.
	s := openURL(t, cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "replica.db"))
	defer s.Close()
	return s.ClaimPrefix(context.Background())
}

// A sidecar at /p/ and another fleet at /p/k/ read each other's keys: the
// outer one's watch and resync take the inner one's keys for its own data
// (and a copy with --force into it deletes them). Only store copy refused
// nested prefixes. A store claiming its prefix (serve) is refused when a
// fleet is found at a prefix containing its own (its marker, or its root
// guard: a fleet of an earlier release, which writes no marker, once it
// has committed) or inside it (any key in its range that is not its own),
// saying which; a fleet beside it is not in the way.
func TestNestedPrefixesRefused(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	outer := newPrefix("nest")
	if err := claim(t, outer); err != nil {
		t.Fatalf("the first fleet: %v", err)
	}
	if err := claim(t, outer); err != nil {
		t.Fatalf("the first fleet claiming its prefix again (a restart): %v", err)
	}
	if resp, err := cli.Get(ctx, "/"+outer+"/m/fleet"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the fleet's marker: %v %v", resp, err)
	}
	var nested *etcd.NestedPrefixError
	for _, inner := range []string{outer + "/k", outer + "/x", outer + "/m/y/z"} {
		err := claim(t, inner)
		if !errors.As(err, &nested) || nested.Other != "/"+outer+"/" || !nested.Inside ||
			!strings.Contains(err.Error(), "etcd prefix /"+inner+"/ is inside /"+outer+"/") {
			t.Errorf("a fleet at %s, inside %s: %v", inner, outer, err)
		}
	}
	// Beside it: /nestNx/ is not inside /nestN/.
	if err := claim(t, outer+"x"); err != nil {
		t.Errorf("a fleet beside the first: %v", err)
	}

	// A fleet of an earlier release at /q/ (no marker), which committed:
	// its root guard says it is there.
	older := newPrefix("older")
	write(t, openAt(t, older, filepath.Join(t.TempDir(), "older.db")), "u")
	if err := claim(t, older+"/k"); !errors.As(err, &nested) || nested.Other != "/"+older+"/" {
		t.Errorf("a fleet inside one of an earlier release: %v", err)
	}

	// The other way round: a fleet at /r/k/ serving, then one at /r/.
	base := newPrefix("outerlate")
	if err := claim(t, base+"/k"); err != nil {
		t.Fatal(err)
	}
	err := claim(t, base)
	if !errors.As(err, &nested) || nested.Inside || nested.Other != "/"+base+"/k/" ||
		!strings.Contains(err.Error(), "/"+base+"/k/m/fleet") {
		t.Errorf("a fleet around one at %s/k: %v", base, err)
	}
	// One of an earlier release inside it, that committed: its keys.
	base2 := newPrefix("outerold")
	write(t, openAt(t, base2+"/g/x", filepath.Join(t.TempDir(), "inner.db")), "u")
	if err := claim(t, base2); !errors.As(err, &nested) || nested.Inside || !strings.Contains(err.Error(), "/"+base2+"/g/x/") {
		t.Errorf("a fleet around one of an earlier release at %s/g/x: %v", base2, err)
	}
	// A key under the prefix that is no key of a store (put by hand).
	base3 := newPrefix("stray")
	if _, err := cli.Put(ctx, "/"+base3+"/notes", "x"); err != nil {
		t.Fatal(err)
	}
	if err := claim(t, base3); !errors.As(err, &nested) || !strings.Contains(err.Error(), `"/`+base3+`/notes"`) {
		t.Errorf("a prefix holding a key not a store's: %v", err)
	}
	if resp, err := cli.Get(ctx, "/"+base3+"/m/fleet"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("a refused claim put its marker: %v %v", resp.Kvs, err)
	}
}

// The claim's reads are bounded whatever the prefix holds: a fleet with
// its keys in every part of its range (data, guards, meta, the copy lock)
// is not refused for its own keys.
func TestClaimFindsNothingForeignInAFleetOwnKeys(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("own")
	s := openAt(t, prefix, filepath.Join(t.TempDir(), "r.db"))
	write(t, s, "a")
	write(t, s, "b")
	if _, err := s.NextID(ctx); err != nil {
		t.Fatal(err)
	}
	cli := client(t)
	if _, err := cli.Put(ctx, "/"+prefix+"/c/copy/stuck", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/"+prefix+"/m/nudge", "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPrefix(ctx); err != nil {
		t.Fatalf("a fleet's own keys: %v", err)
	}
	if resp, err := cli.Get(ctx, "/"+prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count < 5 {
		t.Fatalf("the prefix's keys: %v %v", resp, err)
	}
}

// The claim's reads of its own range were one transaction of 18 reads,
// refused by a cluster whose --max-txn-ops is below that (the claim then
// not made: a warning at serve, an error at store copy). They are sent
// within the limits the store was told.
func TestClaimWithinTheClusterTxnLimit(t *testing.T) {
	ctx := context.Background()
	small := harness.StartEtcdCluster(t, 1, "--max-txn-ops", "8")
	prefix := newPrefix("smalltxn")
	o := etcd.Options{URL: small.StoreURL(prefix + "/k"), Replica: filepath.Join(t.TempDir(), "inner.db"), MaxTxnOps: 8}
	inner, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	waitReady(t, inner)
	if err := inner.ClaimPrefix(ctx); err != nil {
		t.Fatalf("the claim on a cluster of --max-txn-ops 8: %v", err)
	}
	o.URL, o.Replica = small.StoreURL(prefix), filepath.Join(t.TempDir(), "outer.db")
	outer, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close() // not waited for: a replica around another fleet's holds its keys, never served (damage.go)
	var nested *etcd.NestedPrefixError
	if err := outer.ClaimPrefix(ctx); !errors.As(err, &nested) || nested.Other != "/"+prefix+"/k/" {
		t.Fatalf("a fleet around another, on a cluster of --max-txn-ops 8: %v", err)
	}
}

// Two fleets on nested prefixes starting at the same moment each read the
// other's place before the other's marker was there, and both started
// (the next start refused). The marker is put in a transaction that
// requires the containing prefixes' markers absent, and a store that put
// its marker looks inside its prefix once more: of two claims racing, one
// loses, and takes its marker back.
func TestNestedClaimsRacingOneLoses(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	for i := range 20 {
		base := newPrefix("race")
		prefixes := []string{base, base + "/k"}
		if i%2 == 1 {
			prefixes = []string{base + "/k", base}
		}
		var stores [2]*etcd.Store
		for j, p := range prefixes {
			stores[j] = openAt(t, p, filepath.Join(t.TempDir(), "replica.db"))
		}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[j] = stores[j].ClaimPrefix(ctx)
			}()
		}
		close(start)
		wg.Wait()
		for _, s := range stores {
			s.Close()
		}
		won := 0
		var nested *etcd.NestedPrefixError
		for j, err := range errs {
			marker, gerr := cli.Get(ctx, "/"+prefixes[j]+"/m/fleet")
			if gerr != nil {
				t.Fatal(gerr)
			}
			switch {
			case err == nil:
				won++
				if len(marker.Kvs) != 1 {
					t.Errorf("round %d: %s claimed, without its marker", i, prefixes[j])
				}
			case errors.As(err, &nested):
				if len(marker.Kvs) != 0 {
					t.Errorf("round %d: %s refused (%v), its marker left", i, prefixes[j], err)
				}
			default:
				t.Fatalf("round %d: %s: %v", i, prefixes[j], err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of the nested claims of %v succeeded (%v), want 1", i, won, prefixes, errs)
		}
	}
}

// A fleet at /p/c/copy/x/ keeps its keys where a fleet at /p/ keeps its
// copy lock's, the one part of /p/'s range its claim does not read: /p/
// claimed after it found nothing, and every copy into /p/ was refused
// for ever, the lock held by the inner fleet's first key. A prefix
// inside a containing prefix's copy lock is refused as nested, whether a
// fleet is there or not, before anything is read or put.
func TestClaimInsideACopyLockRefused(t *testing.T) {
	ctx := context.Background()
	base := newPrefix("copylockspace")
	var nested *etcd.NestedPrefixError
	err := claim(t, base+"/c/copy/x")
	if !errors.As(err, &nested) || nested.Other != "/"+base+"/" || !nested.Inside ||
		!strings.Contains(err.Error(), "copy lock") {
		t.Fatalf("a fleet inside the copy lock's keys of /%s/: %v", base, err)
	}
	if resp, err := client(t).Get(ctx, "/"+base+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("the refused claim put keys: %v %v", resp, err)
	}
	if err := claim(t, base); err != nil {
		t.Fatalf("the fleet at /%s/: %v", base, err)
	}
	// Names that only start like it are names.
	for _, p := range []string{base + "x/c/copyx/y", base + "y/cc/copy/z"} {
		if err := claim(t, p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// An upgrade: a prefix holding every key an earlier release, or a store
// copy running or killed, leaves — written as they wrote them, with no
// fleet marker — is claimed (serve starts), and the marker put: data and
// guards of both namespaces and the root guard, the id counter, the
// nudge, a killed copy's mark, a running copy's lock key on its lease and
// a key put by hand under the lock.
func TestClaimAfterAnEarlierRelease(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	prefix := "/" + newPrefix("upgrade") + "/"
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Revoke(ctx, lease.ID)
	for k, v := range map[string]string{
		"k/d\x00grants\x00user:a\x00sys\x00role\x00r\x00service": "{}",
		"k/d\x00memberships\x00a\x00g":                           "{}",
		"k/i\x00assignments\x00a1":                               "x",
		"g/":                                                     "", "g/d": "", "g/d\x00grants": "", "g/d\x00grants\x00user:a\x00sys": "", "g/i": "", "g/i\x00assignments\x00a1": "",
		"m/idseq": "1000", "m/nudge": "7", "m/copying": `{"from":"bolt:old.db","started":"2026-01-02T03:04:05Z"}`,
		"c/copy/stuck": "",
	} {
		if _, err := cli.Put(ctx, prefix+k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("%sc/copy/%x", prefix, int64(lease.ID)), "", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	// Not waited for: a marked prefix is not served (not ready), and a
	// sidecar claims it all the same.
	s := openURL(t, cluster.StoreURL(strings.Trim(prefix, "/")), filepath.Join(t.TempDir(), "replica.db"))
	if err := s.ClaimPrefix(ctx); err != nil {
		t.Fatalf("a prefix of an earlier release: %v", err)
	}
	if resp, err := cli.Get(ctx, prefix+"m/fleet"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the marker: %v %v", resp, err)
	}
}
