package http

import (
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// IsOPAPath is isOPAPath, for the external tests: which answers carry OPA's
// error envelope.
var IsOPAPath = isOPAPath

// AddRoute adds a route to the server's API, for the external tests: a
// handler doing what no real one does today.
func AddRoute(s *Server, method, path string, h echo.HandlerFunc) { s.echo.Add(method, path, h) }

// SetStreamIdle sets how long an import or an export may wait for its
// client, for the tests, and returns what puts it back.
func SetStreamIdle(d time.Duration) (restore func()) {
	old := streamIdle
	streamIdle = d
	return func() { streamIdle = old }
}

// OnConnState has f told every connection state change of s's listeners,
// after the listener's own bookkeeping (listen.Limited.ConnState): a test
// knows from it when the listener takes a connection for idle. Call it
// after Listen, before Serve.
func OnConnState(s *Server, f func(net.Conn, http.ConnState)) {
	for _, l := range s.listeners {
		prev := l.srv.ConnState
		l.srv.ConnState = func(c net.Conn, st http.ConnState) {
			if prev != nil {
				prev(c, st)
			}
			f(c, st)
		}
	}
}

// HealthInFlight is the health requests the API listener is serving.
func HealthInFlight(s *Server) int64 { return s.probes.InFlight() }

// SetTestHookListing sets, for one test, what runs as a permission listing
// begins to be computed, in its place under MaxPermissionListings.
func SetTestHookListing(t interface{ Cleanup(func()) }, f func()) {
	testHookListing.Store(&f)
	t.Cleanup(func() { testHookListing.Store(nil) })
}

// ListingsWaiting is the permission listings waiting for a place.
func ListingsWaiting(s *Server) int64 { return s.listings.waiting.Load() }

// SetTestHookCandidate sets, for one test, what runs as a candidate
// upload takes its place (one at a time).
func SetTestHookCandidate(t interface{ Cleanup(func()) }, f func()) {
	testHookCandidate.Store(&f)
	t.Cleanup(func() { testHookCandidate.Store(nil) })
}

// HoldCandidatePlace takes the place of a candidate upload, as an upload
// being compiled does, until release.
func HoldCandidatePlace(s *Server) (release func()) {
	s.candidates.slots <- struct{}{}
	return s.candidates.release
}

// CandidatesWaiting is the candidate uploads waiting for their place.
func CandidatesWaiting(s *Server) int64 { return s.candidates.waiting.Load() }
