package http

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/permatrix/permatrix"
)

// A permission listing (GET /v1/subjects/{user}/permissions) needs no
// token and decides one check per action of the systems asked about:
// some 160 decisions over every system, for a request of a few dozen
// bytes, none of them cached for a user made up for it. Its cost is the
// contract's (every system without system=, the whole list in one
// answer), so what is bounded is the listings computed at once: a client
// asking again and again takes at most those places, and checks keep the
// rest of the CPUs.

// DefaultMaxPermissionListings is Config.MaxPermissionListings' default:
// half the CPUs Go uses, at least one.
func DefaultMaxPermissionListings() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// errListings is the answer to a listing past the bound. Not logged
// (handleError): a flood of them would be a flood of log lines.
var errListings = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is computing as many permission listings as it may at once (each decides every action of the systems asked about): try again shortly")

// listings are the places of the permission listings computed at once.
type listings struct {
	places  chan struct{}
	refused atomic.Uint64
	waiting atomic.Int64 // listings waiting for a place (tests read it)
}

func newListings(max int, m *Metrics) *listings {
	l := &listings{places: make(chan struct{}, max)}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_permission_listings_refused_total",
		Help: "Permission listings (GET /v1/subjects/{user}/permissions) answered 503 at once, undecided: as many were being computed as may be at once."},
		func() float64 { return float64(l.refused.Load()) }))
	return l
}

// listingWait is how long a listing waits for a place before it is
// refused. A listing takes milliseconds: a few asked at once by one page
// (the console's) or a burst of clients wait their turn instead of being
// refused, while a client asking without end still has its requests
// refused past the wait. A waiting listing holds its place among the
// requests in flight (--max-requests-in-flight), a GET's head and no
// body, and decides nothing.
const listingWait = time.Second

// take takes a place for a listing, to give back with release, waiting
// for one at most listingWait; errListings, counted, with Retry-After
// set, when none came free (or the client left).
func (l *listings) take(c echo.Context) error {
	select {
	case l.places <- struct{}{}:
		return nil
	default:
	}
	wait := time.NewTimer(listingWait)
	defer wait.Stop()
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	select {
	case l.places <- struct{}{}:
		return nil
	case <-wait.C:
	case <-c.Request().Context().Done():
	}
	l.refused.Add(1)
	c.Response().Header().Set("Retry-After", retryAfter)
	return errListings
}

func (l *listings) release() { <-l.places }
