package extauthz_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
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

// TestHealthWatchesBounded: health Watch streams have no timeout (they
// last as long as the client wants), so their number is bounded: past
// MaxWatchStreams open at once a Watch is refused with RESOURCE_EXHAUSTED,
// and once one ends another is taken. Health Check calls are not counted.
func TestHealthWatchesBounded(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready, MaxWatchStreams: 2})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	h := healthpb.NewHealthClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	watch := func(ctx context.Context) error {
		t.Helper()
		w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		resp, err := w.Recv()
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("watch: %v", resp)
		}
		return err
	}
	cancels := make([]context.CancelFunc, 2)
	for i := range cancels {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cancels[i] = cancel
		if err := watch(ctx); err != nil {
			t.Fatalf("watch %d: %v", i+1, err)
		}
	}
	if err := watch(context.Background()); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a third watch with two open: %v, want RESOURCE_EXHAUSTED", err)
	}
	if resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("a health check with the watches full: %v %v", resp, err)
	}
	// One ends: its place is taken again, once the server has seen it go.
	cancels[0]()
	guard := time.Now().Add(30 * time.Second) // a guard only
	for {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		err := watch(ctx)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(guard) {
			t.Fatalf("a watch after one ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthWatchWithoutMessageCounted: a Watch stream counts against
// MaxWatchStreams from its headers on, as it is exempt from the check
// timeout from its headers on. gRPC calls Watch once the request message
// has come: a Watch whose message never came was neither timed out nor
// counted, so a client could hold any number of them (each with its
// headers, on connections never idle) past the bound.
func TestHealthWatchWithoutMessageCounted(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready, MaxWatchStreams: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	conn := mustConn(t, addr.String(), insecure.NewCredentials())
	// Headers only: the stream is opened, its message is never sent.
	silent, cancelSilent := context.WithCancel(context.Background())
	t.Cleanup(cancelSilent)
	if _, err := conn.NewStream(silent, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, healthpb.Health_Watch_FullMethodName); err != nil {
		t.Fatal(err)
	}
	// On the same connection, so the server has seen the first stream's
	// headers before the second's.
	h := healthpb.NewHealthClient(conn)
	watch := func() error {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		w, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = w.Recv()
		return err
	}
	if err := watch(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a watch with one open without its message: %v, want RESOURCE_EXHAUSTED", err)
	}
	// The silent one goes: its place is taken again, once the server has
	// seen it go.
	cancelSilent()
	guard := time.Now().Add(30 * time.Second) // a guard only
	for {
		err := watch()
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(guard) {
			t.Fatalf("a watch after the silent one ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthWatchWithoutMessageEndsOnShutdown: a Watch stream whose
// message never came has no timeout and never reached Watch, which ends
// its stream on shutdown; the graceful stop waited for it until its
// context ended, so one such stream made every shutdown use its whole
// timeout and report checks cut (serve exits non-zero). It is ended with
// the shutdown, as a Watch is.
func TestHealthWatchWithoutMessageEndsOnShutdown(t *testing.T) {
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, ErrorJSON: permhttp.ErrorJSON})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	conn := mustConn(t, addr.String(), insecure.NewCredentials())
	silent, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, healthpb.Health_Watch_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	// A unary call after it on the connection: once it is answered, the
	// server has the silent stream open.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a Watch open without its message: %v, want nil (nothing cut)", err)
	}
	if err := silent.RecvMsg(new(healthpb.HealthCheckResponse)); err == nil {
		t.Fatal("the silent Watch got an answer")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
