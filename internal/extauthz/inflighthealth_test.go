package extauthz_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// openHealthChecks opens n grpc.health.v1 Check streams whose message
// never comes (each held, from its headers, until its timeout or its
// connection's end), then a PING: its ack comes once the server has read
// every stream's headers.
func (f *grpcFlood) openHealthChecks(t *testing.T, n int) {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := range n {
		block.Reset()
		for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: healthpb.Health_Check_FullMethodName}, {Name: ":authority", Value: "permatrix"},
			{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
			if err := enc.WriteField(hf); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(1 + 2*i), BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
}

// waitSettled waits for n streams to end (a guard of 30 s only).
func waitSettled(t *testing.T, settled <-chan struct{}, n int) {
	t.Helper()
	guard := time.After(30 * time.Second)
	for range n {
		select {
		case <-settled:
		case <-guard:
			t.Fatalf("fewer than %d streams ended", n)
		}
	}
}

// TestHealthAnsweredAtTheBound: a health Check was counted in
// MaxRequestsInFlight, so with the bound held full by checks (Envoy's
// burst, or one client's streams waiting for their message) it was
// UNAVAILABLE too: Envoy's health checks and Kubernetes' gRPC probes took
// a sidecar that was only busy for a dead one. With the checks' bound of
// eight held, a health Check is SERVING. Health Checks have a bound of
// their own (32): 40 held without their message, eight are refused at
// once, UNAVAILABLE, counted apart, and a probe too; the connection
// closed, none is in flight and a probe is SERVING again.
func TestHealthAnsweredAtTheBound(t *testing.T) {
	const bound, probes, past = 8, 32, 8
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready, MaxRequestsInFlight: bound,
		// The calls held wait for their message past the test's end.
		Timeout: 2 * time.Minute})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	settled := make(chan struct{}, 1000)
	checks := dialGRPCFlood(t, addr.String(), settled)
	checks.open(t)
	<-checks.pinged
	waitSettled(t, settled, int(checks.streams)-bound)
	if n := srv.Requests().InFlight(); n != bound {
		t.Fatalf("%d checks in flight, want the bound, %d", n, bound)
	}
	h := healthpb.NewHealthClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	check := func() (healthpb.HealthCheckResponse_ServingStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		return resp.GetStatus(), err
	}
	if st, err := check(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a health Check with the checks' bound full: %v %v, want SERVING", st, err)
	}

	flood := dialGRPCFlood(t, addr.String(), settled)
	flood.openHealthChecks(t, probes+past)
	<-flood.pinged
	waitSettled(t, settled, past)
	flood.mu.Lock()
	refused := 0
	for id, a := range flood.answers {
		if !a.ended {
			continue
		}
		refused++
		if a.status != "14" {
			t.Errorf("health stream %d: grpc-status %q, want 14 (UNAVAILABLE)", id, a.status)
		}
	}
	flood.mu.Unlock()
	if refused != past {
		t.Errorf("%d health Checks refused, want %d", refused, past)
	}
	if n := srv.Probes().InFlight(); n != probes {
		t.Errorf("%d health Checks in flight, want %d", n, probes)
	}
	if _, err := check(); status.Code(err) != codes.Unavailable {
		t.Errorf("a health Check past the probes' bound: %v, want UNAVAILABLE", err)
	}
	if n := srv.Probes().RefusedInFlight(); n != past+1 {
		t.Errorf("%d health Checks refused at their bound, want %d", n, past+1)
	}
	if n := srv.Requests().RefusedInFlight(); n != uint64(checks.streams)-bound {
		t.Errorf("%d checks refused at their bound, want %d", n, checks.streams-bound)
	}

	flood.conn.Close()
	deadline := time.Now().Add(30 * time.Second) // a guard only
	for srv.Probes().InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d health Checks in flight after their connection closed", srv.Probes().InFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := check(); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("a health Check after the flood: %v %v, want SERVING", st, err)
	}
	checks.conn.Close()
	for srv.Requests().InFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks in flight after their connection closed", srv.Requests().InFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthChecksSharedByClients: with MaxConnectionsPerClient, one
// client holds at most a quarter of the health Checks' bound (8 of 32), as
// of the checks': 40 health Checks without their message from one client,
// 8 held, 32 refused UNAVAILABLE, counted at the client's share.
func TestHealthChecksSharedByClients(t *testing.T) {
	ip := nonLoopbackIP(t) // loopback clients are not bounded
	const share, sent = 8, 40
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready, MaxConnectionsPerClient: 100, Timeout: 2 * time.Minute})
	addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	settled := make(chan struct{}, 100)
	f := dialGRPCFlood(t, addr.String(), settled)
	f.openHealthChecks(t, sent)
	<-f.pinged
	waitSettled(t, settled, sent-share)
	f.mu.Lock()
	for id, a := range f.answers {
		if a.ended && a.status != "14" {
			t.Errorf("health stream %d: grpc-status %q, want 14 (UNAVAILABLE)", id, a.status)
		}
	}
	f.mu.Unlock()
	if n := srv.Probes().InFlight(); n != share {
		t.Errorf("%d health Checks in flight, want the client's share, %d", n, share)
	}
	if n := srv.Probes().RefusedByClient(); n != sent-share {
		t.Errorf("%d refused at the client's share, want %d", n, sent-share)
	}
	if n := srv.Requests().InFlight() + int64(srv.Requests().RefusedInFlight()+srv.Requests().RefusedByClient()); n != 0 {
		t.Errorf("the checks' bound counted %d health Checks", n)
	}
}
