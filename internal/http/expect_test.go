package http_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A request with a Content-Length that expects 100-continue and is
// answered without its body being read — refused before it (no token, no
// route) — gets its answer at once and the connection is closed, as
// net/http does for a body never asked for. The body limit and the
// decompression replace a request's Body; net/http decides by the type of
// its own request's Body, which must stay its own. Before, the server
// read the body the client holds until a 100 Continue, and answered
// nothing until the client gave up waiting and sent it.
func TestExpectContinueRefusedAtOnce(t *testing.T) {
	srv := newDocTestServer(t)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, c := range []struct {
		path, encoding string
		want           int
	}{
		{"/v1/assignments", "", http.StatusUnauthorized},
		{"/v1/assignments", "gzip", http.StatusUnauthorized},
		{"/v1/import", "gzip", http.StatusUnauthorized},
		{"/v1/import", "", http.StatusUnauthorized},
		{"/nope", "", http.StatusNotFound},
		{"/v1/check", "", http.StatusContinue}, // a body read: asked for
	} {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close() // also on failure: the server may wait on it
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n", c.path)
		if c.encoding != "" {
			head += "Content-Encoding: " + c.encoding + "\r\n"
		}
		if _, err := fmt.Fprint(conn, head+"\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("POST %s (%q) expecting 100-continue: no answer (%v)", c.path, c.encoding, err)
			continue
		}
		_ = res.Body.Close()
		if res.StatusCode != c.want || (c.want != http.StatusContinue && !res.Close) {
			t.Errorf("POST %s (%q) expecting 100-continue: %d (close %v), want %d and the connection closed", c.path, c.encoding, res.StatusCode, res.Close, c.want)
		}
	}
}
