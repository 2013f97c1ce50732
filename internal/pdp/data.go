package pdp

import (
	"context"
	"strings"
	"time"

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

// EvaluationLogEntry is what OPA's decision log records of a Data or Query
// API evaluation.
type EvaluationLogEntry struct {
	DecisionID     string
	Timestamp      time.Time
	Path           string // the Data API's path ("permatrix/allow"), or ""
	Query          string // the Query API's query, or ""
	Input          *any
	Result         any // nil when undefined
	Defined        bool
	StoreRevision  uint64
	BundleRevision string
	Metrics        map[string]any // when the request asked for them
	DurationNanos  int64
}

// EvaluationLogger is implemented by a DecisionLogger that records Data
// and Query API evaluations too. The decision log's DecisionLogEntry lines
// are /v1/check's, which `permatrix replay` re-decides as checks; a Data
// API input may be any JSON value, so these entries are a type of their
// own, and a logger that does not implement this records none.
type EvaluationLogger interface {
	LogEvaluation(e EvaluationLogEntry)
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
	ev, err := p.EvalData(ctx, snap, q.Path, q.Input, q.Options)
	if err != nil {
		return nil, err
	}
	out := &Evaluated{Evaluation: *ev, DecisionID: newID(), StoreRevision: snap.Revision(), BundleRevision: p.BundleRevision()}
	s.logEvaluation(out, start, strings.Join(q.Path, "/"), "", q.Input)
	return out, nil
}

// AdhocQuery evaluates a Query API query (any Rego query) with policy p
// over a snapshot of the applied state, and logs it as a decision.
func (s *Service) AdhocQuery(ctx context.Context, p *opa.Policy, query string, input *any, o opa.EvalOptions) (*Evaluated, error) {
	snap, err := s.view(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	start := time.Now()
	ev, err := p.EvalQuery(ctx, snap, query, input, o)
	if err != nil {
		return nil, err
	}
	out := &Evaluated{Evaluation: *ev, DecisionID: newID(), StoreRevision: snap.Revision(), BundleRevision: p.BundleRevision()}
	s.logEvaluation(out, start, "", query, input)
	return out, nil
}

// Compile partially evaluates a Compile API query with policy p over a
// snapshot of the applied state.
func (s *Service) Compile(ctx context.Context, p *opa.Policy, r opa.CompileRequest, o opa.EvalOptions) (*opa.Evaluation, error) {
	snap, err := s.view(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return p.Compile(ctx, snap, r, o)
}

// logEvaluation hands an evaluation to the decision logger, if it records
// evaluations (EvaluationLogger).
func (s *Service) logEvaluation(e *Evaluated, start time.Time, path, query string, input *any) {
	l, ok := s.dlog.(EvaluationLogger)
	if !ok {
		return
	}
	l.LogEvaluation(EvaluationLogEntry{
		DecisionID: e.DecisionID, Timestamp: start.UTC(), Path: path, Query: query, Input: input,
		Result: e.Result, Defined: e.Defined, StoreRevision: e.StoreRevision, BundleRevision: e.BundleRevision,
		Metrics: e.Metrics, DurationNanos: time.Since(start).Nanoseconds(),
	})
}
