package http_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// A handler that returns an error after its status went out (an export
// whose store fails midway) cuts its response short, as a panic there
// does (TestPanicAfterTheStatusCutsTheResponseShort): the client gets an
// error reading the body, never a clean end to a partial answer, and no
// second status or body is written after the first; the failure is logged
// and counted once, with the status sent, as aborted. Also when the part
// sent was still in net/http's buffer (the client then gets no answer at
// all), and when the status sent was itself a 500.
func TestErrorAfterTheStatusCutsTheResponseShort(t *testing.T) {
	var logs harness.LockedBuffer
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	midway := func(status int, flush bool) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			c.Response().WriteHeader(status)
			_, _ = c.Response().Write([]byte("{\"partial\":\n"))
			if flush {
				c.Response().Flush()
			}
			return errors.New("the store failed midway")
		}
	}
	permhttp.AddRoute(srv, http.MethodGet, "/test/flushed", midway(http.StatusOK, true))
	permhttp.AddRoute(srv, http.MethodGet, "/test/buffered", midway(http.StatusOK, false))
	permhttp.AddRoute(srv, http.MethodGet, "/test/status500", midway(http.StatusInternalServerError, true))
	base := serveOn(t, srv)

	res, err := http.Get(base + "/test/flushed")
	if err != nil {
		t.Fatalf("GET /test/flushed: %v", err)
	}
	got, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("GET /test/flushed: an error after the status ended the response with %v, want unexpected EOF: %d %q", err, res.StatusCode, got)
	}
	if res.StatusCode != http.StatusOK || string(got) != "{\"partial\":\n" {
		t.Errorf("GET /test/flushed: %d %q, want 200 and the part sent, nothing after it", res.StatusCode, got)
	}

	if res, err := http.Get(base + "/test/buffered"); err == nil {
		got, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err == nil {
			t.Errorf("GET /test/buffered: an error after the status ended the response cleanly: %d %q", res.StatusCode, got)
		}
	}

	res, err = http.Get(base + "/test/status500")
	if err != nil {
		t.Fatalf("GET /test/status500: %v", err)
	}
	got, err = io.ReadAll(res.Body)
	_ = res.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || res.StatusCode != http.StatusInternalServerError || string(got) != "{\"partial\":\n" {
		t.Errorf("GET /test/status500: %d %q %v, want 500, the part sent and unexpected EOF", res.StatusCode, got, err)
	}

	reg := srv.Metrics().Registry
	for _, c := range []struct {
		url  string
		code string
	}{{"/test/flushed", "200"}, {"/test/buffered", "200"}, {"/test/status500", "500"}} {
		if n := abortedCount(t, reg, "GET", c.url); n != 1 {
			t.Errorf("permatrix_http_responses_aborted_total{url=%s} = %v, want 1", c.url, n)
		}
		if n, _ := httpMetric(t, reg, "permatrix_http_requests_total", c.code, "GET", c.url); n != 1 {
			t.Errorf("permatrix_http_requests_total{code=%s,url=%s} = %v, want 1 (the status sent)", c.code, c.url, n)
		}
		for _, other := range []string{"200", "500", "499"} {
			if n, _ := httpMetric(t, reg, "permatrix_http_requests_total", other, "GET", c.url); other != c.code && n != 0 {
				t.Errorf("permatrix_http_requests_total{code=%s,url=%s} = %v, want 0", other, c.url, n)
			}
		}
	}
	if n := strings.Count(logs.String(), "the store failed midway"); n != 3 {
		t.Errorf("the 3 failures logged %d times:\n%s", n, logs.String())
	}
	// The server goes on serving.
	if res, body := exchange(t, http.MethodGet, base+"/health", ""); res.StatusCode != http.StatusOK {
		t.Errorf("GET /health after the failures: %d %s", res.StatusCode, body)
	}
}
