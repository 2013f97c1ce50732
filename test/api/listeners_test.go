package api_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// TestTLSListener: the API over TLS, with a real handshake against a CA
// made in the test; with a client CA, a client without a certificate is
// refused in the handshake.
func TestTLSListener(t *testing.T) {
	certs := harness.NewCerts(t)
	cfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{TLS: cfg})
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("URL %s", s.URL)
	}
	s.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false)}}
	if r := s.Do(http.MethodGet, "/health", nil, false); r.Status != 200 {
		t.Fatalf("health over TLS: %d %s", r.Status, r.Raw)
	}
	if r := s.Do(http.MethodPost, "/v1/check", map[string]any{"subject": "ann", "system": tm, "action": "edit_users"}, false); r.Status != 200 {
		t.Fatalf("check over TLS: %d %s", r.Status, r.Raw)
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := http.Get("http://" + strings.TrimPrefix(s.URL, "https://") + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
	// A client that does not trust the CA refuses the server.
	if _, err := (&http.Client{}).Get(s.URL + "/health"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusting client: %v", err)
	}

	mcfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.CAFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	m := harness.Start(t, harness.Options{TLS: mcfg})
	m.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(true)}}
	if r := m.Do(http.MethodGet, "/health", nil, false); r.Status != 200 {
		t.Fatalf("mTLS with a client certificate: %d", r.Status)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false)}}
	if resp, err := noCert.Get(m.URL + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("mTLS without a client certificate: %d", resp.StatusCode)
	}
	// A certificate from another CA is refused too.
	other := harness.NewCerts(t)
	wrong := certs.ClientTLS(false)
	wrong.Certificates = []tls.Certificate{other.Client}
	if resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: wrong}}).Get(m.URL + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("mTLS with a certificate of another CA: %d", resp.StatusCode)
	}

	for _, bad := range []listen.TLSFiles{
		{CertFile: certs.ServerCert},
		{ClientCAFile: certs.CAFile},
		{CertFile: certs.ServerCert, KeyFile: certs.ClientKey},
		{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.ServerKey},
	} {
		if _, err := bad.Config(); err == nil {
			t.Errorf("TLS files %+v accepted", bad)
		}
	}
}

// TestUnixSocketListener: the API on a unix socket of mode 0660; a stale
// socket file is replaced, a live one or a regular file is refused.
func TestUnixSocketListener(t *testing.T) {
	dir, err := os.MkdirTemp("", "pmx") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "permatrix.sock")
	// A stale socket from a killed process.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	s := harness.Start(t, harness.Options{Addr: "unix://" + sock})
	if s.URL != "unix://"+sock {
		t.Fatalf("URL %s", s.URL)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file: %v %v", fi.Mode(), err)
	}
	s.URL = "http://permatrix"
	s.Client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if r := s.Do(http.MethodGet, "/health", nil, false); r.Status != 200 {
		t.Fatalf("health over the socket: %d", r.Status)
	}
	if r := s.Do(http.MethodGet, "/v1/export", nil, true); r.Status != 200 {
		t.Fatalf("export over the socket: %d", r.Status)
	}
	if _, err := listen.Listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	_ = os.WriteFile(file, nil, 0o600)
	if _, err := listen.Listen("unix://" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := listen.Listen("unix://relative.sock"); err == nil {
		t.Fatal("relative socket path accepted")
	}
}

// TestDiagnosticListener: health and metrics only; nothing that decides or
// reads assignments.
func TestDiagnosticListener(t *testing.T) {
	s := harness.Start(t, harness.Options{Diagnostic: true})
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, s.DiagnosticURL+path, strings.NewReader(`{"subject":"a","system":"celonis-task-mining","action":"edit_users"}`))
		req.Header.Set("Authorization", "Bearer "+harness.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/health", "/health/live", "/health/ready", "/metrics"} {
		if code, body := get(http.MethodGet, p); code != 200 || body == "" {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if _, body := get(http.MethodGet, "/metrics"); !strings.Contains(body, "permatrix_store_revision") {
		t.Errorf("metrics: %.200s", body)
	}
	for _, c := range [][2]string{{"POST", "/v1/check"}, {"GET", "/v1/forward-auth"}, {"GET", "/v1/data"}, {"GET", "/v1/export"},
		{"GET", "/v1/assignments"}, {"GET", "/v1/systems"}, {"GET", "/"}} {
		if code, body := get(c[0], c[1]); code != 404 || !strings.Contains(body, `"not_found"`) {
			t.Errorf("%s %s on the diagnostic listener: %d %s", c[0], c[1], code, body)
		}
	}
}
