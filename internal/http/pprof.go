package http

import (
	"net/http/pprof"
	"strings"

	"github.com/labstack/echo/v4"
)

// pprofProfile serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/, as OPA's --pprof does: the index, cmdline, profile (CPU,
// ?seconds= up to the request timeout), symbol, trace, and every named
// profile (heap, goroutine, allocs, block, mutex, threadcreate). Operator
// only, and only with Config.Pprof: a profile shows the process's memory
// layout and code paths, not for any caller.
func (s *Server) pprofProfile(c echo.Context) error {
	w, r := c.Response(), c.Request()
	switch name := strings.TrimPrefix(c.Param("*"), "/"); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}
