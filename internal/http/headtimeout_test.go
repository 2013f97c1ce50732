package http_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	permhttp "github.com/permatrix/permatrix/internal/http"
	permlisten "github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// headTimeout is the server's ReadHeaderTimeout: what a new connection
// has for its TLS handshake, and again for its first request's head.
const headTimeout = 5 * time.Second

// closedAfter reads c until its server closes it and says how long after
// since that was; a guard of 60 s fails the test.
func closedAfter(t *testing.T, c net.Conn, since time.Time) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // a guard only
	if n, err := io.Copy(io.Discard, c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("still open after %s (read %d bytes)", time.Since(since), n)
		}
	}
	return time.Since(since)
}

// TestConnectionsWithoutARequestClosed measures how long a connection
// that sends nothing more holds its slot (busy: not closed to make room)
// at each stage before its first request: plain HTTP/1.1, its head;
// over TLS, the handshake, then the HTTP/1.1 head or the HTTP/2 preface
// and first request's headers. Each stage has headTimeout: a plain
// connection 5 s, one over TLS 5 s for its handshake and 5 s more for its
// first request. (HTTP/2's preface alone had x/net's 10 s, and a
// connection past it none but the idle timeout, 120 s.) The lower bounds
// are exact (the timeout cannot end sooner); the upper bound of the
// HTTP/2 stages tells 5 s from x/net's 10 s, so a machine stalled 5 s
// would fail it.
func TestConnectionsWithoutARequestClosed(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	plain := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	plainAddr := serveOn(t, plain)[len("http://"):]
	secure := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg})
	secureAddr := serveOn(t, secure)[len("http://"):]

	dial := func(t *testing.T, addr string) (net.Conn, time.Time) {
		t.Helper()
		// The server's clock starts after this one's (it cannot
		// accept the connection before it is asked for), so the lower
		// bounds are exact.
		began := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, began
	}
	// handshake completes a TLS handshake offering proto: the
	// connection, when it was asked for, and when its handshake began.
	handshake := func(t *testing.T, proto string) (*tls.Conn, time.Time, time.Time) {
		t.Helper()
		raw, dialed := dial(t, secureAddr)
		cfg := certs.ClientTLS(false)
		cfg.NextProtos, cfg.ServerName = []string{proto}, "127.0.0.1"
		c := tls.Client(raw, cfg)
		// The server's handshake ends after this one begins.
		shaking := time.Now()
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != proto {
			t.Fatalf("negotiated %q, want %q", got, proto)
		}
		return c, dialed, shaking
	}
	atLeast := func(t *testing.T, took, want time.Duration, what string) {
		t.Helper()
		if took < want {
			t.Errorf("%s: closed after %s, before its %s", what, took, want)
		}
	}

	t.Run("plain, no head", func(t *testing.T) {
		t.Parallel()
		c, dialed := dial(t, plainAddr)
		took := closedAfter(t, c, dialed)
		t.Logf("closed %s after the connection", took.Round(time.Millisecond))
		atLeast(t, took, headTimeout, "the head")
	})
	t.Run("TLS, no handshake", func(t *testing.T) {
		t.Parallel()
		c, dialed := dial(t, secureAddr)
		took := closedAfter(t, c, dialed)
		t.Logf("closed %s after the connection", took.Round(time.Millisecond))
		atLeast(t, took, headTimeout, "the handshake")
	})
	t.Run("TLS, HTTP/1.1, no head", func(t *testing.T) {
		t.Parallel()
		c, dialed, shaken := handshake(t, "http/1.1")
		took := closedAfter(t, c, shaken)
		t.Logf("closed %s after the handshake began, %s after the connection", took.Round(time.Millisecond), time.Since(dialed).Round(time.Millisecond))
		atLeast(t, took, headTimeout, "the head after the handshake")
	})
	t.Run("TLS, HTTP/2, no preface", func(t *testing.T) {
		t.Parallel()
		c, dialed, shaken := handshake(t, http2.NextProtoTLS)
		took := closedAfter(t, c, shaken)
		t.Logf("closed %s after the handshake began, %s after the connection", took.Round(time.Millisecond), time.Since(dialed).Round(time.Millisecond))
		atLeast(t, took, headTimeout, "the preface after the handshake")
		if took >= 2*headTimeout {
			t.Errorf("closed %s after the handshake began: x/net's preface timeout (10 s), not the head's (%s)", took, headTimeout)
		}
	})
	t.Run("TLS, HTTP/2, preface but no request", func(t *testing.T) {
		t.Parallel()
		c, dialed, shaken := handshake(t, http2.NextProtoTLS)
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		if err := http2.NewFramer(c, nil).WriteSettings(); err != nil {
			t.Fatal(err)
		}
		took := closedAfter(t, c, shaken)
		t.Logf("closed %s after the handshake began, %s after the connection", took.Round(time.Millisecond), time.Since(dialed).Round(time.Millisecond))
		atLeast(t, took, headTimeout, "the first request after the handshake")
		if took >= 2*headTimeout {
			t.Errorf("closed %s after the handshake began, want its first request's headers bounded at %s", took, headTimeout)
		}
	})
}

// TestHTTP2ConnectionKeptAfterItsFirstRequest: the HTTP/2 bound on the
// first request's headers ends with them — a connection idle after its
// first answer stays open past it (closed only for room, or after the
// idle timeout). A slow machine makes this pass, never fail.
func TestHTTP2ConnectionKeptAfterItsFirstRequest(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg})
	addr := serveOn(t, srv)[len("http://"):]
	cfg := certs.ClientTLS(false)
	cfg.NextProtos, cfg.ServerName = []string{http2.NextProtoTLS}, "127.0.0.1"
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // a guard only
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", "/health/live"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for answered := false; !answered; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("before the answer: %v", err)
		}
		answered = f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream)
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = fr.WriteSettingsAck()
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(headTimeout + time.Second))
	for {
		if _, err := fr.ReadFrame(); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("the connection idle after its first answer was closed within %s: %v", headTimeout+time.Second, err)
			}
			return
		}
	}
}
