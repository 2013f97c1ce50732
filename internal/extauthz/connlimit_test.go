package extauthz_test

import (
	"context"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// TestConnectionsBounded: with MaxConnections 1 the gRPC listener serves
// one connection at a time: a second client's check is not answered while
// the first client's connection is open, and is once it closes.
func TestConnectionsBounded(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnections: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	first := mustConn(t, addr.String(), insecure.NewCredentials())
	if resp, err := authv3.NewAuthorizationClient(first).Check(context.Background(), req); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the first connection: %v %v", resp, err)
	}
	if n := srv.Connections().Open(); n != 1 {
		t.Errorf("%d connections open, want 1", n)
	}
	second := authv3.NewAuthorizationClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	// An answer here can only mean the bound is not kept: a slow machine
	// makes this pass, never fail.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if resp, err := second.Check(ctx, req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a second connection with one open was served: %v %v", resp, err)
	}
	first.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if resp, err := second.Check(ctx, req, grpc.WaitForReady(true)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the second connection once the first closed: %v %v", resp, err)
	}
}
