// Package http serves permatrix's HTTP API (shared/contract.md sections
// 3 to 5) with Echo v4. Echo stays inside this package, so moving to Echo v5
// touches nothing else.
package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/gateway"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/routes"
	"github.com/permatrix/permatrix/internal/store"
	dtracing "github.com/permatrix/permatrix/internal/tracing"
)

// Config configures a Server.
type Config struct {
	// AdminToken guards the administration API (Authorization: Bearer).
	AdminToken string
	// Identity says who is calling forward-auth and, when it verifies JWTs,
	// lets users call the administration API's writes as themselves
	// (default: identity.Default(), the X-Forwarded-User header).
	Identity *identity.Identity
	// Routes map forward-auth's original requests to checks (nil: the
	// proxy names the check in X-Permatrix-* headers).
	Routes *routes.Table
	// TLS, when set, serves the API over TLS (and mTLS if it asks for
	// client certificates). The diagnostic listener stays plain HTTP.
	TLS *tls.Config
	// BodyLimit is the largest request body accepted, in bytes (default 1 MiB).
	BodyLimit int64
	// Tracing, when set, traces every request (OPA's distributed_tracing).
	Tracing *dtracing.Tracing
	// RequestTimeout bounds one request's work (default 10 s).
	RequestTimeout time.Duration
	// MaxConnections bounds the connections each listener holds open at
	// once (default listen.DefaultMaxConnections): past it the one idle the
	// longest is closed to make room, and with none idle a new one waits
	// until one closes or goes idle (listen.Limited).
	MaxConnections int
	// MaxConnectionsPerClient bounds the connections each client (an IPv4
	// address, an IPv6 /64; loopback and unix socket clients are not
	// bounded) holds open on each listener at once, 0 for no bound: past
	// it the client's own connection idle the longest is closed to make
	// room, and with none idle the new one is closed at once.
	MaxConnectionsPerClient int
	// MaxRequestsInFlight bounds the requests the API serves at once, over
	// all its connections and HTTP/2 streams (default
	// DefaultMaxRequestsInFlight): past it a request is answered 503 at
	// once. The diagnostic listener's requests are not counted.
	MaxRequestsInFlight int
	// MaxPermissionListings bounds the permission listings (GET
	// /v1/subjects/{user}/permissions) and cell explanations (GET
	// /v1/matrix/{system}/explain) computed at once, together (default
	// DefaultMaxPermissionListings()): past it one waits up to a second,
	// then is answered 503.
	MaxPermissionListings int
	Logger                *slog.Logger

	// DefaultDecision is the document POST / answers, as OPA's
	// default_decision (default DefaultDecision). Validate it with
	// DecisionPath: NewServer panics on an invalid one.
	DefaultDecision string
	// BundleName names the active bundle in OPA's per-bundle reports
	// (provenance, /v1/status, /health?bundles): the bundles section's
	// name for it, as OPA's status reports and the logged decisions name
	// it; "permatrix" if empty (serve's own bundle).
	BundleName string
	// Version is permatrix's version, reported by OPA's provenance and
	// status (default "dev").
	Version string
	// Labels identify this server in OPA's status and configuration reports;
	// "id" (a random UUID) and "version" are added when missing.
	Labels map[string]string
	// Effective is the effective configuration GET /v1/config shows, secrets
	// already removed; default_decision and labels are added from here.
	Effective map[string]any
	// DecisionLogFile is the decision log file serve writes (--decision-log),
	// "" for none or stdout: POST /v1/replay reads its tail.
	DecisionLogFile string
	// Console, when set, is served at /ui and /ui/* (GET and HEAD): the web
	// console (internal/console), static files that use this API from the
	// browser like any other client. Nothing under /ui reads the store.
	Console http.Handler
	// Pprof serves Go's runtime profiles at /debug/pprof/ to the operator
	// (serve --pprof, as OPA's): for finding where a sidecar spends its
	// time under load.
	Pprof bool
	// DecisionLog, when set, is the decision log the service writes to:
	// requests then carry what its entries say about them (req_id,
	// requested_by, headers; decisionlog.WithRequest), and
	// /metrics counts the entries it dropped.
	DecisionLog *decisionlog.Logger
	// AllowedHosts are the names besides localhost and IP addresses that
	// a request may give as its Host (serve --allowed-hosts): without
	// them only requests to a loopback address are held to those;
	// with them, every TCP listener's requests are (hostGuard).
	AllowedHosts []string
}

// Server is the HTTP API over a pdp.Service.
type Server struct {
	echo    *echo.Echo
	svc     *pdp.Service
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	gateway *gateway.Gateway
	diag    *echo.Echo     // health and metrics only, for --diagnostic-addr
	probes  *listen.Places // the API listener's health requests in flight

	listeners  []*listener
	matrices   matrices
	listings   *places // the permission listings computed at once
	explaining *places // cells explained at once: the listings' places (sharing)
	verdicts   *places // write verdicts evaluated at once without the token: the listings' places
	candidates *places // the uploaded candidate bundles compiled at once: one
	// importLines count the lines imports committed, by outcome, as each
	// commit is made: how far imports in progress have got (a client's
	// count of lines sent runs ahead by what the server holds unread and
	// in the chunks being judged).
	importLines struct{ imported, stored prometheus.Counter }

	defaultPath []string          // Config.DefaultDecision's path
	labels      map[string]string // Config.Labels, completed
	build       provenance        // this binary's build, for ?provenance

	mu         sync.Mutex
	bundleErr  error     // the last failed bundle (re)load, cleared by a good one
	bundleFail time.Time // when it failed

	// stopping ends when a shutdown starts: the imports in flight stop
	// (admin.go), as a shutdown cannot wait for them to end.
	stopping    context.Context
	stopImports context.CancelFunc

	adminDigest [sha256.Size]byte // of Config.AdminToken (isAdminToken)
}

// NewServer builds the API.
func NewServer(svc *pdp.Service, cfg Config) *Server {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.MaxRequestsInFlight <= 0 {
		cfg.MaxRequestsInFlight = DefaultMaxRequestsInFlight
	}
	if cfg.MaxPermissionListings <= 0 {
		cfg.MaxPermissionListings = DefaultMaxPermissionListings()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Identity == nil {
		cfg.Identity = identity.Default()
	}
	if cfg.DefaultDecision == "" {
		cfg.DefaultDecision = DefaultDecision
	}
	if cfg.BundleName == "" {
		cfg.BundleName = defaultBundleName
	}
	defaultPath, err := DecisionPath(cfg.DefaultDecision)
	if err != nil {
		panic("http.Config.DefaultDecision: " + err.Error())
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	labels := map[string]string{"id": uuid.NewString(), "version": cfg.Version}
	maps.Copy(labels, cfg.Labels)
	s := &Server{echo: echo.New(), svc: svc, cfg: cfg, log: cfg.Logger, metrics: NewMetrics(svc.Revision),
		gateway:     &gateway.Gateway{Identity: cfg.Identity, Routes: cfg.Routes},
		defaultPath: defaultPath, labels: labels, build: buildProvenance(cfg.Version)}
	s.stopping, s.stopImports = context.WithCancel(context.Background())
	s.adminDigest = sha256.Sum256([]byte(cfg.AdminToken))
	s.metrics.registerCache(svc.CacheStats)
	if d, ok := svc.Store().(store.Damaged); ok {
		s.metrics.Registry.MustRegister(damagedKeys{d})
	}
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "permatrix_import_lines_total",
		Help: "Lines of POST /v1/import committed, as each commit is made: outcome imported (stored by the import) or already_stored (stored before: no-ops)."}, []string{"outcome"})
	s.metrics.Registry.MustRegister(lines)
	s.importLines.imported, s.importLines.stored = lines.WithLabelValues("imported"), lines.WithLabelValues("already_stored")
	s.listings = newPlaces(cfg.MaxPermissionListings, listingWait, errListings, s.metrics, "permatrix_permission_listings_refused_total",
		"Permission listings (GET /v1/subjects/{user}/permissions) answered 503 at once, undecided: as many were being computed as may be at once.")
	s.explaining = s.listings.sharing(errExplanations, s.metrics, "permatrix_cell_explanations_refused_total",
		"Cell explanations (GET /v1/matrix/{system}/explain) answered 503, undecided: as many permission listings and explanations were being computed as may be at once.")
	s.verdicts = s.listings.sharing(errVerdicts, s.metrics, "permatrix_open_verdicts_refused_total",
		"Write verdicts (data.permatrix.admin.verdict through the Data API) asked without the admin token answered 503, unevaluated: as many permission listings, explanations and such verdicts were being computed as may be at once.")
	s.candidates = newPlaces(1, cfg.RequestTimeout, errCandidates, s.metrics, "permatrix_candidate_uploads_refused_total",
		"Uploaded candidate bundles (POST /v1/matrix/{system}/diff, POST /v1/replay) answered 503, uncompiled: another was compiled for as long as the request could wait.")
	e := s.echo
	s.setup(e)
	hosts := newHostGuard(cfg.AllowedHosts)
	// First: a request past the bound is refused before anything else.
	// Health probes have a bound of their own (listen.HealthPlaces), so
	// that decisions filling theirs never fail a probe.
	inFlight := listen.NewPlaces(cfg.MaxRequestsInFlight, cfg.MaxConnectionsPerClient)
	s.probes = listen.NewPlaces(listen.HealthPlaces, cfg.MaxConnectionsPerClient)
	s.metrics.RegisterRequests("api", inFlight)
	s.metrics.RegisterHealthRequests("api", s.probes)
	e.Use(inFlightMiddleware(inFlight, s.probes))
	e.Use(limitHeaders, hosts.middleware, ownRequestBody)
	if cfg.Tracing != nil {
		e.Use(traceRequests(cfg.Tracing)) // tracing.go
	}
	e.Use(middleware.RequestID())
	if cfg.DecisionLog != nil {
		e.Use(logRequest)
		s.metrics.registerDecisionLog(cfg.DecisionLog)
	}
	// Label application errors with the status the client gets, not 500.
	// Outside the recoverer and the request logger (which writes a
	// handler's error): a panic answered 500 is counted, and an error's
	// response size is the envelope sent.
	e.Use(newHTTPMetrics(s.metrics.Registry).middleware(func(_ echo.Context, err error) int {
		status, _ := toErrorDetail(err)
		return status
	}))
	e.Use(s.recoverer(), s.requestLogger())
	// An import streams: it is bounded by its lines (pdp.ImportStream), not
	// by the body limit, and runs as long as it makes progress rather than
	// for the request timeout; so do an export (admin.go) and a backup
	// (backup.go).
	isImport := func(c echo.Context) bool { return c.Path() == importPath }
	streams := func(c echo.Context) bool {
		return c.Path() == importPath || c.Path() == exportPath || c.Path() == backupPath
	}
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: fmt.Sprintf("%dB", cfg.BodyLimit), Skipper: isImport}))
	e.Use(decompress(cfg.BodyLimit, isImport))
	e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: cfg.RequestTimeout, Skipper: streams}))

	e.POST("/v1/check", s.check)
	e.POST("/v1/check/batch", s.checkBatch)
	// Proxies forward the original request's method (and Envoy its path),
	// so every method is a decision or an error, never Echo's automatic
	// 204 for OPTIONS or 405: the methods OpenAPI can describe are routes,
	// any other (CONNECT, PROPFIND, custom ones) reaches the same handler
	// as the path's route-not-found handler.
	for _, path := range []string{"/v1/forward-auth", "/v1/forward-auth/*"} {
		e.Match(forwardAuthMethods, path, s.forwardAuth)
		e.RouteNotFound(path, s.forwardAuth)
	}
	// OPA's REST API (opaapi.go). The Data API checks its own access (the
	// entrypoints are open).
	get := func(path string, h echo.HandlerFunc) { e.Match(getAndHead, path, h) }
	// GET only, as OPA's own server and /v1/query: a HEAD would evaluate
	// the policy, logged as a decision, to send nothing.
	e.GET("/v1/data", s.dataV1)
	e.POST("/v1/data", s.dataV1)
	e.GET("/v1/data/*", s.dataV1)
	e.POST("/v1/data/*", s.dataV1)
	e.POST("/v0/data", s.dataV0)
	e.POST("/v0/data/*", s.dataV0)
	e.POST("/", s.defaultDecision)

	get("/v1/systems", s.systems)
	get("/v1/systems/:system", s.system)
	get("/v1/subjects/:user/permissions", s.permissions)
	get("/v1/matrix/:system", s.matrix)
	get("/v1/matrix/:system/explain", s.explainCell)
	get("/v1/documents", s.documents)
	get("/v1/documents/:document", s.document)
	s.healthRoutes(e)
	get("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))

	// Admin routes carry the token check per route: an Echo group without a
	// prefix would also put it on the catch-all, answering 401 for unknown
	// paths. Writes also take a user's verified JWT (the user then acts as
	// itself: delegation rules apply); the store-wide reads need the admin
	// token (least privilege: a user learns what others hold only through
	// the checks it may make).
	operator := func(method, path string, h echo.HandlerFunc) {
		if method == http.MethodGet {
			e.Match(getAndHead, path, h, s.requireAdmin(false))
			return
		}
		e.Add(method, path, h, s.requireAdmin(false))
	}
	write := func(method, path string, h echo.HandlerFunc, params ...string) {
		e.Add(method, path, h, s.requireAdmin(true), writeQuery(params...))
	}
	write(http.MethodPost, "/v1/assignments", s.createAssignment)
	operator(http.MethodGet, "/v1/assignments", s.listAssignments)
	operator(http.MethodGet, "/v1/assignments/:id", s.getAssignment)
	write(http.MethodDelete, "/v1/assignments/:id", s.deleteAssignment)
	write(http.MethodPut, "/v1/groups/:group/members/:user", s.putMember)
	write(http.MethodDelete, "/v1/groups/:group/members/:user", s.deleteMember)
	operator(http.MethodGet, "/v1/groups/:group/members", s.listMembers)
	write(http.MethodPut, "/v1/systems/:system/roles/:role", s.putRole)
	operator(http.MethodGet, "/v1/systems/:system/roles/:role", s.getRole)
	write(http.MethodDelete, "/v1/systems/:system/roles/:role", s.deleteRole)
	write(http.MethodPut, "/v1/systems/:system/projects/:id", s.putProject)
	operator(http.MethodGet, "/v1/systems/:system/projects/:id", s.getProject)
	write(http.MethodDelete, "/v1/systems/:system/projects/:id", s.deleteProject)
	write(http.MethodPost, importPath, s.importAssignments, "chunk")
	operator(http.MethodGet, exportPath, s.export)
	operator(http.MethodGet, backupPath, s.backup)
	// OPA's APIs that read beyond the entrypoints (any query, partial
	// evaluation), show policy source or the configuration: the operator's.
	// GET only, as /debug/pprof: its status is known once the query has
	// run, and a HEAD would run it, logged as a decision, to send nothing.
	e.GET("/v1/query", s.queryGet, s.requireAdmin(false))
	operator(http.MethodPost, "/v1/query", s.queryPost)
	operator(http.MethodPost, "/v1/compile", s.compile)
	operator(http.MethodGet, "/v1/policies", s.policies)
	operator(http.MethodGet, "/v1/policies/*", s.policy)
	operator(http.MethodGet, "/v1/status", s.status)
	operator(http.MethodGet, "/v1/config", s.config)
	operator(http.MethodPost, "/v1/matrix/:system/diff", s.matrixDiff)
	operator(http.MethodPost, "/v1/replay", s.replayCandidate)
	if cfg.Pprof {
		// GET only: a HEAD would run a profile to send none of it.
		e.GET("/debug/pprof", s.pprofIndex, s.requireAdmin(false))
		e.GET("/debug/pprof/*", s.pprofProfile, s.requireAdmin(false))
		operator(http.MethodPost, "/debug/pprof/*", s.pprofProfile)
	}

	if cfg.Console != nil {
		console := echo.WrapHandler(cfg.Console)
		// Other methods reach the console too (as the paths' route-not-found
		// handler, as for forward-auth): its 405 carries the security
		// headers of every /ui answer; Echo's own 405, and its 204 for
		// OPTIONS, carry none.
		for _, path := range []string{"/ui", "/ui/*"} {
			e.Match(getAndHead, path, console)
			e.RouteNotFound(path, console)
		}
	}

	// The diagnostic listener: health and metrics, nothing that decides
	// or reads assignments.
	s.diag = echo.New()
	s.setup(s.diag)
	s.diag.Use(s.recoverer(), s.requestLogger())
	s.healthRoutes(s.diag)
	s.diag.Use(limitHeaders, hosts.middleware)
	s.diag.Match(getAndHead, "/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))
	return s
}

// forwardAuthMethods are forward-auth's routes; other methods reach it as
// the path's route-not-found handler.
var forwardAuthMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace}

// setup gives an Echo instance the server's error envelope and JSON.
func (s *Server) setup(e *echo.Echo) {
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = jsonSerializer{}
}

func (s *Server) healthRoutes(e *echo.Echo) {
	e.Match(getAndHead, "/health", s.health)
	e.Match(getAndHead, "/health/live", s.live)
	e.Match(getAndHead, "/health/ready", s.health)
}

// isHealthProbe reports whether c is a request to a health route (GET or
// HEAD, healthRoutes): those count in the bound of probes, not of
// decisions (inFlightMiddleware). c is routed: Echo runs the middleware
// of Use after routing.
func isHealthProbe(c echo.Context) bool {
	if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
		return false
	}
	switch c.Path() {
	case "/health", "/health/live", "/health/ready":
		return true
	}
	return false
}

// getAndHead are the methods of a GET route: every one answers HEAD too,
// with GET's status and headers and no body (RFC 9110 section 9.3.2;
// net/http drops what a handler writes for a HEAD). Echo routes HEAD only
// where it is registered, and answered 405.
var getAndHead = []string{http.MethodGet, http.MethodHead}

func (s *Server) recoverer() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "err", err, "stack", string(stack), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		if c.Response().Committed {
			// The status went out: no error answer can follow, and a
			// response ended normally would pass for whole. Drop the
			// connection, as for http.ErrAbortHandler (which Echo passes on).
			panic(http.ErrAbortHandler)
		}
		return err
	}})
}

func (s *Server) requestLogger() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogRequestID: true, LogError: true, HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			// A consistency token not reached is the client's 503 (it
			// chose the token), noted by the pdp in a bounded warning.
			// Nor is one refused at a bound (a listing past its places):
			// counted, and a flood of them would be a flood of lines.
			if v.Status >= 500 && !pdp.NotReached(v.Error) && !refusedAtABound(v.Error) {
				level = slog.LevelError
			}
			uri := v.URI
			if strings.HasPrefix(c.Path(), forwardAuthBase) {
				// Below it the path and query are an end user's request,
				// whose query may carry a token (access_token=…): the path
				// only, as the errors say it (gateway's pathOf).
				uri, _, _ = strings.Cut(uri, "?")
			}
			s.log.LogAttrs(context.Background(), level, "request",
				slog.String("method", v.Method), slog.String("uri", uri), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}

// Metrics is the server's Prometheus registry and permatrix's own metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler is the API as an http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// DiagnosticHandler serves only /health, /health/live, /health/ready and
// /metrics (for tests and embedding).
func (s *Server) DiagnosticHandler() http.Handler { return s.diag }

// listener is one bound address and the http.Server that serves it.
type listener struct {
	ln  net.Listener
	srv *http.Server
	tls bool
}

// Listen binds the API to addr ("host:port" or "unix:///path"), over TLS
// if Config.TLS is set; Serve then serves it. Split so that callers (and
// tests) learn the bound address, e.g. for ":0".
func (s *Server) Listen(addr string) (net.Addr, error) {
	return s.listen("api", addr, s.echo, s.cfg.TLS)
}

// ListenDiagnostic binds the diagnostic handler (health and metrics, plain
// HTTP) to addr; Serve serves it beside the API.
func (s *Server) ListenDiagnostic(addr string) (net.Addr, error) {
	return s.listen("diagnostic", addr, s.diag, nil)
}

// URL is how clients reach the API (http(s)://host:port or unix://path);
// "" before Listen.
func (s *Server) URL() string {
	if len(s.listeners) == 0 {
		return ""
	}
	return listen.URL(s.listeners[0].ln, s.listeners[0].tls)
}

// listen binds addr; name labels its connections in /metrics.
func (s *Server) listen(name, addr string, h http.Handler, tlsCfg *tls.Config) (net.Addr, error) {
	raw, err := listen.Listen(addr)
	if err != nil {
		return nil, err
	}
	limited := listen.Limit(raw, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerClient)
	s.metrics.RegisterListener(name, limited)
	var ln net.Listener = limited
	if tlsCfg == nil {
		// net/http's own answers to requests it cannot parse are plain
		// text; rewrite them into the JSON envelope (wire.go). Not under
		// TLS: the rewriter would sit outside the tls.Conn.
		ln = envelopeListener{ln}
	}
	// The http.Server exists from here on, so that a Shutdown racing a
	// Serve that has not started yet still stops it (Serve then returns
	// ErrServerClosed at once).
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Tells the listener which connections are idle (at its bound it
	// closes the one idle the longest to make room), and serves no
	// request of a connection it closed so (listen.Limited.Track).
	limited.Track(srv)
	if tlsCfg != nil {
		if err := boundHTTP2(srv); err != nil {
			limited.Close()
			return nil, fmt.Errorf("HTTP/2 over TLS: %w", err)
		}
	}
	s.listeners = append(s.listeners, &listener{ln: ln, srv: srv, tls: tlsCfg != nil})
	return ln.Addr(), nil
}

// Serve serves every bound listener until Shutdown; it returns nil after a
// clean shutdown. If one listener fails, the others are closed and its
// error is returned.
func (s *Server) Serve() error {
	if len(s.listeners) == 0 {
		return errors.New("Serve before Listen")
	}
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() {
			var err error
			if l.tls {
				err = l.srv.ServeTLS(l.ln, "", "")
			} else {
				err = l.srv.Serve(l.ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	var first error
	for range s.listeners {
		if err := <-errc; err != nil && first == nil {
			first = err
			for _, l := range s.listeners {
				_ = l.srv.Close()
			}
		}
	}
	return first
}

// Shutdown stops accepting and waits for in-flight requests until ctx
// ends; then it closes the connections left, cutting their requests, and
// its error is ctx's (errors.Is context.DeadlineExceeded).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopImports()
	var errs []error
	for _, l := range s.listeners {
		err := l.srv.Shutdown(ctx)
		if ctx.Err() != nil {
			// net/http leaves them open, their clients waiting on. Closed,
			// their requests' contexts end: a handler ends at its next
			// look at the context (the store's reads and writes look),
			// not at once.
			_ = l.srv.Close()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SetBundleError records the outcome of a bundle (re)load for /health?bundles
// and the reload-failure counter; nil records a success.
func (s *Server) SetBundleError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundleErr = err
	if err != nil {
		s.bundleFail = time.Now().UTC()
		s.metrics.ReloadFailures.Inc()
	}
}

// requireAdmin lets the operator (the admin token) through and, when
// userMay and the identity verifies JWTs, a user with a valid token, whose
// id it puts under callerUserKey.
func (s *Server) requireAdmin(userMay bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearer(c)
			if ok && s.isAdminToken(token) {
				// The operator's reads are store-wide: a read that names an
				// actor would be served whole, the actor ignored, as a
				// write's ignored ?actor= was made as the operator. An actor
				// reads what its own token does: nothing here.
				if !userMay {
					if err := refuseActorRead(c); err != nil {
						return err
					}
				}
				c.Set(callerOperatorKey, true)
				if err := assertActorGroups(c, true); err != nil {
					return err
				}
				return next(c)
			}
			if !ok || !s.cfg.Identity.VerifiesTokens() {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="permatrix"`)
				return permatrix.Errorf(permatrix.EUNAUTHORIZED, "administration needs Authorization: Bearer <admin token>")
			}
			caller, err := s.cfg.Identity.User(c.Request().Context(), token)
			if err != nil {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="permatrix", error="invalid_token"`)
				return permatrix.Errorf(permatrix.EUNAUTHORIZED, "not the admin token, and not a valid user token: %s", permatrix.ErrorMessage(err))
			}
			if !userMay {
				return permatrix.Errorf(permatrix.EFORBIDDEN, "%s %s needs the admin token: a user token may only make changes, as that user", c.Request().Method, c.Path())
			}
			if err := assertActorGroups(c, false); err != nil {
				return err
			}
			c.Set(callerUserKey, caller.Subject)
			// Its writes are judged with the groups its token asserts,
			// as its checks are decided with them.
			c.SetRequest(c.Request().WithContext(pdp.Asserting(c.Request().Context(), caller.Subject, caller.Groups)))
			return next(c)
		}
	}
}

// refuseActorRead refuses a read of the operator's (the store-wide reads,
// OPA's APIs beyond the entrypoints) that names an actor: it would be
// served whole with the admin token, the actor ignored, as a write's
// ignored ?actor= was made as the operator. An actor reads what its own
// token does: nothing there.
func refuseActorRead(c echo.Context) error {
	h := c.Request().Header
	if len(h.Values(actorHeader)) == 0 && len(h.Values(actorGroupsHeader)) == 0 {
		return nil
	}
	return permatrix.Errorf(permatrix.EFORBIDDEN, "%s %s is the operator's: an actor reads nothing store-wide, as a user token does not (leave out %s and %s to read as the operator)",
		c.Request().Method, c.Request().URL.Path, actorHeader, actorGroupsHeader)
}

// isAdminToken reports whether token is the admin token. The digests are
// compared, not the tokens: subtle.ConstantTimeCompare returns at once
// when the lengths differ, which would tell a caller timing its guesses
// the token's length.
func (s *Server) isAdminToken(token string) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	given := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(given[:], s.adminDigest[:]) == 1
}

// bearer is the request's bearer token, read as identity reads a JWT's
// (one Authorization header, the scheme in any case: RFC 7235), so the
// admin token and a user's token are taken from a request the same way.
func bearer(c echo.Context) (string, bool) {
	token, err := identity.BearerToken(c.Request().Header)
	return token, err == nil
}

// adminToken checks for the admin token (Authorization: Bearer), the
// operator's credential. It is the only credential that reads the Data API
// beyond the entrypoints.
func (s *Server) adminToken(c echo.Context) error {
	token, ok := bearer(c)
	if !ok || !s.isAdminToken(token) {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="permatrix"`)
		return permatrix.Errorf(permatrix.EUNAUTHORIZED, "administration needs Authorization: Bearer <admin token>")
	}
	return nil
}

var codeOf = map[int]string{
	http.StatusBadRequest:                  permatrix.EINVALID,
	http.StatusUnauthorized:                permatrix.EUNAUTHORIZED,
	http.StatusForbidden:                   permatrix.EFORBIDDEN,
	http.StatusNotFound:                    permatrix.ENOTFOUND,
	http.StatusMethodNotAllowed:            "method_not_allowed",
	http.StatusRequestEntityTooLarge:       permatrix.ETOOLARGE,
	http.StatusServiceUnavailable:          permatrix.EUNAVAILABLE,
	http.StatusRequestHeaderFieldsTooLarge: permatrix.EHEADERS,
}

// errorCode is the envelope's code for an HTTP status that no permatrix
// error produced (Echo's own errors, net/http's): the status text in
// snake case where codeOf has none.
func errorCode(status int) string {
	if code, ok := codeOf[status]; ok {
		return code
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

// errorBody is the one error envelope: {"error": {"code", "message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []string `json:"details,omitempty"`
}

func toErrorDetail(err error) (int, errorDetail) {
	var ae *opa.APIError
	if errors.As(err, &ae) {
		status, ok := opaStatusOf[ae.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		return status, errorDetail{Code: ae.Code, Message: ae.Message}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := errorCode(he.Code)
		msg := fmt.Sprint(he.Message)
		if he.Code == http.StatusRequestEntityTooLarge {
			msg = "request body is over the size limit"
		}
		return he.Code, errorDetail{Code: code, Message: msg}
	}
	if errors.Is(err, context.Canceled) {
		// nginx's 499: the client closed the connection before the answer.
		return 499, errorDetail{Code: "canceled", Message: "the client closed the request"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, errorDetail{Code: permatrix.EUNAVAILABLE, Message: "request timed out"}
	}
	code := permatrix.ErrorCode(err)
	d := errorDetail{Code: code, Message: permatrix.ErrorMessage(err)}
	var pe *permatrix.Error
	if errors.As(err, &pe) && len(pe.Details) > 1 {
		d.Details = pe.Details
	}
	return permatrix.HTTPStatus(code), d
}

// ErrorJSON is the status and body the HTTP API answers err with: the one
// mapping, reused by Envoy's ext_authz over gRPC for its denied responses.
func ErrorJSON(err error) (int, []byte) {
	status, d := toErrorDetail(err)
	body, _ := json.Marshal(errorBody{Error: d})
	return status, body
}

// errorAnsweredKey marks a request whose error handleError answered.
const errorAnsweredKey = "permatrix.error_answered"

func (s *Server) handleError(err error, c echo.Context) {
	if res := c.Response(); res.Committed {
		if c.Get(errorAnsweredKey) != nil {
			return // answered here already (the request logger, then Echo, hand it over)
		}
		// The handler's status went out before it failed: no error answer
		// can follow, and a response ended normally would pass for whole.
		// Drop the connection, as the recoverer does for a panic at this
		// point (a client gone midway is the usual cause, hence a warning).
		s.log.Warn("response cut short: the handler failed after its status was sent", "err", err, "status", res.Status,
			"path", c.Path(), "request_id", res.Header().Get(echo.HeaderXRequestID))
		panic(http.ErrAbortHandler)
	}
	c.Set(errorAnsweredKey, true)
	status, d := toErrorDetail(err)
	if status >= 500 && !pdp.NotReached(err) && !refusedAtABound(err) {
		s.log.Error("request failed", "err", err, "path", c.Path(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	// OPA's REST API answers with OPA's envelope, permatrix's own with its
	// (and the diagnostic listener, which serves nothing of OPA's).
	if c.Echo() == s.echo && isOPAPath(c.Request().URL.Path) {
		_, body := opaError(err)
		_ = writeOPAError(c, status, body)
		return
	}
	_ = c.JSON(status, errorBody{Error: d})
}

// param is a path parameter, unescaped. Echo leaves parameters escaped when
// the path holds an escaped slash (%2F): it routes on the raw path then.
func param(c echo.Context, name string) string {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// jsonSerializer is Echo's default serializer without HTML escaping.
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	if d, ok := i.(*permatrix.Decision); ok && indent == "" {
		// Every check's answer: written without reflection (decisionjson.go).
		bp := decisionBuffers.Get().(*[]byte)
		b, err := appendDecision((*bp)[:0], d)
		if err == nil {
			_, err = c.Response().Write(b)
		}
		if cap(b) <= maxKeptDecisionBuffer {
			*bp = b[:0]
			decisionBuffers.Put(bp)
		}
		return err
	}
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error { return decode(c, i) }

// Metrics are permatrix's own metrics, in the server's registry beside
// the HTTP metrics (metrics.go) and the Go runtime's.
type Metrics struct {
	Registry         *prometheus.Registry
	Decisions        *prometheus.CounterVec
	DecisionDuration *prometheus.HistogramVec
	ReloadFailures   prometheus.Counter
}

// RegisterListener puts a listener's open connections and their bound
// in the registry, labelled listener=name ("api", "diagnostic", "grpc").
// A second listener of one name replaces the first's.
func (m *Metrics) RegisterListener(name string, l *listen.Limited) {
	labels := prometheus.Labels{"listener": name}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "permatrix_open_connections", ConstLabels: labels,
			Help: "Connections a listener holds open (kept-alive and idle ones included)."},
			func() float64 { return float64(l.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "permatrix_max_connections", ConstLabels: labels,
			Help: "The most connections a listener holds open at once (--max-connections); past it the one idle the longest is closed to make room, and with none idle new ones wait until one closes or goes idle."},
			func() float64 { return float64(l.Max()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_idle_connections_closed_total", ConstLabels: labels,
			Help: "Idle kept-alive connections a listener closed to make room for a new one at its bound (or at its client's)."},
			func() float64 { return float64(l.Evicted()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "permatrix_max_connections_per_client", ConstLabels: labels,
			Help: "The most connections one client (an IPv4 address, an IPv6 /64; not loopback) holds open on a listener at once (--max-connections-per-client); 0: no bound."},
			func() float64 { return float64(l.MaxPerClient()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_connections_refused_total",
			ConstLabels: prometheus.Labels{"listener": name, "reason": "per_client"},
			Help:        "Connections a listener closed at once, unserved: reason per_client, their client at its bound (--max-connections-per-client) with none of its connections idle."},
			func() float64 { return float64(l.Refused()) }),
	} {
		m.Registry.Unregister(c) // by its name and labels
		m.Registry.MustRegister(c)
	}
}

// NewMetrics registers permatrix's metrics in a new registry. The store
// revision is read from storeRevision when scraped, not kept.
func NewMetrics(storeRevision func() uint64) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "permatrix_decisions_total", Help: "Decisions made, by system and outcome.",
		}, []string{"system", "allow"}),
		DecisionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "permatrix_decision_duration_seconds", Help: "Time to evaluate one decision.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}, []string{"system"}),
		ReloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "permatrix_bundle_reload_failures_total", Help: "Bundle loads or reloads that failed; the last good bundle kept serving.",
		}),
	}
	revision := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "permatrix_store_revision", Help: "The assignment store's latest committed revision.",
	}, func() float64 { return float64(storeRevision()) })
	m.Registry.MustRegister(m.Decisions, m.DecisionDuration, m.ReloadFailures, revision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// damagedKeys are the gauges of a store's damaged keys (store.Damaged),
// read at scrape time: their number, and up to maxDamagedKeysShown of
// them by name (as Go quotes a string, without the quotes: a key may hold
// any byte, a label value only UTF-8), never their values.
type damagedKeys struct{ store store.Damaged }

const maxDamagedKeysShown = 10

var (
	damagedKeysDesc = prometheus.NewDesc("permatrix_store_damaged_keys",
		"Keys the store's source holds that permatrix does not write (an etcd fleet's prefix: a key outside the layout, a value not the record its key names); while there are any, the replica is not served (docs/fleet.md).", nil, nil)
	damagedKeyDesc = prometheus.NewDesc("permatrix_store_damaged_key",
		"1 for each of the first 10 damaged keys (permatrix_store_damaged_keys), by key.", []string{"key"}, nil)
)

func (d damagedKeys) Describe(ch chan<- *prometheus.Desc) {
	ch <- damagedKeysDesc
	ch <- damagedKeyDesc
}

func (d damagedKeys) Collect(ch chan<- prometheus.Metric) {
	keys, n := d.store.DamagedKeys(maxDamagedKeysShown)
	ch <- prometheus.MustNewConstMetric(damagedKeysDesc, prometheus.GaugeValue, float64(n))
	for _, k := range keys {
		q := strconv.Quote(k)
		ch <- prometheus.MustNewConstMetric(damagedKeyDesc, prometheus.GaugeValue, 1, q[1:len(q)-1])
	}
}

// registerCache adds the decision cache's counters, read at scrape time.
func (m *Metrics) registerCache(stats func() pdp.CacheStats) {
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "permatrix_decision_cache_hits_total", Help: "Decisions answered from the decision cache.",
		}, func() float64 { return float64(stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "permatrix_decision_cache_misses_total", Help: "Decisions the decision cache could not answer (evaluated).",
		}, func() float64 { return float64(stats().Misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "permatrix_decision_cache_firsts_total", Help: "Decisions not kept because their question was asked for the first time lately (kept when asked again).",
		}, func() float64 { return float64(stats().Firsts) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "permatrix_decision_cache_entries", Help: "Decisions the decision cache holds.",
		}, func() float64 { return float64(stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "permatrix_decision_cache_bytes", Help: "The decision cache's entries' estimated size (bounded by 2 KiB times --decision-cache-size).",
		}, func() float64 { return float64(stats().Bytes) }),
	)
}

// Routes lists the API's routes as "METHOD /path" with Echo's parameter
// syntax (":name", "*"), sorted: what docs/api.yaml must describe.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
