package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/server/types"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/open-policy-agent/opa/v1/version"

	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/vm"
)

// This file evaluates what OPA's REST API asks (the Data, Query, Compile and
// Policy APIs), with the options and in the shapes of stock OPA's server
// (v1/server in the OPA module): the HTTP layer only routes, authorizes and
// encodes.

// Version is the embedded OPA's version.
func Version() string { return version.Version }

// Error codes of OPA's REST API (its types.Code*), which the HTTP layer maps
// to statuses.
const (
	CodeInvalidParameter  = types.CodeInvalidParameter
	CodeInternal          = types.CodeInternal
	CodeUndefinedDocument = types.CodeUndefinedDocument
	CodeResourceNotFound  = types.CodeResourceNotFound
)

// APIError is an error as OPA's REST API reports it: {"code", "message",
// "errors"}, errors being the parse, compile or evaluation errors in OPA's
// own JSON form.
type APIError struct {
	Code    string
	Message string
	Errors  []error
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Explain modes (the ?explain= parameter).
const (
	ExplainOff   = ""
	ExplainNotes = string(types.ExplainNotesV1)
	ExplainFails = string(types.ExplainFailsV1)
	ExplainFull  = string(types.ExplainFullV1)
	ExplainDebug = string(types.ExplainDebugV1)
)

// EvalOptions are the REST API's query parameters that change an
// evaluation or what it reports.
type EvalOptions struct {
	Explain             string // ExplainOff, ExplainNotes, …
	Pretty              bool   // the explanation as readable lines, not trace events
	Metrics             bool
	Instrument          bool // metrics with the evaluator's instrumentation
	StrictBuiltinErrors bool // a builtin error fails the query instead of making it undefined
}

// Evaluation is what an evaluation answers.
type Evaluation struct {
	// Result is the document (Data API), the list of bindings (Query API) or
	// the partial evaluation (Compile API); Defined is false when the
	// document is undefined or the query has no result.
	Result  any
	Defined bool
	// Metrics is nil unless asked (EvalOptions.Metrics or Instrument).
	Metrics map[string]any
	// Explanation is nil unless asked (EvalOptions.Explain).
	Explanation json.RawMessage
}

// unsafeBuiltins are refused in queries clients write (the Query and Compile
// APIs): http.send, as stock OPA's server refuses it, and the JSON Schema
// builtins, which load a schema's $ref from any file (file://) or host —
// stock OPA's serve them, and so read local files and reach hosts for the
// caller.
var unsafeBuiltins = map[string]struct{}{ast.HTTPSend.Name: {}, ast.JSONMatchSchema.Name: {}, ast.JSONSchemaVerify.Name: {}}

// parserOptions parse clients' queries: Rego v1, as the policies.
var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1}

// EvalData evaluates data.<path> over snap as stock OPA's Data API does
// (GET/POST /v1/data/{path}); input nil means no input, a pointer to nil a
// JSON null. Without the strict option builtin errors make an expression
// undefined. Prepared queries are cached as Query caches them (only for
// paths the rule tree defines), apart for strict ones.
func (p *Policy) EvalData(ctx context.Context, snap store.Snapshot, path []string, input *any, o EvalOptions) (*Evaluation, error) {
	// Metrics cost allocations on the decision path: only when asked, as
	// OPA's server does.
	m := metrics.NoOp()
	if o.Metrics || o.Instrument {
		m = metrics.New()
	}
	m.Timer(metrics.ServerHandler).Start()
	ref := DataRef(path)
	var in ast.Value // nil: no input
	if input != nil {
		m.Timer(metrics.RegoInputParse).Start()
		v, err := ast.InterfaceToValue(*input)
		m.Timer(metrics.RegoInputParse).Stop()
		if err != nil {
			return nil, &APIError{Code: CodeInvalidParameter, Message: err.Error()}
		}
		in = v
	}
	// A decision the vm runs for /v1/check (data.permatrix.decision, a
	// system's decision) is run by it here too, as OPA clients ask for it,
	// unless an explanation, metrics or strict builtin errors (whose
	// errors topdown words) are asked.
	if prog, ok := p.planned[ref.String()]; ok && o.Explain == ExplainOff && !o.Metrics && !o.Instrument && !o.StrictBuiltinErrors {
		res, defined, err := p.runJSON(ctx, prog, snap, in)
		// A conflict the vm finds is decided again by topdown below
		// (Policy.eval's reason).
		if !errors.Is(err, vm.ErrConflict) {
			m.Timer(metrics.ServerHandler).Stop()
			if err != nil {
				return nil, evalError(ctx, err)
			}
			return p.evaluation(res, defined, m, o, nil), nil
		}
	}
	txn := p.data.Begin(snap)
	opts := []rego.EvalOption{rego.EvalTransaction(txn), rego.EvalMetrics(m), rego.EvalInstrument(o.Instrument)}
	if in != nil {
		opts = append(opts, rego.EvalParsedInput(in))
	}
	var buf *topdown.BufferTracer
	if o.Explain != ExplainOff {
		buf = topdown.NewBufferTracer()
		opts = append(opts, rego.EvalQueryTracer(buf))
	}

	var pq *rego.PreparedEvalQuery
	var err error
	hits := m.Counter(metrics.ServerQueryCacheHit)
	switch p.ruleDepth(ref) {
	case byRule:
		key := "data::" + ref.String()
		if o.StrictBuiltinErrors {
			key = "data::strict-builtin-errors::" + ref.String()
		}
		if cached, ok := p.queries.Get(key); ok {
			hits.Incr()
			pq = cached
		} else {
			q, err := p.prepareData(ctx, ref, o.StrictBuiltinErrors)
			if err != nil {
				return nil, queryError(err)
			}
			pq = &q
			p.queries.Add(key, pq)
		}
	case inRule:
		q, err := p.prepareData(ctx, ref, o.StrictBuiltinErrors)
		if err != nil {
			return nil, queryError(err)
		}
		pq = &q
	default:
		if buf == nil && !o.Metrics && !o.Instrument {
			// Base data with no rule involved and no trace, metrics or
			// instrumentation asked: read it, preparing nothing (Query's
			// reason). Metrics are OPA's evaluation's, as on a rule.
			res, defined, err := p.readBase(ctx, txn, path)
			m.Timer(metrics.ServerHandler).Stop()
			if err != nil {
				return nil, err
			}
			return p.evaluation(res, defined, m, o, nil), nil
		}
		q, err := p.prepareData(ctx, ref, o.StrictBuiltinErrors)
		if err != nil {
			return nil, queryError(err)
		}
		pq = &q
	}
	rs, err := pq.Eval(ctx, opts...)
	m.Timer(metrics.ServerHandler).Stop()
	if err != nil {
		return nil, evalError(ctx, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return p.evaluation(nil, false, m, o, buf), nil
	}
	return p.evaluation(rs[0].Expressions[0].Value, true, m, o, buf), nil
}

// evaluation assembles an Evaluation: metrics and explanation only if asked
// (an undefined document is explained only in full mode, as OPA does).
func (p *Policy) evaluation(result any, defined bool, m metrics.Metrics, o EvalOptions, buf *topdown.BufferTracer) *Evaluation {
	ev := &Evaluation{Result: result, Defined: defined}
	if o.Metrics || o.Instrument {
		ev.Metrics = m.All()
	}
	if buf != nil && (defined || o.Explain == ExplainFull) {
		ev.Explanation = explanation(o.Explain, *buf, o.Pretty)
	}
	return ev
}

// explanation renders a trace as OPA's server does for an explain mode.
func explanation(mode string, trace []*topdown.Event, pretty bool) json.RawMessage {
	var events []*topdown.Event
	switch mode {
	case ExplainNotes:
		events = lineage.Notes(trace)
	case ExplainFails:
		events = lineage.Fails(trace)
	case ExplainFull:
		events = lineage.Full(trace)
	case ExplainDebug:
		events = lineage.Debug(trace)
	default:
		return nil
	}
	t, err := types.NewTraceV1(events, pretty)
	if err != nil {
		return nil
	}
	return json.RawMessage(t)
}

// prepareData prepares a Data API query for ref (OPA's default of
// non-strict builtin errors unless strict). The query has the location
// OPA's server gives it, parsing it from text: line 1 of the query, as
// traces show it.
func (p *Policy) prepareData(ctx context.Context, ref ast.Ref, strict bool) (rego.PreparedEvalQuery, error) {
	loc := &ast.Location{Row: 1, Col: 1, Text: []byte(ref.String())}
	term := ast.NewTerm(ref).SetLocation(loc)
	expr := ast.NewExpr(term)
	expr.Location = loc
	return rego.New(
		rego.ParsedQuery(ast.NewBody(expr)),
		rego.Compiler(p.compiler),
		rego.Store(p.data),
		rego.StrictBuiltinErrors(strict),
		rego.PrintHook(p.print),
	).PrepareForEval(ctx)
}

// Undefined is the error of OPA's v0 Data API (and POST /) for an undefined
// document: "document undefined" where rules define it, else "document
// missing".
func (p *Policy) Undefined(path []string) *APIError {
	ref := DataRef(path)
	msg := types.MsgMissingError
	if len(p.compiler.GetRulesForVirtualDocument(ref)) > 0 {
		msg = types.MsgFoundUndefinedError
	}
	return &APIError{Code: CodeUndefinedDocument, Message: fmt.Sprintf("%v: %v", msg, ref)}
}

// RefString is data.<path> as OPA writes it (data.permatrix.allow).
func RefString(path []string) string { return DataRef(path).String() }

// EvalQuery evaluates an ad-hoc Rego query over snap as stock OPA's Query
// API does (GET/POST /v1/query): the result is the list of the query's
// variable bindings (wildcards left out), one per solution. http.send is
// refused.
func (p *Policy) EvalQuery(ctx context.Context, snap store.Snapshot, query string, input *any, o EvalOptions) (*Evaluation, error) {
	m := metrics.New()
	m.Timer(metrics.ServerHandler).Start()
	body, err := ast.ParseBodyWithOpts(query, parserOptions)
	if err != nil {
		return nil, parseError(types.MsgParseQueryError, err)
	}
	if len(body) == 0 {
		// Stock OPA's 500 ("cannot evaluate empty query"): a client's error.
		return nil, &APIError{Code: CodeInvalidParameter, Message: "cannot evaluate empty query"}
	}
	opts, buf, err := p.adhoc(snap, body, input, m, o)
	if err != nil {
		return nil, err
	}
	rs, err := rego.New(opts...).Eval(ctx)
	m.Timer(metrics.ServerHandler).Stop()
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, &APIError{Code: CodeInvalidParameter, Message: types.MsgCompileQueryError, Errors: astErrors(astErrs)}
		}
		return nil, evalError(ctx, err)
	}
	bindings := make([]map[string]any, 0, len(rs))
	for _, r := range rs {
		bindings = append(bindings, r.Bindings.WithoutWildcards())
	}
	ev := &Evaluation{Result: bindings, Defined: len(bindings) > 0}
	if o.Metrics || o.Instrument {
		ev.Metrics = m.All()
	}
	if buf != nil {
		ev.Explanation = explanation(o.Explain, *buf, o.Pretty)
	}
	return ev, nil
}

// adhoc is the rego options of a query a client wrote (Query and Compile
// APIs): the active policy's compiler and data over snap, no http.send.
func (p *Policy) adhoc(snap store.Snapshot, body ast.Body, input *any, m metrics.Metrics, o EvalOptions) ([]func(*rego.Rego), *topdown.BufferTracer, error) {
	opts := []func(*rego.Rego){
		rego.Compiler(p.compiler),
		rego.Store(p.data),
		rego.Transaction(p.data.Begin(snap)),
		rego.ParsedQuery(body),
		rego.Metrics(m),
		rego.Instrument(o.Instrument),
		rego.UnsafeBuiltins(unsafeBuiltins),
		rego.EnablePrintStatements(p.print != nil),
		rego.PrintHook(p.print),
	}
	if input != nil {
		m.Timer(metrics.RegoInputParse).Start()
		v, err := ast.InterfaceToValue(*input)
		m.Timer(metrics.RegoInputParse).Stop()
		if err != nil {
			return nil, nil, &APIError{Code: CodeInvalidParameter, Message: "error(s) occurred while converting input: " + err.Error()}
		}
		opts = append(opts, rego.ParsedInput(v))
	}
	var buf *topdown.BufferTracer
	if o.Explain != ExplainOff {
		buf = topdown.NewBufferTracer()
		opts = append(opts, rego.QueryTracer(buf))
	}
	return opts, buf, nil
}

// CompileRequest is the body of OPA's Compile API (POST /v1/compile).
type CompileRequest struct {
	Query string
	Input *any
	// Unknowns are terms left unknown (OPA's default when nil: input).
	Unknowns                 []string
	DisableInlining          []string
	NondeterministicBuiltins bool
}

// Compile partially evaluates a query over snap as stock OPA's Compile API
// does: the result is {"queries", "support"} in OPA's AST JSON, the
// conditions on the unknowns under which the query holds (e.g. which
// input.resource.id a subject may read).
func (p *Policy) Compile(ctx context.Context, snap store.Snapshot, r CompileRequest, o EvalOptions) (*Evaluation, error) {
	m := metrics.New()
	m.Timer(metrics.ServerHandler).Start()
	m.Timer(metrics.RegoQueryParse).Start()
	body, err := ast.ParseBodyWithOpts(r.Query, parserOptions)
	if err != nil {
		return nil, parseError(types.MsgParseQueryError, err)
	}
	if len(body) == 0 {
		return nil, &APIError{Code: CodeInvalidParameter, Message: "missing required 'query' value"}
	}
	var unknowns []*ast.Term
	if r.Unknowns != nil {
		unknowns = make([]*ast.Term, len(r.Unknowns))
		for i, s := range r.Unknowns {
			if unknowns[i], err = ast.ParseTerm(s); err != nil {
				return nil, &APIError{Code: CodeInvalidParameter, Message: "error(s) occurred while parsing unknowns: " + err.Error()}
			}
		}
	}
	m.Timer(metrics.RegoQueryParse).Stop()
	opts, buf, err := p.adhoc(snap, body, r.Input, m, o)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		// Its copy propagation writes into what it reads: a copy of the
		// bundle's data, not the one every evaluation shares.
		rego.Store(copyingStore{p.data}),
		rego.ParsedUnknowns(unknowns),
		rego.DisableInlining(r.DisableInlining),
		rego.NondeterministicBuiltins(r.NondeterministicBuiltins))
	pq, err := rego.New(opts...).Partial(ctx)
	m.Timer(metrics.ServerHandler).Stop()
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, &APIError{Code: CodeInvalidParameter, Message: types.MsgCompileModuleError, Errors: astErrors(astErrs)}
		}
		return nil, evalError(ctx, err)
	}
	ev := &Evaluation{Result: types.PartialEvaluationResultV1{Queries: pq.Queries, Support: pq.Support}, Defined: true}
	if o.Metrics || o.Instrument {
		ev.Metrics = m.All()
	}
	if buf != nil {
		ev.Explanation = explanation(o.Explain, *buf, o.Pretty)
	}
	return ev, nil
}

// Module is one Rego module of the active bundle, as OPA's Policy API shows
// it: its id (the path in the bundle), its source and its compiled AST.
type Module struct {
	ID  string      `json:"id"`
	Raw string      `json:"raw"`
	AST *ast.Module `json:"ast"`
}

// Modules are the active bundle's Rego modules, sorted by id.
func (p *Policy) Modules() []Module {
	out := make([]Module, 0, len(p.bundle.b.Modules))
	for _, m := range p.bundle.b.Modules {
		out = append(out, Module{ID: m.Path, Raw: string(m.Raw), AST: p.compiler.Modules[m.Path]})
	}
	slices.SortFunc(out, func(a, b Module) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Module returns the module with that id, if the bundle has one.
func (p *Policy) Module(id string) (Module, bool) {
	for _, m := range p.bundle.b.Modules {
		if m.Path == id {
			return Module{ID: m.Path, Raw: string(m.Raw), AST: p.compiler.Modules[m.Path]}, true
		}
	}
	return Module{}, false
}

// parseError is a query that does not parse: OPA's 400 with the AST errors.
func parseError(msg string, err error) error {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		return &APIError{Code: CodeInvalidParameter, Message: msg, Errors: astErrors(astErrs)}
	}
	return &APIError{Code: CodeInvalidParameter, Message: fmt.Sprintf("%v: %v", msg, err)}
}

// queryError is a Data API query that does not prepare (a compile error).
func queryError(err error) error {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		return &APIError{Code: CodeInvalidParameter, Message: types.MsgCompileQueryError, Errors: astErrors(astErrs)}
	}
	return err
}

// evalError is an evaluation that failed: the context's error when the
// client left or the request timed out (not a policy fault), else OPA's
// 500 with the evaluation error.
func evalError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *topdown.Error
	if errors.As(err, &te) {
		return &APIError{Code: CodeInternal, Message: types.MsgEvaluationError, Errors: []error{te}}
	}
	return err
}

func astErrors(errs ast.Errors) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}
