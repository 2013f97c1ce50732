package http

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/http2"

	"github.com/permatrix/permatrix"
)

// Request header limits. Headers up to maxHeaderBytes reach the server's
// middleware, which refuses those over HeaderLimit with the JSON envelope
// (431). Only beyond maxHeaderBytes does net/http refuse them itself; its
// answer is then rewritten into the envelope by envelopeConn.
const (
	// HeaderLimit is the largest request head accepted: request line plus
	// headers, in bytes. Room for large bearer tokens and proxy headers.
	HeaderLimit = 64 << 10
	// maxHeaderBytes is http.Server.MaxHeaderBytes.
	maxHeaderBytes = 1 << 20
)

// MaxConcurrentStreams is the most streams (requests) one HTTP/2
// connection has open at once: the least RFC 9113 recommends, what Google's
// front ends announce, near nginx's 128 (x/net's default is 250). Each
// holds up to a header list of HeaderLimit and its body; the requests of
// all connections together are bounded by Config.MaxRequestsInFlight.
const MaxConcurrentStreams = 100

// boundHTTP2 serves srv's HTTP/2 connections (over TLS) with a header list
// bound of HeaderLimit. net/http derives HTTP/2's from MaxHeaderBytes, and
// at its 1 MiB HPACK let a client name a header indexed once again and
// again, a byte each, and have a megabyte of header fields decoded per
// request: 654 KiB sent were 114 MiB allocated. MaxHeaderBytes stays as it
// is for HTTP/1.1, whose heads up to it get the middleware's envelope
// (limitHeaders). net/http (Go 1.26) has no setting of its own for the
// bound, so HTTP/2 is x/net's server, handed an http.Server that differs
// from srv only in MaxHeaderBytes; srv's Shutdown still ends its
// connections gracefully (http2.ConfigureServer hooks it).
func boundHTTP2(srv *http.Server) error {
	base := &http.Server{
		Handler:           srv.Handler,
		ReadHeaderTimeout: srv.ReadHeaderTimeout,
		ReadTimeout:       srv.ReadTimeout,
		WriteTimeout:      srv.WriteTimeout,
		IdleTimeout:       srv.IdleTimeout,
		MaxHeaderBytes:    HeaderLimit,
		ConnState:         srv.ConnState,
		ErrorLog:          srv.ErrorLog,
	}
	// ConfigureServer adds h2 to the TLS configuration's protocols: srv's
	// own copy, not the one the gRPC server shares.
	if srv.TLSConfig != nil {
		srv.TLSConfig = srv.TLSConfig.Clone()
	}
	if err := http2.ConfigureServer(srv, &http2.Server{MaxConcurrentStreams: MaxConcurrentStreams}); err != nil {
		return err
	}
	serve := srv.TLSNextProto[http2.NextProtoTLS]
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		http2.NextProtoTLS: func(_ *http.Server, c *tls.Conn, h http.Handler) {
			// net/http bounds the handshake by ReadHeaderTimeout and then
			// lifts its deadline; x/net gives the preface 10 s of its own
			// and a connection past it no bound until the idle timeout.
			// As an HTTP/1.1 connection's first head, the preface and the
			// first request's headers get ReadHeaderTimeout from here: x/net
			// lifts the deadline once it has read those headers (as base
			// has a ReadTimeout, which then bounds each request instead).
			if d := base.ReadHeaderTimeout; d > 0 {
				_ = c.SetReadDeadline(time.Now().Add(d))
			}
			serve(base, c, h)
		},
	}
	return nil
}

// limitHeaders answers 431 with the envelope for a request head over
// HeaderLimit.
func limitHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > HeaderLimit {
			return permatrix.Errorf(permatrix.EHEADERS, "request headers are %d bytes, over the limit of %d", n, HeaderLimit)
		}
		return next(c)
	}
}

// envelopeListener wraps accepted connections in envelopeConn.
type envelopeListener struct{ net.Listener }

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &envelopeConn{Conn: c}, nil
}

// envelopeConn gives the answers net/http writes on its own the JSON error
// envelope. net/http refuses a request it cannot parse — a malformed
// request line or URL escape, a bad header line, headers over
// MaxHeaderBytes, an unknown transfer coding, a bad Host — before any
// handler runs, writing a fixed text/plain answer straight to the
// connection in one Write and closing it; likewise 417 for an Expect header
// other than 100-continue. Those writes are recognised by their exact form
// (a handler's answer always carries a Date header, these never do) and
// replaced by the same status with the envelope as body. Everything else
// passes through untouched.
//
// It sees plaintext only: under TLS the listener holds the tls.Conn, and
// these answers stay net/http's (docs/security.md).
type envelopeConn struct{ net.Conn }

// netHTTPErrorHeaders are the headers net/http writes with its own errors.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *envelopeConn) Write(p []byte) (int, error) {
	if out, ok := envelopeFor(p); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps net/http's graceful close (it half-closes TCP
// connections after an error answer when it can).
func (c *envelopeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn is the connection it wraps: the listener's ConnState finds its
// own connection through it.
func (c *envelopeConn) NetConn() net.Conn { return c.Conn }

// ReadFrom keeps sendfile and splice for large answers.
func (c *envelopeConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// envelopeFor rewrites one of net/http's own error answers, reporting
// whether p was one.
func envelopeFor(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' {
		return nil, false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	var msg string
	if line, body, ok := bytes.Cut(rest, []byte(netHTTPErrorHeaders)); ok && !bytes.Contains(line, []byte("\r\n")) {
		// net/http's "400 Bad Request[: text]" carries its reason, if any,
		// after the status text.
		_, reason, _ := bytes.Cut(body, []byte(http.StatusText(status)))
		reason = bytes.TrimPrefix(reason, []byte(": "))
		switch {
		case status == http.StatusRequestHeaderFieldsTooLarge:
			msg = fmt.Sprintf("request headers are over %d bytes", maxHeaderBytes)
		case len(reason) > 0:
			msg = "malformed HTTP request: " + string(reason)
		case status == http.StatusNotImplemented:
			msg = "unsupported transfer encoding"
		default:
			msg = "malformed HTTP request: bad request line, URL escape, header line or framing"
		}
	} else if status == http.StatusExpectationFailed && bytes.HasSuffix(p, []byte("\r\n\r\n")) {
		// No handler answers 417; net/http's has no body.
		msg = "unsupported Expect header: only 100-continue is understood"
	} else {
		return nil, false
	}
	body, _ := json.Marshal(errorBody{Error: errorDetail{Code: errorCode(status), Message: msg}})
	body = append(body, '\n')
	out := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	return append(out, body...), true
}

// ownRequestBody hands the handlers a copy of a request that expects
// 100-continue. The metrics (a chunked body), the body limit and the
// decompression replace a request's Body; net/http decides, once the
// answer goes out, whether the client was asked for the body it holds back
// by the type of its own request's Body — replaced, it read the body it
// never asked for instead of answering, while the client waited for a 100
// Continue. It runs before all of them.
func ownRequestBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := c.Request(); r.Header.Get("Expect") != "" {
			own := *r
			c.SetRequest(&own)
		}
		return next(c)
	}
}
