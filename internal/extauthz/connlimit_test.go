package extauthz_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// TestConnectionsBounded: with MaxConnections 1 the gRPC listener serves
// one busy connection at a time: a second client's check is not answered
// while the first client has a call open (a health Watch stream), nor is
// the first connection closed for it; once the call ends, the first
// connection is idle and makes room, and the check is answered.
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
	watching, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	w, err := healthpb.NewHealthClient(first).Watch(watching, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("the first connection's Watch: %v %v", resp, err)
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
		t.Fatalf("a second connection with one busy was served: %v %v", resp, err)
	}
	// The busy connection was not closed for it: its stream goes on.
	if n := srv.Connections().Evicted(); n != 0 {
		t.Fatalf("%d connections closed to make room with the only one busy, want 0", n)
	}
	endWatch()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if resp, err := second.Check(ctx, req, grpc.WaitForReady(true)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the second connection once the first was idle: %v %v", resp, err)
	}
	if n := srv.Connections().Open(); n != 1 {
		t.Errorf("%d connections open, want 1", n)
	}
	if n := srv.Connections().Evicted(); n != 1 {
		t.Errorf("%d idle connections closed to make room, want 1", n)
	}
}

// TestIdleConnectionsMakeRoom: a connection with no call open does not
// keep a new client out at the bound: it is closed, and the new client's
// check is answered.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnections: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	// An HTTP/2 connection that says its preface and settings and then
	// nothing.
	idle, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(30 * time.Second)) // a guard only
	if _, err := idle.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(idle, idle)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}

	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	client := authv3.NewAuthorizationClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	if resp, err := client.Check(ctx, req, grpc.WaitForReady(true)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("a new client with the bound held by an idle connection: %v %v", resp, err)
	}
	// The idle one was closed: no GOAWAY (that is the idle timeout's),
	// the connection ends.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the idle connection: %v, want it closed", err)
			}
			break
		}
		if f, ok := f.(*http2.SettingsFrame); ok && !f.IsAck() {
			_ = fr.WriteSettingsAck()
		}
	}
	if n := srv.Connections().Evicted(); n != 1 {
		t.Errorf("%d idle connections closed to make room, want 1", n)
	}
}

// TestAnswerNotLostToEviction: a gRPC connection goes idle as its last
// call ends — its answer handed to gRPC's writer, maybe not yet written.
// Closed to make room then, the connection took the answer with it: the
// check was decided (and logged), and Envoy got no answer. It is closed
// once its answer is out.
func TestAnswerNotLostToEviction(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnections: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	ln := srv.Connections()
	newcomers := make(chan net.Conn, 1)
	extauthz.SetTestHookCallsEnded(t, func() {
		if ln.Evicted() != 0 || len(newcomers) != 0 {
			return
		}
		// The check is answered: a new client comes, and the listener
		// closes this connection, idle, for it — or waits to.
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Error(err)
		}
		newcomers <- nc
		for ln.Evicted() == 0 && !ln.Waiting() {
			time.Sleep(time.Millisecond)
		}
	})
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	client := authv3.NewAuthorizationClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	resp, err := client.Check(ctx, req, grpc.WaitForReady(true))
	if nc := <-newcomers; nc != nil {
		defer nc.Close()
	}
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("a check decided as a new client came: %v %v", resp, err)
	}
}

// TestNoCheckDecidedOnAConnectionClosedToMakeRoom: a connection without a
// call is idle until gRPC begins the call whose headers (and message) it
// has read; closed to make room in between, the call was still decided —
// and logged — though Envoy, its connection closed, never got the answer.
// It is not decided.
func TestNoCheckDecidedOnAConnectionClosedToMakeRoom(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	var decided atomic.Int32
	decide := func(ctx context.Context, c permatrix.Check) (*permatrix.Decision, error) {
		decided.Add(1)
		return s.HTTP.Decide(ctx, c)
	}
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnections: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	ln := srv.Connections()
	newcomers := make(chan net.Conn, 1)
	extauthz.SetTestHookCallBegins(t, func() {
		if ln.Evicted() != 0 || len(newcomers) != 0 {
			return
		}
		// The call's headers are read: a new client comes, and the
		// listener closes this connection, idle still, to make room.
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Error(err)
		}
		newcomers <- nc
		for ln.Evicted() == 0 {
			time.Sleep(time.Millisecond)
		}
	})
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	client := authv3.NewAuthorizationClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	resp, err := client.Check(ctx, req, grpc.WaitForReady(true))
	if nc := <-newcomers; nc != nil {
		nc.Close()
	}
	srv.Shutdown(ctx) // every call ended
	if err != nil && decided.Load() != 0 {
		t.Fatalf("a check on a connection closed to make room was decided (%d), and its client got no answer: %v", decided.Load(), err)
	}
	if err == nil && codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the check: %v", resp)
	}
	if ln.Evicted() != 1 {
		t.Fatalf("%d connections closed to make room, want 1", ln.Evicted())
	}
}

// nonLoopbackIP is an IPv4 address of this machine that is not loopback,
// for a client that the per-client bound counts (loopback clients are
// not bounded); the test is skipped on a machine without one.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no address other than loopback on this machine")
	return ""
}

// TestConnectionsBoundedPerClient: with MaxConnectionsPerClient 1, a
// client whose connection has a call open (a health Watch) has its next
// connection closed at once, before a byte of gRPC's, and counted; once
// its call ends, that connection makes room for the client's next, whose
// check is answered.
func TestConnectionsBoundedPerClient(t *testing.T) {
	ip := nonLoopbackIP(t)
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnectionsPerClient: 1})
	addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	first := mustConn(t, addr.String(), insecure.NewCredentials())
	watching, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	w, err := healthpb.NewHealthClient(first).Watch(watching, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("the first connection's Watch: %v %v", resp, err)
	}
	// Reset at once, it may fail even to connect.
	if second, err := net.Dial("tcp", addr.String()); err == nil {
		defer second.Close()
		_ = second.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard only
		n, err := second.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the client's second connection, its first busy: read %d, %v; want it closed", n, err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the client's second connection: %v", err)
	}
	if n := srv.Connections().Refused(); n != 1 {
		t.Errorf("%d connections refused, want 1", n)
	}
	if n := srv.Connections().Evicted(); n != 0 {
		t.Errorf("%d connections closed to make room with the client's only one busy, want 0", n)
	}

	// Once its Watch has ended and it is told idle, the first connection
	// may still hold the end of its answer (listen.Limited.Idle): it makes
	// room once it writes, or after a second writing nothing.
	ended := make(chan struct{}, 1)
	extauthz.SetTestHookCallsEnded(t, func() {
		select {
		case ended <- struct{}{}:
		default:
		}
	})
	endWatch()
	<-ended
	time.Sleep(1100 * time.Millisecond) // flushGrace, past
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	third := authv3.NewAuthorizationClient(mustConn(t, addr.String(), insecure.NewCredentials()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if resp, err := third.Check(ctx, req, grpc.WaitForReady(true)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the client's connection once its busy one went idle: %v %v", resp, err)
	}
	if n := srv.Connections().Evicted(); n != 1 {
		t.Errorf("%d idle connections closed to make room, want 1", n)
	}
	if n := srv.Connections().Refused(); n != 1 {
		t.Errorf("%d connections refused, want 1", n)
	}
}

// TestIdleConnectionsMakeRoomOverAUnixSocket: a gRPC connection over a
// unix socket, whose clients have no address to tell one from another, is
// judged idle as a TCP one is: with no call open it is closed to make room
// for a new client at the bound, whose check is answered.
func TestIdleConnectionsMakeRoomOverAUnixSocket(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxConnections: 1})
	dir, err := os.MkdirTemp("", "pmx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "grpc.sock")
	if _, err := srv.Listen("unix://" + sock); err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	check := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
		defer cancel()
		client := authv3.NewAuthorizationClient(mustConn(t, "unix://"+sock, insecure.NewCredentials()))
		if resp, err := client.Check(ctx, req, grpc.WaitForReady(true)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("%s: %v %v", what, resp, err)
		}
	}
	// A client that checks once and keeps its connection, idle.
	check("the first client")
	check("a second client with the bound held by the first's idle connection")
	if n := srv.Connections().Evicted(); n != 1 {
		t.Errorf("%d idle connections closed to make room, want 1", n)
	}
	if n := srv.Connections().Open(); n != 1 {
		t.Errorf("%d connections open, want 1", n)
	}
}
