package http_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestShutdownPastItsDeadlineCutsRequests: a request still in flight when
// Shutdown's context ends is cut (its connection closed), not left running
// past the shutdown, and Shutdown says so with the context's error.
func TestShutdownPastItsDeadlineCutsRequests(t *testing.T) {
	srv := newDocTestServer(t)
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a guard only
	// A check whose body never comes; 100 Continue says its handler reads.
	if _, err := conn.Write([]byte("POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
		"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue: %q %v", line, err)
	}
	_, _ = r.ReadString('\n') // the blank line after it
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time for anything in flight
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a request in flight past its context: %v", err)
	}
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the request in flight was not cut: its connection stayed open (read %q)", rest)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
