package http_test

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/console"
	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestPprofBounded: a profile or trace asked for far longer than the request
// timeout ends with the request (and leaves no goroutine behind); paths
// that leave /debug/pprof/ in their text reach nothing else, with the token
// or without.
func TestPprofBounded(t *testing.T) {
	on := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Console: console.Handler(), Pprof: true, RequestTimeout: time.Second}))
	do := func(method, path, token string) (int, []byte) { return request(t, method, on+path, token) }
	do("GET", "/debug/pprof/cmdline", docTestToken) // the server is serving
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for _, p := range []string{"/debug/pprof/profile?seconds=100000", "/debug/pprof/trace?seconds=100000", "/debug/pprof/heap?seconds=100000", "/debug/pprof/profile"} {
		start := time.Now()
		code, _ := do("GET", p, docTestToken)
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("%s: %d after %s, the request timeout is 1s", p, code, took)
		}
	}
	for _, p := range []string{"/debug/pprof/../v1/export", "/debug/pprof/%2e%2e/v1/export", "/debug/pprof/heap%2F..%2F..%2Fv1%2Fexport", "/DEBUG/PPROF/heap"} {
		if code, body := do("GET", p, docTestToken); code != http.StatusNotFound {
			t.Errorf("GET %s with the token: %d %.100s, want 404", p, code, body)
		}
		if code, body := do("GET", p, ""); code != http.StatusUnauthorized && code != http.StatusNotFound {
			t.Errorf("GET %s without the token: %d %.100s", p, code, body)
		}
	}
	for _, m := range []string{http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if code, body := do(m, "/debug/pprof/heap", ""); code < 400 {
			t.Errorf("%s /debug/pprof/heap without the token: %d %.100s", m, code, body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for http.DefaultClient.CloseIdleConnections(); runtime.NumGoroutine() > before; http.DefaultClient.CloseIdleConnections() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before the profiles, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
