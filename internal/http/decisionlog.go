package http

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/permatrix/permatrix/internal/decisionlog"
)

// logRequest gives the request what its decisions' log entries say about
// it: a request number (OPA's req_id), the client's address and the
// headers (decisionlog.WithRequest).
func logRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := decisionlog.WithRequest(r.Context(), decisionlog.Request{
			ID: decisionlog.NextRequestID(), RemoteAddr: r.RemoteAddr, Header: r.Header,
		})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// registerDecisionLog exports the decision log's counters, read when
// scraped.
func (m *Metrics) registerDecisionLog(l *decisionlog.Logger) {
	for _, reason := range decisionlog.DropReasons {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "permatrix_decision_log_dropped_total", Help: "Decision log entries dropped, by reason (docs/decision-logs.md).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(l.Dropped()[reason]) }))
	}
	for _, outcome := range []string{"ok", "failed"} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "permatrix_decision_log_uploads_total", Help: "Batches of decision log entries uploaded to the decision_logs service, by outcome (failed ones are retried).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 {
			ok, failed := l.Uploads()
			if outcome == "ok" {
				return float64(ok)
			}
			return float64(failed)
		}))
	}
}
