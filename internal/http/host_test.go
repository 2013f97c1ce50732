package http_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// hostClient gives up on an answer that never comes, rather than the test.
var hostClient = &http.Client{Timeout: 30 * time.Second}

// getAs sends GET url with Host host and returns the status and body.
func getAs(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	res, err := hostClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestHostOnLoopback: a request that reached a loopback address under a
// name that is not localhost (a page's own name pointed at 127.0.0.1: DNS
// rebinding) is refused, 400 saying why, on every route and on the
// diagnostic listener; localhost, a name without a dot, a name under
// .localhost and any IP address are served, and so are the names
// --allowed-hosts gives.
func TestHostOnLoopback(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	// Before Serve: it serves the listeners bound when it starts.
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, srv)
	for _, url := range []string{base + "/health", base + "/v1/systems", base + "/v1/subjects/alice/permissions", "http://" + diag.String() + "/metrics"} {
		for _, host := range []string{"evil.example", "evil.example:8181", "127.0.0.1.evil.example", "localhost.evil.example", "0x7f.1", "[]:8181"} {
			status, body := getAs(t, url, host)
			if status != http.StatusBadRequest || !strings.Contains(body, "DNS rebinding") || !strings.Contains(body, "--allowed-hosts") {
				t.Errorf("GET %s as %q: %d %s, want 400 naming DNS rebinding", url, host, status, body)
			}
		}
		for _, host := range []string{"localhost", "localhost:8181", "LocalHost.:8181", "app.localhost", "permatrix", "x:8181", "127.0.0.1:8181", "[::1]:8181", "10.1.2.3"} {
			if status, body := getAs(t, url, host); status == http.StatusBadRequest {
				t.Errorf("GET %s as %q: %d %s, want it served", url, host, status, body)
			}
		}
	}

	allowed := serveOn(t, newTestServer(t, permhttp.Config{AllowedHosts: []string{"PDP.internal:8181"}}))
	if status, body := getAs(t, allowed+"/health", "pdp.internal"); status != http.StatusOK {
		t.Errorf("an allowed name: %d %s", status, body)
	}
	if status, _ := getAs(t, allowed+"/health", "evil.example"); status != http.StatusBadRequest {
		t.Errorf("a name not allowed: %d, want 400", status)
	}
	anyHost := serveOn(t, newTestServer(t, permhttp.Config{AllowedHosts: []string{"*"}}))
	if status, body := getAs(t, anyHost+"/health", "evil.example"); status != http.StatusOK {
		t.Errorf("--allowed-hosts '*': %d %s", status, body)
	}
}

// TestHostOffLoopback: on an address other than loopback any name is
// served (a fleet's service name, a pod's address) unless --allowed-hosts
// gives the names, which then hold there too.
func TestHostOffLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	srv := newTestServer(t, permhttp.Config{})
	addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	if status, body := getAs(t, "http://"+addr.String()+"/health", "permatrix.default.svc"); status != http.StatusOK {
		t.Errorf("off loopback, no --allowed-hosts: %d %s", status, body)
	}

	held := newTestServer(t, permhttp.Config{AllowedHosts: []string{"permatrix.default.svc"}})
	addr, err = held.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = held.Serve() }()
	t.Cleanup(func() { _ = held.Shutdown(t.Context()) })
	if status, body := getAs(t, "http://"+addr.String()+"/health", "permatrix.default.svc:8181"); status != http.StatusOK {
		t.Errorf("an allowed name off loopback: %d %s", status, body)
	}
	if status, _ := getAs(t, "http://"+addr.String()+"/health", "evil.example"); status != http.StatusBadRequest {
		t.Errorf("a name not allowed off loopback: %d, want 400", status)
	}
}

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no address other than loopback on this machine")
	return ""
}

func TestCheckAllowedHosts(t *testing.T) {
	for _, ok := range []string{"pdp.internal", "pdp.internal:8181", "10.0.0.1", "[::1]", "*"} {
		if err := permhttp.CheckAllowedHosts([]string{ok}); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://x/", "*.example", "a b", "x/y"} {
		if err := permhttp.CheckAllowedHosts([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
