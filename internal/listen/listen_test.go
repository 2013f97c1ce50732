package listen_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
)

// acceptAll accepts and closes connections on ln until it is closed, as a
// live server does.
func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// echoOnce accepts one connection on ln and echoes one line back.
func echoOnce(ln net.Listener) {
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(c, line)
		}
	}()
}

// roundTrip sends a line over network/addr and expects it back.
func roundTrip(t *testing.T, network, addr string) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "ping\n" {
		t.Fatalf("echo over %s: %q, %v", network, got, err)
	}
}

func TestTCP(t *testing.T) {
	ln, err := listen.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().Network() != "tcp" {
		t.Fatalf("network %s", ln.Addr().Network())
	}
	echoOnce(ln)
	roundTrip(t, "tcp", ln.Addr().String())
	if got, want := listen.URL(ln, false), "http://"+ln.Addr().String(); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got, want := listen.URL(ln, true), "https://"+ln.Addr().String(); got != want {
		t.Errorf("URL(secure) = %q, want %q", got, want)
	}
}

func TestTCPAddressInUse(t *testing.T) {
	first, err := listen.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = listen.Listen(first.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), first.Addr().String()) {
		t.Fatalf("second listener on %s: %v, want an error naming the address and saying it is in use", first.Addr(), err)
	}
	// The first one still serves.
	echoOnce(first)
	roundTrip(t, "tcp", first.Addr().String())
}

func TestBadAddresses(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock") // over sun_path's 108 bytes
	for addr, msg := range map[string]string{
		// net.Listen takes "" for ":0": every interface, a random port.
		"":                     "no address: want host:port or unix:///absolute/path",
		"nonsense":             "missing port in address",
		"127.0.0.1:99999":      "invalid port",
		"127.0.0.1:-1":         "invalid port",
		"tcp://127.0.0.1:0":    "tcp://127.0.0.1:0: too many colons", // a scheme is not an address
		"http://127.0.0.1:80":  "http://127.0.0.1:80: too many colons",
		"[::1":                 "missing ']' in address",
		"unix://":              "unix://: want unix:///absolute/path",
		"unix://relative.sock": "unix://relative.sock: want unix:///absolute/path",
		"unix:relative.sock":   "unix:relative.sock: want unix:///absolute/path",
		"unix:/abs.sock":       "unix:/abs.sock: want unix:///absolute/path",
		"unix://" + filepath.Join(dir, "missing", "p.sock"): "no such file or directory",
		"unix://" + long: "invalid argument",
	} {
		ln, err := listen.Listen(addr)
		if err == nil {
			a := ln.Addr().String()
			ln.Close()
			t.Errorf("Listen(%q) listens on %s", addr, a)
			continue
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("Listen(%q): %q, want %q", addr, err, msg)
		}
	}
	// Nothing was left behind.
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("files left in %s: %v", dir, es)
	}
}

func socketPath(t *testing.T) string {
	// t.TempDir() can be long; sun_path holds 108 bytes.
	dir, err := os.MkdirTemp("", "pmx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "p.sock")
}

func TestUnixSocket(t *testing.T) {
	path := socketPath(t)
	ln, err := listen.Listen("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != listen.SocketMode || listen.SocketMode != 0o660 {
		t.Fatalf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	if got := listen.URL(ln, true); got != "unix://"+path {
		t.Errorf("URL = %q, want unix://%s (TLS or not)", got, path)
	}
	echoOnce(ln)
	roundTrip(t, "unix", path)
}

// A socket file nobody accepts on (a crashed server's) is replaced.
func TestStaleSocketReplaced(t *testing.T) {
	path := socketPath(t)
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket should still be there: %v", err)
	}
	ln, err := listen.Listen("unix://" + path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer ln.Close()
	echoOnce(ln)
	roundTrip(t, "unix", path)
}

// A live socket is another server's: refused, and left working.
func TestLiveSocketRefused(t *testing.T) {
	path := socketPath(t)
	live, err := listen.Listen("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// Accept the probe connection the second Listen makes, as a server would.
	go acceptAll(live)
	_, err = listen.Listen("unix://" + path)
	if err == nil || !strings.Contains(err.Error(), "another process is listening on it") || !strings.Contains(err.Error(), path) {
		t.Fatalf("over a live socket: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the live socket was removed: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live server no longer answers: %v", err)
	}
	c.Close()
}

// A path that is not a socket — a file, a directory, a symlink (even to
// a socket) — is never removed.
func TestNotASocketKept(t *testing.T) {
	dir, err := os.MkdirTemp("", "pmx")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "s.sock")
	old, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	link := filepath.Join(dir, "l.sock")
	if err := os.Symlink(stale, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, sub, link} {
		ln, err := listen.Listen("unix://" + p)
		if err == nil {
			ln.Close()
			t.Errorf("Listen over %s succeeded", p)
			continue
		}
		if !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("Listen over %s: %v, want \"is not a socket\"", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was touched: %v", err)
	}
	if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
		t.Errorf("the directory was touched: %v", err)
	}
}

// --- TLS ---

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key signed by c.
func (c *ca) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	root := newCA(t, "root")
	cert, key := root.issue(t, "server", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := writeFile(t, dir, "c.pem", cert), writeFile(t, dir, "k.pem", key)
	notPEM := writeFile(t, dir, "x.pem", []byte("not a certificate\n"))

	if cfg, err := (listen.TLSFiles{}).Config(); cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v; want plain (nil, nil)", cfg, err)
	}
	for name, c := range map[string]struct {
		f   listen.TLSFiles
		msg string
	}{
		"client CA alone": {listen.TLSFiles{ClientCAFile: certFile}, "--tls-client-ca-file needs --tls-cert-file and --tls-key-file"},
		"cert alone":      {listen.TLSFiles{CertFile: certFile}, "give both --tls-cert-file and --tls-key-file"},
		"key alone":       {listen.TLSFiles{KeyFile: keyFile}, "give both"},
		"missing cert":    {listen.TLSFiles{CertFile: filepath.Join(dir, "none"), KeyFile: keyFile}, "--tls-cert-file/--tls-key-file"},
		"garbage cert":    {listen.TLSFiles{CertFile: notPEM, KeyFile: keyFile}, "--tls-cert-file/--tls-key-file"},
		"key of another":  {listen.TLSFiles{CertFile: certFile, KeyFile: writeFile(t, dir, "k2.pem", must2(root.issue(t, "other", x509.ExtKeyUsageServerAuth)))}, "private key does not match public key"},
		"missing CA":      {listen.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: filepath.Join(dir, "none")}, "--tls-client-ca-file"},
		"CA without PEM":  {listen.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: notPEM}, "no PEM certificate in it"},
	} {
		cfg, err := c.f.Config()
		if err == nil || cfg != nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, %v; want an error with %q", name, cfg, err, c.msg)
		}
	}
}

func must2(_, b []byte) []byte { return b }

// A real handshake: TLS 1.2 at least; with a client CA, no certificate or
// a certificate of another CA is refused, one of the CA gets through.
func TestTLSHandshakes(t *testing.T) {
	dir := t.TempDir()
	root, clients, stranger := newCA(t, "server-ca"), newCA(t, "client-ca"), newCA(t, "stranger")
	cert, key := root.issue(t, "server", x509.ExtKeyUsageServerAuth)
	files := listen.TLSFiles{CertFile: writeFile(t, dir, "c.pem", cert), KeyFile: writeFile(t, dir, "k.pem", key)}

	serve := func(t *testing.T, cfg *tls.Config) string {
		ln, err := listen.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl := tls.NewListener(ln, cfg)
		t.Cleanup(func() { tl.Close() })
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(2 * time.Second))
					line, err := bufio.NewReader(c).ReadString('\n')
					if err == nil {
						_, _ = io.WriteString(c, line)
					}
				}()
			}
		}()
		return ln.Addr().String()
	}
	rootPool := x509.NewCertPool()
	rootPool.AddCert(root.cert)
	dial := func(addr string, cc *tls.Config) error {
		cc.RootCAs = rootPool
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cc)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return err
		}
		// TLS 1.3 reports a refused client certificate on the first read.
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	}

	cfg, err := files.Config()
	if err != nil || cfg == nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("server TLS: min version %x, client auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	addr := serve(t, cfg)
	if err := dial(addr, &tls.Config{}); err != nil {
		t.Fatalf("TLS without client CA: %v", err)
	}
	if err := dial(addr, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client: %v, want a protocol version alert", err)
	}

	files.ClientCAFile = writeFile(t, dir, "ca.pem", clients.pem)
	mcfg, err := files.Config()
	if err != nil {
		t.Fatal(err)
	}
	if mcfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("client auth %v", mcfg.ClientAuth)
	}
	maddr := serve(t, mcfg)
	keypair := func(c *ca) tls.Certificate {
		cp, kp := c.issue(t, "client", x509.ExtKeyUsageClientAuth)
		kp2, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return kp2
	}
	if err := dial(maddr, &tls.Config{}); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("mTLS, a client without a certificate: %v, want \"certificate required\"", err)
	}
	// Sent whatever CAs the server names (Go's client would otherwise send none).
	strange := keypair(stranger)
	sendAnyway := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &strange, nil }
	if err := dial(maddr, &tls.Config{GetClientCertificate: sendAnyway}); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("mTLS, a certificate of another CA: %v, want \"unknown certificate authority\"", err)
	}
	if err := dial(maddr, &tls.Config{Certificates: []tls.Certificate{keypair(clients)}}); err != nil {
		t.Errorf("mTLS: the client CA's certificate: %v", err)
	}
}

// A server that closes never removes its successor's socket: a new server
// that finds the path stale the moment the old one stops accepting, and
// links its own socket there, keeps it. (Closing before removing the path
// lost the successor's socket within a few hundred rounds: its listener
// accepted on a name that no longer existed.) A stress test of the window,
// as net.UnixListener's own close avoids it: unlink, then close.
func TestCloseLeavesTheSuccessorsSocket(t *testing.T) {
	path := socketPath(t)
	for round := range 300 {
		old, err := listen.Listen("unix://" + path)
		if err != nil {
			t.Fatal(err)
		}
		next := make(chan net.Listener)
		go func() { // the successor: retries until the old one is gone
			for {
				if ln, err := listen.Listen("unix://" + path); err == nil {
					next <- ln
					return
				}
			}
		}()
		go func() { // the old one accepts the successor's probes until closed
			for {
				c, err := old.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		old.Close()
		ln := <-next
		_, err = os.Lstat(path)
		ln.Close()
		if err != nil {
			t.Fatalf("round %d: the successor's socket is gone from %s: %v", round, path, err)
		}
	}
}
