//go:build unix

package listen_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
)

// A live server too busy to take another connection (its accept backlog
// full: connecting answers EAGAIN, not "refused") is not a stale socket:
// Listen refuses the path and leaves the server's socket where it is.
func TestBusySocketNotStale(t *testing.T) {
	path := socketPath(t)
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < 100_000 { // never accepted: the backlog fills
		c, err := net.Dial("unix", path)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	if len(conns) == 100_000 {
		t.Skip("the backlog never filled")
	}
	ln, err := listen.Listen("unix://" + path)
	if err == nil {
		ln.Close()
		t.Fatalf("Listen took the path of a live server whose backlog is full (%d connections waiting)", len(conns))
	}
	if !strings.Contains(err.Error(), "cannot tell whether another process is listening") {
		t.Errorf("refused with %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the live server's socket is gone: %v", err)
	}
	// The server accepts again once it takes its queue: still reachable.
	go acceptAll(live)
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live server no longer answers: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
