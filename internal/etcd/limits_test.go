package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/store/storetest"
	"github.com/permatrix/permatrix/test/harness"
)

// defaults is a one-member cluster at etcd's default limits (--max-txn-ops
// 128, --max-request-bytes 1.5 MiB), started by the first test that needs
// it and stopped by TestMain.
var defaults struct {
	once    sync.Once
	dir     string
	cluster *harness.EtcdCluster
	err     error
}

func defaultCluster(t *testing.T) *harness.EtcdCluster {
	t.Helper()
	defaults.once.Do(func() {
		defaults.dir, defaults.err = harness.MemoryTempDir("permatrix-etcd-defaults")
		if defaults.err == nil {
			defaults.cluster, defaults.err = harness.NewEtcdCluster(defaults.dir, 1)
		}
	})
	if defaults.err != nil {
		t.Fatal(defaults.err)
	}
	return defaults.cluster
}

// openWith connects a store told o's limits under a fresh prefix of c
// (the defaults cluster if nil); it returns the store and its prefix.
func openWith(t *testing.T, c *harness.EtcdCluster, o etcd.Options) (*etcd.Store, string) {
	t.Helper()
	if c == nil {
		c = defaultCluster(t)
	}
	prefix := newPrefix("lim")
	o.URL, o.Replica = c.StoreURL(prefix), filepath.Join(t.TempDir(), "replica.db")
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitReady(t, s)
	return s, "/" + prefix + "/"
}

// grantKey is a data key of user n's grants in system s (its own unit).
func grantKey(n int, role string) []byte {
	return store.Key("d", "grants", fmt.Sprintf("user:u%d", n), "s", "role", role, "service")
}

// puts is a batch at s's revision putting n keys of users 0…n-1, each
// value a grant's of size bytes (at least the grant's own): padded with a
// field a grant does not have, which its decoding skips.
func puts(s *etcd.Store, n, size int) *store.Batch {
	b := &store.Batch{Base: s.Revision()}
	for i := range n {
		k := grantKey(i, "r")
		v := storetest.RecordValue(k, i)
		if pad := size - len(v) - len(`{"pad":"",`) + 1; pad > 0 {
			v = `{"pad":"` + strings.Repeat("v", pad) + `",` + v[1:]
		}
		b.Ops = append(b.Ops, store.Op{Key: k, Value: []byte(v)})
	}
	return b
}

// keysUnder counts the keys the defaults cluster holds under prefix.
func keysUnder(t *testing.T, prefix string) int64 {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{defaultCluster(t).Members[0].ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func wantTooLarge(t *testing.T, err error, says ...string) {
	t.Helper()
	if permatrix.ErrorCode(err) != permatrix.ETOOLARGE {
		t.Fatalf("want %s, got %v", permatrix.ETOOLARGE, err)
	}
	for _, s := range says {
		if !strings.Contains(permatrix.ErrorMessage(err), s) {
			t.Fatalf("the message does not say %q: %s", s, permatrix.ErrorMessage(err))
		}
	}
}

// Fits holds a commit to the limits the store is told, counting the guards
// each key's units need; a batch that does not fit is refused before it is
// sent (nothing is written), with a message naming the limit and the
// count. The byte bound is an upper bound that is close: the largest batch
// it lets through is committed by a cluster at exactly that limit, and is
// within a few per cent of it.
func TestFitsTheDefaultLimits(t *testing.T) {
	ctx := context.Background()
	s, prefix := openWith(t, nil, etcd.Options{})
	if s.MaxOps() != etcd.DefaultMaxTxnOps {
		t.Fatalf("MaxOps %d", s.MaxOps())
	}
	// 40 users: 40 puts, 40 units of their own and 5 shared ("d grants
	// user:uN", "d grants", "d", "" and the unit "d grants user:uN s") —
	// 40 + 40×2 + 3 = 123 entries; 42 users make 129.
	if err := s.Fits(puts(s, 40, 10).Size()); err != nil {
		t.Fatalf("40 keys: %v", err)
	}
	wantTooLarge(t, s.Fits(puts(s, 42, 10).Size()), "129 operations", "--max-txn-ops of 128", "--etcd-max-txn-ops")
	// Reads past the ops limit are guarded by fewer, wider units: they
	// count toward the bytes only.
	if err := s.Fits(store.Size{Ops: 1, Writes: 4, Reads: 10_000, ReadBytes: 300_000}); err != nil {
		t.Fatalf("10,000 reads: %v", err)
	}
	_, err := s.Commit(ctx, puts(s, 42, 10))
	wantTooLarge(t, err, "129 operations")
	if n := keysUnder(t, prefix); n != 0 {
		t.Fatalf("a refused commit wrote %d keys", n)
	}

	// The largest value 20 keys may have: found through Fits alone.
	lo, hi := 1, 2<<20
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if s.Fits(puts(s, 20, mid).Size()) == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	wantTooLarge(t, s.Fits(puts(s, 20, lo+1).Size()), "--max-request-bytes of 1572864")
	b := puts(s, 20, lo)
	if z := b.Size(); float64(z.OpBytes) < 0.98*etcd.DefaultMaxRequestBytes {
		t.Fatalf("the byte bound is loose: it lets %d bytes of keys and values through, of %d", z.OpBytes, etcd.DefaultMaxRequestBytes)
	}
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatalf("the largest batch Fits lets through (20 values of %d bytes): %v", lo, err)
	}
	if n := keysUnder(t, prefix+"k/"); n != 20 {
		t.Fatalf("%d keys committed, want 20", n)
	}
}

// A store told larger limits than the cluster's: etcd (or its gRPC server)
// refuses the transaction, and the answer is 413-class, naming the limit
// and the flag to fix — never "store unavailable" — and nothing is
// written. The store keeps working.
func TestRefusedByTheCluster(t *testing.T) {
	ctx := context.Background()
	s, prefix := openWith(t, nil, etcd.Options{MaxTxnOps: 1000, MaxRequestBytes: 8 << 20})
	for _, c := range []struct {
		name  string
		batch *store.Batch
		says  []string
	}{
		{"200 keys", puts(s, 200, 10), []string{"etcd refused the transaction", "--max-txn-ops", "--etcd-max-txn-ops of 1000"}},
		// Under the gRPC server's limit (--max-request-bytes + 512 KiB):
		// etcd's own ErrRequestTooLarge.
		{"1.7 MiB", puts(s, 1, 1700<<10), []string{"etcd refused the transaction", "--max-request-bytes", "--etcd-max-request-bytes of 8388608"}},
		// Over it: the gRPC server refuses the message unread.
		{"3 MiB", puts(s, 1, 3<<20), []string{"etcd refused the transaction", "--etcd-max-request-bytes of 8388608"}},
	} {
		_, err := s.Commit(ctx, c.batch)
		wantTooLarge(t, err, c.says...)
		if n := keysUnder(t, prefix); n != 0 {
			t.Fatalf("%s: a refused commit wrote %d keys", c.name, n)
		}
	}
	if _, err := s.Commit(ctx, puts(s, 10, 10)); err != nil {
		t.Fatalf("a commit that fits, after the refusals: %v", err)
	}
	if h := s.Health(); !h.Ready {
		t.Fatalf("not ready after refusals: %+v", h)
	}

	// The etcd client's own limit on what it sends ("trying to send
	// message larger than max"), met with a client whose limit is small.
	small, err := clientv3.New(clientv3.Config{Endpoints: []string{defaultCluster(t).Members[0].ClientURL}, DialTimeout: 5 * time.Second, MaxCallSendMsgSize: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	_, err = small.Txn(ctx).Then(clientv3.OpPut(prefix+"k/x", strings.Repeat("v", 4<<10))).Commit()
	if err == nil || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("the client sent 4 KiB past its 1 KiB limit: %v", err)
	}
	wantTooLarge(t, s.Refused(err, puts(s, 1, 4<<10).Size()), "--max-request-bytes")
	// Other failures are not size refusals.
	for _, other := range []error{context.DeadlineExceeded, errors.New("etcdserver: mvcc: database space exceeded")} {
		if e := s.Refused(other, store.Size{Ops: 1}); e != nil {
			t.Fatalf("%v taken for a size refusal: %v", other, e)
		}
	}
}

// More units read than --max-txn-ops takes compares: the commit is guarded
// by fewer, wider units and goes through — and still fails when something
// it read changed after its base.
func TestManyReadsFewerGuards(t *testing.T) {
	ctx := context.Background()
	s, _ := openWith(t, nil, etcd.Options{})
	reads := func() [][]byte {
		var units [][]byte
		for i := range 300 {
			units = append(units, store.UnitOf(grantKey(i, "r")))
		}
		return units
	}
	base := s.Revision()
	b := &store.Batch{Base: base, Reads: reads(), Ops: []store.Op{{Key: grantKey(1000, "r"), Value: []byte(storetest.RecordValue(grantKey(1000, "r"), 1))}}}
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatalf("300 reads: %v", err)
	}
	// Another write changes user 7's grants, which the next batch read at
	// an older base: it must conflict, though its guards are wider.
	base = s.Revision()
	if _, err := s.Commit(ctx, &store.Batch{Base: base, Ops: []store.Op{{Key: grantKey(7, "other"), Value: []byte(storetest.RecordValue(grantKey(7, "other"), 2))}}}); err != nil {
		t.Fatal(err)
	}
	stale := &store.Batch{Base: base, Reads: reads(), Ops: []store.Op{{Key: grantKey(1001, "r"), Value: []byte(storetest.RecordValue(grantKey(1001, "r"), 3))}}}
	if _, err := s.Commit(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale batch with 300 reads: %v, want a conflict", err)
	}
	stale.Base = s.Revision()
	if _, err := s.Commit(ctx, stale); err != nil {
		t.Fatalf("the same batch at the new revision: %v", err)
	}
}

// fewerGuards: at most n units, and every unit given is covered by one
// (itself or a parent, which every write below it bumps).
func TestFewerGuards(t *testing.T) {
	covers := func(g, u []byte) bool {
		return len(g) == 0 || bytes.Equal(g, u) || bytes.HasPrefix(u, g) && u[len(g)] == 0
	}
	var units [][]byte
	for i := range 200 {
		units = append(units, store.UnitOf(grantKey(i, "r")), store.UnitOf(store.Key("i", "assignments", fmt.Sprintf("a%d", i))))
	}
	units = append(units, []byte("d\x00memberships\x00u1"), []byte("d\x00roles\x00s\x00r"))
	for _, n := range []int{1000, 402, 128, 16, 3, 1} {
		got := etcd.FewerGuards(units, n)
		if len(got) > n {
			t.Fatalf("n=%d: %d guards", n, len(got))
		}
		for _, u := range units {
			ok := false
			for _, g := range got {
				ok = ok || covers(g, u)
			}
			if !ok {
				t.Fatalf("n=%d: %q is guarded by none of %q", n, u, got)
			}
		}
		if n >= len(units) && len(got) != len(units) {
			t.Fatalf("n=%d: %d units within the limit were changed to %d", n, len(units), len(got))
		}
		for _, g := range got {
			if n >= 3 && len(g) == 0 {
				t.Fatalf("n=%d: the root guards it all, where narrower guards fit: %q", n, got)
			}
		}
	}
}

// etcd out of space (its quota, alarm NOSPACE) is 507 insufficient_storage,
// not a size limit of the request and not "unavailable".
func TestEtcdOutOfSpace(t *testing.T) {
	c := harness.StartEtcdCluster(t, 1, "--quota-backend-bytes", fmt.Sprint(2<<20))
	s, _ := openWith(t, c, etcd.Options{})
	ctx := context.Background()
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		b := &store.Batch{Base: s.Revision(), Ops: []store.Op{{Key: grantKey(i, "r"), Value: bytes.Repeat([]byte("v"), 200<<10)}}}
		_, err = s.Commit(ctx, b)
	}
	if permatrix.ErrorCode(err) != permatrix.ESTORAGE || !strings.Contains(permatrix.ErrorMessage(err), "--quota-backend-bytes") {
		t.Fatalf("filling a 2 MiB quota: %v", err)
	}
}
