// Package harness starts the real permatrix server for tests — a bbolt file
// in a temporary directory, the embedded bundle (or another), the Echo
// server on a free loopback port — and builds the pinned stock tools (opa)
// from the Go module proxy for tests that compare against them.
package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/internal/store"
)

// Token is the admin token of servers started by Start.
const Token = "test-admin-token"

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Server is a running permatrix.
type Server struct {
	URL string
	// DiagnosticURL is the diagnostic listener's (Options.Diagnostic).
	DiagnosticURL string
	// Client sends Do's requests (default http.DefaultClient; set it for
	// TLS or unix sockets).
	Client *http.Client
	DBPath string // the bbolt file (bolt), or the local replica (etcd)
	Store  string // the store's name: bolt:PATH or the etcd URL
	Svc    *pdp.Service
	HTTP   *permhttp.Server
	DB     store.Backend
	t      testing.TB
}

// Options for Start.
type Options struct {
	Bundle string // a bundle source for opa.Load; "" is the embedded bundle
	DBPath string // "" is a new file in a temporary directory
	// Identity and Routes configure forward-auth (and admin callers with
	// JWTs); nil is the server's default identity and no routes file.
	Identity *identity.Identity
	Routes   *routes.Table
	// DecisionLog receives every decision (nil: none).
	DecisionLog pdp.DecisionLogger
	// Addr is the API's address (default 127.0.0.1:0; unix:///path for a
	// socket), TLS its TLS configuration; Diagnostic also starts the
	// diagnostic listener (Server.DiagnosticURL).
	Addr       string
	TLS        *tls.Config
	Diagnostic bool
	// RequestTimeout is the server's request timeout (0: its default).
	RequestTimeout time.Duration
}

// Start runs a server until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.DBPath == "" {
		o.DBPath = filepath.Join(t.TempDir(), "permatrix.db")
	}
	db, name := openStore(t, o.DBPath)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svc := pdp.New(db, opa.NewEngine(db), log, o.DecisionLog)
	b, err := opa.ReadBundle(context.Background(), o.Bundle, opa.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	srv := permhttp.NewServer(svc, permhttp.Config{AdminToken: Token, Logger: log, Identity: o.Identity, Routes: o.Routes, TLS: o.TLS,
		RequestTimeout: o.RequestTimeout})
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if _, err := srv.Listen(o.Addr); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: srv.URL(), DBPath: o.DBPath, Store: name, Svc: svc, HTTP: srv, DB: db, t: t, Client: http.DefaultClient}
	if o.Diagnostic {
		daddr, err := srv.ListenDiagnostic("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.DiagnosticURL = "http://" + daddr.String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = db.Close()
	})
	return s
}

// Response is a decoded JSON response.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

// Do sends a request with a JSON body (a string is sent as is) and decodes
// the JSON answer. admin adds the bearer token.
func (s *Server) Do(method, path string, body any, admin bool, headers ...string) Response {
	s.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, rdr)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("Authorization", "Bearer "+Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := Response{Status: resp.StatusCode, Raw: raw}
	// Objects are decoded; other JSON answers (OPA's v0 API answers bare
	// values) are left in Raw.
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			s.t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	}
	return r
}

// Check asks /v1/check and returns the decoded response.
func (s *Server) Check(check map[string]any) Response {
	s.t.Helper()
	return s.Do(http.MethodPost, "/v1/check", check, false)
}

// Allowed asks /v1/check and fails the test unless it answers 200.
func (s *Server) Allowed(check map[string]any) bool {
	s.t.Helper()
	r := s.Check(check)
	if r.Status != http.StatusOK {
		s.t.Fatalf("check %v: %d %s", check, r.Status, r.Raw)
	}
	return r.Body["allow"] == true
}

// Assign stores an assignment and fails the test unless it answers 201.
func (s *Server) Assign(a map[string]any) string {
	s.t.Helper()
	r := s.Do(http.MethodPost, "/v1/assignments", a, true)
	if r.Status != http.StatusCreated {
		s.t.Fatalf("assign %v: %d %s", a, r.Status, r.Raw)
	}
	return r.Body["id"].(string)
}

// StockOPA returns the path of the pinned stock opa binary, building it
// from test/tools (the Go module proxy) into the user cache the first time.
func StockOPA(t testing.TB) string {
	t.Helper()
	return buildTool(t, filepath.Join("test", "tools"), "opa", "github.com/open-policy-agent/opa")
}

// Regal returns the path of the pinned Regal linter, built from
// test/tools/regal: a module of its own, since Regal pins an older OPA than
// the stock opa of test/tools.
func Regal(t testing.TB) string {
	t.Helper()
	return buildTool(t, filepath.Join("test", "tools", "regal"), "regal", "github.com/open-policy-agent/regal")
}

// buildTool builds pkg in the tools module at moduleDir (relative to the
// repository root) into the user cache. The binary's name carries a digest
// of the module's go.sum, so changing a pin rebuilds it.
func buildTool(t testing.TB, moduleDir, name, pkg string) string {
	t.Helper()
	bin, err := BuildTool(moduleDir, name, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildTool is buildTool for callers without a testing.TB (a TestMain).
func BuildTool(moduleDir, name, pkg string) (string, error) {
	dir := filepath.Join(Root(), moduleDir)
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(sum)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "permatrix-tools", name+"-"+hex.EncodeToString(h[:6]))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// MainWithBinary builds the permatrix binary into a temporary directory,
// stores its path in *bin, runs the package's tests and exits: a TestMain
// for packages that test through the real binary.
func MainWithBinary(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "permatrix-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, "permatrix")
	build := exec.Command("go", "build", "-o", *bin, "./cmd/permatrix")
	build.Dir = Root()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building permatrix: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
