package http_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	permhttp "github.com/permatrix/permatrix/internal/http"
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

// gauge is the value of the gauge name{listener}.
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
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Errorf("no %s{listener=%q}", name, listener)
	return 0
}

// TestConnectionsBounded: with MaxConnections 2, a listener serves two
// connections at once, kept-alive ones included; a third is not served
// until one of them closes, and then is. The open connections are in
// /metrics, and the diagnostic listener has its own bound: probes still
// reach it while the API's is full.
func TestConnectionsBounded(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnections: 2})
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, srv)
	addr := base[len("http://"):]
	reg := srv.Metrics().Registry
	held := []*keptConn{dialKept(t, addr), dialKept(t, addr)}
	for i, c := range held {
		c.send(t, "/health/live")
		if code, err := c.answer(30 * time.Second); code != http.StatusOK {
			t.Fatalf("connection %d: %d %v", i+1, code, err)
		}
	}
	if n := gauge(t, reg, "permatrix_open_connections", "api"); n != 2 {
		t.Errorf("permatrix_open_connections{listener=api} = %v with two connections open, want 2", n)
	}
	if n := gauge(t, reg, "permatrix_max_connections", "api"); n != 2 {
		t.Errorf("permatrix_max_connections{listener=api} = %v, want 2", n)
	}

	third := dialKept(t, addr) // the kernel takes it; the server does not
	third.send(t, "/health/live")
	// An answer here can only mean the bound is not kept: a slow machine
	// makes this pass, never fail.
	var ne net.Error
	if code, err := third.answer(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection with two open was served: %d %v", code, err)
	}
	probe := dialKept(t, diag.String())
	probe.send(t, "/health/live")
	if code, err := probe.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the diagnostic listener with the API's full: %d %v", code, err)
	}

	held[0].Close()
	third.r = bufio.NewReader(third) // the timed-out read left nothing in it
	if code, err := third.answer(30 * time.Second); code != http.StatusOK {
		t.Fatalf("the third connection once one closed: %d %v", code, err)
	}
	if n := gauge(t, reg, "permatrix_open_connections", "api"); n != 2 {
		t.Errorf("permatrix_open_connections{listener=api} = %v after one closed and one came, want 2", n)
	}
}
