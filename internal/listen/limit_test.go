package listen_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
)

// TestLimitCountsConnections: a Limited listener counts the connections it
// accepted that are open, each once however often it is closed; no bound
// given is the default.
func TestLimitCountsConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 0, 0)
	defer ln.Close()
	if ln.Max() != listen.DefaultMaxConnections {
		t.Fatalf("Max %d, want the default %d", ln.Max(), listen.DefaultMaxConnections)
	}
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	var served []net.Conn
	for range clients {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, c)
	}
	if n := ln.Open(); n != 2 {
		t.Fatalf("%d open, want 2", n)
	}
	served[0].Close()
	served[0].Close()
	if n := ln.Open(); n != 1 {
		t.Fatalf("%d open after one closed twice, want 1", n)
	}
	served[1].Close()
	if n := ln.Open(); n != 0 {
		t.Fatalf("%d open after both closed, want 0", n)
	}
}

// TestLimitClosesIdleToMakeRoom: at the bound, a new connection takes the
// slot of the one idle the longest, which is closed; connections the
// server has not called idle (new, busy) are never closed for it, and a
// new connection waits until one goes idle.
func TestLimitClosesIdleToMakeRoom(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 2, 0)
	defer ln.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	clients := []net.Conn{dial(), dial()}
	var served []net.Conn
	for range clients {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		served = append(served, c)
	}
	ln.ConnState(served[0], http.StateIdle)
	ln.ConnState(served[1], http.StateIdle)

	third := dial()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	got := <-accepted // a guard only: it hangs if no idle one is closed
	if got == nil {
		t.FailNow()
	}
	defer got.Close()
	// The one idle the longest is closed: its client reads EOF.
	if n, err := clients[0].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the connection idle the longest: read %d, %v; want EOF", n, err)
	}
	// The other is not: the server can still write to it.
	if _, err := served[1].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(clients[1], make([]byte, 1)); err != nil {
		t.Fatalf("the connection idle since later was closed: %v", err)
	}
	if n := ln.Open(); n != 2 {
		t.Errorf("%d open, want 2", n)
	}
	if n := ln.Evicted(); n != 1 {
		t.Errorf("%d evicted, want 1", n)
	}
	// served[0] closed by its server (its read failed): counted once.
	served[0].Close()
	if n := ln.Open(); n != 2 {
		t.Errorf("%d open after the evicted one closed again, want 2", n)
	}

	// Busy: served[1] with a request again, got new. A fourth waits.
	ln.ConnState(served[1], http.StateActive)
	fourth := dial()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	// An Accept here can only mean busy connections were closed for it: a
	// slow machine makes this pass, never fail.
	select {
	case c := <-accepted:
		t.Fatalf("a connection past the bound took a busy one's slot (%v)", c)
	case <-time.After(300 * time.Millisecond):
	}
	ln.ConnState(got, http.StateIdle)
	if c := <-accepted; c == nil {
		t.FailNow()
	} else {
		defer c.Close()
	}
	if n, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the connection gone idle: read %d, %v; want EOF", n, err)
	}
	if _, err := served[1].Write([]byte("y")); err != nil {
		t.Fatalf("the busy connection: %v", err)
	}
	if _, err := io.ReadFull(clients[1], make([]byte, 1)); err != nil {
		t.Fatalf("the busy connection was closed: %v", err)
	}
	_ = fourth
	if n := ln.Evicted(); n != 2 {
		t.Errorf("%d evicted, want 2", n)
	}
}

// TestLimitCloseEndsWaitingAccept: an Accept waiting for a slot returns
// when the listener closes.
func TestLimitCloseEndsWaitingAccept(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 1, 0)
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	ln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// TestLimitWaitsForAnIdleConnectionsFlush: a connection idle with the end
// of its last answer maybe still in its server's buffer (an HTTP/2
// connection whose last stream just closed) is not closed to make room
// until it writes — its answer out first — or, writing nothing, until the
// grace ends.
func TestLimitWaitsForAnIdleConnectionsFlush(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 1, 0)
	defer ln.Close()
	listen.SetFlushGrace(ln, time.Hour)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accepted := make(chan net.Conn, 1)
	accept := func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}
	first := dial()
	go accept()
	served := <-accepted
	if served == nil {
		t.FailNow()
	}
	defer served.Close()
	ln.Idle(served, true)
	second := dial()
	go accept()
	for !ln.Waiting() {
		time.Sleep(time.Millisecond)
	}
	if n := ln.Evicted(); n != 0 {
		t.Fatalf("%d evicted before the idle connection wrote, want 0", n)
	}
	// It writes its answer: then it makes room.
	if _, err := served.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	next := <-accepted
	if next == nil {
		t.FailNow()
	}
	defer next.Close()
	if got, err := io.ReadAll(first); string(got) != "answer" || err != nil {
		t.Fatalf("the connection closed to make room read %q, %v; want its answer, then EOF", got, err)
	}

	// Writing nothing more, it makes room once the grace ends.
	listen.SetFlushGrace(ln, time.Millisecond)
	ln.Idle(next, true)
	dial()
	go accept()
	if c := <-accepted; c == nil {
		t.FailNow()
	} else {
		defer c.Close()
	}
	if n, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the connection idle past the grace: read %d, %v; want EOF", n, err)
	}
	if n := ln.Evicted(); n != 2 {
		t.Errorf("%d evicted, want 2", n)
	}
}
