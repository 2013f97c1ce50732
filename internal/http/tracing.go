package http

import (
	"github.com/labstack/echo/v4"

	dtracing "github.com/permatrix/permatrix/internal/tracing"
)

// traceRequests makes each request's server span (OPA's
// distributed_tracing, internal/tracing), named by its route, with the
// status the client gets. Registered only when tracing is on.
func traceRequests(t *dtracing.Tracing) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx, span, ok := t.StartHTTP(c.Request(), c.Path())
			if !ok {
				return next(c)
			}
			c.SetRequest(c.Request().WithContext(ctx))
			err := next(c)
			status := c.Response().Status
			if err != nil && !c.Response().Committed {
				status, _ = toErrorDetail(err)
			}
			dtracing.EndHTTP(span, status)
			return err
		}
	}
}
