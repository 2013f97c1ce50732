package extauthz_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// TestConnectionsWithoutAPrefaceClosed measures how long a gRPC
// connection that sends nothing more holds its slot (busy until its
// preface: not closed to make room): its TLS handshake and HTTP/2 preface
// have 5 s together, from the connection on (grpc.ConnectionTimeout), with
// TLS or without. The lower bound is exact (the timeout cannot end
// sooner); the upper bound tells 5 s in all from 5 s for each stage, so a
// machine stalled 5 s would fail it.
func TestConnectionsWithoutAPrefaceClosed(t *testing.T) {
	const timeout = 5 * time.Second
	certs := harness.NewCerts(t)
	cfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{})
	plainAddr := start(t, s, nil, nil)
	secureAddr := start(t, s, nil, cfg)
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
	// closedAfter reads c until the server closes it: how long after
	// since that was.
	closedAfter := func(t *testing.T, c net.Conn, since time.Time) time.Duration {
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
	within := func(t *testing.T, took time.Duration) {
		t.Helper()
		t.Logf("closed %s after the connection", took.Round(time.Millisecond))
		if took < timeout {
			t.Errorf("closed after %s, before its %s", took, timeout)
		}
		if took >= 2*timeout {
			t.Errorf("closed %s after the connection, want %s in all", took, timeout)
		}
	}

	t.Run("plain, no preface", func(t *testing.T) {
		t.Parallel()
		c, dialed := dial(t, plainAddr)
		within(t, closedAfter(t, c, dialed))
	})
	t.Run("TLS, no handshake", func(t *testing.T) {
		t.Parallel()
		c, dialed := dial(t, secureAddr)
		within(t, closedAfter(t, c, dialed))
	})
	t.Run("TLS, a handshake after 4 s, no preface", func(t *testing.T) {
		t.Parallel()
		raw, dialed := dial(t, secureAddr)
		time.Sleep(timeout - time.Second)
		tcfg := certs.ClientTLS(false)
		tcfg.NextProtos, tcfg.ServerName = []string{"h2"}, "127.0.0.1"
		c := tls.Client(raw, tcfg)
		if err := c.Handshake(); err != nil {
			// Closed in the middle of it: a slow machine's handshake
			// that took past the timeout.
			t.Logf("the handshake: %v", err)
			within(t, time.Since(dialed))
			return
		}
		within(t, closedAfter(t, c, dialed))
	})
}
