package extauthz_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// grpcFlood is one connection opening as many Check streams as the server
// allows, each with a header list near the 16 KiB bound (one indexed
// header named 440 times: some 450 bytes on the wire) and the start of a
// 1 MiB message that never ends.
type grpcFlood struct {
	conn    net.Conn
	fr      *http2.Framer
	streams uint32 // what the server's SETTINGS allow

	mu      sync.Mutex
	answers map[uint32]*grpcAnswer
	pinged  chan struct{}   // closed with the PING's ack: every stream's headers read
	settled chan<- struct{} // a signal as a stream ends
}

type grpcAnswer struct {
	status string // grpc-status
	body   []byte // the response message(s), framed
	ended  bool
}

func dialGRPCFlood(t *testing.T, addr string, settled chan<- struct{}) *grpcFlood {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(90 * time.Second)) // a guard only
	f := &grpcFlood{conn: conn, fr: http2.NewFramer(conn, conn), answers: map[uint32]*grpcAnswer{},
		pinged: make(chan struct{}), settled: settled}
	f.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := f.fr.WriteSettings(); err != nil {
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
	f.streams = 1000 // a guard: the server announces its bound
	if n, ok := settings.Value(http2.SettingMaxConcurrentStreams); ok {
		f.streams = n
	}
	if err := f.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	go f.readFrames()
	return f
}

func (f *grpcFlood) readFrames() {
	for {
		fr, err := f.fr.ReadFrame()
		if err != nil {
			return
		}
		f.mu.Lock()
		a := f.answers[fr.Header().StreamID]
		if a == nil && fr.Header().StreamID != 0 {
			a = &grpcAnswer{}
			f.answers[fr.Header().StreamID] = a
		}
		switch fr := fr.(type) {
		case *http2.PingFrame:
			if fr.IsAck() {
				close(f.pinged)
			}
		case *http2.MetaHeadersFrame:
			for _, hf := range fr.RegularFields() {
				if hf.Name == "grpc-status" {
					a.status = hf.Value
				}
			}
			if fr.StreamEnded() && !a.ended {
				a.ended = true
				f.settled <- struct{}{}
			}
		case *http2.DataFrame:
			a.body = append(a.body, fr.Data()...)
		case *http2.RSTStreamFrame:
			if !a.ended {
				a.ended = true
				if a.status == "" {
					a.status = "RST_STREAM " + fr.ErrCode.String()
				}
				f.settled <- struct{}{}
			}
		}
		f.mu.Unlock()
	}
}

// open sends every stream the server allows, then a PING: its ack comes
// once the server has read every stream's headers.
func (f *grpcFlood) open(t *testing.T) int {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	// The start of a 1 MiB message: its gRPC prefix and 100 bytes.
	data := make([]byte, 5+100)
	binary.BigEndian.PutUint32(data[1:], 1<<20)
	sent := 0
	for i := range f.streams {
		block.Reset()
		for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: authv3.Authorization_Check_FullMethodName}, {Name: ":authority", Value: "permatrix"},
			{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}, {Name: "x-a", Value: "b"}} {
			if err := enc.WriteField(hf); err != nil {
				t.Fatal(err)
			}
		}
		block.Write(bytes.Repeat([]byte{0x80 | 62}, 440-1))
		id := 1 + 2*i
		if err := f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		if err := f.fr.WriteData(id, false, data); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
		sent += 9 + block.Len() + 9 + len(data)
	}
	if err := f.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	return sent
}

// TestCallsInFlightBounded: as the HTTP API's, the gRPC listener's calls
// in flight were bounded only by its connections times its streams (250 a
// connection), each holding a header list of up to 64 KiB (16 KiB now), filled by
// HPACK from a byte a field, and its message as it came, for the check's
// timeout. Eight connections each open every stream the server allows,
// a header list near the bound and a message that never ends on each:
// the server announces at most 100 streams a connection, holds
// MaxRequestsInFlight (64) calls, answers every other check at once with
// a CheckResponse, UNAVAILABLE (503) — never a gRPC error, which Envoy's
// failure_mode_allow would let through — without reading its message,
// and its heap in use grows by less than 24 MiB (it grew by 275 MiB,
// 2,000 calls held, from 3.7 MB sent).
func TestCallsInFlightBounded(t *testing.T) {
	const conns, bound = 8, 64
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxRequestsInFlight: bound,
		// The calls held wait for their message past the test's end.
		Timeout: 2 * time.Minute})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	// One check first, so that what a server's first call allocates once
	// is not counted.
	c := client(t, addr.String(), insecure.NewCredentials())
	if _, err := c.Check(t.Context(), request("GET", "/", nil, nil)); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	floods := make([]*grpcFlood, conns)
	settled := make(chan struct{}, conns*1000)
	total, sent := 0, 0
	for i := range floods {
		floods[i] = dialGRPCFlood(t, addr.String(), settled)
		if floods[i].streams > 100 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want at most 100", floods[i].streams)
		}
		sent += floods[i].open(t)
		total += int(floods[i].streams)
	}
	for _, f := range floods {
		<-f.pinged
	}
	// The calls past the bound end; the others wait for their message.
	// (Without a bound none ends: the guard ends the wait.)
	guard := time.After(10 * time.Second)
	refused := 0
wait:
	for refused < total-bound {
		select {
		case <-settled:
			refused++
		case <-guard:
			break wait
		}
	}
	// Twice: gRPC's buffer pools keep what the first leaves them.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d connections, %d streams (%d refused): %d bytes sent, heap in use grew by %.1f MiB",
		conns, total, refused, sent, float64(grew)/(1<<20))
	if refused != total-bound {
		t.Errorf("%d of %d calls ended, want all but the bound, %d", refused, total, bound)
	}
	for _, f := range floods {
		f.mu.Lock()
		for id, a := range f.answers {
			if !a.ended {
				continue
			}
			if a.status != "0" || len(a.body) < 5 {
				t.Errorf("stream %d: grpc-status %s, %d bytes: want a CheckResponse", id, a.status, len(a.body))
				continue
			}
			var resp authv3.CheckResponse
			if err := proto.Unmarshal(a.body[5:], &resp); err != nil {
				t.Errorf("stream %d: %v", id, err)
				continue
			}
			var env struct{ Error struct{ Code string } }
			_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &env)
			if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != 503 || env.Error.Code != "unavailable" {
				t.Errorf("stream %d: %v, want UNAVAILABLE, 503 with the envelope", id, &resp)
			}
		}
		f.mu.Unlock()
	}
	// Some 150 KiB a call held: 10–13 MiB measured.
	if grew > 24<<20 {
		t.Errorf("heap in use grew by %.1f MiB with %d calls in flight, want under 24 MiB", float64(grew)/(1<<20), total)
	}
	if srv.Requests().InFlight() != bound || srv.Requests().RefusedInFlight() != uint64(refused) {
		t.Errorf("%d calls in flight, %d refused; want %d, %d", srv.Requests().InFlight(), srv.Requests().RefusedInFlight(), bound, refused)
	}
}
