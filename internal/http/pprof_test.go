package http_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// serveOn starts srv on a loopback port and returns its base URL.
func serveOn(t *testing.T, srv *permhttp.Server) string {
	t.Helper()
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	return "http://" + addr.String()
}

// request sends method to url with token as the bearer token (none if
// empty) and returns the status and body.
func request(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	return requestBody(t, method, url, token, nil)
}

func requestBody(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	res, b := exchangeBody(t, method, url, token, body)
	return res.StatusCode, b
}

// exchangeBody sends method to url with body and token as the bearer
// token (none if empty), and returns the response with its body read.
func exchangeBody(t *testing.T, method, url, token string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return res, b
}

// post sends body to url as go tool pprof does, with token as the bearer
// token (none if empty).
func post(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	return requestBody(t, http.MethodPost, url, token, strings.NewReader(body))
}

// TestPprof: the runtime profiles are the operator's, and only with
// Config.Pprof (serve --pprof).
func TestPprof(t *testing.T) {
	on := serveOn(t, newDocTestServer(t)) // Pprof: true
	if code, body := request(t, http.MethodGet, on+"/debug/pprof/heap", ""); code != http.StatusUnauthorized {
		t.Errorf("heap without the token: %d %s, want 401", code, body)
	}
	if code, body := request(t, http.MethodGet, on+"/debug/pprof/heap", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("heap with a wrong token: %d %s, want 401", code, body)
	}
	code, body := request(t, http.MethodGet, on+"/debug/pprof/heap", docTestToken)
	if code != http.StatusOK {
		t.Fatalf("heap: %d %s", code, body)
	}
	// A profile is gzipped protobuf: it must open as gzip and hold data.
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("heap profile is not gzip: %v (%q…)", err, body[:min(len(body), 40)])
	}
	if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
		t.Fatalf("heap profile: %d bytes, %v", len(raw), err)
	}
	if code, body := request(t, http.MethodGet, on+"/debug/pprof/", docTestToken); code != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Errorf("index: %d %.200s", code, body)
	}
	if code, body := request(t, http.MethodGet, on+"/debug/pprof/profile?seconds=1", docTestToken); code != http.StatusOK || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", code, len(body))
	}
	if code, _ := request(t, http.MethodGet, on+"/debug/pprof/no-such-profile", docTestToken); code != http.StatusNotFound {
		t.Errorf("an unknown profile: %d, want 404", code)
	}
	// Longer than the request timeout (10 s) allows: refused, not cut short.
	for q, msg := range map[string]string{
		"profile?seconds=10":  "longer than the request timeout",
		"profile?seconds=1.5": "a whole one but for a trace",
		"trace?seconds=9.6":   "longer than the request timeout",
		"heap?seconds=3600":   "longer than the request timeout",
		"profile?seconds=-1":  "want a positive number",
		"trace?seconds=abc":   "want a positive number",
		"goroutine?seconds=0": "want a positive number",
	} {
		if code, body := request(t, http.MethodGet, on+"/debug/pprof/"+q, docTestToken); code != http.StatusBadRequest || !bytes.Contains(body, []byte(msg)) {
			t.Errorf("%s: %d %.200s, want 400 with %q", q, code, body, msg)
		}
	}
	// go tool pprof posts program counters to symbol; nothing else takes POST.
	if code, body := post(t, on+"/debug/pprof/symbol", docTestToken, "0x1"); code != http.StatusOK || !bytes.Contains(body, []byte("num_symbols")) {
		t.Errorf("POST symbol: %d %.200s", code, body)
	}
	if code, body := post(t, on+"/debug/pprof/symbol", "", "0x1"); code != http.StatusUnauthorized {
		t.Errorf("POST symbol without the token: %d %.200s, want 401", code, body)
	}
	if code, body := post(t, on+"/debug/pprof/heap", docTestToken, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST heap: %d %.200s, want 405", code, body)
	}
	// /debug/pprof is the index's address without its slash.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, on+"/debug/pprof", nil)
	req.Header.Set("Authorization", "Bearer "+docTestToken)
	if res, err := noRedirect.Do(req); err != nil || res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/debug/pprof/" {
		t.Errorf("GET /debug/pprof: %v %v, want 301 to /debug/pprof/", res, err)
	} else {
		res.Body.Close()
	}
	if code, _ := request(t, http.MethodGet, on+"/debug/pprof", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /debug/pprof without the token: %d, want 401", code)
	}

	off := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	if code, body := request(t, http.MethodGet, off+"/debug/pprof/heap", docTestToken); code != http.StatusNotFound {
		t.Errorf("without Pprof: %d %.200s, want 404", code, body)
	}
}

// A ?seconds= whose duration overflows time.Duration, NaN or an infinity
// is refused like any other the timeout cannot hold (400, the error
// envelope) — not passed to net/http/pprof, which sets the write deadline
// from it (an overflowed one is in the past: the connection was dropped
// without an answer) and profiles until the request timeout cuts it. A
// named profile's seconds (a delta profile) is a whole number, as pprof
// reads it; only a trace takes a fraction.
func TestPprofSecondsOutOfRange(t *testing.T) {
	on := serveOn(t, newDocTestServer(t)) // Pprof: true, request timeout 10 s
	for _, q := range []string{
		"profile?seconds=9223372036854775807", "profile?seconds=9223372036854775",
		"trace?seconds=1e300", "trace?seconds=NaN", "trace?seconds=%2BInf", "trace?seconds=-Inf", "trace?seconds=Inf",
		"heap?seconds=9223372036854775807", "heap?seconds=1.5", "goroutine?seconds=1e300",
	} {
		req, err := http.NewRequest(http.MethodGet, on+"/debug/pprof/"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+docTestToken)
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s: %v after %v, want 400", q, err, time.Since(start))
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"invalid"`)) || !bytes.Contains(body, []byte("seconds=")) {
			t.Errorf("%s: %d %.200q after %v, want 400 (invalid) naming seconds", q, res.StatusCode, body, time.Since(start))
		}
	}
}

// TestPprofOneAtATime: the process has one CPU profiler and one tracer; of
// two profiles (or traces) asked at once, one is taken and the other is a
// 409 in the API's envelope.
func TestPprofOneAtATime(t *testing.T) {
	on := serveOn(t, newDocTestServer(t))
	type answer struct {
		code int
		body []byte
	}
	for _, p := range []string{"profile?seconds=2", "trace?seconds=2"} {
		answers := make(chan answer, 2)
		for i := range 2 {
			go func() {
				time.Sleep(time.Duration(i) * 300 * time.Millisecond) // the second while the first runs
				code, body := request(t, http.MethodGet, on+"/debug/pprof/"+p, docTestToken)
				answers <- answer{code, body}
			}()
		}
		a, b := <-answers, <-answers
		if a.code == http.StatusOK {
			a, b = b, a
		}
		if a.code != http.StatusConflict || b.code != http.StatusOK || !bytes.Contains(a.body, []byte(`"code":"conflict"`)) || !bytes.Contains(a.body, []byte("already")) {
			t.Errorf("%s twice at once: %d %.100q and %d; want one 409 in the envelope and one 200", p, a.code, a.body, b.code)
		}
	}
}
