package etcd_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/permatrix/permatrix/internal/etcd"
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
