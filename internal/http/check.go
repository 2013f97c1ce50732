package http

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/gateway"
	"github.com/permatrix/permatrix/internal/pdp"
)

// decide runs one check and records its metrics.
func (s *Server) decide(c echo.Context, ch permatrix.Check) (*permatrix.Decision, error) {
	return s.Decide(c.Request().Context(), ch)
}

// Decide runs one check through the service (decision log included) and
// records its metrics: the one path every decision takes, whichever
// listener asked (HTTP, or Envoy's ext_authz over gRPC).
func (s *Server) Decide(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
	start := time.Now()
	d, err := s.svc.Check(ctx, ch)
	if err != nil {
		return nil, err
	}
	s.metrics.DecisionDuration.WithLabelValues(ch.System).Observe(time.Since(start).Seconds())
	s.metrics.Decisions.WithLabelValues(ch.System, strconv.FormatBool(d.Allow)).Inc()
	return d, nil
}

// minRevision is the request's consistency token: the body's
// min_revision, else the X-Permatrix-Min-Revision header's or the
// min_revision query parameter's (gateway.MinRevision), else 0 (none).
func minRevision(c echo.Context, body uint64) (uint64, error) {
	if body > 0 {
		return body, nil
	}
	vs := c.Request().Header.Values(gateway.HeaderMinRevision)
	// The query read as net/url reads it drops a pair it cannot read (a
	// semicolon, a bad escape) and Echo's keys are case-sensitive: a token
	// in such a pair, or as MIN_REVISION, was lost without a word, the
	// check decided at whatever revision the store had. Such a query is
	// refused.
	q, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return 0, permatrix.Errorf(permatrix.EINVALID, "malformed query (a min_revision in it would be lost): %v", err)
	}
	for k := range q {
		if k != "min_revision" && strings.EqualFold(k, "min_revision") {
			return 0, permatrix.Errorf(permatrix.EINVALID, "query parameter %q: the consistency token is min_revision, lower case", k)
		}
	}
	// Every value of the query, not QueryParam's first: a token given
	// twice is refused, never read as one of them with the other dropped.
	for _, q := range q["min_revision"] {
		if q != "" {
			vs = append(vs, q)
		}
	}
	return gateway.MinRevision(vs)
}

// POST /v1/check
func (s *Server) check(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var ch permatrix.Check
	if err := decodeJSONWithin(body, &ch, &checkContext{}); err != nil {
		return err
	}
	if ch.MinRevision, err = minRevision(c, ch.MinRevision); err != nil {
		return err
	}
	d, err := s.decide(c, ch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// batchRequest is the body of POST /v1/check/batch; each check is decoded
// on its own, so that an invalid one is that item's error.
type batchRequest struct {
	Checks []jsontext.Value `json:"checks"`
}

// POST /v1/check/batch: one result per check, in order; an invalid item
// gets its own error without failing the others.
func (s *Server) checkBatch(c echo.Context) error {
	var req batchRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Checks == nil {
		return permatrix.Errorf(permatrix.EINVALID, "checks is required: an array of check objects")
	}
	if len(req.Checks) > pdp.MaxBatch {
		return permatrix.Errorf(permatrix.EINVALID, "a batch holds at most %d checks, got %d", pdp.MaxBatch, len(req.Checks))
	}
	results := make([]any, len(req.Checks))
	// The batch is one request: its checks' consistency tokens share one
	// --consistency-timeout.
	ctx := s.svc.OneWait(c.Request().Context())
	if s.cfg.DecisionLog != nil {
		// The batch's checks share a batch_decision_id in the decision log.
		r := decisionlog.RequestFrom(ctx)
		r.BatchDecisionID = pdp.NewDecisionID()
		ctx = decisionlog.WithRequest(ctx, r)
	}
	// Items that failed on the server's side are logged once for the
	// batch, with the first one's error: a batch of a thousand checks
	// that fail is one event, not a thousand lines. A token not reached
	// is not the server's failure but the client's answer (the pdp notes
	// it in a bounded warning).
	failed, first, firstErr := 0, 0, error(nil)
	for i, raw := range req.Checks {
		var ch permatrix.Check
		err := decodeJSONWithin(raw, &ch, &checkContext{})
		if err == nil {
			ch.MinRevision, err = minRevision(c, ch.MinRevision)
		}
		var d *permatrix.Decision
		if err == nil {
			d, err = s.Decide(ctx, ch)
		}
		if err != nil {
			status, detail := toErrorDetail(err)
			if status >= 500 && !pdp.NotReached(err) {
				if failed++; failed == 1 {
					first, firstErr = i, err
				}
			}
			results[i] = errorBody{Error: detail}
			continue
		}
		results[i] = d
	}
	if failed > 0 {
		s.log.Error("batch items failed", "failed", failed, "checks", len(req.Checks), "first_index", first, "err", firstErr)
	}
	return c.JSON(http.StatusOK, map[string]any{"results": results})
}
