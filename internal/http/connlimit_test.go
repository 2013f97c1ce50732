package http_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// keptConn is a client connection that keeps alive between requests.
type keptConn struct {
	net.Conn
	r *bufio.Reader
}

func dialKept(t *testing.T, addr string) *keptConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keptConn{Conn: c, r: bufio.NewReader(c)}
}

// send writes a GET of path.
func (c *keptConn) send(t *testing.T, path string) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// answer reads a response within d: its status, or the read's error.
func (c *keptConn) answer(d time.Duration) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// gauge is the value of the gauge (or counter) name{listener}.
func gauge(t *testing.T, g prometheus.Gatherer, name, listener string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Errorf("no %s{listener=%q}", name, listener)
	return 0
}

// startBody writes the head of a POST /v1/check whose body is checkBody
// and the first byte of it: the server is then busy reading the rest.
func (c *keptConn) startBody(t *testing.T) {
	t.Helper()
	head := fmt.Sprintf("POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(checkBody))
	if _, err := io.WriteString(c, head+checkBody[:1]); err != nil {
		t.Fatal(err)
	}
}

// endBody writes the rest of the body startBody began.
func (c *keptConn) endBody(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c, checkBody[1:]); err != nil {
		t.Fatal(err)
	}
}

const checkBody = `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`

// TestConnectionsBounded: with MaxConnections 2, a listener serves two
// busy connections at once (a request body still coming); a third is not
// served, nor is either busy one closed for it, until one of them goes
// idle, and then it is. The open connections are in /metrics, and the
// diagnostic listener has its own bound: probes still reach it while the
// API's is full.
func TestConnectionsBounded(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnections: 2})
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, srv)
	addr := base[len("http://"):]
	reg := srv.Metrics().Registry
	busy := []*keptConn{dialKept(t, addr), dialKept(t, addr)}
	for _, c := range busy {
		c.startBody(t)
	}
	third := dialKept(t, addr)
	third.send(t, "/health/live")
	// An answer here can only mean the bound is not kept: a slow machine
	// makes this pass, never fail.
	var ne net.Error
	if code, err := third.answer(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection with two busy was served: %d %v", code, err)
	}
	if n := gauge(t, reg, "permatrix_open_connections", "api"); n != 2 {
		t.Errorf("permatrix_open_connections{listener=api} = %v with two connections open, want 2", n)
	}
	if n := gauge(t, reg, "permatrix_max_connections", "api"); n != 2 {
		t.Errorf("permatrix_max_connections{listener=api} = %v, want 2", n)
	}
	probe := dialKept(t, diag.String())
	probe.send(t, "/health/live")
	if code, err := probe.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the diagnostic listener with the API's full: %d %v", code, err)
	}

	// The first busy one ends its request: idle, it makes room.
	busy[0].endBody(t)
	if code, err := busy[0].answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the first busy connection's request: %d %v", code, err)
	}
	third.r = bufio.NewReader(third) // the timed-out read left nothing in it
	if code, err := third.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the third connection once one went idle: %d %v", code, err)
	}
	// The other was never closed: its request is answered.
	busy[1].endBody(t)
	if code, err := busy[1].answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the second busy connection's request: %d %v", code, err)
	}
	if n := gauge(t, reg, "permatrix_open_connections", "api"); n != 2 {
		t.Errorf("permatrix_open_connections{listener=api} = %v after one made room for another, want 2", n)
	}
	if n := gauge(t, reg, "permatrix_idle_connections_closed_total", "api"); n != 1 {
		t.Errorf("permatrix_idle_connections_closed_total{listener=api} = %v, want 1", n)
	}
}

// TestIdleConnectionsMakeRoom: a client that fills the bound with
// kept-alive connections left idle does not keep others out: a new
// client's request is answered, and exactly one idle connection (one
// slot's worth) was closed for it; the others still serve.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	const bound = 4
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnections: bound})
	base := serveOn(t, srv)
	addr := base[len("http://"):]
	reg := srv.Metrics().Registry
	var idle []*keptConn
	for i := range bound {
		c := dialKept(t, addr)
		c.send(t, "/health/live")
		if code, err := c.answer(30 * time.Second); code != http.StatusOK {
			t.Fatalf("connection %d: %d %v", i+1, code, err)
		}
		idle = append(idle, c)
	}
	newcomer := dialKept(t, addr)
	newcomer.send(t, "/health/live")
	if code, err := newcomer.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("a new client with the bound full of idle connections: %d %v", code, err)
	}
	if n := gauge(t, reg, "permatrix_open_connections", "api"); n != bound {
		t.Errorf("permatrix_open_connections{listener=api} = %v, want %d", n, bound)
	}
	// The one closed fails its next request; the others answer it.
	closed := 0
	for _, c := range idle {
		c.send(t, "/health/live")
		if code, err := c.answer(30 * time.Second); err != nil {
			closed++
		} else if code != http.StatusOK {
			t.Fatalf("an idle connection's next request: %d", code)
		}
	}
	if closed != 1 {
		t.Errorf("%d idle connections closed for one new one, want 1", closed)
	}
	if n := gauge(t, reg, "permatrix_idle_connections_closed_total", "api"); n != 1 {
		t.Errorf("permatrix_idle_connections_closed_total{listener=api} = %v, want 1", n)
	}
}

// TestSlowHeadsHoldNoSlotForLong: a connection whose request head never
// ends — a byte now and then, never the blank line — is not idle, so not
// closed to make room; the header timeout (5 s, from its first byte on,
// however slowly the rest comes) closes it, and the client waiting for its
// slot is served then. Connections that never finish their heads cannot
// hold the bound for longer.
func TestSlowHeadsHoldNoSlotForLong(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnections: 1})
	base := serveOn(t, srv)
	addr := base[len("http://"):]
	slow := dialKept(t, addr)
	_ = slow.SetDeadline(time.Now().Add(60 * time.Second)) // a guard only
	if _, err := io.WriteString(slow, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	dribbled := make(chan int)
	go func() {
		n := 0
		for {
			if _, err := io.WriteString(slow, "X-Slow: a\r\n"); err != nil {
				dribbled <- n
				return
			}
			n++
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waiting := dialKept(t, addr)
	waiting.send(t, "/health/live")
	if code, err := waiting.answer(60 * time.Second); code != http.StatusOK {
		t.Fatalf("a client waiting for the slot a slow head holds: %d %v", code, err)
	}
	// The slow one was closed (by its header timeout: not made room for,
	// which closes idle connections only).
	if _, err := io.ReadAll(slow.r); err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the slow head's connection is still open: %v", err)
		}
	}
	t.Logf("the slow head sent %d header lines before it was closed", <-dribbled)
	if n := gauge(t, srv.Metrics().Registry, "permatrix_idle_connections_closed_total", "api"); n != 0 {
		t.Errorf("permatrix_idle_connections_closed_total{listener=api} = %v: a connection in the middle of its head was taken for idle", n)
	}
}

// sendTo writes a GET of path with Host host.
func (c *keptConn) sendTo(t *testing.T, host, path string) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionsBoundedPerClient: with MaxConnectionsPerClient 2, a
// client with two busy connections (request bodies still coming) has its
// third closed at once, unanswered, and counted in /metrics; once one of
// its own goes idle, that one makes room for its next, and its busy one is
// never closed. Loopback clients (the diagnostic listener here, bounded
// alike) are not bounded.
func TestConnectionsBoundedPerClient(t *testing.T) {
	ip := nonLoopbackIP(t) // loopback clients are not bounded
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnectionsPerClient: 2})
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	// The server's connections gone idle, by their clients' addresses:
	// the server answers before it tells the listener the connection is
	// idle, so the client may see its answer first.
	idled := make(chan string, 16)
	permhttp.OnConnState(srv, func(c net.Conn, st http.ConnState) {
		if st == http.StateIdle {
			idled <- c.RemoteAddr().String()
		}
	})
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	reg := srv.Metrics().Registry
	host := ip
	busy := []*keptConn{dialKept(t, addr.String()), dialKept(t, addr.String())}
	for _, c := range busy {
		c.startBody(t)
	}
	// Reset at once, it may fail even to connect, or to send.
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		third := &keptConn{Conn: c, r: bufio.NewReader(c)}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /health/live HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		var ne net.Error
		if code, err := third.answer(30 * time.Second); err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a client's third connection, two busy: %d %v; want it closed", code, err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a client's third connection: %v", err)
	}
	if n := gauge(t, reg, "permatrix_connections_refused_total", "api"); n != 1 {
		t.Errorf("permatrix_connections_refused_total{listener=api} = %v, want 1", n)
	}
	if n := gauge(t, reg, "permatrix_max_connections_per_client", "api"); n != 2 {
		t.Errorf("permatrix_max_connections_per_client{listener=api} = %v, want 2", n)
	}

	// Loopback clients are not bounded.
	for i := range 3 {
		c := dialKept(t, diag.String())
		c.send(t, "/health/live")
		if code, err := c.answer(30 * time.Second); code != http.StatusOK {
			t.Fatalf("loopback connection %d of 3 to the diagnostic listener: %d %v", i+1, code, err)
		}
	}

	// Its first busy one ends its request: idle, it makes room for the
	// client's next.
	busy[0].endBody(t)
	if code, err := busy[0].answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the first busy connection's request: %d %v", code, err)
	}
	for idle := false; !idle; {
		select {
		case a := <-idled:
			idle = a == busy[0].LocalAddr().String()
		case <-time.After(30 * time.Second): // a guard only
			t.Fatal("the first busy connection, answered, was never idle")
		}
	}
	next := dialKept(t, addr.String())
	next.sendTo(t, host, "/health/live")
	if code, err := next.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the client's connection once one of its own went idle: %d %v", code, err)
	}
	busy[1].endBody(t)
	if code, err := busy[1].answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the second busy connection's request: %d %v", code, err)
	}
	if n := gauge(t, reg, "permatrix_idle_connections_closed_total", "api"); n != 1 {
		t.Errorf("permatrix_idle_connections_closed_total{listener=api} = %v, want 1", n)
	}
	if n := gauge(t, reg, "permatrix_connections_refused_total", "api"); n != 1 {
		t.Errorf("permatrix_connections_refused_total{listener=api} = %v, want 1", n)
	}
}
