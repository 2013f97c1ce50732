package listen_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
)

// fromListener accepts real connections and says each came from the next
// of the addresses queued (clients the test machine has no address of).
type fromListener struct {
	net.Listener
	mu    sync.Mutex
	queue []net.Addr
}

func (l *fromListener) from(a net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, a)
}

func (l *fromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.queue[0]
	l.queue = l.queue[1:]
	return fromConn{c, a}, nil
}

type fromConn struct {
	net.Conn
	remote net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.remote }

func tcpAddr(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }

// TestLimitBoundsEachClient: with a per-client bound of 2, a client's
// third connection is closed at once and the next client's is accepted;
// a client is an IPv4 address (an IPv4-mapped IPv6 one too) or an IPv6
// /64; loopback clients are not bounded; at its bound a client's own idle
// connection makes room for its new one, never another client's.
func TestLimitBoundsEachClient(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fromListener{Listener: raw}
	ln := listen.Limit(fake, 100, 2)
	defer ln.Close()
	if ln.MaxPerClient() != 2 {
		t.Fatalf("MaxPerClient %d, want 2", ln.MaxPerClient())
	}
	dial := func(from string) net.Conn {
		t.Helper()
		fake.from(tcpAddr(from))
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func(want string) net.Conn {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if got := c.RemoteAddr().(*net.TCPAddr).IP; !got.Equal(net.ParseIP(want)) {
			t.Fatalf("accepted a connection from %s, want %s", got, want)
		}
		return c
	}
	// refused says the client's connection was closed without a byte.
	refused := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard only
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: read %d, %v; want it closed", what, n, err)
		}
	}

	a := []net.Conn{dial("192.0.2.1"), dial("192.0.2.1")}
	served := []net.Conn{accept("192.0.2.1"), accept("192.0.2.1")}
	third := dial("192.0.2.1")
	dial("192.0.2.2")
	b := accept("192.0.2.2")
	refused(third, "a client's third connection")

	// One /64 is one client; another /64 another.
	dial("2001:db8::1")
	dial("2001:db8::ffff:1")
	v6third := dial("2001:db8::2")
	dial("2001:db8:0:1::1")
	accept("2001:db8::1")
	accept("2001:db8::ffff:1")
	accept("2001:db8:0:1::1")
	refused(v6third, "a third connection from one IPv6 /64")

	// An IPv4-mapped address is its IPv4 client: 192.0.2.2's second.
	dial("::ffff:192.0.2.2")
	accept("192.0.2.2")
	mappedThird := dial("::ffff:192.0.2.2")
	// Loopback: not bounded.
	for range 3 {
		dial("127.0.0.1")
		accept("127.0.0.1")
		dial("::1")
		accept("::1")
	}
	refused(mappedThird, "an IPv4-mapped client's third connection")
	if n := ln.Refused(); n != 3 {
		t.Errorf("%d refused, want 3", n)
	}

	// At its bound a client's idle connection makes room for its new one.
	ln.ConnState(served[0], http.StateIdle)
	dial("192.0.2.1")
	accept("192.0.2.1")
	if n, err := a[0].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the client's idle connection: read %d, %v; want EOF", n, err)
	}
	if _, err := served[1].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a[1], make([]byte, 1)); err != nil {
		t.Fatalf("the client's busy connection was closed: %v", err)
	}
	if n := ln.Evicted(); n != 1 {
		t.Errorf("%d evicted, want 1", n)
	}
	// Another client's idle connection does not make room for it, and a
	// connection closed gives its client's slot back.
	ln.ConnState(b, http.StateIdle)
	fourth := dial("192.0.2.1")
	dial("192.0.2.3")
	accept("192.0.2.3")
	refused(fourth, "a client's connection at its bound, another's idle")
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatalf("another client's idle connection was closed: %v", err)
	}
	served[1].Close()
	dial("192.0.2.1")
	accept("192.0.2.1")
	if n := ln.Evicted(); n != 1 {
		t.Errorf("%d evicted, want 1", n)
	}
	if n := ln.Refused(); n != 4 {
		t.Errorf("%d refused, want 4", n)
	}
	if n := ln.Open(); n != 14 {
		t.Errorf("%d open, want 14", n)
	}
}
