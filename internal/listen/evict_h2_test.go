package listen_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// TestHTTP2AnswerNotLostToEviction: an HTTP/2 connection goes idle when
// its last stream closes — as x/net's server writes the stream's last
// frame into its buffer, before it flushes it. Closed to make room then,
// the connection took the answer with it: the request was served (a
// write made), and its client got no answer. It is closed once its
// answer is out.
func TestHTTP2AnswerNotLostToEviction(t *testing.T) {
	certs := harness.NewCerts(t)
	tlsCfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := listen.Limit(raw, 1, 0)
	// Not closed for the grace's end: only once its answer is out.
	listen.SetFlushGrace(ln, time.Hour)
	var writes atomic.Int32
	srv := &http.Server{TLSConfig: tlsCfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writes.Add(1)
		io.WriteString(w, "written")
	})}
	if err := http2.ConfigureServer(srv, &http2.Server{}); err != nil {
		t.Fatal(err)
	}
	ln.Track(srv)
	track := srv.ConnState
	newcomers := make(chan net.Conn, 1)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		track(c, s)
		// Idle once the request is served: a new client comes, and the
		// listener closes this connection, idle, to make room for it.
		if s == http.StateIdle && writes.Load() == 1 && ln.Evicted() == 0 {
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				newcomers <- nil
				return
			}
			newcomers <- nc
			// Until the listener has closed this connection for the
			// new one, or waits to.
			for ln.Evicted() == 0 && !ln.Waiting() {
				time.Sleep(time.Millisecond)
			}
		}
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	clientCfg := certs.ClientTLS(false)
	clientCfg.NextProtos = []string{http2.NextProtoTLS}
	conn, err := tls.Dial("tcp", ln.Addr().String(), clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard only
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
		{Name: ":path", Value: "/write"}, {Name: ":authority", Value: "127.0.0.1"}} {
		if err := enc.WriteField(hf); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// Read until the connection closes: closed to make room.
	answered := false
	var readErr error
	for readErr == nil {
		f, err := fr.ReadFrame()
		readErr = err
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			answered = answered || f.StreamID == 1 && f.StreamEnded()
		case *http2.MetaHeadersFrame:
			answered = answered || f.StreamID == 1 && f.StreamEnded()
		}
	}
	if nc := <-newcomers; nc != nil {
		defer nc.Close()
	}
	if ln.Evicted() != 1 {
		t.Fatalf("%d connections closed to make room, want 1", ln.Evicted())
	}
	if !answered {
		t.Fatalf("a request served (%d writes) on an HTTP/2 connection then closed to make room: its answer was lost (%v)", writes.Load(), readErr)
	}
}
