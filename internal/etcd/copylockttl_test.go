package etcd_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/store/storetest"
	"github.com/permatrix/permatrix/test/harness"
)

// The copy lock's lease is asked for 10 s, but etcd grants no lease below
// its least TTL (1.5 election timeouts: 15 s at --election-timeout 10000),
// and a lost lock's refusal said "cut off from etcd for over 10s" all the
// same. It says the TTL etcd granted.
func TestLostCopyLockSaysTheGrantedTTL(t *testing.T) {
	ctx := context.Background()
	slow := harness.StartEtcdCluster(t, 1, "--heartbeat-interval", "200", "--election-timeout", "10000")
	prefix := newPrefix("lockttl")
	o := etcd.Options{URL: slow.StoreURL(prefix), Replica: filepath.Join(t.TempDir(), "copy.db"), CopyTarget: true}
	copier, err := etcd.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer copier.Close()
	waitReady(t, copier)
	if err := copier.LockCopy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := copier.MarkCopy(ctx, "bolt:a.db"); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{slow.Members[0].ClientURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lock's keys: %v %v", resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	ttl, err := cli.TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL <= 10 {
		t.Fatalf("the cluster granted the lock's lease %ds: the test needs a cluster whose least TTL is over 10s", ttl.GrantedTTL)
	}
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	_, commitErr := copier.Commit(ctx, &store.Batch{Base: copier.Revision(), Epoch: copier.Changes().Epoch(),
		Ops: []store.Op{{Key: store.Key("d", "grants", "user:a", "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", "user:a", "s", "role", "r", "service"), 1))}}})
	for what, err := range map[string]error{"a commit": commitErr, "LockCopy again": copier.LockCopy(ctx), "the mark's removal": copier.UnmarkCopy(ctx)} {
		want := fmt.Sprintf("for over %ds", ttl.GrantedTTL)
		if err == nil || !strings.Contains(err.Error(), "lost the copy lock") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s once the lock's lease of %ds ended: %v, want it to say %q", what, ttl.GrantedTTL, err, want)
		}
	}
}
