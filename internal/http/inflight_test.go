package http_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	permhttp "github.com/permatrix/permatrix/internal/http"
	permlisten "github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// h2Flood is one HTTP/2 connection opening as many streams as the server
// allows, each a POST /v1/check with a header list near the 64 KiB bound
// (one indexed header named 1,700 times: about 1.7 KB on the wire each)
// and 4 KiB of a body that never ends.
type h2Flood struct {
	conn    *tls.Conn
	fr      *http2.Framer
	streams uint32 // what the server's SETTINGS allow
	sent    int    // bytes written
	// windowShut: the client's flow control window is shut (0), so no
	// answer's body can come, and a stream is settled with its answer's
	// headers.
	windowShut bool

	mu       sync.Mutex
	read     map[uint32]bool // streams whose body the server read (a WINDOW_UPDATE)
	answered map[uint32]h2Answer
	done     chan struct{} // closed as the reader ends
	settled  chan struct{} // a signal as a stream is read or answered
}

type h2Answer struct {
	status, retryAfter string
	body               []byte
	ended              bool
}

// floodRepeats is how many times each stream names its indexed header: 36
// bytes of header list each (RFC 9113 counts 32 a field beside its name
// and value), 61,200 bytes in all, under the 64 KiB bound.
const floodRepeats = 1700

// floodBody is each stream's body so far: enough for the server to send a
// WINDOW_UPDATE for the stream (x/net's least, 4 KiB) once it has read it.
const floodBody = 4 << 10

func dialFlood(t *testing.T, addr string, certs *harness.Certs, windowShut bool) *h2Flood {
	t.Helper()
	cfg := certs.ClientTLS(false)
	cfg.NextProtos = []string{http2.NextProtoTLS}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a guard only
	f := &h2Flood{conn: conn, fr: http2.NewFramer(conn, conn), read: map[uint32]bool{}, answered: map[uint32]h2Answer{},
		done: make(chan struct{}), settled: make(chan struct{}, 1<<12), windowShut: windowShut}
	f.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	var shut []http2.Setting
	if windowShut {
		shut = append(shut, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	}
	if err := f.fr.WriteSettings(shut...); err != nil {
		t.Fatal(err)
	}
	fr, err := f.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	settings, ok := fr.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("the server's first frame: %v", fr)
	}
	f.streams = 250 // RFC 9113's default is none; x/net's, 250
	if n, ok := settings.Value(http2.SettingMaxConcurrentStreams); ok {
		f.streams = n
	}
	if err := f.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	// The server opens the connection's window to 1 MiB: each stream's
	// 4 KiB fits in it, 250 of them.
	for {
		fr, err := f.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if wu, ok := fr.(*http2.WindowUpdateFrame); ok && wu.StreamID == 0 {
			break
		}
	}
	go f.readFrames()
	return f
}

func (f *h2Flood) readFrames() {
	defer close(f.done)
	for {
		fr, err := f.fr.ReadFrame()
		if err != nil {
			return
		}
		f.mu.Lock()
		switch fr := fr.(type) {
		case *http2.WindowUpdateFrame:
			if fr.StreamID != 0 && !f.read[fr.StreamID] {
				f.read[fr.StreamID] = true
				f.settled <- struct{}{}
			}
		case *http2.MetaHeadersFrame:
			a := h2Answer{status: fr.PseudoValue("status")}
			for _, hf := range fr.RegularFields() {
				if hf.Name == "retry-after" {
					a.retryAfter = hf.Value
				}
			}
			a.ended = fr.StreamEnded()
			f.answered[fr.StreamID] = a
			if a.ended || f.windowShut {
				f.settled <- struct{}{}
			}
		case *http2.DataFrame:
			a := f.answered[fr.StreamID]
			a.body = append(a.body, fr.Data()...)
			a.ended = fr.StreamEnded()
			f.answered[fr.StreamID] = a
			if a.ended {
				f.settled <- struct{}{}
			}
		case *http2.RSTStreamFrame:
			if a, ok := f.answered[fr.StreamID]; !ok || !a.ended && !f.windowShut {
				// Reset before its answer ended (or one came).
				a.status += " RST_STREAM " + fr.ErrCode.String()
				a.ended = true
				f.answered[fr.StreamID] = a
				f.settled <- struct{}{}
			}
		}
		f.mu.Unlock()
	}
}

// open sends every stream the server allows: its headers and the start
// of its body.
func (f *h2Flood) open(t *testing.T) {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	body := bytes.Repeat([]byte{' '}, floodBody)
	for i := range f.streams {
		block.Reset()
		// The same fields each time: the first stream indexes them, the
		// others name them by index, x-a: b last, so index 62.
		for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
			{Name: ":path", Value: "/v1/check"}, {Name: ":authority", Value: "127.0.0.1"},
			{Name: "content-type", Value: "application/json"}, {Name: "x-a", Value: "b"}} {
			if err := enc.WriteField(hf); err != nil {
				t.Fatal(err)
			}
		}
		block.Write(bytes.Repeat([]byte{0x80 | 62}, floodRepeats-1))
		id := 1 + 2*i
		if err := f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		if err := f.fr.WriteData(id, false, body); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		f.sent += 9 + block.Len() + 9 + len(body)
	}
}

// TestRequestsInFlightBounded: nothing else bounded the memory requests in
// flight hold across connections and HTTP/2 streams — each connection
// allowed 250 streams, each stream a header list of up to 64 KiB (filled
// by HPACK from a byte a field) and a body up to the body limit, sent
// slowly. Eight connections each open every stream the server allows, a
// header list near the bound and a body that never ends on each: the
// server announces at most 100 streams a connection, holds
// MaxRequestsInFlight (64) of them, answers every other one 503 with the
// envelope and Retry-After at once, counts them in /metrics, and its heap
// in use grows by less than 16 MiB (it grew by 120 MiB, 2,000 requests
// held). The diagnostic listener still answers.
func TestRequestsInFlightBounded(t *testing.T) {
	const conns, bound = 8, 64
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	var logged harness.LockedBuffer
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg, MaxRequestsInFlight: bound,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	// One request first, so that what the first request of a server
	// allocates once is not counted.
	if code, _ := request(t, http.MethodGet, "http://"+diag.String()+"/health/live", ""); code != http.StatusOK {
		t.Fatalf("the diagnostic listener: %d", code)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	floods := make([]*h2Flood, conns)
	total, sent := 0, 0
	for i := range floods {
		floods[i] = dialFlood(t, addr.String(), certs, false)
		if floods[i].streams > 100 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want at most 100", floods[i].streams)
		}
		floods[i].open(t)
		total += int(floods[i].streams)
		sent += floods[i].sent
	}
	// Every stream is either being read (its body taken by a handler) or
	// answered, its answer ended.
	for _, f := range floods {
		for range f.streams {
			select {
			case <-f.settled:
			case <-f.done:
				t.Fatal("the server closed a connection")
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	held, refused := 0, 0
	for _, f := range floods {
		f.mu.Lock()
		held += len(f.read)
		for id, a := range f.answered {
			if f.read[id] {
				t.Errorf("stream %d was read, and answered %s", id, a.status)
			}
			refused++
			if a.status != "503" || a.retryAfter == "" {
				t.Errorf("stream %d: %s (Retry-After %q), want 503 with Retry-After", id, a.status, a.retryAfter)
				continue
			}
			var env struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(a.body, &env); err != nil || env.Error.Code != "unavailable" {
				t.Errorf("stream %d: 503 %s, want the envelope", id, a.body)
			}
		}
		f.mu.Unlock()
	}
	t.Logf("%d connections, %d streams (%d held, %d refused): %d bytes sent, heap in use grew by %.1f MiB",
		conns, total, held, refused, sent, float64(grew)/(1<<20))
	if held != bound {
		t.Errorf("%d requests held, want the bound, %d", held, bound)
	}
	if grew > 16<<20 {
		t.Errorf("heap in use grew by %.1f MiB with %d requests in flight, want under 16 MiB", float64(grew)/(1<<20), total)
	}
	if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"); n != float64(refused) {
		t.Errorf("permatrix_requests_refused_total{listener=api,reason=in_flight} = %v, want %d", n, refused)
	}
	if n := gauge(t, srv.Metrics().Registry, "permatrix_requests_in_flight", "api"); n != bound {
		t.Errorf("permatrix_requests_in_flight{listener=api} = %v, want %d", n, bound)
	}
	if code, _ := request(t, http.MethodGet, "http://"+diag.String()+"/health/live", ""); code != http.StatusOK {
		t.Errorf("the diagnostic listener with the API's bound reached: %d", code)
	}
	// A flood of refusals is not a flood of log lines.
	if n := strings.Count(logged.String(), "level=ERROR"); n != 0 {
		t.Errorf("%d errors logged for %d requests refused", n, refused)
	}
}

// TestRefusalsHoldNoHeaders: a request refused at the bound over HTTP/2
// waits for its client's flow control window to write its answer's body,
// and a client may keep the window shut: every refused request was held,
// its headers with it, until the write timeout (15 s) — 736 held 39 MiB,
// beyond the bound's. Refused, a request drops its headers and has a
// second to write its answer: with the flood of TestRequestsInFlightBounded
// and a window kept shut, the heap grows by less than 24 MiB.
func TestRefusalsHoldNoHeaders(t *testing.T) {
	const conns, bound = 8, 64
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg, MaxRequestsInFlight: bound})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	floods := make([]*h2Flood, conns)
	for i := range floods {
		floods[i] = dialFlood(t, addr.String(), certs, true)
		floods[i].open(t)
	}
	for _, f := range floods {
		for range f.streams {
			select {
			case <-f.settled:
			case <-f.done:
				t.Fatal("the server closed a connection")
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	refused := 0
	for _, f := range floods {
		f.mu.Lock()
		for id, a := range f.answered {
			refused++
			if a.status != "503" {
				t.Errorf("stream %d: %s, want 503", id, a.status)
			}
		}
		f.mu.Unlock()
	}
	t.Logf("%d requests refused, their answers unwritten: heap in use grew by %.1f MiB", refused, float64(grew)/(1<<20))
	if want := conns*int(floods[0].streams) - bound; refused != want {
		t.Errorf("%d requests refused, want %d", refused, want)
	}
	if grew > 24<<20 {
		t.Errorf("heap in use grew by %.1f MiB with %d refused requests waiting to write, want under 24 MiB", float64(grew)/(1<<20), refused)
	}
}

// counterOf is the value of name{listener, reason}.
func counterOf(t *testing.T, srv *permhttp.Server, name, listener, reason string) float64 {
	t.Helper()
	families, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == listener && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Errorf("no %s{listener=%q,reason=%q}", name, listener, reason)
	return 0
}

// A request refused at the bound while its client is still sending its
// body gets its 503: the connection was closed at once after the answer
// (Connection: close), and the client's next write met a reset, which Go's
// client, writing its body when it came, reported instead of the 503. It is
// closed as net/http closes one past http.MaxBytesReader's limit: the
// answer, a half-close, and the full close only after a delay.
func TestRefusedWhileSendingGetsTheAnswer(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxRequestsInFlight: 1})
	base := serveOn(t, srv)
	addr := strings.TrimPrefix(base, "http://")
	// The one place, held by a request whose body never ends.
	holder, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := io.WriteString(holder, "POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); gauge(t, srv.Metrics().Registry, "permatrix_requests_in_flight", "api") != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first request never took its place")
		}
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	answered := time.Now()
	if err != nil {
		t.Fatalf("a request refused at the bound: no answer: %v", err)
	}
	_, _ = io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a request past the bound: %d, want 503", res.StatusCode)
	}
	sendRestAfterAnswer(t, conn, br, answered, strings.Repeat(" ", 8<<10))
}
