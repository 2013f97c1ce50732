package http_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	permhttp "github.com/permatrix/permatrix/internal/http"
	permlisten "github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// TestHTTP2HeaderListBounded: over TLS the API speaks HTTP/2, whose header
// list net/http bounds by http.Server.MaxHeaderBytes. With HPACK a client
// names a header indexed once again and again, one byte each, and the
// server decodes every name into its request: at the 1 MiB the bound used
// to be, 654 KiB sent were 114 MiB allocated. The server announces a
// bound of the HTTP/1.1 head's (64 KiB), and a header list past it is
// refused — its stream, or its connection — having decoded no more than
// the bound.
func TestHTTP2HeaderListBounded(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })

	clientCfg := certs.ClientTLS(false)
	clientCfg.NextProtos = []string{http2.NextProtoTLS}
	conn, err := tls.Dial("tcp", addr.String(), clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
		t.Fatalf("negotiated %q, want h2", p)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard only
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	settings, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("the server's first frame: %v", f)
	}
	// net/http adds room for ten fields' HTTP/2 overhead (32 bytes each).
	if n, ok := settings.Value(http2.SettingMaxHeaderListSize); !ok || n > permhttp.HeaderLimit+1<<10 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d (%v), want at most %d", n, ok, permhttp.HeaderLimit+1<<10)
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}

	// A GET whose header x-a: b is indexed once and named 48,000 times
	// after: 48 KB on the wire, 1.7 MB of header list (36 bytes a field).
	const frame, frames = 16000, 3
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":path", Value: "/health/live"}, {Name: ":authority", Value: "127.0.0.1"}, {Name: "x-a", Value: "b"}} {
		if err := enc.WriteField(hf); err != nil {
			t.Fatal(err)
		}
	}
	// The dynamic table's first entry is index 62: indexed, 0x80|62.
	block.Write(bytes.Repeat([]byte{0x80 | 62}, frame*frames-block.Len()))
	raw := block.Bytes()
	const amplified = frame * frames * 36

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: raw[:frame], EndStream: true})
	for i := 1; i < frames; i++ {
		// The server may have closed the connection already: the answer
		// below says how it refused.
		_ = fr.WriteContinuation(1, i == frames-1, raw[i*frame:(i+1)*frame])
	}
	refused := ""
	for refused == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			refused = "the connection closed: " + err.Error()
			break
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			refused = "GOAWAY " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			refused = "RST_STREAM " + f.ErrCode.String()
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "431" {
				t.Fatalf("a header list of %d bytes: status %s", amplified, st)
			}
			refused = "431"
		}
	}
	runtime.ReadMemStats(&after)
	t.Logf("refused: %s; %d bytes allocated", refused, after.TotalAlloc-before.TotalAlloc)
	// Decoding the whole list allocates some 3 MB of fields and header
	// values; decoding it up to the bound, a tenth of that.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated for a header list of %d bytes over a bound of %d: want under 1 MiB", n, amplified, permhttp.HeaderLimit)
	}
}

// TestHeadsUpToTheLimitServed: a request head up to HeaderLimit is served
// over HTTP/1.1 and HTTP/2 alike — HTTP/2's header list bound takes
// nothing from what the middleware takes — and over HTTP/1.1 one over it
// is still the middleware's 431 with the envelope, up to MaxHeaderBytes
// (1 MiB): HTTP/2's bound is its own.
func TestHeadsUpToTheLimitServed(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	secure := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg})
	secureAddr, err := secure.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, secure.Serve, func(ctx context.Context) { _ = secure.Shutdown(ctx) })
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false), ForceAttemptHTTP2: true}}
	plain := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	base := serveOn(t, plain)

	pad := func(n int) string { return strings.Repeat("p", n) }
	for _, c := range []struct {
		url, proto string
		pad, want  int
	}{
		{"https://" + secureAddr.String(), "HTTP/2.0", 60 << 10, http.StatusOK},
		{base, "HTTP/1.1", 60 << 10, http.StatusOK},
		{base, "HTTP/1.1", 66 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{base, "HTTP/1.1", 900 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, err := http.NewRequest("GET", c.url+"/health/live", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Pad", pad(c.pad))
		client := http.DefaultClient
		if strings.HasPrefix(c.url, "https:") {
			client = h2
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s, %d bytes of header: %v", c.proto, c.pad, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Proto != c.proto || res.StatusCode != c.want {
			t.Errorf("%s, %d bytes of header: %s %d %s, want %d", c.proto, c.pad, res.Proto, res.StatusCode, body, c.want)
		}
		if c.want != http.StatusOK && (res.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"headers_too_large"`)) {
			t.Errorf("%s, %d bytes of header: %s, want the envelope", c.proto, c.pad, body)
		}
	}
}

// TestHTTP2ConnectionsAsHTTP1: HTTP/2 connections, served apart for their
// header list bound, are still the server's: an idle one makes room at
// --max-connections for another client, and Shutdown ends them gracefully
// (it returns nil, not its context's error, with one open).
func TestHTTP2ConnectionsAsHTTP1(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg, MaxConnections: 1})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	url := "https://" + addr.String() + "/health/live"
	get := func(c *http.Client) *http.Response {
		t.Helper()
		res, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	first := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false), ForceAttemptHTTP2: true}}
	if res := get(first); res.Proto != "HTTP/2.0" || res.StatusCode != http.StatusOK {
		t.Fatalf("first client: %s %d", res.Proto, res.StatusCode)
	}
	// The first client's connection is idle and kept: the second is served
	// in its place.
	second := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false), ForceAttemptHTTP2: true}}
	if res := get(second); res.Proto != "HTTP/2.0" || res.StatusCode != http.StatusOK {
		t.Fatalf("second client: %s %d", res.Proto, res.StatusCode)
	}
	if n := gauge(t, srv.Metrics().Registry, "permatrix_idle_connections_closed_total", "api"); n != 1 {
		t.Errorf("permatrix_idle_connections_closed_total{listener=api} = %v, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard only
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an idle HTTP/2 connection open: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
