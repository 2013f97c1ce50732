package http_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// TestRequestsInFlightSharedByClients: with --max-connections-per-client,
// one client holds at most a quarter of --max-requests-in-flight. Without
// it a client with a few connections of slow bodies held every place of
// the bound (the bound is shared by all clients), and every other
// client's checks were refused, though each client's connections were
// bounded. The client past its share is answered 503 at once and counted
// apart (reason in_flight_per_client); a place it gives back is its
// again. Without a per-client bound there are no shares. A refusal is not
// logged (as one at the whole bound is not): each was an error line, "request
// failed", a line for every request a client sent past its share.
func TestRequestsInFlightSharedByClients(t *testing.T) {
	ip := nonLoopbackIP(t) // loopback clients are not bounded
	for _, tc := range []struct {
		name      string
		perClient int
		held      int // of five slow bodies, those in flight at once
	}{
		{"with a per-client bound", 100, 2},
		{"without", 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged harness.LockedBuffer
			srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxConnectionsPerClient: tc.perClient,
				MaxRequestsInFlight: 8, AllowedHosts: []string{ip}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
			if err != nil {
				t.Fatal(err)
			}
			harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
			head := fmt.Sprintf("POST /v1/check HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", ip, len(checkBody))
			var conns []*keptConn
			for range 5 {
				c := dialKept(t, addr.String())
				if _, err := io.WriteString(c, head+checkBody[:1]); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			// Each is held or refused (a refusal's answer is written once
			// its body has come: net/http reads a small body's rest first).
			reg := srv.Metrics().Registry
			deadline := time.Now().Add(10 * time.Second)
			for gauge(t, reg, "permatrix_requests_in_flight", "api")+counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight_per_client") < 5 {
				if time.Now().After(deadline) {
					t.Fatal("the five requests neither held nor refused")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n := gauge(t, reg, "permatrix_requests_in_flight", "api"); n != float64(tc.held) {
				t.Fatalf("%v of 5 slow bodies held, want %d", n, tc.held)
			}
			want := float64(5 - tc.held)
			if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight_per_client"); n != want {
				t.Errorf("permatrix_requests_refused_total{reason=in_flight_per_client} = %v, want %v", n, want)
			}
			if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"); n != 0 {
				t.Errorf("permatrix_requests_refused_total{reason=in_flight} = %v, want 0", n)
			}
			// The refused are answered at once, their bodies unsent (their
			// connections closed: net/http would otherwise read a small
			// body's rest before it answers); the held, once their bodies
			// end.
			answered := make(chan *http.Response, len(conns))
			for _, c := range conns {
				go func() {
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					res, err := http.ReadResponse(c.r, nil)
					if err != nil {
						t.Error(err)
						answered <- nil
						return
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					res.Body = io.NopCloser(strings.NewReader(string(body)))
					answered <- res
				}()
			}
			readRes := func() (*http.Response, string) {
				res := <-answered
				if res == nil {
					t.FailNow()
				}
				body, _ := io.ReadAll(res.Body)
				return res, string(body)
			}
			for range 5 - tc.held {
				res, body := readRes()
				if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "as one client may") || res.Header.Get("Retry-After") == "" {
					t.Errorf("a refused request: %d %s", res.StatusCode, body)
				}
			}
			if strings.Contains(logged.String(), "request failed") {
				t.Errorf("the refusals were logged as failures:\n%s", logged.String())
			}
			for _, c := range conns {
				_, _ = io.WriteString(c, checkBody[1:]) // a refused one's connection is closed
			}
			for range tc.held {
				if res, body := readRes(); res.StatusCode != http.StatusOK {
					t.Errorf("a held request: %d %s", res.StatusCode, body)
				}
			}
			// Its places given back, the client's next request is served.
			c := dialKept(t, addr.String())
			if _, err := io.WriteString(c, head+checkBody); err != nil {
				t.Fatal(err)
			}
			if code, err := c.answer(30 * time.Second); code != http.StatusOK {
				t.Errorf("a request after the places were given back: %d %v", code, err)
			}
		})
	}
}
