package harness

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

// A reserved port refuses connections, cannot be bound by anyone else,
// and is listened on by its own socket.
func TestReservePort(t *testing.T) {
	r := ReservePort(t)
	if c, err := net.Dial("tcp", r.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial a reserved port: %v, want refused", err)
	}
	if ln, err := net.Listen("tcp", r.Addr); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("another listener on a reserved port: %v, want address in use", err)
	}
	ln, err := r.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != r.Addr {
		t.Fatalf("listening on %s, reserved %s", ln.Addr(), r.Addr)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b := make([]byte, 1); func() error { _, err := c.Read(b); return err }() != nil || b[0] != 'x' {
		t.Fatal("the reserved socket's listener did not serve the connection")
	}
}

// A held port is refused until a server binds it beside the holding
// socket and listens, as etcd and serve do (Go sets SO_REUSEADDR).
func TestHoldPort(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", HoldPort(t))
	if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial a held port: %v, want refused", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("a server on a held port: %v", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial the server on a held port: %v", err)
	}
	c.Close()
}
