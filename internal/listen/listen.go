// Package listen opens permatrix's listeners: TCP, a unix socket
// ("unix:///run/permatrix.sock") or one passed by systemd socket
// activation ("systemd:NAME", activation.go), and the TLS configuration (optionally
// requiring client certificates) that the HTTP and gRPC servers put on them.
package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// SocketMode is the permission of a unix socket: the owner and its group
// may connect (a sidecar's clients share a group), nobody else.
const SocketMode = 0o660

// Listen listens on addr: "host:port", "unix://<path>" for a unix
// socket, or "systemd:NAME" for a socket passed by socket activation
// (activation.go). A stale socket file (connecting is refused: nothing
// listens on it) is replaced; a live one is an error — also one too busy
// to take the probe's connection — as is a path that is not a socket.
func Listen(addr string) (net.Listener, error) {
	if name, ok := strings.CutPrefix(addr, "systemd:"); ok {
		return activated(addr, name)
	}
	path, isUnix := strings.CutPrefix(addr, "unix://")
	switch {
	case addr == "":
		// net.Listen would take "" for ":0": every interface, a random
		// port. The API is meant for loopback unless told otherwise.
		return nil, errors.New("no address: want host:port or unix:///absolute/path")
	case !isUnix && strings.HasPrefix(addr, "unix:"):
		return nil, fmt.Errorf("%s: want unix:///absolute/path", addr)
	case !isUnix:
		return net.Listen("tcp", addr)
	}
	if path == "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%s: want unix:///absolute/path", addr)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		// Stale only when the kernel says nobody listens (ECONNREFUSED): a
		// live server whose accept backlog is full answers EAGAIN, and
		// removing its socket would orphan it.
		switch c, err := net.Dial("unix", path); {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("%s: another process is listening on it", path)
		case errors.Is(err, syscall.ECONNREFUSED):
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
			}
		case errors.Is(err, os.ErrNotExist): // removed meanwhile
		default:
			return nil, fmt.Errorf("%s: cannot tell whether another process is listening on it (%w); remove it if it is stale", path, err)
		}
	}
	return listenUnix(path)
}

// sunPathMax is the longest socket path the kernel takes (sun_path's 108
// bytes, less the terminating NUL).
const sunPathMax = 107

// listenUnix binds a socket at path that nobody but the owner and its group
// can ever connect to. bind(2) creates the file with the process umask's
// mode, so binding at path and then chmod-ing it would leave a window in
// which, under a lax umask, anyone could connect. The socket is bound
// instead inside a fresh directory next to path that only the owner can
// enter (os.MkdirTemp: 0700), chmod-ed there, and hard-linked into place:
// link(2), unlike rename(2), never replaces a file that appeared at path
// meanwhile. A path so long that the private directory would not fit in
// sun_path is bound in place as before (the window remains for it); one
// too long for sun_path itself is refused by bind, since no client could
// connect to it.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if len(path) > sunPathMax || len(dir)+len("/.pmx")+10+len("/s") > sunPathMax {
		// Too long to bind (bind says so), or to bind in a directory
		// beside it.
		return bindInPlace(path)
	}
	private, err := os.MkdirTemp(dir, ".pmx")
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: its directory: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // the name it was bound at is gone; unixListener removes path
	if err := os.Chmod(tmp, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return &unixListener{UnixListener: ln, path: path}, nil
}

// bindInPlace binds at path, then sets its mode.
func bindInPlace(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// unixListener is a socket bound elsewhere and linked at path: its address
// is path, and closing it (the first time) removes path, as a listener
// bound there would — before it stops accepting, as net.UnixListener
// does: once it stops, a successor may find the path stale and link its
// own socket there, which removing path afterwards would take away.
type unixListener struct {
	*net.UnixListener
	path   string
	remove sync.Once
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	var rmErr error
	l.remove.Do(func() {
		if err := os.Remove(l.path); !errors.Is(err, os.ErrNotExist) {
			rmErr = err
		}
	})
	if err := l.UnixListener.Close(); err != nil {
		return err
	}
	return rmErr
}

// URL is how clients reach ln: http(s)://host:port or unix://path.
func URL(ln net.Listener, secure bool) string {
	if ln.Addr().Network() == "unix" {
		return "unix://" + ln.Addr().String()
	}
	if secure {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// TLSFiles name a server certificate and, for mTLS, the CAs that client
// certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile string
	ClientCAFile      string
}

// Config is the server TLS configuration the files describe, or nil when
// no certificate is given. TLS 1.2 at least; with ClientCAFile every client
// must present a certificate that chains to one of its CAs.
func (f TLSFiles) Config() (*tls.Config, error) {
	switch {
	case f.CertFile == "" && f.KeyFile == "":
		if f.ClientCAFile != "" {
			return nil, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file: client certificates are asked for over TLS")
		}
		return nil, nil
	case f.CertFile == "" || f.KeyFile == "":
		return nil, errors.New("give both --tls-cert-file and --tls-key-file")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca-file %s: no PEM certificate in it", f.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
