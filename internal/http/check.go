package http

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/pdp"
)

// decide runs one check and records its metrics.
func (s *Server) decide(c echo.Context, ch permatrix.Check) (*permatrix.Decision, error) {
	start := time.Now()
	d, err := s.svc.Check(c.Request().Context(), ch)
	if err != nil {
		return nil, err
	}
	s.metrics.DecisionDuration.WithLabelValues(ch.System).Observe(time.Since(start).Seconds())
	s.metrics.Decisions.WithLabelValues(ch.System, strconv.FormatBool(d.Allow)).Inc()
	return d, nil
}

// POST /v1/check
func (s *Server) check(c echo.Context) error {
	var ch permatrix.Check
	if err := decode(c, &ch); err != nil {
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
	for i, raw := range req.Checks {
		var ch permatrix.Check
		err := decodeJSON(raw, &ch)
		var d *permatrix.Decision
		if err == nil {
			d, err = s.decide(c, ch)
		}
		if err != nil {
			status, detail := toErrorDetail(err)
			if status >= 500 {
				s.log.Error("batch item failed", "err", err, "index", i)
			}
			results[i] = errorBody{Error: detail}
			continue
		}
		results[i] = d
	}
	return c.JSON(http.StatusOK, map[string]any{"results": results})
}

// dataRequest is the body of POST /v1/data/{path}: free-form OPA input.
type dataRequest struct {
	Input any `json:"input"`
}

// GET|POST /v1/data/{path}: OPA's Data API over the same policies and data.
func (s *Server) data(c echo.Context) error {
	p := s.svc.Engine().Current()
	if p == nil {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	var req dataRequest
	if c.Request().Method == http.MethodPost && c.Request().ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	path := strings.Trim(c.Param("*"), "/")
	result, defined, err := p.Query(c.Request().Context(), path, req.Input)
	if err != nil {
		s.log.Error("data API evaluation failed", "err", err, "path", path)
		return permatrix.Errorf(permatrix.EINTERNAL, "evaluation failed")
	}
	if !defined {
		return c.JSON(http.StatusOK, map[string]any{})
	}
	return c.JSON(http.StatusOK, map[string]any{"result": result})
}
