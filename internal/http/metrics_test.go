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
