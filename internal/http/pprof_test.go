package http_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// serveOn starts srv on a loopback port and returns its base URL.
func serveOn(t *testing.T, srv *permhttp.Server) string {
	t.Helper()
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return "http://" + addr.String()
}

// request sends method to url with token as the bearer token (none if
// empty) and returns the status and body.
func request(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
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

	off := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	if code, body := request(t, http.MethodGet, off+"/debug/pprof/heap", docTestToken); code != http.StatusNotFound {
		t.Errorf("without Pprof: %d %.200s, want 404", code, body)
	}
}
