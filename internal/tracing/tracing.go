// Package tracing is OPA's distributed_tracing for permatrix: spans of
// every HTTP request and ext_authz Check (the caller's W3C traceparent
// continued, so the sidecar's span is a child of the application's), of
// each decision's evaluation and of the outgoing bundle and decision-log
// requests, exported over OTLP (gRPC or HTTP) by the OpenTelemetry SDK.
//
// Off (the section absent, or without a type) there is no *Tracing: its
// methods on nil do nothing, and the servers register nothing, so the
// decision path pays nothing. On, spans go to a bounded queue that an
// exporter drains in batches: a tracing backend that is slow or down
// costs decisions nothing — spans that do not fit are dropped, counted,
// and logged at most once a minute.
//
// Every header is the caller's: a malformed or oversized traceparent or
// tracestate is ignored (a new trace starts), never an error; neither
// trace ids nor paths become metric labels.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
)

// Tracing is the running tracer: nil when off.
type Tracing struct {
	cfg        *Config
	provider   *sdktrace.TracerProvider
	tracer     trace.Tracer
	queue      *queue
	propagator propagation.TextMapPropagator
}

// instrumentation names the spans' instrumentation scope.
const instrumentation = "github.com/permatrix/permatrix"

// Start starts tracing as cfg says, or returns nil when cfg does not turn
// it on. Nothing is dialled here: the exporter connects when it first
// exports, so a backend that is down does not stop serve from starting.
func Start(ctx context.Context, cfg *Config, log *slog.Logger) (*Tracing, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("distributed_tracing: %w", err)
	}
	var client otlptrace.Client
	if cfg.Type == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Address)}
		if tlsCfg == nil {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		client = otlptracegrpc.NewClient(opts...)
	} else {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Address)}
		if tlsCfg == nil {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		client = otlptracehttp.NewClient(opts...)
	}
	exporter, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("distributed_tracing: %w", err)
	}
	b := cfg.BatchSpanProcessor
	q := newQueue(exporter, *b.MaxQueueSize, *b.MaxExportBatchSize,
		time.Duration(*b.BatchTimeoutMs)*time.Millisecond, time.Duration(*b.ExportTimeoutMs)*time.Millisecond, log)
	provider := sdktrace.NewTracerProvider(append(cfg.providerOptions(), sdktrace.WithSpanProcessor(q))...)
	// The SDK's own errors (not the exports', which the queue reports)
	// and messages go to serve's log, as JSON, not to stderr as text.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { q.warn("distributed tracing", err) }))
	otel.SetLogger(logr.FromSlogHandler(log.Handler()))
	return &Tracing{cfg: cfg, provider: provider, tracer: provider.Tracer(instrumentation), queue: q,
		propagator: traceContext}, nil
}

// traceContext is W3C's trace context as the spans take it: a tracestate
// over maxTraceState bytes is dropped (the traceparent kept), as W3C
// lets a vendor do. Well formed, it may be 32 members of 512 bytes: 16
// KiB a client chose, carried by every span of the request while it waits
// in the queue, and exported.
var traceContext propagation.TextMapPropagator = boundedTraceContext{}

// maxTraceState bounds a kept tracestate, in bytes: what W3C asks a
// vendor to pass on at least.
const maxTraceState = 512

type boundedTraceContext struct{ propagation.TraceContext }

func (b boundedTraceContext) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return b.TraceContext.Extract(ctx, boundedTraceState{carrier})
}

// boundedTraceState hides a tracestate over maxTraceState bytes.
type boundedTraceState struct{ propagation.TextMapCarrier }

func (c boundedTraceState) Get(key string) string {
	v := c.TextMapCarrier.Get(key)
	if len(v) > maxTraceState && strings.EqualFold(key, "tracestate") {
		return ""
	}
	return v
}

// providerOptions are the tracer provider's resource and sampler (OPA's)
// and its span limits: an attribute's value is cut at
// maxAttributeLength, so that a span waiting in the queue stays small
// whatever the client sent (a path of a megabyte).
func (c *Config) providerOptions() []sdktrace.TracerProviderOption {
	limits := sdktrace.NewSpanLimits()
	limits.AttributeValueLengthLimit = maxAttributeLength
	return []sdktrace.TracerProviderOption{
		sdktrace.WithResource(c.resource()),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SamplePercentage / 100))),
		sdktrace.WithRawSpanLimits(limits),
	}
}

// cut is s in at most n bytes, cut at a rune boundary: a span's status
// description, which the SDK's attribute bound does not cover.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxAttributeLength bounds a span attribute's value, in bytes.
const maxAttributeLength = 512

// knownMethods are the methods a span names; any other (permatrix answers
// every method for forward-auth) is "_OTHER", as OpenTelemetry's
// conventions have it, and its span "HTTP <route>": a client's made-up
// method is neither a span name nor a large attribute.
var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true}

// resource is OPA's: service.name and the resource section's attributes
// (the semantic conventions' names OPA uses).
func (c *Config) resource() *resource.Resource {
	attrs := []attribute.KeyValue{attribute.String("service.name", c.ServiceName)}
	for k, v := range map[string]string{"service.version": c.Resource.ServiceVersion, "service.instance.id": c.Resource.ServiceInstanceID,
		"service.namespace": c.Resource.ServiceNamespace, "deployment.environment": c.Resource.DeploymentEnvironment} {
		if v != "" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	return resource.NewSchemaless(attrs...)
}

// Shutdown exports what the queue holds, within ctx, and stops.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Dropped is the number of spans dropped so far: the queue full, or their
// export failed.
func (t *Tracing) Dropped() uint64 {
	if t == nil {
		return 0
	}
	return t.queue.dropped.Load()
}

// excluded reports whether OPA's exclude_paths leave a request's path
// untraced.
func (t *Tracing) excluded(path string) bool {
	for _, g := range t.cfg.excludePaths {
		if g.Match(path) {
			return true
		}
	}
	return false
}

// StartHTTP starts the server span of an incoming HTTP request, a child
// of the caller's span when its traceparent names one; route is the
// route's pattern (a low-cardinality span name, never the path). ok is
// false when the path is excluded: no span, ctx unchanged.
func (t *Tracing) StartHTTP(r *http.Request, route string) (ctx context.Context, span trace.Span, ok bool) {
	ctx = r.Context()
	if t == nil || t.excluded(r.URL.Path) {
		return ctx, nil, false
	}
	ctx = t.propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	if route == "" {
		route = "unmatched route"
	}
	method, name := r.Method, r.Method
	if !knownMethods[method] {
		method, name = "_OTHER", "HTTP"
	}
	ctx, span = t.tracer.Start(ctx, name+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path)))
	return ctx, span, true
}

// EndHTTP ends a span StartHTTP started, with the response's status.
func EndHTTP(span trace.Span, status int) {
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Span starts a span inside the request ctx carries (the evaluation of a
// decision); end ends it, with the error if any.
func (t *Tracing) Span(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, cut(err.Error(), maxAttributeLength))
		}
		span.End()
	}
}

// GRPCStatsHandler traces the gRPC server's ext_authz Check calls: the
// trace context of the call's metadata continued. Only those: health
// checks (Envoy's and Kubernetes' probes, every few seconds) are not
// traced, nor a call of a method the server does not have, whose name
// (the span's) the client chose.
func (t *Tracing) GRPCStatsHandler() stats.Handler {
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.provider), otelgrpc.WithPropagators(t.propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), otelgrpc.WithFilter(filters.FullMethodName(extAuthzCheck)))
}

// extAuthzCheck is Envoy's ext_authz Check, the one gRPC method traced.
const extAuthzCheck = "/envoy.service.auth.v3.Authorization/Check"

// Transport traces the requests of an HTTP client (bundle downloads and
// decision-log uploads), and sends their trace context. A span shows the
// URL without its query (a presigned URL's signature, a token: as
// internal/redact shows URLs); the request sent keeps it.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	traced := otelhttp.NewTransport(restoreQuery{rt}, otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(t.propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()))
	return hideQuery{traced}
}

// hideQuery hands the tracing transport the request with its query shown
// as "redacted" (what the span records), the URL sent in the context for
// restoreQuery, below the tracing transport, to send.
type hideQuery struct{ next http.RoundTripper }

type sentURL struct{}

func (h hideQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.RawQuery == "" {
		return h.next.RoundTrip(r)
	}
	shown := *r.URL
	shown.RawQuery = "redacted"
	hidden := r.WithContext(context.WithValue(r.Context(), sentURL{}, r.URL))
	hidden.URL = &shown
	return h.next.RoundTrip(hidden)
}

type restoreQuery struct{ next http.RoundTripper }

func (rq restoreQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if u, ok := r.Context().Value(sentURL{}).(*url.URL); ok {
		r = r.Clone(r.Context())
		r.URL = u
	}
	return rq.next.RoundTrip(r)
}
