package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// rawSocket is a socket of the given type bound on loopback (listening
// when listen is true) and its file to pass on, as a socket unit
// misconfigured (ListenDatagram=, or a socket never listened on) passes it.
func rawSocket(t *testing.T, family, typ int, listen bool) *os.File {
	t.Helper()
	fd, err := syscall.Socket(family, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "socket")
	t.Cleanup(func() { f.Close() })
	switch family {
	case syscall.AF_INET:
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	case syscall.AF_UNIX:
		err = syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(t.TempDir(), "s")})
	}
	if err != nil {
		t.Fatal(err)
	}
	if listen {
		if err := syscall.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestSocketActivationRefusesWhatCannotServe: a passed socket that serve
// could never accept a connection on — a datagram socket (UDP or unix), a
// stream socket bound but not listening — and systemd: alone when more
// than one unnamed socket was passed stop serve with an error saying so,
// before it says it serves; a unix stream socket listening is served.
func TestSocketActivationRefusesWhatCannotServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "permatrix.db")
	_, tcp := harness.ListeningSocket(t)
	for _, c := range []struct {
		name  string
		names string
		files []*os.File
		addr  string
		wants string
	}{
		{"udp", "api", []*os.File{rawSocket(t, syscall.AF_INET, syscall.SOCK_DGRAM, false)}, "systemd:api", "not a listening stream socket"},
		{"unix datagram", "api", []*os.File{rawSocket(t, syscall.AF_UNIX, syscall.SOCK_DGRAM, false)}, "systemd:api", "not a listening stream socket"},
		{"tcp not listening", "api", []*os.File{rawSocket(t, syscall.AF_INET, syscall.SOCK_STREAM, false)}, "systemd:api", "not a listening stream socket"},
		{"two unnamed", "", []*os.File{tcp, tcp}, "systemd:", "2 sockets were passed"},
		{"two of one name", "api:api", []*os.File{tcp, tcp}, "systemd:api", `2 sockets passed are named "api"`},
	} {
		cmd := activate(t, c.names, c.files, nil, "--addr", c.addr, "--db", db, "--admin-token", token)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.wants) || strings.Contains(string(out), `"msg":"serving"`) {
			t.Errorf("%s: %v, want serve to stop with an error saying %q before serving:\n%.2000s", c.name, err, c.wants, out)
		}
	}
}

// TestHealthOfAPassedSocket: permatrix health given serve's address
// systemd:NAME (PERMATRIX_ADDR shared with serve) cannot know where that
// socket listens; it says so and names what to give instead, rather than
// asking a host named "systemd".
func TestHealthOfAPassedSocket(t *testing.T) {
	for _, args := range [][]string{
		{"health", "--addr", "systemd:api"},
		{"health", "--addr", "127.0.0.1:1", "--diagnostic-addr", "systemd:diagnostic"},
	} {
		cmd := command(t, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !strings.Contains(err.Error(), "exit status") || !strings.Contains(string(out), "passed by socket activation") || strings.Contains(string(out), "http://systemd") {
			t.Errorf("%v: %v %v, want an error saying the address is a passed socket:\n%s", args, err, ee, out)
		}
	}
}
