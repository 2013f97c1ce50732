// Package extauthz serves Envoy's external authorization API over gRPC
// (envoy.service.auth.v3.Authorization/Check, `--grpc-addr`): the same
// identity and routes as /v1/forward-auth (internal/gateway), decided on
// the same path as /v1/check. It is the only package that imports gRPC
// and Envoy's go-control-plane.
//
// Every answer is a CheckResponse, never a gRPC error: Envoy's
// failure_mode_allow lets a request through on a transport error, and an
// error from permatrix must not become an allow. Allowed → OK, with
// x-permatrix-decision-id added upstream; denied → PERMISSION_DENIED (HTTP
// 403, the decision as body); no or an invalid identity → UNAUTHENTICATED
// (401); an invalid check → INVALID_ARGUMENT (400); a fault → INTERNAL
// (500) or UNAVAILABLE (503).
package extauthz

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	encproto "google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/gateway"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/internal/pdp"
)

// DecisionIDHeader carries the decision id upstream (allowed) and to the
// client (denied).
const DecisionIDHeader = "x-permatrix-decision-id"

// Context extension keys that name the check in Envoy's per-route
// check_settings, for configurations without a routes file. Clients cannot
// set them (unlike request headers, which over gRPC are the client's own
// and never name the check).
const (
	ExtSystem       = "system"
	ExtAction       = "action"
	ExtResourceType = "resource_type"
	ExtResourceID   = "resource_id"
)

// Config configures the server.
type Config struct {
	Gateway *gateway.Gateway
	// Decide decides a check (internal/http's Server.Decide: the service
	// path with its metrics and decision log).
	Decide func(context.Context, permatrix.Check) (*permatrix.Decision, error)
	// ErrorJSON maps an error to the HTTP status and JSON body the HTTP API
	// would answer (internal/http.ErrorJSON).
	ErrorJSON func(error) (int, []byte)
	// Ready says whether the server decides (internal/http's Server.Ready:
	// nil when /health answers 200); grpc.health.v1.Health answers from it.
	// nil: always.
	Ready func() error
	// TLS, when set, serves gRPC over TLS (mTLS if it asks for client certs).
	TLS *tls.Config
	// MaxMessageBytes bounds a CheckRequest (default 1 MiB, the HTTP API's
	// body limit; gRPC's own is 4 MiB): a larger one is refused with
	// RESOURCE_EXHAUSTED before it is decoded. Decoding a map of headers
	// and reading it costs some 35 times its size, and Envoy sends no more
	// than 60 KiB of headers unless told to.
	MaxMessageBytes int
	// IdleTimeout closes a connection that has had no call open for this
	// long (default 120 s, as the HTTP listener's idle timeout).
	IdleTimeout time.Duration
	// MaxConnections bounds the connections the listener holds open at
	// once (default listen.DefaultMaxConnections): past it the one with no
	// call open the longest is closed to make room (idle.go), and with
	// none idle a new one waits until one closes or goes idle.
	MaxConnections int
	// MaxConnectionsPerClient bounds each client's connections (an IPv4
	// address, an IPv6 /64; loopback and unix socket clients are not
	// bounded), 0 for no bound: past it the client's own connection with
	// no call open the longest is closed to make room, and with none the
	// new one is closed at once (listen.Limited).
	MaxConnectionsPerClient int
	// MaxRequestsInFlight bounds the calls served at once, over all the
	// listener's connections and streams, from their headers on (default
	// DefaultMaxRequestsInFlight): past it a check is answered at once,
	// UNAVAILABLE (503) without its message read, and any other call
	// refused with gRPC's UNAVAILABLE. Health Check calls are not counted:
	// they have a bound of their own, listen.HealthPlaces (32), past which
	// one is UNAVAILABLE; Watch streams are bounded by MaxWatchStreams.
	MaxRequestsInFlight int
	// MaxWatchStreams bounds the grpc.health.v1 Watch streams open at once
	// (default 100): a Watch has no timeout, it lasts as long as its client
	// wants, so past the bound one is refused with RESOURCE_EXHAUSTED.
	// Health Check calls (what Envoy's and Kubernetes' gRPC health checks
	// send) are not counted here (MaxRequestsInFlight says where).
	MaxWatchStreams int
	// Timeout bounds one check call from its headers on: its message's
	// coming and its decision, one deadline (default 10 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Tracing, when set, traces the calls (OPA's distributed_tracing:
	// internal/tracing's GRPCStatsHandler, which traces each Check, the
	// trace context of its metadata continued).
	Tracing stats.Handler
}

// DefaultMaxWatchStreams is Config.MaxWatchStreams' default.
const DefaultMaxWatchStreams = 100

// Bounds on a connection's streams (see New).
const (
	maxHeaderListSize    = 16 << 10
	maxConcurrentStreams = 100
)

// Server is the ext_authz gRPC server.
type Server struct {
	cfg    Config
	calls  *listen.Places
	probes *listen.Places // health Check calls, bounded apart (bound)
	grpc   *grpc.Server
	ln     *listen.Limited
	log    *slog.Logger
	health healthServer
	// stop ends the context health and Watch streams end with (Shutdown).
	stop context.CancelFunc
}

// New builds the server; Listen and Serve start it.
func New(cfg Config) *Server {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	if cfg.MaxWatchStreams <= 0 {
		cfg.MaxWatchStreams = DefaultMaxWatchStreams
	}
	if cfg.MaxRequestsInFlight <= 0 {
		cfg.MaxRequestsInFlight = DefaultMaxRequestsInFlight
	}
	calls := listen.NewPlaces(cfg.MaxRequestsInFlight, cfg.MaxConnectionsPerClient)
	probes := listen.NewPlaces(listen.HealthPlaces, cfg.MaxConnectionsPerClient)
	stopping, stop := context.WithCancel(context.Background())
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		// A stream's headers at most 16 KiB (gRPC's default is 16 MiB,
		// which HPACK lets a client fill with a few hundred bytes: a
		// header indexed once and named again and again). Envoy sends the
		// original request's headers in the CheckRequest, not as metadata:
		// its own are a few hundred bytes, with initial_metadata and a
		// trace's. An answer a client never reads (its window shut) is
		// held with its headers outside the bound of calls in flight,
		// some 110 KiB a call at 64 KiB. And at most 100 streams open at once on
		// a connection (gRPC has no bound; the HTTP API's HTTP/2 bound, the
		// least RFC 9113 recommends). Envoy opens another connection when
		// it needs more; the calls of all connections together are bounded
		// by MaxRequestsInFlight (bound).
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.InTapHandle(bound(cfg.Timeout, make(chan struct{}, cfg.MaxWatchStreams), calls, probes, stopping)),
		// As the HTTP listener, a connection idle for IdleTimeout is closed
		// (gRPC keeps it for good), and one that has not finished its TLS
		// handshake and HTTP/2 preface in 5 s (the HTTP listener's
		// ReadHeaderTimeout; gRPC's is 120 s).
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout}),
		grpc.ConnectionTimeout(5 * time.Second),
		// A CheckRequest protobuf refuses to decode (a string field that
		// is not UTF-8, bytes that are not protobuf) is answered with a
		// CheckResponse (400), not gRPC's INTERNAL error: see checkCodec.
		grpc.ForceServerCodecV2(checkCodec{}),
	}
	s := &Server{cfg: cfg, calls: calls, probes: probes, log: cfg.Logger,
		stop: stop, health: healthServer{ready: cfg.Ready, stopping: stopping.Done()}}
	// Connections with no call open make room for new ones at the
	// listener's bound (idle.go); gRPC's own MaxConnectionIdle above closes
	// them after IdleTimeout whatever the bound.
	// The tracker knows a connection by its credentials' AuthInfo.
	opts = append(opts, grpc.StatsHandler(idleTracker{ln: func() *listen.Limited { return s.ln }}))
	if cfg.Tracing != nil {
		opts = append(opts, grpc.StatsHandler(cfg.Tracing))
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts = append(opts, grpc.Creds(connCreds{creds}))
	s.grpc = grpc.NewServer(opts...)
	s.grpc.RegisterService(&authorizationService, s)
	// gRPC health checking, for Envoy's cluster health checks.
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s
}

// bound gives every call but a health Watch its timeout from its headers
// on, its message's coming included: gRPC waits for a unary call's message
// as long as the client's deadline says, for ever without one, so streams
// opened and left would be held, with their headers, for good (the HTTP
// listener gives a request's body 30 s). Watch streams are bounded in
// number instead (Config.MaxWatchStreams), from their headers on too: one
// whose message never comes never reaches Watch, and counted there it
// was neither timed nor counted. A token per open Watch is in watches.
// For the same reason a Watch stream ends here when stopping does (the
// server shuts down): Watch ends its own then, and the graceful stop
// waited for one without its message until the shutdown's deadline.
// Every other call holds a place in calls from its headers until it ends
// or its timeout passes; past their bound a check is marked refused, and
// answered without its message read (checkHandler), any other call (a
// method that does not exist) refused here, UNAVAILABLE. A health Check
// holds a place in probes instead (listen.HealthPlaces), refused here
// past it: counted in calls, it was refused while checks filled their
// bound, and Envoy and Kubernetes took a busy sidecar for a dead one.
func bound(timeout time.Duration, watches chan struct{}, calls, probes *listen.Places, stopping context.Context) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if info.FullMethodName == healthpb.Health_Watch_FullMethodName {
			// gRPC calls the tap holding its connection's lock: a
			// token is taken without waiting.
			select {
			case watches <- struct{}{}:
			default:
				return nil, status.Errorf(codes.ResourceExhausted, "%d health Watch streams are open, the most this server keeps: use Check, or retry later", cap(watches))
			}
			// The stream's context is canceled when it ends, however it
			// ends (already, if gRPC drops it after the tap).
			ctx, cancel := context.WithCancel(ctx)
			unhook := context.AfterFunc(stopping, cancel)
			context.AfterFunc(ctx, func() {
				unhook()
				<-watches
			})
			return ctx, nil
		}
		// Canceled with the stream's own context, its parent, when the
		// stream ends: the timer goes then.
		ctx, cancel := context.WithTimeout(ctx, timeout)
		_ = cancel
		if info.FullMethodName == healthpb.Health_Check_FullMethodName {
			if !acquire(ctx, probes) {
				return nil, status.Error(codes.Unavailable, errHealthInFlight.Error())
			}
			return ctx, nil
		}
		if !acquire(ctx, calls) {
			if info.FullMethodName != authv3.Authorization_Check_FullMethodName {
				return nil, status.Error(codes.Unavailable, errInFlight.Error())
			}
			return context.WithValue(ctx, refusedKey{}, true), nil
		}
		return ctx, nil
	}
}

// Listen binds addr ("host:port" or "unix:///path"), holding at most
// Config.MaxConnections open at once.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := listen.Listen(addr)
	if err != nil {
		return nil, err
	}
	s.ln = listen.Limit(ln, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerClient)
	return ln.Addr(), nil
}

// Requests is the calls in flight, their bound and those refused at it.
func (s *Server) Requests() *listen.Places { return s.calls }

// Probes is the health Check calls in flight, their own bound and those
// refused at it.
func (s *Server) Probes() *listen.Places { return s.probes }

// Connections is the listener's connections, open and their bound; nil
// before Listen.
func (s *Server) Connections() *listen.Limited { return s.ln }

// URL is how clients reach the server.
func (s *Server) URL() string {
	u := listen.URL(s.ln, s.cfg.TLS != nil)
	return strings.Replace(strings.Replace(u, "https://", "grpcs://", 1), "http://", "grpc://", 1)
}

// Serve serves until Shutdown; nil after a clean shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		return errors.New("Serve before Listen")
	}
	err := s.grpc.Serve(s.ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops accepting and lets in-flight checks finish until ctx
// ends, then stops, cutting those left: it returns ctx's error then, nil
// when every call finished.
func (s *Server) Shutdown(ctx context.Context) error {
	// Health says NOT_SERVING from now on, and its Watch streams end: the
	// graceful stop waits for every stream, and they would wait for it.
	s.stop()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		return ctx.Err()
	}
}

// Check implements envoy.service.auth.v3.Authorization.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	// gRPC does not recover a handler's panic: it would end the process,
	// the HTTP API and every check in flight with it. It is a fault,
	// answered as one (INTERNAL), as the HTTP API's recoverer answers 500.
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic", "err", p, "stack", string(debug.Stack()))
			resp = s.denied(fmt.Errorf("ext_authz check: panic: %v", p))
		}
	}()
	if closedToMakeRoom(ctx) {
		return nil, status.Error(codes.Unavailable, "the connection was closed to make room for another: the check was not decided")
	}
	// ctx carries the call's deadline, the check timeout from its headers
	// on (bound): its one owner.
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return s.denied(permatrix.Errorf(permatrix.EINVALID, "the check request has no HTTP request attributes")), nil
	}
	ext := attrs.GetContextExtensions()
	r := gateway.Request{
		Method: h.GetMethod(),
		URI:    h.GetPath(),
		Header: headers(h),
		Named:  gateway.Named(ext[ExtSystem], ext[ExtAction], ext[ExtResourceType], ext[ExtResourceID]),
	}
	// What the decision log says of the request: the original request's
	// headers, Envoy's address.
	logged := decisionlog.Request{ID: decisionlog.NextRequestID(), Header: r.Header}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		logged.RemoteAddr = p.Addr.String()
	}
	ctx = decisionlog.WithRequest(ctx, logged)
	ch, err := s.cfg.Gateway.Check(ctx, r)
	if err != nil {
		return s.denied(err), nil
	}
	// The consistency token, as forward-auth takes it: the original
	// request's X-Permatrix-Min-Revision (read after the identity).
	if ch.MinRevision, err = gateway.MinRevision(r.Header.Values(gateway.HeaderMinRevision)); err != nil {
		return s.denied(err), nil
	}
	d, err := s.cfg.Decide(ctx, ch)
	if err != nil {
		return s.denied(err), nil
	}
	id := &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: DecisionIDHeader, Value: d.DecisionID},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
	if !d.Allow {
		body := marshal(d)
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "denied"},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
				Headers: []*corev3.HeaderValueOption{id, contentTypeJSON()},
				Body:    body,
			}},
		}, nil
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{id}}},
	}, nil
}

// authorizationService is authv3.Authorization_ServiceDesc with its Check
// handler decoding the request with checkCodec: a request that does not
// decode becomes a CheckResponse, not a gRPC error.
var authorizationService = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// checkFrame is a CheckRequest as checkCodec decodes it: the request, or
// why protobuf refused it.
type checkFrame struct {
	req *authv3.CheckRequest
	err error
}

// checkCodec is gRPC's protobuf codec, but for a checkFrame: protobuf's
// refusal (a string field that is not UTF-8 — an HTTP header value may
// hold any byte, and Envoy sends it as it is in a proto3 string —, or a
// message that is not protobuf) is kept in the frame for the handler to
// answer, where gRPC would answer INTERNAL, an error Envoy's
// failure_mode_allow turns into an allow.
type checkCodec struct{}

var protoCodec = encoding.GetCodecV2(encproto.Name)

func (checkCodec) Name() string { return encproto.Name }

func (checkCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*checkFrame)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	f.req = new(authv3.CheckRequest)
	if err := protoCodec.Unmarshal(data, f.req); err != nil {
		f.err = err
	}
	return nil
}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	if refused(ctx) {
		// Past the bound: a CheckResponse all the same (a gRPC error
		// Envoy's failure_mode_allow would let through), and the message
		// is never read.
		return srv.(*Server).denied(errInFlight), nil
	}
	var f checkFrame
	if err := dec(&f); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	check := func(ctx context.Context, _ any) (any, error) {
		if f.err != nil {
			return s.denied(permatrix.Errorf(permatrix.EINVALID, "the check request is not a valid CheckRequest: %v", f.err)), nil
		}
		return s.Check(ctx, f.req)
	}
	if interceptor == nil {
		return check(ctx, f.req)
	}
	return interceptor(ctx, f.req, &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}, check)
}

// denied answers an error: the HTTP API's status and error body, and the
// gRPC status code that goes with it.
func (s *Server) denied(err error) *authv3.CheckResponse {
	status, body := s.cfg.ErrorJSON(err)
	// A consistency token not reached is the client's 503 (it chose the
	// token), noted by the pdp in a bounded warning.
	if status >= 500 && !pdp.NotReached(err) && err != errInFlight {
		s.log.Error("ext_authz check failed", "err", err)
	}
	code := codes.Internal
	switch status {
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	case http.StatusUnauthorized:
		code = codes.Unauthenticated
	case http.StatusForbidden:
		code = codes.PermissionDenied
	case http.StatusServiceUnavailable:
		code = codes.Unavailable
	case 499:
		code, status = codes.Canceled, http.StatusServiceUnavailable
	}
	hdrs := []*corev3.HeaderValueOption{contentTypeJSON()}
	if code == codes.Unauthenticated {
		if v := s.cfg.Gateway.Identity.Challenge(); v != "" {
			hdrs = append(hdrs, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: v}})
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: permatrix.ErrorMessage(err)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: hdrs,
			Body:    string(body),
		}},
	}
}

// headers are the original request's headers (Envoy sends them lower-case,
// in headers or, with encode_raw_headers, in header_map); pseudo-headers
// (":path") are left out.
func headers(h *authv3.AttributeContext_HttpRequest) http.Header {
	out := http.Header{}
	if hm := h.GetHeaderMap().GetHeaders(); len(hm) > 0 {
		for _, kv := range hm {
			v := kv.GetValue()
			if v == "" {
				v = string(kv.GetRawValue())
			}
			if !strings.HasPrefix(kv.GetKey(), ":") {
				out.Add(kv.GetKey(), v)
			}
		}
		return out
	}
	for k, v := range h.GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			out.Add(k, v)
		}
	}
	return out
}

func contentTypeJSON() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

// marshal is v as JSON without HTML escaping, like the HTTP API's bodies.
func marshal(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// healthServer answers grpc.health.v1.Health as /health answers: SERVING
// while Ready is nil, NOT_SERVING otherwise (no bundle yet, the store
// closed or its disk failing), so that Envoy's health checks take a
// sidecar that cannot decide out of its cluster rather than sending it
// checks that all fail. Its services are the server ("") and the
// Authorization service.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	ready    func() error
	stopping <-chan struct{} // closed when the server shuts down
}

func (h healthServer) status(service string) healthpb.HealthCheckResponse_ServingStatus {
	switch {
	case service != "" && service != authv3.Authorization_ServiceDesc.ServiceName:
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	case h.stopped(), h.ready != nil && h.ready() != nil:
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

func (h healthServer) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st := h.status(req.GetService())
	if st == healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

func (h healthServer) stopped() bool {
	select {
	case <-h.stopping:
		return true
	default:
		return false
	}
}

// Watch sends the status, then each change of it (readiness is looked at
// every second), until the client goes or the server shuts down.
// A Watch past Config.MaxWatchStreams open at once is refused (bound):
// unlike every other call it has no timeout, and each holds a goroutine
// and a ticker for as long as its client keeps it.
func (h healthServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		if st := h.status(req.GetService()); st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if h.stopped() {
			return nil
		}
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-h.stopping:
		case <-tick.C:
		}
	}
}
