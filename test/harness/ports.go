package harness

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// A port found free (listen on :0, close, use the number later) can be
// taken meanwhile by another test process: go test runs packages side by
// side. A socket bound to a port and not listening holds it instead: a
// connection to it is refused (the kernel finds no listener and resets
// it), and the kernel gives the port to no other socket — neither for :0
// nor, the socket not sharing it (no SO_REUSEADDR), when it is asked for.

// ReservedPort is a loopback TCP port held by a bound socket that does
// not listen until Listen.
type ReservedPort struct {
	fd   int
	Addr string // 127.0.0.1:port
}

// ReservePort holds a free loopback port until the test ends (or Listen
// or Close). Dialling Addr meanwhile is refused.
func ReservePort(t testing.TB) *ReservedPort {
	t.Helper()
	fd, port, err := bindLoopback(0, false)
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	r := &ReservedPort{fd: fd, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(r.Close)
	return r
}

// Listen starts listening on the reserved socket itself — the port cannot
// have been taken — and hands it over: the listener is the caller's to
// close, and the reservation is gone.
func (r *ReservedPort) Listen() (net.Listener, error) {
	if r.fd < 0 {
		return nil, fmt.Errorf("port %s: no longer reserved", r.Addr)
	}
	if err := syscall.Listen(r.fd, syscall.SOMAXCONN); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", r.Addr, err)
	}
	f := os.NewFile(uintptr(r.fd), r.Addr)
	r.fd = -1
	defer f.Close() // FileListener holds a duplicate
	return net.FileListener(f)
}

// Close gives the port up.
func (r *ReservedPort) Close() {
	if r.fd >= 0 {
		_ = syscall.Close(r.fd)
		r.fd = -1
	}
}

// bindLoopback binds a TCP socket to 127.0.0.1:port (0: one the kernel
// picks) without listening, and returns it and its port. shared sets
// SO_REUSEADDR: a process (a Go one sets it) may then bind the port
// beside it and listen — which a port found by another process on :0
// meanwhile never is, the kernel not handing out a bound port.
func bindLoopback(port int, shared bool) (int, int, error) {
	syscall.ForkLock.RLock() // no child inherits it between socket and CloseOnExec
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, 0, err
	}
	if shared {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			_ = syscall.Close(fd)
			return -1, 0, err
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		return -1, 0, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return -1, 0, err
	}
	return fd, sa.(*syscall.SockaddrInet4).Port, nil
}

// HoldPort is a free loopback port held until the test ends by a socket
// bound to it with SO_REUSEADDR and not listening, for a server that
// binds the port itself to listen on: Go's net.Listen (which sets
// SO_REUSEADDR) binds beside it and listens, while the kernel gives the
// port to no other socket asking for any port (:0) — how test processes
// find theirs. A process that found the same port free before it was
// held can still take it: a server given a held port must still be
// started again on another if it finds its port in use.
func HoldPort(t testing.TB) int {
	t.Helper()
	fd, port, err := bindLoopback(0, true)
	if err != nil {
		t.Fatalf("hold a port: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	return port
}
