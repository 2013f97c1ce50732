package extauthz_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/test/harness"
)

const tm = "celonis-task-mining"

const testRoutes = `routes:
  - methods: [GET]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: view_project
    resource: {type: project, id: "{id}"}
  - methods: [POST]
    path: /projects/{id}/users
    system: celonis-task-mining
    action: edit_users
    resource: {type: project, id: "{id}"}
`

// start runs the real ext_authz server over a harness server's decisions.
func start(t *testing.T, s *harness.Server, rt *routes.Table, tlsCfg *tls.Config) string {
	t.Helper()
	srv := extauthz.New(extauthz.Config{
		Gateway:   &gateway.Gateway{Identity: identity.Default(), Routes: rt},
		Decide:    s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON,
		Ready:     s.HTTP.Ready,
		TLS:       tlsCfg,
	})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	return addr.String()
}

func client(t *testing.T, addr string, creds credentials.TransportCredentials) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func request(method, path string, headers, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Headers: headers}},
		ContextExtensions: ext,
	}}
}

func TestCheck(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "decisions.jsonl")
	dlog, err := decisionlog.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := routes.Parse("routes.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt, DecisionLog: dlog})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "project", "id": "p1"}})
	c := client(t, start(t, s, rt, nil), insecure.NewCredentials())
	ctx := context.Background()
	check := func(req *authv3.CheckRequest) *authv3.CheckResponse {
		t.Helper()
		resp, err := c.Check(ctx, req)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}

	// Allowed: OK, the decision id added upstream.
	resp := check(request("POST", "/projects/p1/users?x=1", map[string]string{":path": "/projects/p1/users", "x-forwarded-user": "ann"}, nil))
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetOkResponse() == nil {
		t.Fatalf("ann POST p1: %v", resp)
	}
	var decisionID string
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == extauthz.DecisionIDHeader {
			decisionID = h.GetHeader().GetValue()
		}
	}
	if decisionID == "" {
		t.Fatalf("no %s upstream: %v", extauthz.DecisionIDHeader, resp.GetOkResponse())
	}

	// Denied: PERMISSION_DENIED, HTTP 403, the decision as the body.
	resp = check(request("POST", "/projects/p2/users", map[string]string{"x-forwarded-user": "ann"}, nil))
	denied := resp.GetDeniedResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || denied.GetStatus().GetCode() != 403 {
		t.Fatalf("ann POST p2: %v", resp)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(denied.GetBody()), &d); err != nil || d["allow"] != false || len(d["missing"].([]any)) == 0 || d["decision_id"] == "" {
		t.Fatalf("denied body %q: %v", denied.GetBody(), err)
	}

	// Errors: each a denied response with its status, never OK.
	for _, tc := range []struct {
		name   string
		req    *authv3.CheckRequest
		code   codes.Code
		status int32
		body   string
	}{
		{"no identity", request("POST", "/projects/p1/users", map[string]string{"x-permatrix-subject": "ann"}, nil), codes.Unauthenticated, 401, "X-Forwarded-User"},
		{"forged subject header", request("POST", "/projects/p1/users", map[string]string{"x-forwarded-user": "bob", "x-permatrix-subject": "ann"}, nil), codes.PermissionDenied, 403, `"allow":false`},
		{"no route", request("DELETE", "/projects/p1/users", map[string]string{"x-forwarded-user": "ann"}, nil), codes.PermissionDenied, 403, "no route matches DELETE /projects/p1/users"},
		{"unclean path", request("POST", "/projects/p2/../p1/users", map[string]string{"x-forwarded-user": "ann"}, nil), codes.InvalidArgument, 400, "dot segment"},
		{"no HTTP attributes", &authv3.CheckRequest{}, codes.InvalidArgument, 400, "no HTTP request attributes"},
	} {
		resp := check(tc.req)
		dr := resp.GetDeniedResponse()
		if codes.Code(resp.GetStatus().GetCode()) != tc.code || int32(dr.GetStatus().GetCode()) != tc.status || !strings.Contains(dr.GetBody(), tc.body) || resp.GetOkResponse() != nil {
			t.Errorf("%s: %v", tc.name, resp)
		}
	}

	// The same service path as /v1/check: metrics and the decision log.
	m := string(s.Do("GET", "/metrics", nil, false).Raw)
	if !strings.Contains(m, `permatrix_decisions_total{allow="true",system="celonis-task-mining"} 1`) ||
		!strings.Contains(m, `permatrix_decisions_total{allow="false",system="celonis-task-mining"} 2`) {
		t.Fatalf("gRPC decisions not counted:\n%s", m)
	}
	if err := dlog.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil || len(entries) != 3 || entries[0].DecisionID != decisionID || entries[0].Input.(map[string]any)["subject"] != "ann" {
		t.Fatalf("decision log: %+v %v", entries, err)
	}
}

// TestCheckWithoutRoutes: without a routes file, only Envoy's per-route
// context_extensions name the check; the client's X-Permatrix-* headers
// never do.
func TestCheckWithoutRoutes(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "project", "id": "p1"}})
	c := client(t, start(t, s, nil, nil), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users", "resource_type": "project", "resource_id": "p1"}
	resp, err := c.Check(context.Background(), request("GET", "/anything", map[string]string{"x-forwarded-user": "ann"}, ext))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("context_extensions: %v %v", resp, err)
	}
	clientNamed := map[string]string{"x-forwarded-user": "ann", "x-permatrix-system": tm, "x-permatrix-action": "edit_users",
		"x-permatrix-resource-type": "project", "x-permatrix-resource-id": "p1"}
	resp, err = c.Check(context.Background(), request("GET", "/anything", clientNamed, nil))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || !strings.Contains(resp.GetDeniedResponse().GetBody(), "no route matched") {
		t.Fatalf("client-named check: %v %v", resp, err)
	}
	ext["action"] = "fly"
	resp, err = c.Check(context.Background(), request("GET", "/anything", map[string]string{"x-forwarded-user": "ann"}, ext))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Fatalf("unknown action: %v %v", resp, err)
	}
	// A resource id without its type: INVALID_ARGUMENT, not a decision at
	// service scope with the id dropped.
	ext = map[string]string{"system": tm, "action": "edit_users", "resource_id": "p1"}
	resp, err = c.Check(context.Background(), request("GET", "/anything", map[string]string{"x-forwarded-user": "ann"}, ext))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || !strings.Contains(resp.GetDeniedResponse().GetBody(), "resource.type") {
		t.Fatalf("resource_id without resource_type: %v %v", resp, err)
	}
}

// TestCheckConsistencyToken: the original request's X-Permatrix-Min-Revision
// is the decision's consistency token, read as forward-auth reads it, and
// only after the identity.
func TestCheckConsistencyToken(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	_, rev, err := s.API().CreateAssignment(context.Background(), permatrix.Assignment{Subject: "user:ann", System: tm, Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}})
	if err != nil || rev == 0 {
		t.Fatalf("assign: %d %v", rev, err)
	}
	c := client(t, start(t, s, nil, nil), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users", "resource_type": "project", "resource_id": "p1"}
	ask := func(headers map[string]string) *authv3.CheckResponse {
		t.Helper()
		resp, err := c.Check(context.Background(), request("GET", "/anything", headers, ext))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := ask(map[string]string{"x-forwarded-user": "ann", "x-permatrix-min-revision": fmt.Sprint(rev)}); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the write's own revision: %v", resp)
	}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		code    codes.Code
		status  int32
		body    string
	}{
		{"ahead of the store", map[string]string{"x-forwarded-user": "ann", "x-permatrix-min-revision": fmt.Sprint(rev + 1000)}, codes.Unavailable, 503, "is not applied here yet"},
		{"not a number", map[string]string{"x-forwarded-user": "ann", "x-permatrix-min-revision": "soon"}, codes.InvalidArgument, 400, "want a store revision"},
		{"no identity", map[string]string{"x-permatrix-min-revision": "soon"}, codes.Unauthenticated, 401, "X-Forwarded-User"},
	} {
		resp := ask(tc.headers)
		dr := resp.GetDeniedResponse()
		if codes.Code(resp.GetStatus().GetCode()) != tc.code || int32(dr.GetStatus().GetCode()) != tc.status || !strings.Contains(dr.GetBody(), tc.body) {
			t.Errorf("%s: %v", tc.name, resp)
		}
	}
	// Sent twice (Envoy's header map keeps both): refused, not one picked.
	twice := request("GET", "/anything", nil, ext)
	twice.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-forwarded-user", Value: "ann"}, {Key: "x-permatrix-min-revision", Value: "1"}, {Key: "x-permatrix-min-revision", Value: fmt.Sprint(rev + 1000)}}}
	resp, err := c.Check(context.Background(), twice)
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || !strings.Contains(resp.GetDeniedResponse().GetBody(), "give the minimum revision once") {
		t.Fatalf("the token twice: %v %v", resp, err)
	}
}

// TestCheckTLS: the gRPC listener over TLS with client certificates
// required: a client without one is refused in the handshake.
func TestCheckTLS(t *testing.T) {
	certs := harness.NewCerts(t)
	cfg, err := listen.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.CAFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	addr := start(t, s, nil, cfg)
	ext := map[string]string{"system": tm, "action": "edit_users"}
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, ext)

	ok := client(t, addr, credentials.NewTLS(certs.ClientTLS(true)))
	if resp, err := ok.Check(context.Background(), req); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("with a client certificate: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client(t, addr, credentials.NewTLS(certs.ClientTLS(false))).Check(ctx, req); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if _, err := client(t, addr, insecure.NewCredentials()).Check(ctx, req); err == nil {
		t.Fatal("a plaintext client was served")
	}
	h, err := healthpb.NewHealthClient(mustConn(t, addr, credentials.NewTLS(certs.ClientTLS(true)))).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
}

func mustConn(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestCheckPanicIsInternal: a panic while deciding answers INTERNAL (500),
// never OK, and the server — the whole process, gRPC does not recover
// handlers' panics — keeps serving, as the HTTP API's recoverer does.
func TestCheckPanicIsInternal(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	srv := extauthz.New(extauthz.Config{
		Gateway: &gateway.Gateway{Identity: identity.Default()},
		Decide: func(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
			if ch.Subject == "boom" {
				panic("a fault while deciding")
			}
			return s.HTTP.Decide(ctx, ch)
		},
		ErrorJSON: permhttp.ErrorJSON,
	})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	c := client(t, addr.String(), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	resp, err := c.Check(context.Background(), request("GET", "/", map[string]string{"x-forwarded-user": "boom"}, ext))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.Internal || resp.GetDeniedResponse().GetStatus().GetCode() != 500 ||
		strings.Contains(resp.GetDeniedResponse().GetBody(), "a fault") {
		t.Fatalf("a panic: %v %v", resp, err)
	}
	resp, err = c.Check(context.Background(), request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, ext))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("after the panic: %v %v", resp, err)
	}
}

// TestHealthFollowsReadiness: grpc.health.v1.Health, which Envoy's health
// checks ask, says NOT_SERVING whenever /health would answer 503 (here: the
// store closed), not SERVING for as long as the process is up.
func TestHealthFollowsReadiness(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	h := healthpb.NewHealthClient(mustConn(t, start(t, s, nil, nil), insecure.NewCredentials()))
	serving := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if st := serving(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("ready: %v", st)
	}
	if err := s.DB.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.Do("GET", "/health", nil, false); r.Status != 503 {
		t.Fatalf("/health with the store closed: %d", r.Status)
	}
	if st := serving(); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("with the store closed: %v", st)
	}
	w, err := h.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch with the store closed: %v %v", resp, err)
	}
	if _, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "other"}); status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown service: %v", err)
	}
}

// TestCheckWithoutMethod: a CheckRequest without the original method is
// INVALID_ARGUMENT, as one without its path is; it is not routed as a GET.
func TestCheckWithoutMethod(t *testing.T) {
	rt, err := routes.Parse("routes.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Routes: rt})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "role": "admin", "scope": map[string]any{"type": "service"}})
	c := client(t, start(t, s, rt, nil), insecure.NewCredentials())
	if resp, err := c.Check(context.Background(), request("GET", "/projects/p1/users", map[string]string{"x-forwarded-user": "ann"}, nil)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp, err := c.Check(context.Background(), request("", "/projects/p1/users", map[string]string{"x-forwarded-user": "ann"}, nil))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Fatalf("no method: %v %v", resp, err)
	}
}

// TestCheckRequestBounded: a CheckRequest over the message bound (the HTTP
// API's body limit, 1 MiB by default, not gRPC's 4 MiB) is refused before
// it is decoded — a 4 MiB map of headers costs well over 100 MiB to decode
// and read; one under it is decided.
func TestCheckRequestBounded(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	c := client(t, start(t, s, nil, nil), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	h := map[string]string{"x-forwarded-user": "ann", "x-padding": strings.Repeat("x", 3<<19)}
	if _, err := c.Check(context.Background(), request("GET", "/", h, ext)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("1.5 MiB: %v", err)
	}
	h["x-padding"] = strings.Repeat("x", 1<<19)
	if resp, err := c.Check(context.Background(), request("GET", "/", h, ext)); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("0.5 MiB: %v %v", resp, err)
	}
}

// TestHealthWatchEndsOnShutdown: a health Watch stream hears NOT_SERVING
// when the server shuts down, and ends: it does not hold the graceful stop
// until the shutdown's deadline cuts every connection.
func TestHealthWatchEndsOnShutdown(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Ready: s.HTTP.Ready})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	w, err := healthpb.NewHealthClient(mustConn(t, addr.String(), insecure.NewCredentials())).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", resp, err)
	}
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		close(stopped)
	}()
	resp, err := w.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch during the shutdown: %v %v", resp, err)
	}
	if _, err := w.Recv(); err == nil {
		t.Fatal("the watch went on after NOT_SERVING")
	}
	<-stopped
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestStreamsBounded: the gRPC listener bounds what a connection may hold,
// as the HTTP listener does: each stream's headers (16 KiB)
// headers, and the streams open at once. gRPC's defaults — 16 MiB of
// headers a stream, no bound on streams — let one client, with HPACK
// indexing a 3 KB header once and naming it a thousand times, hold some
// 3 MiB of server memory for every kilobyte it sends, for as long as it
// keeps its streams open: 200 such streams on one connection held 600 MiB.
func TestStreamsBounded(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	addr := start(t, s, nil, nil)

	// What the server announces.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	settings, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("the server's first frame: %v", f)
	}
	if n, ok := settings.Value(http2.SettingMaxHeaderListSize); !ok || n > 16<<10 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d (%v), want at most 16 KiB", n, ok)
	}
	if n, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || n > 1000 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want a bound", n, ok)
	}

	// A check whose headers are over the bound is refused; one within it is
	// decided.
	c := client(t, addr, insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, ext)
	big := metadata.AppendToOutgoingContext(context.Background(), "x-pad", strings.Repeat("x", 128<<10))
	if resp, err := c.Check(big, req); err == nil {
		t.Fatalf("128 KiB of headers: %v", resp)
	}
	small := metadata.AppendToOutgoingContext(context.Background(), "x-pad", strings.Repeat("x", 12<<10))
	if resp, err := c.Check(small, req); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("12 KiB of headers: %v %v", resp, err)
	}
}

// TestCallHeadersBounded: a call's header list is at most 16 KiB (as
// HTTP/2 counts it: each field's name and value, and 32 bytes). Envoy's
// ext_authz sends the original request's headers in the CheckRequest
// message, not as metadata; its own metadata is a few hundred bytes, with
// what the operator adds (initial_metadata: a token) and a trace's
// headers. A call past the bound is refused by the server whatever the
// client makes of the SETTINGS it announced (a raw HTTP/2 client sends
// 17 KiB of headers); an Envoy call with a 4 KiB bearer token and a full
// tracestate is decided. A call answered but never read (its client's
// window shut) is held, with its headers, outside the bound of calls in
// flight: 64 KiB of header list held some 110 KiB a call.
func TestCallHeadersBounded(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	addr := start(t, s, nil, nil)

	// Over the bound, sent by a client that ignores the server's SETTINGS:
	// one value of 17 KiB (the connection is closed: HPACK's bound on a
	// string), or 500 small fields, 17.6 KiB as HTTP/2 counts them (the
	// call's stream is reset).
	msg, err := proto.Marshal(request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"}))
	if err != nil {
		t.Fatal(err)
	}
	framed := append([]byte{0, 0, 0, 0, 0}, msg...)
	framed[1], framed[2], framed[3], framed[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	for _, over := range []struct {
		name   string
		fields []hpack.HeaderField
	}{
		{"one value of 17 KiB", []hpack.HeaderField{{Name: "x-pad", Value: strings.Repeat("x", 17<<10)}}},
		{"500 small fields", slices.Repeat([]hpack.HeaderField{{Name: "x-a", Value: "b"}}, 500)},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard only
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, hf := range append([]hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: authv3.Authorization_Check_FullMethodName}, {Name: ":authority", Value: "permatrix"},
			{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}}, over.fields...) {
			if err := enc.WriteField(hf); err != nil {
				t.Fatal(err)
			}
		}
		block := hb.Bytes() // HPACK makes it shorter than the list
		half := len(block) / 2
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:half], EndHeaders: false}); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteContinuation(1, true, block[half:]); err != nil {
			t.Fatal(err)
		}
		_ = fr.WriteData(1, true, framed) // the server may have refused the call already
		refused := ""
		for refused == "" {
			f, err := fr.ReadFrame()
			if err != nil {
				refused = "the connection closed: " + err.Error()
				break
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				refused = "RST_STREAM " + f.ErrCode.String()
			case *http2.GoAwayFrame:
				refused = "GOAWAY " + f.ErrCode.String()
			case *http2.MetaHeadersFrame:
				st := ""
				for _, hf := range f.Fields {
					if hf.Name == "grpc-status" {
						st = hf.Value
					}
				}
				if st == "0" {
					t.Fatalf("%s of headers: the call was answered: %v", over.name, f.Fields)
				}
				if st != "" {
					refused = "grpc-status " + st
				}
			case *http2.DataFrame:
				t.Fatalf("%s of headers: the call was answered: %d bytes", over.name, len(f.Data()))
			}
		}
		t.Logf("%s of headers: %s", over.name, refused)
	}

	// What Envoy's ext_authz sends, with a large initial_metadata token
	// and tracestate: decided.
	c := client(t, addr, insecure.NewCredentials())
	envoy := metadata.AppendToOutgoingContext(context.Background(),
		"x-envoy-internal", "true", "x-forwarded-for", "10.0.0.1", "x-envoy-expected-rq-timeout-ms", "200",
		"x-request-id", "8e2f6c3a-7b1d-4c1e-9a54-2d3f4b5c6d7e",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", strings.Repeat("v", 512),
		"authorization", "Bearer "+strings.Repeat("t", 4<<10))
	req := request("GET", "/", map[string]string{"x-forwarded-user": "ann"}, map[string]string{"system": tm, "action": "edit_users"})
	if resp, err := c.Check(envoy, req); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("Envoy's metadata: %v %v", resp, err)
	}
}

// TestStreamWithoutMessageEnds: a check whose message never comes is ended
// once the check's timeout has passed since its headers, as the HTTP
// listener ends a request whose body does not come. gRPC waits for a
// call's message as long as the client says (here: for ever), so streams
// opened and left would be held, with their headers, for good.
func TestStreamWithoutMessageEnds(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Timeout: 200 * time.Millisecond})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A guard only: the server's bound is 200 ms.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: authv3.Authorization_Check_FullMethodName}, {Name: ":authority", Value: "permatrix"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
		if err := enc.WriteField(hf); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the stream without its message was not ended: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			return
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				if st := f.PseudoValue("status"); f.Fields != nil && st != "200" && st != "" {
					t.Fatalf("status %s", st)
				}
				return
			}
		}
	}
}

// TestIdleConnectionClosed: a connection with no call open is closed after
// the idle timeout (120 s by default, as the HTTP listener's), with a
// GOAWAY; gRPC keeps one for good, each with its goroutines and buffers.
func TestIdleConnectionClosed(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, IdleTimeout: 200 * time.Millisecond})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard only
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the idle connection was not closed: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			return
		}
	}
}

// TestSilentConnectionClosed: a connection that sends nothing — no TLS
// handshake, no HTTP/2 preface — is closed after 5 s, as the HTTP
// listener closes one whose request head does not come (gRPC waits 120 s).
func TestSilentConnectionClosed(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	addr := start(t, s, nil, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a guard only
	// The server's own preface (its SETTINGS) comes first.
	if n, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the silent connection: read %d bytes, then %v; want it closed", n, err)
	}
}

// rawCodec sends and receives messages as they are on the wire: a test can
// send bytes no protobuf library would marshal.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestCheckRequestNotValidProtobuf: a CheckRequest whose string field holds
// bytes that are not UTF-8 (protobuf refuses to decode it), or that is not
// protobuf at all, is answered with a CheckResponse, INVALID_ARGUMENT and
// 400 with a message — not a gRPC error, which Envoy's failure_mode_allow
// would turn into an allow.
func TestCheckRequestNotValidProtobuf(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	addr := start(t, s, nil, nil)
	conn := mustConn(t, addr, insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	good, err := proto.Marshal(request("GET", "/", map[string]string{"x-forwarded-user": "ann", "x-note": "AAAA"}, ext))
	if err != nil {
		t.Fatal(err)
	}
	send := func(msg []byte) *authv3.CheckResponse {
		t.Helper()
		var out []byte
		if err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, &msg, &out, grpc.ForceCodec(rawCodec{})); err != nil {
			t.Fatalf("Check: a gRPC error, not a CheckResponse: %v", err)
		}
		resp := new(authv3.CheckResponse)
		if err := proto.Unmarshal(out, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := send(good); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("the request as marshalled: %v", resp)
	}
	if !bytes.Contains(good, []byte("AAAA")) {
		t.Fatal("no AAAA in the message")
	}
	for name, msg := range map[string][]byte{
		"not UTF-8":    bytes.Replace(good, []byte("AAAA"), []byte("\xe9t\xe9!"), 1),
		"not protobuf": {0xff, 0xff, 0xff},
	} {
		resp := send(msg)
		if codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || resp.GetDeniedResponse().GetStatus().GetCode() != 400 ||
			resp.GetStatus().GetMessage() == "" || !strings.Contains(resp.GetDeniedResponse().GetBody(), `"code":"invalid"`) {
			t.Errorf("%s: %v", name, resp)
		}
	}
}

// stop is srv's Shutdown for harness.Serve.
func stop(srv *extauthz.Server) func(context.Context) {
	return func(ctx context.Context) { _ = srv.Shutdown(ctx) }
}

// TestTokenCutByTheCallsDeadlineNotLogged: a consistency token is the end
// user's (its request's X-Permatrix-Min-Revision); one not reached is its
// 503, noted in one warning at most every 10 s, never an error. A call's
// deadline shorter than --consistency-timeout — Envoy's grpc_service
// timeout (0.25 s in forward-auth.md's example, the wait 1 s by default),
// or the listener's own — ended the wait with the deadline's error,
// logged "ext_authz check failed" at ERROR for every such request: any
// user behind Envoy wrote a log line per request. It is the token not
// reached, 503, not logged as an error.
func TestTokenCutByTheCallsDeadlineNotLogged(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	var logged harness.LockedBuffer
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, Timeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	c := client(t, addr.String(), insecure.NewCredentials())
	ext := map[string]string{"system": tm, "action": "edit_users"}
	for range 5 {
		resp, err := c.Check(context.Background(), request("GET", "/", map[string]string{"x-forwarded-user": "ann", "x-permatrix-min-revision": "1000000"}, ext))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
			t.Fatalf("a token not reached before the call's deadline: %v %v", resp, err)
		}
	}
	if n := strings.Count(logged.String(), "level=ERROR"); n != 0 {
		t.Errorf("%d errors logged for 5 tokens not reached:\n%s", n, logged.String())
	}
}
