package http

import "github.com/labstack/echo/v4"

// IsOPAPath is isOPAPath, for the external tests: which answers carry OPA's
// error envelope.
var IsOPAPath = isOPAPath

// AddTestRoute adds a GET route to the server's API, for the external
// tests: a handler doing what no real one does today.
func (s *Server) AddTestRoute(path string, h func(echo.Context) error) { s.echo.GET(path, h) }
