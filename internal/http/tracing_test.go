package http_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/permatrix/permatrix/internal/tracing"
)

// keepingReceiver is an OTLP/gRPC collector that keeps the spans.
type keepingReceiver struct {
	collectortracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *keepingReceiver) Export(_ context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

// startCollector starts an OTLP/gRPC collector and a tracer exporting to
// it (Shutdown exports what it holds).
func startCollector(t *testing.T) (*keepingReceiver, *tracing.Tracing) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &keepingReceiver{}
	collector := grpc.NewServer()
	collectortracepb.RegisterTraceServiceServer(collector, rec)
	go func() { _ = collector.Serve(ln) }()
	t.Cleanup(collector.Stop)
	cfg, err := tracing.ParseConfig([]byte(`{"type":"grpc","address":"` + ln.Addr().String() + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return rec, tr
}

// A request's span says the status the client got — an error a handler
// returns is answered after the middleware, with its status, not 200 —
// and is named by the route, not the path.
func TestRequestSpanStatusAndName(t *testing.T) {
	rec, tr := startCollector(t)
	h := newTracedServer(t, tr).Handler()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/check", `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`},
		{"POST", "/v1/check", `{"subject":"alice","system":"no-such-system","action":"x"}`},
		{"POST", "/v1/check", `{"subject":`},
		{"GET", "/v1/subjects/alice/permissions", ""},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Host = "127.0.0.1"
		req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if err := tr.Shutdown(context.Background()); err != nil { // exports what is queued
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []string
	for _, s := range rec.spans {
		if hex.EncodeToString(s.GetTraceId()) != trace || s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			continue
		}
		status := int64(0)
		for _, a := range s.GetAttributes() {
			if a.GetKey() == "http.response.status_code" {
				status = a.GetValue().GetIntValue()
			}
		}
		got = append(got, s.GetName()+" "+http.StatusText(int(status)))
	}
	want := []string{"POST /v1/check OK", "POST /v1/check Bad Request", "POST /v1/check Bad Request", "GET /v1/subjects/:user/permissions OK"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("spans:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Every evaluation is a span, a child of its request's: a check, a Data
// API query, a Query API query.
func TestEvaluationSpans(t *testing.T) {
	rec, tr := startCollector(t)
	h := newTracedServer(t, tr).Handler()
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/check", `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`},
		{"POST", "/v1/data/permatrix/allow", `{"input":{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}}`},
		{"GET", "/v1/query?q=x%20%3A%3D%201", ""},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", "Bearer t")
		resp := httptest.NewRecorder()
		h.ServeHTTP(resp, req)
		if resp.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.Code, resp.Body)
		}
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []string
	for _, server := range rec.spans {
		if server.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			continue
		}
		for _, s := range rec.spans {
			if s.GetName() == "evaluation" && string(s.GetParentSpanId()) == string(server.GetSpanId()) {
				got = append(got, server.GetName())
			}
		}
	}
	if want := "POST /v1/check|POST /v1/data/*|GET /v1/query"; strings.Join(got, "|") != want {
		t.Fatalf("requests with an evaluation span: %v, want %s", got, want)
	}
}
