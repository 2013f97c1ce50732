package extauthz_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// TestSlowDecisionEndsAtTheTimeout: a decision slower than the check
// timeout is ended by it, once: the decision sees its context's deadline
// pass, and Envoy gets a CheckResponse, UNAVAILABLE (503, "request timed
// out"), not a gRPC error its failure_mode_allow would let through.
func TestSlowDecisionEndsAtTheTimeout(t *testing.T) {
	var calls atomic.Int32
	seen := make(chan error, 1)
	srv := extauthz.New(extauthz.Config{
		Gateway: &gateway.Gateway{Identity: identity.Default()},
		Decide: func(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
			calls.Add(1)
			<-ctx.Done() // slower than any timeout
			seen <- ctx.Err()
			return nil, ctx.Err()
		},
		ErrorJSON: permhttp.ErrorJSON,
		Timeout:   100 * time.Millisecond,
	})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	c := client(t, addr.String(), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	resp, err := c.Check(context.Background(), request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, ext))
	if err != nil {
		t.Fatalf("a gRPC error, which failure_mode_allow lets through: %v", err)
	}
	if got := <-seen; got != context.DeadlineExceeded {
		t.Fatalf("the decision's context ended with %v, want the deadline", got)
	}
	denied := resp.GetDeniedResponse()
	var body struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal([]byte(denied.GetBody()), &body)
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || denied.GetStatus().GetCode() != 503 ||
		body.Error.Message != "request timed out" {
		t.Fatalf("a decision past the timeout: %v", resp)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("decided %d times", n)
	}
}
