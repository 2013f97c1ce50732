package http

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/listen"
)

// DefaultMaxRequestsInFlight is the requests the API serves at once by
// default. Each holds at most its head (64 KiB past the middleware; an
// HTTP/2 header list, filled by HPACK from a byte a field, as much) and
// its body (--body-limit, 1 MiB by default): 256 hold at most some
// 272 MiB, a quarter of the 1 GiB a sidecar is usually given, leaving the
// rest to the policies, the store's cache and the decision cache. A check
// takes well under a millisecond: a legitimate load reaches 256 at once
// only with requests that wait (slow bodies, consistency tokens).
const DefaultMaxRequestsInFlight = 256

// retryAfter is the Retry-After of a request refused at the bound, in
// seconds: requests in flight end within milliseconds, or with their
// client's body.
const retryAfter = "1"

// refusedWriteTimeout bounds the writing of a refusal over HTTP/2. Its
// headers dropped, a refused stream holds little; one second was cut
// short on a loaded machine (the 503's head written, then a reset).
const refusedWriteTimeout = 5 * time.Second

// errInFlight is the answer to a request past the bound. It is not logged
// (handleError): a flood of them would be a flood of log lines.
var errInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is serving as many requests as it may at once (--max-requests-in-flight): try again shortly")

// errClientInFlight is the answer to a request past its client's share
// of the bound (listen.Shares), not logged either.
var errClientInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"this client is making as many requests at once as one client may (a quarter of --max-requests-in-flight, with --max-connections-per-client): try again shortly")

// errHealthInFlight is the answer to a health request past the bound of
// health requests (listen.HealthPlaces), or its client's share of it.
var errHealthInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is answering as many health requests as it may at once: try again shortly")

// refusedAtABound reports whether err is a request's refusal at a bound
// (the requests in flight, a client's share of them, the health
// requests', the permission listings, cell explanations and open write
// verdicts computed at once): answered 503 and counted, never
// logged — a client sending past a bound would write a line a request.
func refusedAtABound(err error) bool {
	return err == errInFlight || err == errClientInFlight || err == errHealthInFlight || err == errListings || err == errExplanations || err == errVerdicts
}

// inFlightMiddleware refuses a request past the bound at once, 503 with the
// envelope: one made to wait would hold its headers (and, over HTTP/2,
// the body its connection's window lets in) while it waited, and the
// waiting ones would need a bound of their own. It runs before any other
// middleware, so a refused request reads nothing more, decides nothing
// and is logged nowhere; nginx and Traefik take forward-auth's 503 for a
// denial, as any status but 2xx, 401 and 403 (Envoy's HTTP service only
// with failure_mode_allow false: docs/forward-auth.md).
//
// A health request (isHealthProbe) takes a place in probes instead: a
// liveness probe refused while decisions fill their bound had Kubernetes
// restart a sidecar that was only busy, and a readiness probe took it out
// of its Service. Probes past their own bound are refused alike.
func inFlightMiddleware(places, probes *listen.Places) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			places, probe := places, isHealthProbe(c)
			if probe {
				places = probes
			}
			var remote net.Addr // parsed only where clients are counted
			if places.CountsClients() {
				remote = listen.RemoteAddr(c.Request().RemoteAddr)
			}
			client, err := places.Take(remote)
			if err != nil {
				refuse(c)
				if probe {
					return errHealthInFlight
				}
				if errors.Is(err, listen.ErrClientShare) {
					return errClientInFlight
				}
				return errInFlight
			}
			defer places.Release(client)
			return next(c)
		}
	}
}

// refuse readies a refusal's answer: Retry-After, and over HTTP/1.1 with
// a body still to come, the body left unread and the connection closed
// after the answer (leaveBody) — net/http reads the rest of a small body
// before it answers, so a refused request whose client sends its body
// slowly was answered only once it had all come (its connection busy
// meanwhile); left, it is answered at once.
//
// Over HTTP/2 its answer waits for the client's flow control window, which
// a client may keep shut: it would be held, headers and all, until the
// write timeout (15 s). It is held without its headers, the bulk of it,
// and for five seconds.
func refuse(c echo.Context) {
	h := c.Response().Header()
	h.Set("Retry-After", retryAfter)
	switch r := c.Request(); {
	case r.ProtoMajor == 2:
		r.Header = http.Header{}
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(refusedWriteTimeout))
	case r.ContentLength != 0:
		leaveBody(c.Response().Writer)
	}
}

// RequestBound is a listener's bound of requests in flight: the requests
// it serves, its bound and those it refused at it.
type RequestBound interface {
	InFlight() int64
	MaxInFlight() int64
	RefusedInFlight() uint64
	// RefusedByClient are those refused at a client's share of the bound
	// (listen.Shares).
	RefusedByClient() uint64
}

// refusedHelp is permatrix_requests_refused_total's help, one for its
// reasons (a name has one help).
const refusedHelp = "Requests (gRPC calls) a listener answered 503 (UNAVAILABLE) at once, unserved: reason in_flight, its bound of requests in flight (--max-requests-in-flight) reached; in_flight_per_client, one client's share of it (a quarter, with --max-connections-per-client); health, health requests past their own bound (32 at once, a quarter of it a client with --max-connections-per-client)."

// RegisterRequests puts a listener's requests in flight, their bound and
// those refused at it in the registry, labelled listener=name ("api",
// "grpc"). A second listener of one name replaces the first's.
func (m *Metrics) RegisterRequests(name string, b RequestBound) {
	labels := prometheus.Labels{"listener": name}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "permatrix_requests_in_flight", ConstLabels: labels,
			Help: "Requests (gRPC calls) a listener is serving, over all its connections and HTTP/2 streams."},
			func() float64 { return float64(b.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "permatrix_max_requests_in_flight", ConstLabels: labels,
			Help: "The most requests (gRPC calls) a listener serves at once (--max-requests-in-flight); past it one is answered 503 (UNAVAILABLE) at once."},
			func() float64 { return float64(b.MaxInFlight()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_requests_refused_total",
			ConstLabels: prometheus.Labels{"listener": name, "reason": "in_flight"},
			Help:        refusedHelp},
			func() float64 { return float64(b.RefusedInFlight()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_requests_refused_total",
			ConstLabels: prometheus.Labels{"listener": name, "reason": "in_flight_per_client"},
			Help:        refusedHelp},
			func() float64 { return float64(b.RefusedByClient()) }),
	} {
		m.Registry.Unregister(c) // by its name and labels
		m.Registry.MustRegister(c)
	}
}

// RegisterHealthRequests puts the health requests (gRPC health Check
// calls) a listener refused at their own bound (listen.HealthPlaces), or
// at a client's share of it, in the registry as
// permatrix_requests_refused_total{listener=name, reason="health"}.
func (m *Metrics) RegisterHealthRequests(name string, b RequestBound) {
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_requests_refused_total",
		ConstLabels: prometheus.Labels{"listener": name, "reason": "health"},
		Help:        refusedHelp},
		func() float64 { return float64(b.RefusedInFlight() + b.RefusedByClient()) })
	m.Registry.Unregister(c) // by its name and labels
	m.Registry.MustRegister(c)
}
