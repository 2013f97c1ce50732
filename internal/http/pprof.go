package http

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

// The process has one CPU profiler and one tracer: a second request while
// one runs is a 409 in the API's envelope (net/http/pprof would answer a
// plain-text 500).
var cpuProfiling, tracing sync.Mutex

// pprofProfile serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/, as OPA's --pprof does: the index, cmdline, profile (CPU,
// ?seconds= up to the request timeout), symbol, trace, and every named
// profile (heap, goroutine, allocs, block, mutex, threadcreate). Operator
// only, and only with Config.Pprof: a profile shows the process's memory
// layout and code paths, not for any caller. A profile longer than the
// request timeout is refused (400) rather than cut short, and a CPU profile
// without ?seconds= runs as long as the timeout allows (net/http/pprof's
// 30 s would be cut); symbol also takes POST, as `go tool pprof` sends it.
func (s *Server) pprofProfile(c echo.Context) error {
	w, r := c.Response(), c.Request()
	name := strings.TrimPrefix(c.Param("*"), "/")
	if r.Method == http.MethodPost && name != "symbol" {
		return echo.NewHTTPError(http.StatusMethodNotAllowed, "only /debug/pprof/symbol takes POST")
	}
	// A profile must end, written, before the request timeout does: half a
	// second is left for writing it. net/http/pprof reads a CPU profile's
	// seconds as a whole number (anything else is its default, 30 s).
	longest := s.cfg.RequestTimeout - time.Second/2
	q := r.URL.Query()
	v := q.Get("seconds")
	if name == "profile" && v == "" {
		if longest < time.Second {
			return permatrix.Errorf(permatrix.EINVALID, "the request timeout (%s) is too short for a CPU profile", s.cfg.RequestTimeout)
		}
		v = strconv.Itoa(int(longest.Seconds()))
		q.Set("seconds", v)
		r.URL.RawQuery = q.Encode()
	}
	if v != "" {
		// Compared as float seconds: a duration computed from a huge value
		// overflows (negative, so "shorter"), and net/http/pprof sets the
		// write deadline from it. Only a trace takes a fraction: pprof
		// reads every other seconds as a whole number.
		secs, err := strconv.ParseFloat(v, 64)
		if name != "trace" {
			var n int64
			n, err = strconv.ParseInt(v, 10, 64)
			secs = float64(n)
		}
		switch {
		case err != nil || !(secs > 0): // NaN too
			return permatrix.Errorf(permatrix.EINVALID, "seconds=%q: want a positive number (a whole one but for a trace)", v)
		case secs > longest.Seconds(): // +Inf too
			return permatrix.Errorf(permatrix.EINVALID, "seconds=%s is longer than the request timeout (%s) allows: ask for at most %g", v, s.cfg.RequestTimeout, longest.Seconds())
		}
	}
	switch name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		return alone(&cpuProfiling, "a CPU profile", func() { pprof.Profile(w, r) })
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		return alone(&tracing, "an execution trace", func() { pprof.Trace(w, r) })
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil
}

// alone runs take while holding mu, or answers 409 if what it takes is
// being taken already.
func alone(mu *sync.Mutex, what string, take func()) error {
	if !mu.TryLock() {
		return permatrix.Errorf(permatrix.ECONFLICT, "%s is being taken already: ask again when it ends", what)
	}
	defer mu.Unlock()
	take()
	return nil
}

// pprofIndex redirects /debug/pprof to the index, /debug/pprof/, as
// net/http's ServeMux does for net/http/pprof.
func (s *Server) pprofIndex(c echo.Context) error {
	return c.Redirect(http.StatusMovedPermanently, "/debug/pprof/")
}
