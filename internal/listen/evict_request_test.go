package listen_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
)

// TestNoRequestServedOnAConnectionClosedToMakeRoom: a connection the
// server called idle may hold its next request already (read with the one
// before: pipelined, or its head read as the connection is closed); closed
// to make room before that request began, the request is not served — its
// client, which sees the connection closed and no answer, must find
// nothing done.
func TestNoRequestServedOnAConnectionClosedToMakeRoom(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 1, 0)
	var writes atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "read") })
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, _ *http.Request) {
		writes.Add(1)
		io.WriteString(w, "written")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln.Track(srv)
	track := srv.ConnState
	var (
		once      sync.Once
		first     net.Conn // the server's side of the client's connection
		closed    = make(chan struct{})
		newcomers = make(chan net.Conn, 1)
	)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		track(c, s)
		switch {
		case s == http.StateIdle:
			// The connection's first request is answered and its next
			// is in the server's buffer: a new client comes now, and the
			// listener closes this one, idle, to make room for it.
			once.Do(func() {
				first = c
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				newcomers <- nc
				for ln.Evicted() == 0 {
					time.Sleep(time.Millisecond)
				}
			})
		case s == http.StateClosed && c == first:
			close(closed)
		}
	}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Both requests in one write: the server reads them together.
	if _, err := io.WriteString(c, "GET /read HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the first request: %d", res.StatusCode)
	}
	res, err = http.ReadResponse(r, nil)
	answered := err == nil
	if answered {
		res.Body.Close()
	}
	if nc := <-newcomers; nc != nil {
		defer nc.Close()
	}
	<-closed // the server is done with the connection, its handlers too
	if !answered && writes.Load() != 0 {
		t.Fatalf("the connection closed to make room had its request served (%d writes), and its client got no answer (%v)", writes.Load(), err)
	}
	if ln.Evicted() != 1 {
		t.Fatalf("%d connections closed to make room, want 1", ln.Evicted())
	}
}
