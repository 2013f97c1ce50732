package cli_test

import (
	"bufio"
	"errors"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownCuttingRequestsExitsNonZero: SIGTERM with a request still in
// flight when --shutdown-timeout passes cuts it, says so in the log and
// exits 4, not 0 (a clean shutdown exits 0: TestServeFromEnvAndGracefulShutdown).
func TestShutdownCuttingRequestsExitsNonZero(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "p.db"), "PERMATRIX_SHUTDOWN_TIMEOUT=200ms")
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a guard only
	// A check whose body never comes: with Expect: 100-continue the server
	// says when the handler has begun to read it, so the request is in
	// flight before the signal.
	if _, err := conn.Write([]byte("POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
		"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue: %q %v", line, err)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var exit error
	select {
	case exit = <-s.Done():
	case <-time.After(60 * time.Second): // a guard only
		t.Fatalf("serve did not exit after SIGTERM:\n%s", s.Logs())
	}
	var ee *exec.ExitError
	if !errors.As(exit, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("serve's exit after a shutdown that cut a request: %v, want exit status 4\n%s", exit, s.Logs())
	}
	if !strings.Contains(s.Logs(), "requests in flight were cut") {
		t.Fatalf("no log of the requests cut:\n%s", s.Logs())
	}
}
