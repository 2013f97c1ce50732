// Package http serves permatrix's HTTP API (shared/contract.md sections
// 3 to 5) with Echo v4. Echo stays inside this package, so moving to Echo v5
// touches nothing else.
package http

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// Config configures a Server.
type Config struct {
	// AdminToken guards the administration API (Authorization: Bearer).
	AdminToken string
	// BodyLimit is the largest request body accepted, in bytes (default 1 MiB).
	BodyLimit int64
	// RequestTimeout bounds one request's work (default 10 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is the HTTP API over a pdp.Service.
type Server struct {
	echo    *echo.Echo
	svc     *pdp.Service
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	srv     *http.Server
	ln      net.Listener

	mu         sync.Mutex
	bundleErr  error     // the last failed bundle (re)load, cleared by a good one
	bundleFail time.Time // when it failed
}

// NewServer builds the API.
func NewServer(svc *pdp.Service, cfg Config) *Server {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{echo: echo.New(), svc: svc, cfg: cfg, log: cfg.Logger, metrics: NewMetrics(svc.DB().Revision)}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = jsonSerializer{}

	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "err", err, "stack", string(stack), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		return err
	}}))
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogRequestID: true, LogError: true, HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			if v.Status >= 500 {
				level = slog.LevelError
			}
			s.log.LogAttrs(context.Background(), level, "request",
				slog.String("method", v.Method), slog.String("uri", v.URI), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	}))
	e.Use(echoprometheus.NewMiddlewareWithConfig(echoprometheus.MiddlewareConfig{
		Namespace: "permatrix", Subsystem: "http", Registerer: s.metrics.Registry,
		Skipper: func(c echo.Context) bool { return c.Path() == "/metrics" },
		// Label application errors with the status the client gets, not 500.
		StatusCodeResolver: func(c echo.Context, err error) int {
			if err == nil {
				return c.Response().Status
			}
			status, _ := toErrorDetail(err)
			return status
		},
	}))
	e.Use(middleware.BodyLimit(fmt.Sprintf("%dB", cfg.BodyLimit)))
	e.Use(middleware.ContextTimeout(cfg.RequestTimeout))

	e.POST("/v1/check", s.check)
	e.POST("/v1/check/batch", s.checkBatch)
	// Proxies forward the original request's method (and Envoy its path).
	for _, path := range []string{"/v1/forward-auth", "/v1/forward-auth/*"} {
		e.Match([]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, path, s.forwardAuth)
	}
	e.GET("/v1/data", s.data)
	e.POST("/v1/data", s.data)
	e.GET("/v1/data/*", s.data)
	e.POST("/v1/data/*", s.data)

	e.GET("/v1/systems", s.systems)
	e.GET("/v1/systems/:system", s.system)
	e.GET("/v1/subjects/:user/permissions", s.permissions)
	e.GET("/health", s.health)
	e.GET("/health/live", s.live)
	e.GET("/health/ready", s.health)
	e.GET("/metrics", echoprometheus.NewHandlerWithConfig(echoprometheus.HandlerConfig{Gatherer: s.metrics.Registry}))

	// Admin routes carry the token check per route: an Echo group without a
	// prefix would also put it on the catch-all, answering 401 for unknown paths.
	admin := func(method, path string, h echo.HandlerFunc) { e.Add(method, path, h, s.requireAdmin) }
	admin(http.MethodPost, "/v1/assignments", s.createAssignment)
	admin(http.MethodGet, "/v1/assignments", s.listAssignments)
	admin(http.MethodGet, "/v1/assignments/:id", s.getAssignment)
	admin(http.MethodDelete, "/v1/assignments/:id", s.deleteAssignment)
	admin(http.MethodPut, "/v1/groups/:group/members/:user", s.putMember)
	admin(http.MethodDelete, "/v1/groups/:group/members/:user", s.deleteMember)
	admin(http.MethodGet, "/v1/groups/:group/members", s.listMembers)
	admin(http.MethodPut, "/v1/systems/:system/roles/:role", s.putRole)
	admin(http.MethodGet, "/v1/systems/:system/roles/:role", s.getRole)
	admin(http.MethodDelete, "/v1/systems/:system/roles/:role", s.deleteRole)
	admin(http.MethodPut, "/v1/systems/:system/projects/:id", s.putProject)
	admin(http.MethodGet, "/v1/systems/:system/projects/:id", s.getProject)
	admin(http.MethodPost, "/v1/import", s.importAssignments)
	admin(http.MethodGet, "/v1/export", s.export)
	return s
}

// Metrics is the server's Prometheus registry and permatrix's own metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler is the API as an http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Listen binds addr; Serve then serves on it. Split so that callers (and
// tests) learn the bound address, e.g. for ":0".
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	// The http.Server exists from here on, so that a Shutdown racing a
	// Serve that has not started yet still stops it (Serve then returns
	// ErrServerClosed at once).
	s.srv = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return ln.Addr(), nil
}

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if s.srv == nil {
		return errors.New("Serve before Listen")
	}
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for in-flight requests (until ctx ends).
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
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

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok || s.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="permatrix"`)
			return permatrix.Errorf(permatrix.EUNAUTHORIZED, "administration needs Authorization: Bearer <admin token>")
		}
		c.Set(callerOperatorKey, true)
		return next(c)
	}
}

var statusOf = map[string]int{
	permatrix.EINVALID:       http.StatusBadRequest,
	permatrix.EUNAUTHORIZED:  http.StatusUnauthorized,
	permatrix.EFORBIDDEN:     http.StatusForbidden,
	permatrix.ENOTFOUND:      http.StatusNotFound,
	permatrix.ECONFLICT:      http.StatusConflict,
	permatrix.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	permatrix.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	permatrix.EUNAVAILABLE:   http.StatusServiceUnavailable,
	permatrix.EINTERNAL:      http.StatusInternalServerError,
}

var codeOf = map[int]string{
	http.StatusBadRequest:            permatrix.EINVALID,
	http.StatusUnauthorized:          permatrix.EUNAUTHORIZED,
	http.StatusForbidden:             permatrix.EFORBIDDEN,
	http.StatusNotFound:              permatrix.ENOTFOUND,
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: permatrix.ETOOLARGE,
	http.StatusServiceUnavailable:    permatrix.EUNAVAILABLE,
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
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, ok := codeOf[he.Code]
		if !ok {
			code = strings.ToLower(strings.ReplaceAll(http.StatusText(he.Code), " ", "_"))
		}
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
	return statusOf[code], d
}

func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, d := toErrorDetail(err)
	if status >= 500 {
		s.log.Error("request failed", "err", err, "path", c.Path(), "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
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
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (jsonSerializer) Deserialize(c echo.Context, i any) error { return decode(c, i) }

// Metrics are permatrix's own metrics, in the server's registry beside
// echo-contrib's HTTP metrics and the Go runtime's.
type Metrics struct {
	Registry         *prometheus.Registry
	Decisions        *prometheus.CounterVec
	DecisionDuration *prometheus.HistogramVec
	ReloadFailures   prometheus.Counter
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
