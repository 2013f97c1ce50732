package harness

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// ListeningSocket is a loopback TCP socket bound and listening before the
// server that is to serve on it starts, as a systemd socket unit's: its
// address and its file, to pass on (SocketActivate). No other process can
// take the port between, the test holding it throughout. Both are closed
// when the test ends.
func ListeningSocket(t testing.TB) (addr string, f *os.File) {
	t.Helper()
	r := ReservePort(t)
	ln, err := r.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if f, err = ln.(*net.TCPListener).File(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return r.Addr, f
}

// SocketActivate makes cmd start as systemd starts a socket-activated
// service (sd_listen_fds(3)): files open from fd 3 on (cmd.ExtraFiles),
// LISTEN_FDS, LISTEN_FDNAMES the names, ":"-joined, and LISTEN_PID the
// process's own pid — set by a shell to its own ($$), which then execs
// cmd's program in its place, as systemd-socket-activate does. Call it
// after cmd.Env is set (nil: this process's environment).
func SocketActivate(cmd *exec.Cmd, names []string, files []*os.File) {
	cmd.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	cmd.ExtraFiles = files
}
