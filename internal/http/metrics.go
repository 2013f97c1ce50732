package http

import (
	"io"
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
	aborted      *prometheus.CounterVec
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
			Name: "permatrix_http_request_size_bytes", Help: "HTTP request body sizes (Content-Length, or the bytes read of a body sent without one), by status code, method and route.",
			Buckets: sizeBuckets,
		}, labels),
		responseSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "permatrix_http_response_size_bytes", Help: "HTTP response body sizes, by status code, method and route.",
			Buckets: sizeBuckets,
		}, labels),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "permatrix_http_responses_aborted_total", Help: "HTTP responses cut short (a failure after the status was sent, or the connection dropped), by method and route.",
		}, []string{"method", "url"}),
	}
	reg.MustRegister(m.requests, m.duration, m.requestSize, m.responseSize, m.aborted)
	return m
}

// middleware observes every request but /metrics itself; status resolves
// the status the client gets for a handler's error that was not written.
//
// The code label is the status the client got: the one written, once a
// response is committed (the request logger writes a handler's error
// before this sees it). A response cut short — a handler that failed after
// its status went out (an export failing midway panics with
// http.ErrAbortHandler, which the recoverer passes on to drop the
// connection), or one dropped before any — is counted too, with the
// status sent (500 if none was), and in permatrix_http_responses_aborted_total.
func (m *httpMetrics) middleware(status func(c echo.Context, err error) int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Path() == "/metrics" {
				return next(c)
			}
			start := time.Now()
			// A body without a Content-Length (chunked) is counted as read
			// (the Body of a request expecting 100-continue is replaced on
			// a copy: ownRequestBody).
			var body *countingBody
			if req := c.Request(); req.ContentLength < 0 && req.Body != nil && req.Body != http.NoBody {
				body = &countingBody{ReadCloser: req.Body}
				req.Body = body
			}
			returned := false
			defer func() {
				if !returned { // a panic on its way to net/http, which drops the connection
					res := c.Response()
					code := http.StatusInternalServerError
					if res.Committed {
						code = res.Status
					}
					m.observe(c, start, body, code, true)
				}
			}()
			err := next(c)
			returned = true
			res := c.Response()
			code, aborted := res.Status, false
			switch {
			case err != nil && !res.Committed:
				code = status(c, err)
			case err != nil:
				// Written: the error's own answer, or, when it is not the
				// error's status, a response the error cut short.
				aborted = status(c, err) != res.Status
			}
			m.observe(c, start, body, code, aborted)
			return err
		}
	}
}

// observe records one request.
func (m *httpMetrics) observe(c echo.Context, start time.Time, body *countingBody, code int, aborted bool) {
	url := c.Path()
	if url == "" {
		url = urlUnmatched
	}
	method := methodLabel(c.Request().Method)
	s := m.of(seriesKey{code: code, method: method, url: url})
	s.requests.Inc()
	s.duration.Observe(time.Since(start).Seconds())
	size := max(c.Request().ContentLength, 0)
	if body != nil {
		size = body.n
	}
	s.requestSize.Observe(float64(size))
	sent := c.Response().Size
	if c.Request().Method == http.MethodHead {
		sent = 0 // net/http drops a HEAD's body: nothing of it was sent
	}
	s.responseSize.Observe(float64(sent))
	if aborted {
		m.aborted.WithLabelValues(method, url).Inc()
	}
}

// countingBody counts the bytes a handler read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
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
