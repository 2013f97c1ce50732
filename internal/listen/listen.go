// Package listen opens permatrix's listeners: TCP or a unix socket
// ("unix:///run/permatrix.sock"), and the TLS configuration (optionally
// requiring client certificates) that the HTTP and gRPC servers put on them.
package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// SocketMode is the permission of a unix socket: the owner and its group
// may connect (a sidecar's clients share a group), nobody else.
const SocketMode = 0o660

// Listen listens on addr: "host:port", or "unix://<path>" for a unix
// socket. A stale socket file (nothing accepts on it) is replaced; a live
// one is an error, as is a path that is not a socket.
func Listen(addr string) (net.Listener, error) {
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
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
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
