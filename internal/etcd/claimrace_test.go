package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/test/harness"
)

// Two sidecars of one fleet at /p/ start at the moment a fleet at /p/x/
// claims its prefix: both read /p/'s range before /p/x/'s marker was
// there; the first puts /p/'s marker, finds /p/x/'s when it reads its
// range again, and loses — but the second, finding the marker there, took
// it for a restart's and served, beside the fleet at /p/x/ (and with no
// marker left once the first took its back). A claim that finds its
// fleet's marker put after it read its range reads it again, as one that
// put it does.
func TestClaimFindingItsMarkerJustPutReadsAgain(t *testing.T) {
	ctx := context.Background()
	cli := client(t)
	outer := newPrefix("samefleet")
	inner := outer + "/x"
	mark := "/" + outer + "/m/fleet"
	var once sync.Once
	etcd.SetTestDialOptions(t, grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if txn, ok := req.(*pb.TxnRequest); ok && len(txn.Success) == 1 && string(txn.Success[0].GetRequestPut().GetKey()) == mark {
			// Between this sidecar's read of its range and its marker's
			// transaction: the fleet at /p/x/ claims its prefix, then the
			// other sidecar of /p/ puts /p/'s marker.
			once.Do(func() {
				if err := claim(t, inner); err != nil {
					t.Errorf("the fleet at %s: %v", inner, err)
				}
				if _, err := cli.Put(ctx, mark, "/"+outer+"/"); err != nil {
					t.Error(err)
				}
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}))
	s := openAt(t, outer, filepath.Join(t.TempDir(), "replica.db"))
	defer s.Close()
	err := s.ClaimPrefix(ctx)
	var nested *etcd.NestedPrefixError
	if !errors.As(err, &nested) || nested.Inside || nested.Other != "/"+inner+"/" {
		t.Fatalf("a sidecar of /p/ finding its fleet's marker put after it read its range, a fleet at /p/x/ meanwhile: %v", err)
	}
}

// On a cluster whose --max-txn-ops is 1, the claim read a containing
// prefix's marker and root guard in one transaction of two reads, which
// etcd refused as too many operations, and took the refusal for the one
// it skips — a user not allowed to read there — so a fleet inside
// another's claimed its prefix. Only a permission refused is skipped; the
// two keys are read within the limits the store was told.
func TestClaimOnASmallTxnLimitFindsTheOuterFleet(t *testing.T) {
	ctx := context.Background()
	tiny := harness.StartEtcdCluster(t, 1, "--max-txn-ops", "1")
	outer := newPrefix("tinytxn")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{tiny.Members[0].ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// The fleet at /p/, as its claim leaves it.
	if _, err := cli.Put(ctx, "/"+outer+"/m/fleet", "/"+outer+"/"); err != nil {
		t.Fatal(err)
	}
	for _, told := range []int{1, 0} { // told the cluster's limit, or not (etcd's default)
		inner := fmt.Sprintf("%s/x%d", outer, told)
		s, err := etcd.Open(ctx, etcd.Options{URL: tiny.StoreURL(inner), Replica: filepath.Join(t.TempDir(), "r.db"), MaxTxnOps: told})
		if err != nil {
			t.Fatal(err)
		}
		waitReady(t, s)
		err = s.ClaimPrefix(ctx)
		s.Close()
		var nested *etcd.NestedPrefixError
		switch {
		case told == 1 && (!errors.As(err, &nested) || nested.Other != "/"+outer+"/"):
			t.Errorf("a fleet inside /p/, told --etcd-max-txn-ops 1: %v, want refused as inside /p/", err)
		case told == 0 && (err == nil || errors.As(err, &nested) && nested.Other != "/"+outer+"/"):
			t.Errorf("a fleet inside /p/, told no limit: %v, want refused, or the check not made", err)
		}
		if resp, err := cli.Get(ctx, "/"+inner+"/m/fleet"); err != nil || len(resp.Kvs) != 0 {
			t.Errorf("told %d: the inner fleet's marker was put: %v %v", told, resp, err)
		}
	}
}
