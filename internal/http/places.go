package http

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/permatrix/permatrix"
)

// Places bound the requests of one kind computed at once, where one costs
// far more than it sends: a request past the bound waits for a place a
// while, then is answered 503 with Retry-After, having computed nothing.
//
// A permission listing (GET /v1/subjects/{user}/permissions) needs no
// token and decides one check per action of the systems asked about:
// some 160 decisions over every system, for a request of a few dozen
// bytes, none of them cached for a user made up for it. Its cost is the
// contract's (every system without system=, the whole list in one
// answer), so what is bounded is the listings computed at once: a client
// asking again and again takes at most those places, and checks keep the
// rest of the CPUs.
//
// A cell's explanation (GET /v1/matrix/{system}/explain) needs no token
// either and is a traced decision: ~10 ms of CPU and ~1.3 MB allocated,
// a listing's cost. Unbounded, 16 clients asking explanations held a
// check's latency at 200–470 ms on two CPUs. Explanations take the
// listings' places (sharing): together they take at most half the CPUs.
//
// The write verdict (data.permatrix.admin.verdict) is an entrypoint anyone
// may evaluate through the Data API, and a membership's verdict judges
// every holding of the group: a group of 20,000 assignments made one
// tokenless request 2–3 s of CPU, 560 MB allocated and a 9 MB answer.
// Evaluated without the admin token it takes the listings' places too.
//
// An uploaded candidate bundle (POST /v1/matrix/{system}/diff, POST
// /v1/replay; the admin token) is parsed and compiled: up to ~300 bytes of
// memory a byte of dense Rego, some 300 MiB for one at candidateMaxBytes.
// One is compiled at a time, so uploads at once do not add up; the others
// wait for it (their bodies unread), as long as their request may last.

// DefaultMaxPermissionListings is Config.MaxPermissionListings' default:
// half the CPUs Go uses, at least one.
func DefaultMaxPermissionListings() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// errListings is the answer to a listing past the bound. Not logged
// (handleError): a flood of them would be a flood of log lines.
var errListings = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is computing as many permission listings as it may at once (each decides every action of the systems asked about): try again shortly")

// errExplanations is the answer to a cell's explanation that found no
// place: it shares the permission listings' (sharing).
var errExplanations = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is computing as many permission listings and cell explanations as it may at once (an explanation is a traced decision): try again shortly")

// errVerdicts is the answer to a write verdict evaluated without the
// token that found no place: it shares the permission listings'.
var errVerdicts = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is computing as many permission listings, cell explanations and write verdicts (asked without the admin token) as it may at once: try again shortly")

// errCandidates is the answer to a candidate upload that found no place.
var errCandidates = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server compiles one uploaded candidate bundle at a time, and another was being compiled for as long as this request could wait: try again shortly")

// listingWait is how long a listing waits for a place before it is
// refused. A listing takes milliseconds: a few asked at once by one page
// (the console's) or a burst of clients wait their turn instead of being
// refused, while a client asking without end still has its requests
// refused past the wait. A waiting listing holds its place among the
// requests in flight (--max-requests-in-flight), a GET's head and no
// body, and decides nothing.
const listingWait = time.Second

// places are the places of one kind of request computed at once.
type places struct {
	slots   chan struct{}
	wait    time.Duration // for a place, at most (and as long as the request lasts)
	refusal error         // the answer when none came free
	refused atomic.Uint64
	waiting atomic.Int64 // requests waiting for a place (tests read it)
}

// newPlaces are n places, a request waiting at most wait for one; the
// refusals counted in m as metric (its help text help).
func newPlaces(n int, wait time.Duration, refusal error, m *Metrics, metric, help string) *places {
	return placesOn(make(chan struct{}, n), wait, refusal, m, metric, help)
}

// placesOn are the places slots holds, counted apart (newPlaces, sharing).
func placesOn(slots chan struct{}, wait time.Duration, refusal error, m *Metrics, metric, help string) *places {
	p := &places{slots: slots, wait: wait, refusal: refusal}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: metric, Help: help},
		func() float64 { return float64(p.refused.Load()) }))
	return p
}

// take takes a place for c's request, to give back with release, waiting
// for one at most p.wait; p.refusal, counted, with Retry-After set, when
// none came free (or the client left).
func (p *places) take(c echo.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	wait := time.NewTimer(p.wait)
	defer wait.Stop()
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-wait.C:
	case <-c.Request().Context().Done():
	}
	p.refused.Add(1)
	c.Response().Header().Set("Retry-After", retryAfter)
	return p.refusal
}

func (p *places) release() { <-p.slots }

// sharing are p's places taken by another kind of request: the same
// slots, its own refusal (counted in m as metric, its help text help) and
// its own count of requests waiting.
func (p *places) sharing(refusal error, m *Metrics, metric, help string) *places {
	return placesOn(p.slots, p.wait, refusal, m, metric, help)
}
