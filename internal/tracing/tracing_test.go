package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// stuckExporter is a tracing backend that never answers until released.
type stuckExporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (e *stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	e.got += len(spans)
	e.mu.Unlock()
	return nil
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

// A backend that does not answer holds up no span's end: what the queue
// cannot hold is dropped and counted, and the queue never grows past its
// size.
func TestQueueDropsWhenTheBackendIsStuck(t *testing.T) {
	exp := &stuckExporter{release: make(chan struct{})}
	const size, batch, n = 64, 8, 10_000
	q := newQueue(exp, size, batch, 1<<62, 1<<62, slog.New(slog.DiscardHandler))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tr := tp.Tracer("test")
	for range n {
		_, span := tr.Start(context.Background(), "decision")
		span.End() // would hang here if the queue blocked
	}
	if len(q.spans) > size {
		t.Fatalf("queue holds %d spans, over its size %d", len(q.spans), size)
	}
	if d := q.dropped.Load(); d < n-size-batch {
		t.Fatalf("dropped %d of %d spans with a queue of %d and batches of %d: the rest went where?", d, n, size, batch)
	}
	close(exp.release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exp.got+int(q.dropped.Load()) != n {
		t.Fatalf("exported %d + dropped %d != %d ended", exp.got, q.dropped.Load(), n)
	}
}

func recordingTracing() (*Tracing, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	return &Tracing{cfg: &Config{}, provider: tp, tracer: tp.Tracer("test"), propagator: traceContext}, rec
}

// Trace headers are the caller's: a well-formed traceparent is continued,
// anything else is ignored — a new trace, never an error, and nothing of
// an oversized header kept.
func TestStartHTTPTakesOnlyAWellFormedTraceparent(t *testing.T) {
	tr, rec := recordingTracing()
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	good := "00-" + traceID + "-" + parentID + "-01"
	for _, tc := range []struct {
		name, parent, state string
		continued           bool
	}{
		{"well formed", good, "", true},
		{"huge tracestate", good, strings.Repeat("k=v,", 1<<18), true},
		{"malformed tracestate", good, "=,=,\x00", true},
		// Well formed and within W3C's 32 members, each its longest: 16 KiB
		// a span would carry in the queue and to the backend.
		{"tracestate of 32 long members", good, longTraceState(), true},
		{"huge traceparent", good + strings.Repeat("0", 1<<20), "", false},
		{"bad version", "ff-" + traceID + "-" + parentID + "-01", "", false},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + parentID + "-01", "", false},
		{"not hex", "00-" + strings.Repeat("z", 32) + "-" + parentID + "-01", "", false},
		{"garbage", "\xff\xfe", "", false},
	} {
		r := httptest.NewRequest("POST", "/v1/check", nil)
		r.Header.Set("traceparent", tc.parent)
		if tc.state != "" {
			r.Header.Set("tracestate", tc.state)
		}
		_, span, ok := tr.StartHTTP(r, "/v1/check")
		if !ok {
			t.Fatalf("%s: no span", tc.name)
		}
		EndHTTP(span, 200)
		got := rec.Ended()[len(rec.Ended())-1]
		continued := got.Parent().IsValid() && got.SpanContext().TraceID().String() == traceID && got.Parent().SpanID().String() == parentID
		if continued != tc.continued {
			t.Errorf("%s: continued %v, want %v (parent %v)", tc.name, continued, tc.continued, got.Parent())
		}
		if n := len(got.Parent().TraceState().String()); n > 512 {
			t.Errorf("%s: kept a tracestate of %d bytes", tc.name, n)
		}
		if got.Name() != "POST /v1/check" {
			t.Errorf("%s: span named %q", tc.name, got.Name())
		}
	}
}

// exclude_paths (OPA's globs) leave requests untraced.
func TestStartHTTPExcludePaths(t *testing.T) {
	c, err := ParseConfig([]byte(`{"type":"grpc","exclude_paths":["/health**"]}`))
	if err != nil {
		t.Fatal(err)
	}
	tr, rec := recordingTracing()
	tr.cfg = c
	for path, traced := range map[string]bool{"/health": false, "/health/ready": false, "/v1/check": true} {
		_, span, ok := tr.StartHTTP(httptest.NewRequest("GET", path, nil), path)
		if ok != traced {
			t.Fatalf("%s: traced %v", path, ok)
		}
		if ok {
			EndHTTP(span, 200)
		}
	}
	if len(rec.Ended()) != 1 {
		t.Fatalf("%d spans", len(rec.Ended()))
	}
}

// Off, there is no *Tracing, and its methods do nothing.
func TestOffIsNil(t *testing.T) {
	tr, err := Start(context.Background(), &Config{}, nil)
	if err != nil || tr != nil {
		t.Fatalf("%v %v", tr, err)
	}
	r := httptest.NewRequest("GET", "/v1/check", nil)
	if ctx, _, ok := tr.StartHTTP(r, "/v1/check"); ok || ctx != r.Context() {
		t.Fatal("a nil Tracing traced")
	}
	if tr.Dropped() != 0 || tr.Shutdown(context.Background()) != nil {
		t.Fatal("nil Tracing")
	}
}

// What a client chooses — its method, its path — cannot make a span
// large: a span may wait in the queue, up to max_queue_size of them.
func TestSpanSizeBounded(t *testing.T) {
	c, err := ParseConfig([]byte(`{"type":"grpc"}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append(c.providerOptions(), sdktrace.WithSpanProcessor(rec))...)
	tr := &Tracing{cfg: c, provider: tp, tracer: tp.Tracer("test"), propagator: traceContext}
	r := httptest.NewRequest("GET", "/v1/data/"+strings.Repeat("a", 1<<20), nil)
	r.Method = strings.Repeat("M", 1<<16)
	_, span, _ := tr.StartHTTP(r, "/v1/data/*")
	EndHTTP(span, 200)
	got := rec.Ended()[0]
	size := len(got.Name())
	for _, a := range got.Attributes() {
		size += len(a.Key) + len(a.Value.Emit())
	}
	if size > 4096 {
		t.Fatalf("a span of %d bytes: %q", size, got.Name()[:64])
	}
	if got.Name() != "HTTP /v1/data/*" {
		t.Fatalf("span named %.80q", got.Name())
	}
}

// A service's URL may carry a secret in its query (a presigned bundle
// URL, a token): the client span of a request to it does not export it.
func TestTransportSpanHidesTheQuery(t *testing.T) {
	c, err := ParseConfig([]byte(`{"type":"grpc"}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append(c.providerOptions(), sdktrace.WithSpanProcessor(rec))...)
	tr := &Tracing{cfg: c, provider: tp, tracer: tp.Tracer("test"), propagator: traceContext}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != "s3cret" {
			w.WriteHeader(http.StatusBadRequest) // the request itself keeps it
		}
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:pw-s3cret@", 1) + "/bundles/b.tar.gz?token=s3cret"
	resp, err := (&http.Client{Transport: tr.Transport(nil)}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, a := range spans[0].Attributes() {
		if strings.Contains(a.Value.Emit(), "s3cret") {
			t.Fatalf("exported %s=%s", a.Key, a.Value.Emit())
		}
	}
}

// The SDK's errors go to serve's log (JSON), not to stderr as text.
func TestSDKErrorsAreLogged(t *testing.T) {
	var buf syncBuffer
	c, err := ParseConfig([]byte(`{"type":"grpc","address":"127.0.0.1:1"}`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Start(context.Background(), c, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	otel.Handle(errors.New("sdk trouble"))
	if s := buf.String(); !strings.Contains(s, `"msg":"distributed tracing"`) || !strings.Contains(s, "sdk trouble") {
		t.Fatalf("log: %s", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// longTraceState is a well-formed tracestate of 32 members, each with a
// key and a value of 256 characters (W3C's longest).
func longTraceState() string {
	members := make([]string, 32)
	for i := range members {
		members[i] = fmt.Sprintf("%s%02d=%s", strings.Repeat("k", 254), i, strings.Repeat("v", 256))
	}
	return strings.Join(members, ",")
}

// An evaluation's error is the span's status description, which the
// attribute bound does not cover: an error quoting what a client sent
// (a path, a key) made a queued span as large. It is cut at
// maxAttributeLength, at a rune boundary.
func TestSpanErrorBounded(t *testing.T) {
	c, err := ParseConfig([]byte(`{"type":"grpc"}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append(c.providerOptions(), sdktrace.WithSpanProcessor(rec))...)
	tr := &Tracing{cfg: c, provider: tp, tracer: tp.Tracer("test"), propagator: traceContext}
	_, end := tr.Span(context.Background(), "evaluation")
	end(errors.New("evaluation of " + strings.Repeat("é", 1<<16) + " failed"))
	got := rec.Ended()[0].Status()
	if len(got.Description) > maxAttributeLength || !strings.HasPrefix(got.Description, "evaluation of é") || !utf8.ValidString(got.Description) {
		t.Fatalf("a status of %d bytes: %.40q", len(got.Description), got.Description)
	}
}
