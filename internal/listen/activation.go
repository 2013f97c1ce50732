package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Socket activation (systemd's, sd_listen_fds(3)): the service manager —
// or a test — binds the sockets, and starts the process with them open
// from file descriptor 3 on, LISTEN_FDS saying how many, LISTEN_PID the
// process they are for (a child that inherits the variables is not), and
// LISTEN_FDNAMES their names, ":"-separated (a socket unit's
// FileDescriptorName=, by default the unit's name). The port is never
// free between the binding and the serving. The protocol is a dozen lines
// of environment and file descriptors: no dependency for it.
//
// An address "systemd:NAME" is the passed socket of that name;
// "systemd:" alone is the only one passed. Each is taken once, and every
// one is to be taken (UnusedActivated): a socket no address names — an
// extra one in the unit, a name misspelt there or in a flag — would have
// the kernel queue connections that nothing answers, and closing it would
// not stop that, as the service manager keeps its own copy open
// (sd_listen_fds(3)).

// activationFirstFD is the first passed descriptor (SD_LISTEN_FDS_START).
const activationFirstFD = 3

var activation struct {
	once  sync.Once
	names []string // by descriptor, from activationFirstFD on
	// forUs: LISTEN_FDS was set for this process (LISTEN_PID), whether
	// or not the rest of the variables could be read (err).
	forUs bool
	err   error
	mu    sync.Mutex
	taken map[int]bool
}

// readActivation reads the passed sockets once, marks them close-on-exec
// (no child inherits them) and unsets the variables, as sd_listen_fds(1)
// does.
func readActivation() {
	a := &activation
	defer func() {
		for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}()
	pid, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	if fds == "" {
		a.err = fmt.Errorf("no socket was passed to this process (LISTEN_FDS is not set: start it from a systemd socket unit, or pass the sockets from fd 3 on with LISTEN_FDS and LISTEN_PID)")
		return
	}
	if p, err := strconv.Atoi(pid); err != nil || p != os.Getpid() {
		a.err = fmt.Errorf("the sockets passed (LISTEN_FDS=%s) are for process %q, not this one (%d)", fds, pid, os.Getpid())
		return
	}
	a.forUs = true
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 || n > 64 {
		a.err = fmt.Errorf("LISTEN_FDS=%q: want the number of sockets passed, 1 to 64", fds)
		return
	}
	a.names = make([]string, n)
	if v := os.Getenv("LISTEN_FDNAMES"); v != "" {
		names := strings.Split(v, ":")
		if len(names) != n {
			a.err = fmt.Errorf("LISTEN_FDNAMES=%q names %d sockets, LISTEN_FDS=%d passed", v, len(names), n)
			return
		}
		copy(a.names, names)
	}
	for i := range n {
		syscall.CloseOnExec(activationFirstFD + i)
	}
	a.taken = map[int]bool{}
}

// activated is the listener of the passed socket name ("": the only one).
func activated(addr, name string) (net.Listener, error) {
	a := &activation
	a.once.Do(readActivation)
	if a.err != nil {
		return nil, fmt.Errorf("%s: %w", addr, a.err)
	}
	i := -1
	switch {
	case name == "":
		// "systemd:" is the only socket passed, named or not: never
		// the first of several unnamed ones.
		if len(a.names) == 1 {
			i = 0
		}
	default:
		i = slices.Index(a.names, name)
		if n := countOf(a.names, name); n > 1 {
			// A socket unit's sockets share its name unless each has
			// its own FileDescriptorName=: one listener would take the
			// first, and connections to the others would wait unanswered.
			return nil, fmt.Errorf("%s: %d sockets passed are named %q (LISTEN_FDNAMES %q): give each its own name (FileDescriptorName=) and an address each", addr, n, name, strings.Join(a.names, ":"))
		}
	}
	if i < 0 {
		if name == "" {
			return nil, fmt.Errorf("%s: %d sockets were passed (LISTEN_FDNAMES %q): name one, systemd:NAME", addr, len(a.names), strings.Join(a.names, ":"))
		}
		return nil, fmt.Errorf("%s: no socket of that name was passed (LISTEN_FDNAMES %q)", addr, strings.Join(a.names, ":"))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fd := activationFirstFD + i
	if a.taken[fd] {
		return nil, fmt.Errorf("%s: the socket (fd %d) is another listener's already", addr, fd)
	}
	if err := listeningStream(fd); err != nil {
		return nil, fmt.Errorf("%s: fd %d is not a listening stream socket: %w", addr, fd, err)
	}
	f := os.NewFile(uintptr(fd), addr)
	ln, err := net.FileListener(f) // a duplicate: f is closed below
	if err != nil {
		return nil, fmt.Errorf("%s: fd %d is not a listening socket: %w", addr, fd, err)
	}
	a.taken[fd] = true
	f.Close()
	return ln, nil
}

// UnusedActivated says which sockets passed to this process by socket
// activation no listener took (Listen "systemd:NAME"), naming each by
// descriptor and name; nil when every one was taken, or none was passed
// to this process. Call it once every listener is made, before serving:
// the server is to stop rather than serve beside a socket nothing will
// ever answer. Passed sockets whose variables cannot be read are an
// error too, asked for by an address or not.
func UnusedActivated() error {
	a := &activation
	a.once.Do(readActivation)
	if !a.forUs {
		return nil
	}
	if a.err != nil {
		return fmt.Errorf("socket activation: %w", a.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var unused []string
	for i, name := range a.names {
		if fd := activationFirstFD + i; !a.taken[fd] {
			unused = append(unused, fmt.Sprintf("fd %d %q", fd, name))
		}
	}
	if len(unused) == 0 {
		return nil
	}
	return fmt.Errorf("%d of the sockets passed by socket activation no address names: %s (LISTEN_FDNAMES %q): give each an address systemd:NAME, or take it out of the socket unit — connections to it would wait, never answered",
		len(unused), strings.Join(unused, ", "), strings.Join(a.names, ":"))
}

// listeningStream says why fd cannot be served on, or nil: net.FileListener
// takes a datagram unix socket, and a stream socket bound but never
// listened on, for a listener, and the server would say it serves and
// then fail its first accept (EOPNOTSUPP, EINVAL).
func listeningStream(fd int) error {
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return err
	}
	if typ != syscall.SOCK_STREAM {
		return fmt.Errorf("socket type %d, want a stream socket (SOCK_STREAM: ListenStream=)", typ)
	}
	listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if err != nil {
		return err
	}
	if listening == 0 {
		return errors.New("bound but not listening (listen(2) was not called on it)")
	}
	return nil
}

// countOf is how many of names are name.
func countOf(names []string, name string) int {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n
}
