package http_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// httpSeries counts the series of the per-request HTTP metrics and fails if
// any carries a host label.
func httpSeries(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "permatrix_http_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "code" && l.GetName() != "method" && l.GetName() != "url" {
					t.Fatalf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
			n++
		}
	}
	return n
}

// Clients choose the Host header, the path and the method: none of them
// may add series. Thousands of distinct ones leave the series count as a
// handful of requests made it.
func TestMetricsLabelsBounded(t *testing.T) {
	srv := newDocTestServer(t)
	h := srv.Handler()
	send := func(method, path, host string) {
		req := httptest.NewRequest(method, path, nil)
		req.Host = host
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	round := func(i int) {
		send(http.MethodGet, fmt.Sprintf("/junk/%d", i), "a")
		send(http.MethodGet, fmt.Sprintf("/v1/systems/s%d", i), "a")
		send(http.MethodPost, "/v1/check", "a")
		send(fmt.Sprintf("M%d", i), "/v1/check", "a")
		send(http.MethodGet, "/health", fmt.Sprintf("h%d.example", i))
		send(http.MethodDelete, fmt.Sprintf("/v1/data/x%d", i), "a")
	}
	for i := range 3 {
		round(i)
	}
	base := httpSeries(t, srv.Metrics().Registry)
	if base == 0 {
		t.Fatal("no HTTP series after requests")
	}
	for i := 3; i < 3000; i++ {
		round(i)
	}
	if n := httpSeries(t, srv.Metrics().Registry); n != base {
		t.Fatalf("%d HTTP series after 3,000 rounds of distinct hosts, paths and methods; %d after 3", n, base)
	}
}

// Each label set's metrics count its own requests, and only those: the
// middleware looks a label set's metrics up once and keeps them.
func TestMetricsCountEachLabelSet(t *testing.T) {
	srv := newDocTestServer(t)
	h := srv.Handler()
	send := func(method, path, body string, n int) {
		for range n {
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	send(http.MethodPost, "/v1/check", "{", 5)
	send(http.MethodGet, "/health", "", 3)
	send(http.MethodGet, "/junk", "", 2)
	send(http.MethodPost, "/v1/check", "{", 4)
	families, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			id := f.GetName() + strings.Join(labels, ",")
			switch {
			case m.GetCounter() != nil:
				got[id] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[id] = float64(m.GetHistogram().GetSampleCount())
				got[id+" sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	for id, want := range map[string]float64{
		"permatrix_http_requests_total400,POST,/v1/check":           9,
		"permatrix_http_request_duration_seconds400,POST,/v1/check": 9,
		"permatrix_http_request_size_bytes400,POST,/v1/check":       9,
		"permatrix_http_request_size_bytes400,POST,/v1/check sum":   9, // one byte each
		"permatrix_http_response_size_bytes400,POST,/v1/check":      9,
		"permatrix_http_requests_total200,GET,/health":              3,
		"permatrix_http_request_size_bytes200,GET,/health sum":      0,
		"permatrix_http_requests_total404,GET,unmatched":            2,
		"permatrix_http_request_duration_seconds404,GET,unmatched":  2,
		"permatrix_http_response_size_bytes404,GET,unmatched":       2,
	} {
		if got[id] != want {
			t.Errorf("%s = %v, want %v", id, got[id], want)
		}
	}
}

// httpMetric is a per-request metric's value for one label set: a
// counter's value, or a histogram's sample count and sum.
func httpMetric(t *testing.T, g prometheus.Gatherer, name, code, method, url string) (count, sum float64) {
	t.Helper()
	families, err := g.Gather()
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
			if labels["code"] != code || labels["method"] != method || labels["url"] != url {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), 0
			}
			return float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
		}
	}
	return 0, 0
}

// A handler that panics answers 500 (the recoverer): that request is
// counted like any other, with the status the client got — a panic is the
// failure the metrics most need to show.
func TestMetricsCountPanics(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken,
		Console: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("console") })})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for range 3 {
		res, err := http.Get(ts.URL + "/ui/x")
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("a panicking handler answered %d, want 500", res.StatusCode)
		}
	}
	if n, _ := httpMetric(t, srv.Metrics().Registry, "permatrix_http_requests_total", "500", "GET", "/ui/*"); n != 3 {
		t.Fatalf("permatrix_http_requests_total{code=500,method=GET,url=/ui/*} = %v after 3 panics answered 500, want 3", n)
	}
}

// The response size of an error answer is the error envelope's bytes the
// client got, not 0 (the envelope is written after the handler returns).
func TestMetricsErrorResponseSize(t *testing.T) {
	srv := newDocTestServer(t)
	h := srv.Handler()
	for _, c := range []struct {
		method, path, body, code, url string
	}{
		{http.MethodPost, "/v1/check", "{", "400", "/v1/check"},
		{http.MethodGet, "/junk", "", "404", "unmatched"},
		{http.MethodPost, "/v1/check", strings.Repeat(" ", 2<<20), "413", "/v1/check"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		if strconv.Itoa(rec.Code) != c.code || rec.Body.Len() == 0 {
			t.Fatalf("%s %s answered %d with %d bytes, want %s with an error envelope", c.method, c.path, rec.Code, rec.Body.Len(), c.code)
		}
		n, sum := httpMetric(t, srv.Metrics().Registry, "permatrix_http_response_size_bytes", c.code, c.method, c.url)
		if n != 1 || sum != float64(rec.Body.Len()) {
			t.Errorf("%s %s: response size observed %v times, sum %v; want once, %d bytes (the envelope sent)", c.method, c.path, n, sum, rec.Body.Len())
		}
	}
}

// Requests of label sets not seen before, made at once from many
// goroutines (each label set's metrics are created by whichever request
// comes first), are each counted once: no count lost to a racing creation.
func TestMetricsCountConcurrently(t *testing.T) {
	srv := newDocTestServer(t)
	h := srv.Handler()
	sets := []struct{ method, path, code, url string }{
		{http.MethodGet, "/health", "200", "/health"},
		{http.MethodPost, "/v1/check", "400", "/v1/check"},
		{"PROPFIND", "/v1/systems/x", "405", "/v1/systems/:system"},
		{http.MethodGet, "/junk", "404", "unmatched"},
	}
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each * len(sets) {
				s := sets[(g+i)%len(sets)]
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(s.method, s.path, strings.NewReader("{")))
			}
		}()
	}
	wg.Wait()
	for _, s := range sets {
		method := s.method
		if method == "PROPFIND" {
			method = "other"
		}
		for _, name := range []string{"permatrix_http_requests_total", "permatrix_http_request_duration_seconds",
			"permatrix_http_request_size_bytes", "permatrix_http_response_size_bytes"} {
			if n, _ := httpMetric(t, srv.Metrics().Registry, name, s.code, method, s.url); n != goroutines*each {
				t.Errorf("%s{code=%s,method=%s,url=%s} counted %v, want %d", name, s.code, method, s.url, n, goroutines*each)
			}
		}
	}
}

// A request body sent without a Content-Length (chunked) is counted as
// the bytes the handler read, not 0; one with a Content-Length as that.
func TestMetricsChunkedRequestSize(t *testing.T) {
	srv := newDocTestServer(t)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	body := `{"subject":"u1","system":"celonis-task-mining","action":"edit_users"}`
	for _, chunked := range []bool{true, false} {
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // no length known: the client sends it chunked
		}
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/check", r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("check answered %d", res.StatusCode)
		}
	}
	if n, sum := httpMetric(t, srv.Metrics().Registry, "permatrix_http_request_size_bytes", "200", "POST", "/v1/check"); n != 2 || sum != float64(2*len(body)) {
		t.Fatalf("request size observed %v times, sum %v; want twice, %d bytes (chunked and not)", n, sum, 2*len(body))
	}
}

// A response cut short is counted: a handler that panics with
// http.ErrAbortHandler (the recoverer passes it on, net/http drops the
// connection) after sending its status, with that status, and one that
// does so before sending any, as 500; both in
// permatrix_http_responses_aborted_total.
func TestMetricsCountAbortedResponses(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken,
		Console: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/midway") {
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"partial":`))
				w.(http.Flusher).Flush()
			}
			panic(http.ErrAbortHandler)
		})})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, path := range []string{"/ui/midway", "/ui/midway", "/ui/before"} {
		res, err := http.Get(ts.URL + path)
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		if err == nil {
			t.Fatalf("GET %s: the response was not cut short", path)
		}
	}
	if n, _ := httpMetric(t, srv.Metrics().Registry, "permatrix_http_requests_total", "200", "GET", "/ui/*"); n != 2 {
		t.Errorf("permatrix_http_requests_total{code=200,url=/ui/*} = %v after 2 responses cut short after their 200, want 2", n)
	}
	if n, _ := httpMetric(t, srv.Metrics().Registry, "permatrix_http_requests_total", "500", "GET", "/ui/*"); n != 1 {
		t.Errorf("permatrix_http_requests_total{code=500,url=/ui/*} = %v after 1 connection dropped before any status, want 1", n)
	}
	if n := abortedCount(t, srv.Metrics().Registry, "GET", "/ui/*"); n != 3 {
		t.Errorf("permatrix_http_responses_aborted_total{url=/ui/*} = %v, want 3", n)
	}
	// An error answered with its own status is not a response cut short.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader("{")))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("an invalid check answered %d", rec.Code)
	}
	if n := abortedCount(t, srv.Metrics().Registry, "POST", "/v1/check"); n != 0 {
		t.Errorf("a 400 answered whole counted as aborted (%v)", n)
	}
}

func abortedCount(t *testing.T, g prometheus.Gatherer, method, url string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "permatrix_http_responses_aborted_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["url"] == url {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A handler that panics with any value after its status went out cuts its
// response short, as http.ErrAbortHandler does: the client must not take
// the part it got for the whole answer (a 200 ended cleanly after half an
// export), and the metrics count it with the status sent, as aborted. A
// panic before any status is still answered 500 (TestMetricsCountPanics).
func TestPanicAfterTheStatusCutsTheResponseShort(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken,
		Console: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("{\"partial\":\n"))
			w.(http.Flusher).Flush()
			if strings.HasSuffix(r.URL.Path, "/error") {
				panic(fmt.Errorf("midway"))
			}
			panic("midway")
		})})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, path := range []string{"/ui/string", "/ui/error"} {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		got, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err == nil {
			t.Errorf("GET %s: a panic midway ended the response cleanly: %d, %q", path, res.StatusCode, got)
		}
	}
	if n, _ := httpMetric(t, srv.Metrics().Registry, "permatrix_http_requests_total", "200", "GET", "/ui/*"); n != 2 {
		t.Errorf("permatrix_http_requests_total{code=200,url=/ui/*} = %v, want 2", n)
	}
	if n := abortedCount(t, srv.Metrics().Registry, "GET", "/ui/*"); n != 2 {
		t.Errorf("permatrix_http_responses_aborted_total{url=/ui/*} = %v after 2 panics midway, want 2", n)
	}
}

// A request that expects 100-continue and is answered without its body
// being read (refused before it: no token) gets its answer at once, and the
// connection is closed, as net/http does for a handler that never asked
// for the body: counting a body's bytes must not hide the request's own
// body from net/http (it then read the body the client was asked to hold,
// waiting for bytes the client sends only after a 100 Continue).
func TestMetricsKeepExpectContinue(t *testing.T) {
	srv := newDocTestServer(t)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, path := range []string{"/v1/import", "/v1/assignments", "/v1/check"} {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close() // also on failure: the server may wait on it
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		// /v1/check reads its body: it asks for it (100 Continue) and
		// answers once it came.
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n\r\n", path)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("POST %s expecting 100-continue: no answer (%v)", path, err)
		}
		if path == "/v1/check" {
			if res.StatusCode != http.StatusContinue {
				t.Fatalf("POST %s: %d, want 100 Continue", path, res.StatusCode)
			}
			body := `{"subject":"u1","system":"celonis-task-mining","action":"edit_users"}`
			if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\n\r\n", len(body), body); err != nil {
				t.Fatal(err)
			}
			if res, err = http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("POST %s after 100 Continue: %v, %v", path, res, err)
			}
		} else if res.StatusCode != http.StatusUnauthorized || !res.Close {
			t.Fatalf("POST %s without a token expecting 100-continue: %d (close %v), want 401 and the connection closed", path, res.StatusCode, res.Close)
		}
		_ = res.Body.Close()
		conn.Close()
	}
}
