package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/test/harness"
)

// requestLog records the etcd requests of the stores opened while it is
// set (a gRPC interceptor on their clients), but for the reads of the
// root guard alone that the heartbeat sends on its own clock, and of the
// id counter alone that a watch sends as it starts (checkCounterAt): the
// watch of the store just opened starts while the claim is under way.
type requestLog struct {
	mu       sync.Mutex
	on       bool
	requests []string
	ranges   int // range reads sent, in a request or a transaction
	keys     int // keys they answered
}

func (l *requestLog) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on {
		return err
	}
	if r, ok := req.(*pb.RangeRequest); ok && strings.HasSuffix(string(r.Key), "/g/") && len(r.RangeEnd) == 0 {
		return err // the heartbeat
	}
	if r, ok := req.(*pb.RangeRequest); ok && strings.HasSuffix(string(r.Key), "/m/idseq") && len(r.RangeEnd) == 0 {
		return err // the watch's check of the id counter
	}
	l.requests = append(l.requests, method[strings.LastIndexByte(method, '/')+1:])
	if t, ok := req.(*pb.TxnRequest); ok && err == nil {
		for _, op := range append(t.Success, t.Failure...) {
			if rr := op.GetRequestRange(); rr != nil {
				l.ranges++
				if len(rr.RangeEnd) > 0 && rr.Limit != 1 {
					l.requests = append(l.requests, fmt.Sprintf("a range read of no limit 1 (%q, limit %d)", rr.Key, rr.Limit))
				}
			}
		}
		for _, r := range reply.(*pb.TxnResponse).Responses {
			l.keys += len(r.GetResponseRange().GetKvs())
		}
	}
	return err
}

// claimRequests claims prefix with a store of its own and returns what it
// sent.
func (l *requestLog) claimRequests(t *testing.T, prefix string) (requests []string, ranges, keys int) {
	t.Helper()
	s := openAt(t, prefix, filepath.Join(t.TempDir(), "replica.db"))
	defer s.Close()
	l.mu.Lock()
	l.on, l.requests, l.ranges, l.keys = true, nil, 0, 0
	l.mu.Unlock()
	if err := s.ClaimPrefix(context.Background()); err != nil {
		t.Fatalf("claiming %s: %v", prefix, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return l.requests, l.ranges, l.keys
}

// A start claims its prefix: the requests the claim sends are as many
// whatever the prefix holds — none is a scan of it — and a restart (the
// marker there) sends fewer than a first claim: for a prefix of two names
// (/a/b/), one transaction reading the containing prefix's marker and
// root guard, one of the 18 range reads of limit 1, the marker's (which
// reads its own marker and the containing prefix's if it fails: at a
// restart, its own marker is the one key answered); a first claim reads
// its range again (TestNestedClaimsRacingOneLoses). The range reads are
// counted as sent, in either branch of a transaction.
func TestClaimRequestsBounded(t *testing.T) {
	var l requestLog
	etcd.SetTestDialOptions(t, grpc.WithChainUnaryInterceptor(l.intercept))
	ctx := context.Background()
	cli := client(t)

	empty := newPrefix("cost") + "/b"
	first, ranges, keys := l.claimRequests(t, empty)
	if want := []string{"Txn", "Txn", "Txn", "Txn"}; fmt.Sprint(first) != fmt.Sprint(want) || ranges != 2+18+2+18 || keys != 0 {
		t.Errorf("the first claim of an empty prefix: %v (%d range reads, %d keys), want %v (40 range reads, no key)", first, ranges, keys, want)
	}
	restart, ranges, keys := l.claimRequests(t, empty)
	if want := []string{"Txn", "Txn", "Txn"}; fmt.Sprint(restart) != fmt.Sprint(want) || ranges != 2+18+2 || keys != 1 {
		t.Errorf("a restart: %v (%d range reads, %d keys), want %v (22 range reads, its marker the one key)", restart, ranges, keys, want)
	}

	// A prefix holding 3,000 keys of its layout in each part of it.
	full := newPrefix("cost") + "/b"
	for i := range 1000 {
		txn := cli.Txn(ctx).Then(
			clientv3.OpPut(fmt.Sprintf("/%s/k/d\x00roles\x00sys\x00r%04d", full, i), `{"permissions":[]}`),
			clientv3.OpPut(fmt.Sprintf("/%s/g/d\x00roles\x00sys\x00r%04d", full, i), ""),
			clientv3.OpPut(fmt.Sprintf("/%s/k/i\x00assignments\x00a%04d", full, i), "x"))
		if _, err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	got, ranges, keys := l.claimRequests(t, full)
	if fmt.Sprint(got) != fmt.Sprint(first) || ranges != 2+18+2+18 || keys != 0 {
		t.Errorf("the first claim of a prefix of 3,000 keys: %v (%d range reads, %d keys), want those of an empty one: %v (40, none)", got, ranges, keys, first)
	}
}

// A first claim whose second read of its range was not answered (etcd
// gone meanwhile) took its marker back, as if refused: serve, which
// serves after a claim etcd did not answer, served unmarked, and a fleet
// inside its prefix starting next was not refused. Only a claim that
// lost keeps no marker.
func TestClaimUnansweredSecondReadKeepsTheMarker(t *testing.T) {
	var mu sync.Mutex
	txns, failAt := 0, -1
	etcd.SetTestDialOptions(t, grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := req.(*pb.TxnRequest); ok {
			mu.Lock()
			txns++
			fail := txns == failAt
			mu.Unlock()
			if fail {
				return status.Error(codes.Unavailable, "test: not answered")
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}))
	prefix := newPrefix("secondread") + "/b"
	s := openAt(t, prefix, filepath.Join(t.TempDir(), "replica.db"))
	mu.Lock()
	txns, failAt = 0, 4 // the containing prefix's, the range's, the marker's, the range's again
	mu.Unlock()
	err := s.ClaimPrefix(context.Background())
	var nested *etcd.NestedPrefixError
	if err == nil || errors.As(err, &nested) || !strings.Contains(err.Error(), "not answered") {
		t.Fatalf("a claim whose second read failed: %v", err)
	}
	if resp, err := client(t).Get(context.Background(), "/"+prefix+"/m/fleet"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the marker after a second read not answered: %v %v", resp, err)
	}
}

// The containing prefixes were read one transaction each: a prefix of
// many names (/a/b/c/d/e/f/) sent as many requests at every start, one
// after the other. They are read in one transaction (within
// --etcd-max-txn-ops), each its marker and root guard.
func TestClaimReadsContainingPrefixesAtOnce(t *testing.T) {
	var l requestLog
	etcd.SetTestDialOptions(t, grpc.WithChainUnaryInterceptor(l.intercept))
	deep := newPrefix("deep") + "/b/c/d/e/f"
	got, ranges, _ := l.claimRequests(t, deep)
	if want := []string{"Txn", "Txn", "Txn", "Txn"}; fmt.Sprint(got) != fmt.Sprint(want) || ranges != 2*5+18+1+5+18 {
		t.Errorf("the first claim of a prefix of six names: %v (%d range reads), want %v (%d)", got, ranges, want, 2*5+18+1+5+18)
	}
	// A fleet at one of them is found all the same.
	var nested *etcd.NestedPrefixError
	outer := strings.Split(deep, "/")[0] + "/b/c"
	if err := claim(t, outer+"/d/e/x"); err != nil {
		t.Fatal(err)
	}
	if err := claim(t, outer); err == nil {
		t.Fatal("a fleet around another claimed")
	}
	if err := claim(t, outer+"/d/e/x/y/z"); !errors.As(err, &nested) || nested.Other != "/"+outer+"/d/e/x/" {
		t.Errorf("a fleet inside /%s/d/e/x/: %v", outer, err)
	}
}

// A user who may read the marker and root guard of one containing prefix
// and not of another: the transaction of both is refused, each is read on
// its own, the refused one skipped, the other still found.
func TestClaimSkipsContainingPrefixesItMayNotRead(t *testing.T) {
	c := harness.StartEtcdCluster(t, 1)
	ctx := context.Background()
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[0].ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	grant := func(key, end string, perm clientv3.PermissionType) func() error {
		return func() error { _, err := root.RoleGrantPermission(ctx, "fleet", key, end, perm); return err }
	}
	for i, step := range []func() error{
		func() error { _, err := root.RoleAdd(ctx, "root"); return err },
		func() error { _, err := root.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "fleet"); return err },
		grant("/x/b/c/", clientv3.GetPrefixRangeEnd("/x/b/c/"), clientv3.PermissionType(clientv3.PermReadWrite)),
		grant("/x/m/fleet", "", clientv3.PermissionType(clientv3.PermRead)),
		grant("/x/g/", "", clientv3.PermissionType(clientv3.PermRead)),
		func() error { _, err := root.UserAdd(ctx, "fleet", "s3cret"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "fleet", "fleet"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("etcd setup step %d: %v", i, err)
		}
	}
	claimAs := func() error {
		s, err := etcd.Open(ctx, etcd.Options{URL: c.StoreURL("x/b/c"), Replica: filepath.Join(t.TempDir(), "r.db"), Username: "fleet", Password: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.ClaimPrefix(ctx)
	}
	if err := claimAs(); err != nil {
		t.Fatalf("a claim that may not read /x/b/'s keys: %v", err)
	}
	rootCli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Members[0].ClientURL}, DialTimeout: 5 * time.Second, Username: "root", Password: "root-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer rootCli.Close()
	if _, err := rootCli.Put(ctx, "/x/m/fleet", "/x/"); err != nil {
		t.Fatal(err)
	}
	var nested *etcd.NestedPrefixError
	if err := claimAs(); !errors.As(err, &nested) || nested.Other != "/x/" {
		t.Fatalf("a claim inside the fleet at /x/, /x/b/ unreadable: %v", err)
	}
}
