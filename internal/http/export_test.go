package http

import (
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
