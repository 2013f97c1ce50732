// Package opa is permatrix's embedded OPA engine. It compiles a bundle
// once, prepares the queries the server asks, and evaluates them over the
// policies' data: the bundle's data in memory, and data.store read from a
// snapshot of the assignment store (internal/store) through an OPA
// storage.Store — so a decision reads exactly the revision it reports. A
// new bundle is compiled beside the serving one, probed with one decision,
// and swapped in atomically; a broken one leaves the last good one serving.
package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// Queries the server evaluates.
const (
	DecisionQuery = "data.permatrix.decision"
	AllowQuery    = "data.permatrix.allow"
	VerdictQuery  = "data.permatrix.admin.verdict"
)

// Engine evaluates checks and write verdicts with the active policy. Its
// zero value has none; Activate makes one active.
type Engine struct {
	backend store.Backend
	cur     atomic.Pointer[Policy]
	mu      sync.Mutex // one activation at a time
}

// NewEngine returns an engine whose policies read data.store from backend.
func NewEngine(backend store.Backend) *Engine { return &Engine{backend: backend} }

// Current returns the active policy, or nil before the first Activate.
func (e *Engine) Current() *Policy { return e.cur.Load() }

// Activate compiles b and, when it compiles and decides, makes it the
// active policy. On error the previous policy stays active.
func (e *Engine) Activate(ctx context.Context, b *Bundle) (*Policy, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := Compile(ctx, b, e.backend)
	if err != nil {
		return nil, err
	}
	e.cur.Store(p)
	return p, nil
}

// Policy is one compiled bundle with its prepared queries. It is immutable.
type Policy struct {
	Catalog     permatrix.Catalog
	ActivatedAt time.Time

	bundle   *Bundle
	compiler *ast.Compiler
	data     *dataStore
	decision rego.PreparedEvalQuery
	verdict  rego.PreparedEvalQuery

	// queries caches prepared queries of the Data API by path.
	queries sync.Map // string → *rego.PreparedEvalQuery
}

// Bundle is the bundle the policy was compiled from.
func (p *Policy) Bundle() *Bundle { return p.bundle }

// BundleRevision is the bundle's revision (its manifest's, or a content
// digest).
func (p *Policy) BundleRevision() string { return p.bundle.Revision() }

// Compile builds a Policy from a bundle, reading data.store from backend
// (nil: an empty store), without touching what is active. Errors carry
// file:line locations.
func Compile(ctx context.Context, b *Bundle, backend store.Backend) (*Policy, error) {
	if _, ok := b.b.Data[permatrix.StoreRoot]; ok {
		return nil, fmt.Errorf("bundle data must not contain %q: it belongs to the assignment store", permatrix.StoreRoot)
	}
	catalog, err := parseCatalog(b.b.Data["systems"])
	if err != nil {
		return nil, err
	}
	modules := make(map[string]*ast.Module, len(b.b.Modules))
	for _, m := range b.b.Modules {
		if m.Parsed == nil {
			parsed, err := ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
			if err != nil {
				return nil, err
			}
			m.Parsed = parsed
		}
		modules[m.Path] = m.Parsed
	}
	compiler := ast.NewCompiler().WithEnablePrintStatements(false)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, compiler.Errors
	}
	data, err := newDataStore(b.b.Data, backend)
	if err != nil {
		return nil, err
	}
	p := &Policy{bundle: b, Catalog: catalog, ActivatedAt: time.Now(), compiler: compiler, data: data}
	if p.decision, err = p.prepare(ctx, DecisionQuery); err != nil {
		return nil, err
	}
	if p.verdict, err = p.prepare(ctx, VerdictQuery); err != nil {
		return nil, err
	}
	// A policy that cannot decide is not activated: evaluate one check now.
	if _, err := p.decide(ctx, store.Empty(0), permatrix.Check{Subject: "permatrix-probe", System: "-", Action: "-"}); err != nil {
		return nil, fmt.Errorf("probe decision: %w", err)
	}
	return p, nil
}

func (p *Policy) prepare(ctx context.Context, query string) (rego.PreparedEvalQuery, error) {
	return rego.New(
		rego.Query(query),
		rego.Compiler(p.compiler),
		rego.Store(p.data),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
}

// Decide evaluates data.permatrix.decision for a check over snap. A fault
// is an error, never an allow; an input the policies call invalid comes
// back as a decision with Errors.
func (p *Policy) Decide(ctx context.Context, snap store.Snapshot, c permatrix.Check) (*permatrix.Decision, error) {
	return p.decide(ctx, snap, c)
}

func (p *Policy) decide(ctx context.Context, snap store.Snapshot, c permatrix.Check) (*permatrix.Decision, error) {
	v, err := ast.InterfaceToValue(c.Input())
	if err != nil {
		return nil, err
	}
	rs, err := p.decision.Eval(ctx, rego.EvalParsedInput(v), rego.EvalTransaction(p.data.Begin(snap)))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, errors.New("data.permatrix.decision is undefined")
	}
	return parseDecision(rs[0].Expressions[0].Value)
}

// Verdict evaluates data.permatrix.admin.verdict for a write over snap (a
// write's tracked view: what the verdict reads guards the commit).
func (p *Policy) Verdict(ctx context.Context, snap store.Snapshot, input map[string]any) (violations, forbidden []string, err error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, nil, err
	}
	rs, err := p.verdict.Eval(ctx, rego.EvalParsedInput(v), rego.EvalTransaction(p.data.Begin(snap)))
	if err != nil {
		return nil, nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, nil, errors.New("data.permatrix.admin.verdict is undefined")
	}
	m, _ := rs[0].Expressions[0].Value.(map[string]any)
	return stringList(m["violations"]), stringList(m["forbidden"]), nil
}

// Query evaluates data.<path> (slash-separated) for the Data API over
// snap. defined is false when the document is undefined.
func (p *Policy) Query(ctx context.Context, snap store.Snapshot, path string, input any) (result any, defined bool, err error) {
	ref := "data"
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' }) {
		ref += fmt.Sprintf("[%q]", seg)
	}
	pq, err := p.prepared(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	opts := []rego.EvalOption{rego.EvalTransaction(p.data.Begin(snap))}
	if input != nil {
		v, err := ast.InterfaceToValue(input)
		if err != nil {
			return nil, false, err
		}
		opts = append(opts, rego.EvalParsedInput(v))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		return nil, false, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}

func (p *Policy) prepared(ctx context.Context, query string) (*rego.PreparedEvalQuery, error) {
	if pq, ok := p.queries.Load(query); ok {
		return pq.(*rego.PreparedEvalQuery), nil
	}
	pq, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	p.queries.Store(query, &pq)
	return &pq, nil
}

// BundleData returns the bundle's data document at path as plain Go values
// (JSON types), or nil.
func (p *Policy) BundleData(path ...string) any {
	v := walk(p.data.bundle, path)
	if v == nil {
		return nil
	}
	x, err := ast.JSON(v)
	if err != nil {
		return nil
	}
	return x
}

func parseDecision(v any) (*permatrix.Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decision is %T, not an object", v)
	}
	d := &permatrix.Decision{Reasons: []map[string]any{}, Missing: []map[string]any{}}
	allow, ok := m["allow"].(bool)
	if !ok {
		return nil, errors.New("decision.allow is not a boolean")
	}
	d.Allow = allow
	if n, ok := m["revision"].(json.Number); ok {
		r, err := n.Int64()
		if err != nil {
			return nil, err
		}
		d.Revision = uint64(r)
	}
	d.Reasons = objects(m["reasons"])
	d.Missing = objects(m["missing"])
	d.Errors = stringList(m["errors"])
	if d.Allow && len(d.Errors) > 0 {
		return nil, errors.New("decision allows an invalid input")
	}
	return d, nil
}

func objects(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func parseCatalog(v any) (permatrix.Catalog, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var c permatrix.Catalog
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("data.systems: %w", err)
	}
	if len(c) == 0 {
		return nil, errors.New("bundle has no systems (data.systems is empty)")
	}
	for id, s := range c {
		s.ID = id
		if s.Package == "" {
			return nil, fmt.Errorf("data.systems[%q] names no package", id)
		}
	}
	return c, nil
}
