package http

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the per-request metrics. Their labels are code, method
// and url, each from a small fixed set, so that clients cannot add series:
// url is the route template ("/v1/systems/:system"), never the raw path,
// and requests no route matches share "unmatched"; a method outside the
// standard ones is "other"; and there is no host label (clients choose the
// Host header). echo-contrib's middleware has a host label that cannot be
// dropped and labels 404s and methods with what the client sent, hence
// this one.
type httpMetrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	requestSize  *prometheus.HistogramVec
	responseSize *prometheus.HistogramVec
	// series holds each label set's four metrics (a seriesKey's
	// *requestSeries): looking them up by labels hashes and allocates on
	// every request. The label sets are bounded (above), so is it.
	series sync.Map
}

type seriesKey struct {
	code        int
	method, url string
}

type requestSeries struct {
	requests                            prometheus.Counter
	duration, requestSize, responseSize prometheus.Observer
}

// of is the metrics of one label set.
func (m *httpMetrics) of(k seriesKey) *requestSeries {
	if s, ok := m.series.Load(k); ok {
		return s.(*requestSeries)
	}
	labels := prometheus.Labels{"code": strconv.Itoa(k.code), "method": k.method, "url": k.url}
	s, _ := m.series.LoadOrStore(k, &requestSeries{
		requests:     m.requests.With(labels),
		duration:     m.duration.With(labels),
		requestSize:  m.requestSize.With(labels),
		responseSize: m.responseSize.With(labels),
	})
	return s.(*requestSeries)
}

// urlUnmatched is the url label of requests that matched no route.
const urlUnmatched = "unmatched"

var sizeBuckets = []float64{1 << 10, 2 << 10, 5 << 10, 10 << 10, 100 << 10, 500 << 10, 1 << 20, 5 << 20, 10 << 20}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	labels := []string{"code", "method", "url"}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "permatrix_http_requests_total", Help: "HTTP requests, by status code, method and route.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "permatrix_http_request_duration_seconds", Help: "HTTP request latency, by status code, method and route.",
			Buckets: prometheus.DefBuckets,
		}, labels),
		requestSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "permatrix_http_request_size_bytes", Help: "HTTP request body sizes (Content-Length), by status code, method and route.",
			Buckets: sizeBuckets,
		}, labels),
		responseSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "permatrix_http_response_size_bytes", Help: "HTTP response body sizes, by status code, method and route.",
			Buckets: sizeBuckets,
		}, labels),
	}
	reg.MustRegister(m.requests, m.duration, m.requestSize, m.responseSize)
	return m
}

// middleware observes every request but /metrics itself; status resolves
// the status the client gets for a handler's error.
func (m *httpMetrics) middleware(status func(c echo.Context, err error) int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Path() == "/metrics" {
				return next(c)
			}
			start := time.Now()
			err := next(c)
			code := c.Response().Status
			if err != nil {
				code = status(c, err)
			}
			url := c.Path()
			if url == "" {
				url = urlUnmatched
			}
			s := m.of(seriesKey{code: code, method: methodLabel(c.Request().Method), url: url})
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
			s.requestSize.Observe(float64(max(c.Request().ContentLength, 0)))
			s.responseSize.Observe(float64(c.Response().Size))
			return err
		}
	}
}

// methodLabel is the method, or "other" for one outside the standard set.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
