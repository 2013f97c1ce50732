package http_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
