package extauthz_test

import (
	"context"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// TestCallsInFlightReturnToZero: a place under --max-requests-in-flight
// the gRPC listener takes and never gives back fills the bound for good,
// and every check after is refused. 1,000 calls of every odd kind, 32 at
// once against a bound of 16: checks answered, a check whose deciding
// panics, one past its deadline, one cancelled by its client, one waiting
// for a consistency token its client gives up on, one whose connection
// closes while it waits, a stream reset before its message, a message
// over the size bound, one protobuf cannot decode, a health Check, a
// method that does not exist. When they have ended the listener's calls in
// flight are 0, and 16 checks held at once are all served.
func TestCallsInFlightReturnToZero(t *testing.T) {
	const total, workers, bound = 1000, 32, 16
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	var holding sync.WaitGroup
	release := make(chan struct{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()},
		Decide: func(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
			switch ch.Subject {
			case "boom":
				panic("a fault while deciding")
			case "hold":
				holding.Done()
				<-release
			}
			return s.HTTP.Decide(ctx, ch)
		},
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready, MaxRequestsInFlight: bound, MaxMessageBytes: 4 << 10,
		Timeout: 500 * time.Millisecond})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	conn := mustConn(t, addr.String(), insecure.NewCredentials())
	c := authv3.NewAuthorizationClient(conn)
	ext := map[string]string{"system": tm, "action": "edit_users"}
	as := func(user string, headers ...string) *authv3.CheckRequest {
		h := map[string]string{"x-forwarded-user": user}
		for i := 0; i+1 < len(headers); i += 2 {
			h[headers[i]] = headers[i+1]
		}
		return request("GET", "/", h, ext)
	}
	bg := context.Background()
	kinds := []func(){
		func() { _, _ = c.Check(bg, as("ann")) },
		func() { _, _ = c.Check(bg, as("boom")) },
		func() {
			ctx, cancel := context.WithTimeout(bg, time.Millisecond)
			defer cancel()
			_, _ = c.Check(ctx, as("ann", "x-permatrix-min-revision", "1000000"))
		},
		func() {
			ctx, cancel := context.WithCancel(bg)
			time.AfterFunc(5*time.Millisecond, cancel)
			_, _ = c.Check(ctx, as("ann", "x-permatrix-min-revision", "1000000"))
			cancel()
		},
		func() { _, _ = c.Check(bg, as("ann", "x-permatrix-min-revision", "1000000")) },
		func() {
			// Its connection closes while the call waits.
			own, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Error(err)
				return
			}
			time.AfterFunc(5*time.Millisecond, func() { own.Close() })
			_, _ = authv3.NewAuthorizationClient(own).Check(bg, as("ann", "x-permatrix-min-revision", "1000000"))
			own.Close()
		},
		func() {
			// Headers, then a reset: no message ever.
			ctx, cancel := context.WithCancel(bg)
			_, _ = conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, authv3.Authorization_Check_FullMethodName)
			time.Sleep(time.Millisecond)
			cancel()
		},
		func() { _, _ = c.Check(bg, as("ann", "x-big", string(make([]byte, 8<<10)))) },
		func() {
			msg, out := []byte{0xff, 0xff, 0xff}, []byte(nil)
			_ = conn.Invoke(bg, authv3.Authorization_Check_FullMethodName, &msg, &out, grpc.ForceCodec(rawCodec{}))
		},
		func() { _, _ = healthpb.NewHealthClient(conn).Check(bg, &healthpb.HealthCheckRequest{}) },
		func() {
			var out healthpb.HealthCheckResponse
			_ = conn.Invoke(bg, "/no.Such/Method", &healthpb.HealthCheckRequest{}, &out)
		},
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				kinds[i%len(kinds)]()
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()

	// Calls whose clients went away end with their timeout at the latest:
	// wait for them, with a guard far beyond it.
	calls := srv.Requests()
	for deadline := time.Now().Add(30 * time.Second); calls.InFlight() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d calls, %d refused at the bound", total, calls.RefusedInFlight())
	if n := calls.InFlight(); n != 0 {
		t.Fatalf("%d calls in flight after every call ended, want 0", n)
	}
	// Every place is free: bound checks held at once are all served.
	refusedBefore := calls.RefusedInFlight()
	holding.Add(bound)
	codesOf := make([]codes.Code, bound)
	var held sync.WaitGroup
	for i := range bound {
		held.Add(1)
		go func() {
			defer held.Done()
			resp, err := c.Check(bg, as("hold"))
			if err != nil {
				t.Error(err)
				holding.Done()
				return
			}
			codesOf[i] = codes.Code(resp.GetStatus().GetCode())
			if codesOf[i] == codes.Unavailable {
				holding.Done() // refused: it never reached Decide
			}
		}()
	}
	holding.Wait() // all bound are deciding at once
	close(release)
	held.Wait()
	for i, code := range codesOf {
		if code == codes.Unavailable {
			t.Errorf("check %d of %d held at once: UNAVAILABLE, refused", i+1, bound)
		}
	}
	if n := calls.RefusedInFlight(); n != refusedBefore {
		t.Errorf("%d calls refused with every place free, want none", n-refusedBefore)
	}
}
