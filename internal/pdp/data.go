package pdp

import (
	"context"
	"strings"
	"time"

	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/opa"
)

// OPA's REST API over the active policy: Data API evaluations are
// decisions (each has a decision id, and is logged), as are Query API
// evaluations; Compile API answers are not decisions (OPA logs none).

// DataQuery is one Data API evaluation: GET/POST /v1/data/{path}, POST
// /v0/data/{path} and POST / (the default decision).
type DataQuery struct {
	Path []string
	// Input is nil without input; a pointer to nil is a JSON null input.
	Input       *any
	MinRevision uint64 // a consistency token, as for checks
	Options     opa.EvalOptions
}

// Evaluated is a Data or Query API evaluation's answer.
type Evaluated struct {
	opa.Evaluation
	DecisionID     string
	StoreRevision  uint64
	BundleRevision string
}

// Data evaluates a Data API query with policy p over a snapshot at
// q.MinRevision or later, and logs it as a decision.
func (s *Service) Data(ctx context.Context, p *opa.Policy, q DataQuery) (*Evaluated, error) {
	snap, err := s.view(ctx, q.MinRevision)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	start := time.Now()
	evalCtx, end := s.evaluation(ctx)
	ev, err := p.EvalData(evalCtx, snap, q.Path, q.Input, q.Options)
	end(err)
	if err != nil {
		return nil, err
	}
	out := &Evaluated{Evaluation: *ev, DecisionID: decisionID(ctx), StoreRevision: snap.Revision(), BundleRevision: p.BundleRevision()}
	s.logEvaluation(ctx, out, p, start, strings.Join(q.Path, "/"), "", q.Input)
	return out, nil
}

// AdhocQuery evaluates a Query API query (any Rego query) with policy p
// over a snapshot of the applied state, at store revision min or later
// (a consistency token, as the Data API's), and logs it as a decision.
func (s *Service) AdhocQuery(ctx context.Context, p *opa.Policy, query string, input *any, o opa.EvalOptions, min uint64) (*Evaluated, error) {
	snap, err := s.view(ctx, min)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	start := time.Now()
	evalCtx, end := s.evaluation(ctx)
	ev, err := p.EvalQuery(evalCtx, snap, query, input, o)
	end(err)
	if err != nil {
		return nil, err
	}
	out := &Evaluated{Evaluation: *ev, DecisionID: decisionID(ctx), StoreRevision: snap.Revision(), BundleRevision: p.BundleRevision()}
	s.logEvaluation(ctx, out, p, start, "", query, input)
	return out, nil
}

// Compile partially evaluates a Compile API query with policy p over a
// snapshot of the applied state, at store revision min or later.
func (s *Service) Compile(ctx context.Context, p *opa.Policy, r opa.CompileRequest, o opa.EvalOptions, min uint64) (*opa.Evaluation, error) {
	snap, err := s.view(ctx, min)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return p.Compile(ctx, snap, r, o)
}

// logEvaluation logs an evaluation as a decision, under the decision id
// the request chose (decisionlog.Request.DecisionID) if any.
func (s *Service) logEvaluation(ctx context.Context, e *Evaluated, p *opa.Policy, start time.Time, path, query string, input *any) {
	if s.dlog == nil {
		return
	}
	var in, result any
	if input != nil {
		in = *input
	}
	if e.Defined {
		result = e.Result
	}
	entry := s.logEntry(e.DecisionID, path, in, result, e.StoreRevision, p, start)
	entry.Query = query
	for k, v := range e.Metrics {
		entry.Metrics[k] = v
	}
	s.dlog.LogDecision(ctx, entry)
}

// decisionID is the request's chosen decision id, else a new one.
func decisionID(ctx context.Context) string {
	if id := decisionlog.RequestFrom(ctx).DecisionID; id != "" {
		return id
	}
	return newID()
}
