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

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/internal/console"
	"github.com/permatrix/permatrix/internal/decisionlog"
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
	// DecisionLog receives every decision (nil: none); it follows the
	// engine's bundles (mask list, compiler) as serve's does.
	DecisionLog *decisionlog.Logger
	// DecisionLogFile, if set, is a decision log file the server writes
	// (as serve --decision-log FILE) and POST /v1/replay reads.
	DecisionLogFile string
	// Addr is the API's address (default 127.0.0.1:0; unix:///path for a
	// socket), TLS its TLS configuration; Diagnostic also starts the
	// diagnostic listener (Server.DiagnosticURL).
	Addr       string
	TLS        *tls.Config
	Diagnostic bool
	// Console serves the web console at /ui (internal/console).
	Console bool
	// RequestTimeout is the server's request timeout (0: its default).
	RequestTimeout time.Duration
	// BodyLimit is the server's body limit in bytes (0: its default, 1 MiB).
	BodyLimit int64
	// Evaluator evaluates decisions and verdicts ("": serve's default).
	Evaluator opa.Evaluator
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
	if o.DecisionLogFile != "" {
		w, err := decisionlog.Open(o.DecisionLogFile)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		o.DecisionLog = w
	}
	engine := opa.NewEngine(db, opa.WithEvaluator(o.Evaluator))
	var dlog pdp.DecisionLogger
	if o.DecisionLog != nil {
		o.DecisionLog.Attach(engine)
		dlog = o.DecisionLog
	}
	svc := pdp.New(db, engine, log, dlog)
	b, err := opa.ReadBundle(context.Background(), o.Bundle, opa.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	cfg := permhttp.Config{AdminToken: Token, Logger: log, Identity: o.Identity, Routes: o.Routes, TLS: o.TLS,
		DecisionLog: o.DecisionLog, DecisionLogFile: o.DecisionLogFile, RequestTimeout: o.RequestTimeout,
		BodyLimit: o.BodyLimit}
	if o.Console {
		cfg.Console = console.Handler()
	}
	srv := permhttp.NewServer(svc, cfg)
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
	t.Cleanup(func() { _ = db.Close() }) // after the server's, registered below
	Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	return s
}

// Serve runs serve (a server's, after its Listen) until the test ends, then
// shuts the server down and waits for serve to return: a server that
// failed or would not stop fails the test.
func Serve(t testing.TB, serve func() error, shutdown func(context.Context)) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(ctx)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return 10 s after its shutdown")
		}
	})
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

// NewClient returns a Go client (package client) of the server: its URL
// and its http.Client (so TLS and unix sockets work), with opts.
func (s *Server) NewClient(opts ...client.Option) *client.Client {
	s.t.Helper()
	c, err := client.New(s.URL, append([]client.Option{client.WithHTTPClient(s.Client)}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// API returns a Go client of the server holding the admin token.
func (s *Server) API() *client.Client {
	s.t.Helper()
	return s.NewClient(client.WithToken(Token))
}

// Check asks /v1/check and returns the decoded response.
func (s *Server) Check(check map[string]any) Response {
	s.t.Helper()
	return s.Do(http.MethodPost, "/v1/check", check, false)
}

// Allowed decides a check (a permatrix.Check, or its JSON form as a map)
// through the Go client and fails the test unless the server answers it.
func (s *Server) Allowed(check any) bool {
	s.t.Helper()
	var ch permatrix.Check
	s.convert(check, &ch)
	d, err := s.API().Check(context.Background(), ch)
	if err != nil {
		s.t.Fatalf("check %v: %v", check, err)
	}
	return d.Allow
}

// Assign stores an assignment (a permatrix.Assignment, or its JSON form as
// a map) through the Go client as the operator, fails the test unless it is
// stored, and returns its id.
func (s *Server) Assign(a any) string {
	s.t.Helper()
	var as permatrix.Assignment
	s.convert(a, &as)
	stored, _, err := s.API().CreateAssignment(context.Background(), as)
	if err != nil {
		s.t.Fatalf("assign %v: %v", a, err)
	}
	return stored.ID
}

// convert copies v (a value of out's type, or its JSON form) into out,
// failing the test on a key out does not know: a test's typo is not
// silently dropped.
func (s *Server) convert(v, out any) {
	s.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		s.t.Fatalf("%s: %v", raw, err)
	}
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
	bin := filepath.Join(toolsDir(), name+"-"+hex.EncodeToString(h[:6]))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// Test binaries started together (a first go test ./...: every
	// package starting an etcd cluster) build it once: the others wait on
	// the lock, then find it.
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
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

// MainWithBinary gets the permatrix binary (BuildBinary), stores its path
// in *bin, runs the package's tests and exits: a TestMain
// for packages that test through the real binary.
func MainWithBinary(m *testing.M, bin *string) {
	path, remove, err := BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = path
	code := m.Run()
	remove()
	os.Exit(code)
}

// BuildBinary returns the permatrix binary built from this checkout's
// sources, and a func that gives it up.
//
// Every package that tests through the binary asks for it, several at once
// under go test ./...: it is built once into the user cache (a directory
// per checkout) under a lock, and `go build -o` there relinks it only when
// its build ID differs from the one the sources, build flags and toolchain
// give now — a stale binary is never used, and an up-to-date one costs the
// go command's check (about a second) instead of a link (about five
// seconds of CPU). Each caller gets its own hard link to the binary, so one
// rebuilt for edited sources while a package runs does not change under it.
func BuildBinary() (string, func(), error) {
	return buildLinked(toolsDir(), Root(), "./cmd/permatrix", "permatrix")
}

// buildLinked builds the command pkg of the module at moduleDir into a
// directory of cache kept for that module, and returns a hard link of the
// binary of the caller's own (BuildBinary).
func buildLinked(cache, moduleDir, pkg, name string) (string, func(), error) {
	sum := sha256.Sum256([]byte(moduleDir))
	dir := filepath.Join(cache, name+"-"+hex.EncodeToString(sum[:6]))
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	shared := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", shared, pkg)
	build.Dir = moduleDir
	if out, err := build.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("building %s: %v\n%s", name, err, out)
	}
	removeAbandoned(dir, "run") // links of killed test processes: each holds a binary's disk space
	own, err := os.MkdirTemp(dir, fmt.Sprintf("run-%d-", os.Getpid()))
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(own, name)
	if err := os.Link(shared, bin); err != nil {
		os.RemoveAll(own)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(own) }, nil
}
