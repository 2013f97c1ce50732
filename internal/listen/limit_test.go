package listen_test

import (
	"net"
	"testing"

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
	ln := listen.Limit(raw, 0)
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
