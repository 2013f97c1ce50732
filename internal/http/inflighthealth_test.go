package http_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// TestHealthAnsweredAtTheBound: health probes were counted in
// --max-requests-in-flight, so with the bound held full by decisions (a
// burst, or one client's slow bodies) GET /health/live and /health/ready
// were 503 too: Kubernetes restarted a sidecar that was merely busy, and
// took it out of its Service. With four slow bodies holding a bound of
// four, a check is refused, and every health route (GET and HEAD) is
// answered 200, none counted as refused.
func TestHealthAnsweredAtTheBound(t *testing.T) {
	const bound = 4
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxRequestsInFlight: bound})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	reg := srv.Metrics().Registry
	var held []*keptConn
	for range bound {
		c := dialKept(t, addr.String())
		c.startBody(t)
		held = append(held, c)
	}
	deadline := time.Now().Add(10 * time.Second) // a guard only
	for gauge(t, reg, "permatrix_requests_in_flight", "api") < bound {
		if time.Now().After(deadline) {
			t.Fatal("the slow bodies are not in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := dialKept(t, addr.String())
	c.startBody(t)
	if code, err := c.answer(30 * time.Second); code != http.StatusServiceUnavailable {
		t.Fatalf("a check past the bound: %d %v, want 503", code, err)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, path := range []string{"/health/live", "/health/ready", "/health", "/health?bundles"} {
			c := dialKept(t, addr.String())
			if _, err := io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			res, err := http.ReadResponse(c.r, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s %s with the bound full: %d %s, want 200", method, path, res.StatusCode, body)
			}
			if method == http.MethodGet && !strings.Contains(string(body), `"ok"`) {
				t.Errorf("%s %s: %s", method, path, body)
			}
		}
	}
	if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"); n != 1 {
		t.Errorf("permatrix_requests_refused_total{reason=in_flight} = %v, want 1 (the check)", n)
	}
	if n := gauge(t, reg, "permatrix_requests_in_flight", "api"); n != bound {
		t.Errorf("%v requests in flight, want the %d slow bodies", n, bound)
	}
	// The held checks are served once their bodies come.
	for _, c := range held {
		c.endBody(t)
		if code, err := c.answer(30 * time.Second); code != http.StatusOK {
			t.Errorf("a held check: %d %v", code, err)
		}
	}
}

// TestHealthRequestsBounded: health requests have a bound of their own
// (32), so that a flood of them grows nothing either: with 32 held (a
// handler that waits, in place of /health/live's), eight more are refused
// at once, 503 with the envelope and Retry-After, counted as reason
// health; a check is still served, its bound untouched; once the held end
// the count of health requests in flight is 0 and a probe is answered.
func TestHealthRequestsBounded(t *testing.T) {
	const probes, past = 32, 8
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	entered, release := make(chan struct{}, probes+past), make(chan struct{})
	permhttp.AddRoute(srv, http.MethodGet, "/health/live", func(c echo.Context) error {
		entered <- struct{}{}
		<-release
		return c.String(http.StatusOK, "ok")
	})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	var held []*keptConn
	for range probes {
		c := dialKept(t, addr.String())
		c.send(t, "/health/live")
		held = append(held, c)
	}
	guard := time.After(30 * time.Second) // a guard only
	for range probes {
		select {
		case <-entered:
		case <-guard:
			t.Fatal("the probes are not held")
		}
	}
	for range past {
		c := dialKept(t, addr.String())
		c.send(t, "/health/live")
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		res, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), "as many health requests") {
			t.Errorf("a probe past the bound: %d %v %s", res.StatusCode, res.Header, body)
		}
	}
	if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "health"); n != past {
		t.Errorf("permatrix_requests_refused_total{reason=health} = %v, want %d", n, past)
	}
	if n := permhttp.HealthInFlight(srv); n != probes {
		t.Errorf("%d health requests in flight, want %d", n, probes)
	}
	// Decisions have their own bound.
	c := dialKept(t, addr.String())
	c.startBody(t)
	c.endBody(t)
	if code, err := c.answer(30 * time.Second); code != http.StatusOK {
		t.Errorf("a check with the probes' bound full: %d %v", code, err)
	}
	if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"); n != 0 {
		t.Errorf("permatrix_requests_refused_total{reason=in_flight} = %v, want 0", n)
	}
	close(release)
	for _, c := range held {
		if code, err := c.answer(30 * time.Second); code != http.StatusOK {
			t.Errorf("a held probe: %d %v", code, err)
		}
	}
	// Each held probe's place is given back before its answer is written.
	if n := permhttp.HealthInFlight(srv); n != 0 {
		t.Errorf("%d health requests in flight after they ended, want 0", n)
	}
	if n := gauge(t, srv.Metrics().Registry, "permatrix_requests_in_flight", "api"); n != 0 {
		t.Errorf("%v requests in flight after they ended, want 0", n)
	}
	c = dialKept(t, addr.String())
	c.send(t, "/health/ready")
	if code, err := c.answer(30 * time.Second); code != http.StatusOK {
		t.Errorf("a probe after the flood: %d %v", code, err)
	}
}
