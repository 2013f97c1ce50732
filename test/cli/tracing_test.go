package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/permatrix/permatrix/test/harness"
)

// otlpReceiver keeps the spans an OTLP exporter sends it, over gRPC (a
// TraceService server) or HTTP (POST /v1/traces, protobuf).
type otlpReceiver struct {
	collectortracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string // each batch's service.name
	arrived  chan struct{}
}

func newReceiver() *otlpReceiver { return &otlpReceiver{arrived: make(chan struct{}, 1)} }

func (r *otlpReceiver) keep(req *collectortracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.services = append(r.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	r.keep(req)
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	var msg collectortracepb.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || err != nil || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	r.keep(&msg)
	out, _ := proto.Marshal(&collectortracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// grpcReceiver serves r on a loopback port until the test ends.
func (r *otlpReceiver) grpcReceiver(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	collectortracepb.RegisterTraceServiceServer(s, r)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// waitTrace waits for the spans of a trace until want says they are all
// there (or a minute passes: the exporter sends every 50 ms here).
func (r *otlpReceiver) waitTrace(t *testing.T, traceID string, want func([]*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		r.mu.Lock()
		var got []*tracepb.Span
		for _, s := range r.spans {
			if hex.EncodeToString(s.GetTraceId()) == traceID {
				got = append(got, s)
			}
		}
		r.mu.Unlock()
		if want(got) {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("trace %s: spans so far %v", traceID, got)
		}
	}
}

func (r *otlpReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

func spanNamed(spans []*tracepb.Span, name string) *tracepb.Span {
	for _, s := range spans {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// serverAndEvaluation is the sidecar's server span, a child of the
// caller's span, and the evaluation's span, a child of it.
func serverAndEvaluation(spans []*tracepb.Span, name string) (server, eval *tracepb.Span) {
	server = spanNamed(spans, name)
	if server == nil || hex.EncodeToString(server.GetParentSpanId()) != callerSpan || server.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		return nil, nil
	}
	for _, s := range spans {
		if s.GetName() == "evaluation" && bytes.Equal(s.GetParentSpanId(), server.GetSpanId()) {
			return server, s
		}
	}
	return server, nil
}

// tracedServe starts serve with a distributed_tracing section (section
// "" for none), the ext_authz API and a decision log.
func tracedServe(t *testing.T, section string) (p *harness.Process, grpcAddr, logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "decisions.jsonl")
	s := serveOnFree(t, 1, func(addrs []string) []string {
		grpcAddr = addrs[0]
		cfg := filepath.Join(dir, "permatrix.yaml")
		writeConfig(t, cfg, section+"server:\n  grpc_addr: "+grpcAddr+"\n  decision_log: "+logFile+"\n")
		return []string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + filepath.Join(dir, "p.db"),
			"PERMATRIX_ADMIN_TOKEN=" + token, "PERMATRIX_CONFIG=" + cfg}
	})
	return s.Process, grpcAddr, logFile
}

const tracedCheck = `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`

func postCheck(t *testing.T, p *harness.Process, headers map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", p.URL+"/v1/check", strings.NewReader(tracedCheck))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		DecisionID string `json:"decision_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 || d.DecisionID == "" {
		t.Fatalf("check: %d %v\n%s", resp.StatusCode, err, p.Logs())
	}
	return d.DecisionID
}

func extAuthzCheck(t *testing.T, grpcAddr string) {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Envoy sends the trace context in the call's metadata.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent)
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
			Headers: map[string]string{"x-forwarded-user": "alice"}}},
		ContextExtensions: map[string]string{"system": "celonis-task-mining", "action": "edit_users"},
	}})
	if err != nil || resp.GetStatus() == nil {
		t.Fatalf("ext_authz: %v %v", resp, err)
	}
}

func healthCheck(t *testing.T, grpcAddr string) {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

// logged is the decision-log entry of a decision id.
func logged(t *testing.T, file, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		f, err := os.Open(file)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e map[string]any
				if json.Unmarshal(sc.Bytes(), &e) == nil && e["decision_id"] == id {
					f.Close()
					return e
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %s not logged", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDistributedTracingGRPC: with OPA's distributed_tracing, a check's
// trace goes through the sidecar — its server span a child of the
// caller's traceparent, the evaluation a child of that, exported over
// OTLP/gRPC — and its decision-log entry names the trace and the span.
func TestDistributedTracingGRPC(t *testing.T) {
	rec := newReceiver()
	addr := rec.grpcReceiver(t)
	p, grpcAddr, logFile := tracedServe(t, "distributed_tracing:\n  type: grpc\n  address: "+addr+
		"\n  service_name: permatrix-test\n  batch_span_processor_options:\n    batch_timeout_ms: 50\n")

	id := postCheck(t, p, map[string]string{"traceparent": traceparent, "tracestate": strings.Repeat("k=v,", 2000)})
	var server, eval *tracepb.Span
	rec.waitTrace(t, callerTrace, func(s []*tracepb.Span) bool {
		server, eval = serverAndEvaluation(s, "POST /v1/check")
		return eval != nil
	})
	e := logged(t, logFile, id)
	if e["trace_id"] != callerTrace || e["span_id"] != hex.EncodeToString(server.GetSpanId()) {
		t.Fatalf("decision log entry: trace_id %v span_id %v, want %s %x", e["trace_id"], e["span_id"], callerTrace, server.GetSpanId())
	}
	rec.mu.Lock()
	services := rec.services
	rec.mu.Unlock()
	if len(services) == 0 || services[0] != "permatrix-test" {
		t.Fatalf("service.name %v", services)
	}

	// ext_authz's Check: the trace context of its gRPC metadata.
	// A health check before it is not traced: its span, if any, would be
	// exported before the Check's.
	healthCheck(t, grpcAddr)
	extAuthzCheck(t, grpcAddr)
	spans := rec.waitTrace(t, callerTrace, func(s []*tracepb.Span) bool {
		server, eval = serverAndEvaluation(s, "envoy.service.auth.v3.Authorization/Check")
		return eval != nil
	})
	if h := spanNamed(spans, "grpc.health.v1.Health/Check"); h != nil {
		t.Fatalf("health check traced: %v", h)
	}

	// A request with a malformed traceparent is a new trace, answered as
	// any other.
	postCheck(t, p, map[string]string{"traceparent": "00-zz-" + callerSpan + "-01"})
	p.Stop(t)
}

// TestDistributedTracingHTTP: the same over OTLP/HTTP (protobuf).
func TestDistributedTracingHTTP(t *testing.T) {
	rec := newReceiver()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	p, _, _ := tracedServe(t, "distributed_tracing:\n  type: http\n  address: "+strings.TrimPrefix(srv.URL, "http://")+
		"\n  batch_span_processor_options:\n    batch_timeout_ms: 50\n")
	postCheck(t, p, map[string]string{"traceparent": traceparent})
	rec.waitTrace(t, callerTrace, func(s []*tracepb.Span) bool {
		_, eval := serverAndEvaluation(s, "POST /v1/check")
		return eval != nil
	})
	p.Stop(t)
}

// TestNoDistributedTracing: without the section nothing is exported (and
// entries carry no trace ids), whatever the caller sends.
func TestNoDistributedTracing(t *testing.T) {
	rec := newReceiver()
	addr := rec.grpcReceiver(t)
	// An inert section, as OPA reads one without a type.
	p, grpcAddr, logFile := tracedServe(t, "distributed_tracing:\n  address: "+addr+"\n")
	id := postCheck(t, p, map[string]string{"traceparent": traceparent})
	extAuthzCheck(t, grpcAddr)
	e := logged(t, logFile, id)
	p.Stop(t) // would flush what a tracer held
	if rec.count() != 0 {
		t.Fatalf("%d spans exported with tracing off", rec.count())
	}
	if _, ok := e["trace_id"]; ok {
		t.Fatalf("entry with a trace id: %v", e)
	}
}

// A tracing backend that is down — refusing connections, or accepting
// them and never answering — does not fail or hold up decisions, nor
// serve's start or stop; the spans lost are logged.
func TestDistributedTracingBackendDown(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the handshake completes, nothing answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	for name, addr := range map[string]string{"refused": harness.ReservePort(t).Addr, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			p, _, _ := tracedServe(t, "distributed_tracing:\n  type: grpc\n  address: "+addr+
				"\n  batch_span_processor_options:\n    batch_timeout_ms: 50\n    export_timeout_ms: 500\n")
			for range 20 {
				postCheck(t, p, map[string]string{"traceparent": traceparent})
			}
			// The spans lost are counted in /metrics once an export fails.
			deadline := time.Now().Add(time.Minute)
			for {
				_, raw := p.Do(t, "GET", "/metrics", "")
				if m := regexp.MustCompile(`(?m)^permatrix_tracing_spans_dropped_total (\d+)`).FindSubmatch(raw); m != nil && string(m[1]) != "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no span counted dropped:\n%s", grepLines(string(raw), "tracing"))
				}
				time.Sleep(50 * time.Millisecond)
			}
			p.Stop(t)
			if !strings.Contains(p.Logs(), "spans dropped") || !strings.Contains(p.Logs(), "spans_dropped_total") {
				t.Fatalf("no word of the lost spans:\n%s", p.Logs())
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Values OPA refuses are refused: config validate exits 1 with OPA's
// message at the section's line, and serve does not start.
func TestDistributedTracingBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeConfig(t, bad, "labels:\n  app: x\ndistributed_tracing:\n  type: grpc\n  sample_percentage: 101\n")
	out, code := run(t, "config", "validate", bad)
	if code != 1 || !strings.Contains(out, bad+":3: unsupported distributed_tracing.sample_percentage '101'") {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
	writeConfig(t, bad, "distributed_tracing:\n  type: grpc\n  adress: x\n")
	if out, code := run(t, "config", "validate", bad); code != 1 || !strings.Contains(out, bad+`:3: unknown key "distributed_tracing.adress"`) {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
	out, code = run(t, "serve", "--config", bad, "--db", filepath.Join(t.TempDir(), "p.db"), "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(out, "distributed_tracing.adress") {
		t.Fatalf("serve: exit %d\n%s", code, out)
	}
	// What needs a file is checked when serve starts.
	writeConfig(t, bad, "distributed_tracing:\n  type: grpc\n  encryption: tls\n  tls_ca_cert_file: /nonexistent/ca.pem\n")
	out, code = run(t, "serve", "--config", bad, "--db", filepath.Join(t.TempDir(), "p.db"), "--addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "read CA cert file") {
		t.Fatalf("serve: exit %d\n%s", code, out)
	}
}

// TestDistributedTracingBundleDownload: the requests of OPA's plugins
// (here the bundle download) are client spans, and carry their trace
// context to the server.
func TestDistributedTracingBundleDownload(t *testing.T) {
	rec := newReceiver()
	addr := rec.grpcReceiver(t)
	b := &bundleServer{hits: map[int]int{}}
	b.publish(t, "r1")
	var mu sync.Mutex
	var sent []string
	bundles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent = append(sent, r.Header.Get("traceparent"))
		mu.Unlock()
		b.ServeHTTP(w, r)
	}))
	t.Cleanup(bundles.Close)
	p, _, _ := tracedServe(t, "services:\n  bundles:\n    url: "+bundles.URL+"\nbundles:\n  permatrix:\n    service: bundles\n    resource: bundles/permatrix.tar.gz\n"+
		"distributed_tracing:\n  type: grpc\n  address: "+addr+"\n  batch_span_processor_options:\n    batch_timeout_ms: 50\n")
	var download *tracepb.Span
	deadline := time.After(time.Minute)
	for download == nil {
		select {
		case <-rec.arrived:
		case <-deadline:
			t.Fatalf("no client span of the download\n%s", p.Logs())
		}
		rec.mu.Lock()
		for _, s := range rec.spans {
			if s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && s.GetName() == "HTTP GET" {
				download = s
			}
		}
		rec.mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	want := "00-" + hex.EncodeToString(download.GetTraceId()) + "-" + hex.EncodeToString(download.GetSpanId()) + "-01"
	if len(sent) == 0 || sent[0] != want {
		t.Fatalf("the bundle server got traceparent %q, want %q", sent, want)
	}
	p.Stop(t)
}
