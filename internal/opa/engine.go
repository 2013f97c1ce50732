// Package opa is permatrix's embedded OPA engine. It compiles a bundle
// once, prepares the queries the server asks, and evaluates them over the
// policies' data: the bundle's data in memory, and data.store read from a
// snapshot of the assignment store (internal/store) through an OPA
// storage.Store — so a decision reads exactly the revision it reports. A
// new bundle is compiled beside the serving one, probed (every check its
// catalog names must be decided: Policy.probe), and swapped in atomically;
// a broken one leaves the last good one serving.
package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/vm"
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
	opts    []Option // what every Compile is given
	cur     atomic.Pointer[Policy]
	mu      sync.Mutex // one activation at a time
	extra   []ModuleSource
	hooks   []func(*Policy)
	// swaps is held while the active policy is swapped (GuardSwaps).
	swaps sync.Locker
}

// ModuleSource is a Rego module by name.
type ModuleSource struct{ Name, Source string }

// AddModule compiles a module with every bundle activated from now on (the
// decision log's mask list, internal/decisionlog), as if the bundle held it.
func (e *Engine) AddModule(m ModuleSource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.extra = append(e.extra, m)
}

// OnActivate calls f with every policy activated from now on, after the
// swap (one activation at a time: f runs before the next one starts).
func (e *Engine) OnActivate(f func(*Policy)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hooks = append(e.hooks, f)
}

// GuardSwaps makes every activation from now on swap the active policy
// with l held (the bundle is compiled and probed before): the writes of
// internal/pdp hold it shared from their verdicts to their commits, so a
// write is never judged by a policy swapped out before it commits. Call it
// before the first Activate.
func (e *Engine) GuardSwaps(l sync.Locker) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.swaps = l
}

// NewEngine returns an engine whose policies read data.store from backend,
// each compiled with opts.
func NewEngine(backend store.Backend, opts ...Option) *Engine {
	return &Engine{backend: backend, opts: opts}
}

// Current returns the active policy, or nil before the first Activate.
func (e *Engine) Current() *Policy { return e.cur.Load() }

// Activate compiles b and, when it compiles and decides, makes it the
// active policy. On error the previous policy stays active.
func (e *Engine) Activate(ctx context.Context, b *Bundle) (*Policy, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.extra) > 0 {
		var err error
		if b, err = b.withModules(e.extra); err != nil {
			return nil, err
		}
	}
	p, err := Compile(ctx, b, e.backend, e.opts...)
	if err != nil {
		return nil, err
	}
	if e.swaps != nil {
		e.swaps.Lock()
	}
	e.cur.Store(p)
	if e.swaps != nil {
		e.swaps.Unlock()
	}
	for _, f := range e.hooks {
		f(p)
	}
	return p, nil
}

// Policy is one compiled bundle with its prepared queries. It is immutable.
type Policy struct {
	Catalog     permatrix.Catalog
	ActivatedAt time.Time
	// Generation tells compiled policies apart (a cache key): every
	// Compile gets a new one, whatever the bundle's revision.
	Generation uint64
	// Varies says that a decision may depend on more than its input, the
	// bundle and data.store (decisionsVary): the clock, randomness, the
	// network. Such a decision is not kept by a decision cache.
	Varies bool
	// VerdictVaries says the same of the write rules' verdict, and that
	// they may read data.store.revision, which no store unit stands for
	// (verdictVaries): such a verdict is not taken by a write planned
	// again from the plan before it (pdp's prejudge).
	VerdictVaries bool

	bundle   *Bundle
	compiler *ast.Compiler
	data     *dataStore
	// evaluator evaluates decisions and verdicts (Evaluator).
	evaluator Evaluator
	// topdownWhy says what the vm does not run, and why (Topdown).
	topdownWhy []string
	// print hears print() (WithPrintHook); nil: print is compiled out.
	print    print.Hook
	decision query
	verdict  query
	// systems are data.permatrix.systems.<package>.decision per system id:
	// the fast path of Decide (fastPath).
	systems map[string]query
	// planned are the decision queries the vm runs, by their ref, lenient:
	// what the Data API evaluates with the vm (EvalData).
	planned map[string]*vm.Program

	// entrypoints are the rules annotated `entrypoint: true`: the documents
	// the Data API serves without the admin token.
	entrypoints []ast.Ref
	// queries caches prepared Data API queries by path, only for paths the
	// rule tree defines (see Query), and at most maxCachedQueries of them.
	queries *lru.Cache[string, *rego.PreparedEvalQuery]
	// assignInputs are assignments' verdict inputs filled again for
	// each verdict by the vm (Verdict); checkInputs checks' inputs, for
	// each decision (decideWith).
	assignInputs inputPool[assignInputs]
	checkInputs  inputPool[checkInputs]
}

// generations numbers compiled policies.
var generations atomic.Uint64

// maxCachedQueries bounds the Data API's prepared-query cache. A prepared
// query costs a few KiB; the paths worth caching are the bundle's rules and
// packages, a few hundred in the default bundle.
const maxCachedQueries = 512

// Bundle is the bundle the policy was compiled from.
func (p *Policy) Bundle() *Bundle { return p.bundle }

// Compiler is the compiled policy, for OPA's plugins (the decision log's
// mask policy). It must not be changed.
func (p *Policy) Compiler() *ast.Compiler { return p.compiler }

// Topdown says what of the policy OPA's topdown evaluates where the vm
// evaluator was asked for, and why: a query OPA's planner cannot plan, or
// a bundle the planner would misread (slower than the vm, the same
// answers). Empty when the vm runs every decision and verdict query, and
// under WithEvaluator(Topdown). serve logs it on each activation: a
// policy author's edit can make the bundle several times slower.
func (p *Policy) Topdown() []string { return p.topdownWhy }

// BundleRevision is the bundle's revision (its manifest's, or a content
// digest).
func (p *Policy) BundleRevision() string { return p.bundle.Revision() }

// Compile builds a Policy from a bundle, reading data.store from backend
// (nil: an empty store), without touching what is active. Errors carry
// file:line locations.
func Compile(ctx context.Context, b *Bundle, backend store.Backend, opts ...Option) (*Policy, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
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
	// print() is compiled in only for a hook to hear it (WithPrintHook):
	// compiled out, it costs nothing.
	compiler := ast.NewCompiler().WithEnablePrintStatements(o.print != nil)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, compiler.Errors
	}
	if err := checkPackages(catalog, compiler); err != nil {
		return nil, err
	}
	data, err := newDataStore(b.b.Data, backend)
	if err != nil {
		return nil, err
	}
	queries, err := lru.New[string, *rego.PreparedEvalQuery](maxCachedQueries)
	if err != nil {
		return nil, err
	}
	evaluator := o.evaluator
	var why []string
	if naked := vm.NakedComprehensions(compiler.Modules); len(naked) > 0 && evaluator != Topdown {
		// The planner skips what topdown evaluates (vm.NakedComprehensions).
		evaluator = Topdown
		slices.SortFunc(naked, func(a, b *ast.Location) int { return a.Compare(b) })
		why = append(why, fmt.Sprintf("every query: %s has a comprehension as a body expression, which OPA's planner takes as true", naked[0]))
		if len(naked) > 1 {
			why[0] += fmt.Sprintf(" (and %d more)", len(naked)-1)
		}
	}
	p := &Policy{bundle: b, Catalog: catalog, ActivatedAt: time.Now(), Generation: generations.Add(1),
		compiler: compiler, data: data, entrypoints: entrypoints(compiler), queries: queries,
		evaluator: evaluator, topdownWhy: why}
	if o.print != nil {
		p.print = quietHook{o.print}
	}
	p.planned = map[string]*vm.Program{}
	decision := ast.MustParseRef(DecisionQuery)
	if p.decision, err = p.prepare(ctx, decision); err != nil {
		return nil, err
	}
	p.plan(decision, p.decision)
	if p.verdict, err = p.prepare(ctx, ast.MustParseRef(VerdictQuery)); err != nil {
		return nil, err
	}
	p.systems = make(map[string]query, len(catalog))
	decisions := []ast.Ref{decision}
	for id, sys := range catalog {
		ref := ast.Ref{ast.DefaultRootDocument, ast.StringTerm("permatrix"), ast.StringTerm("systems"), ast.StringTerm(sys.Package), ast.StringTerm("decision")}
		if p.systems[id], err = p.prepare(ctx, ref); err != nil {
			return nil, fmt.Errorf("system %s: %w", id, err)
		}
		p.plan(ref, p.systems[id])
		decisions = append(decisions, ref)
	}
	p.Varies = decisionsVary(compiler, decisions)
	p.VerdictVaries = verdictVaries(compiler)
	if err := p.probe(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// probeSubject is the user of the checks a policy is probed with.
const probeSubject = "permatrix-probe"

// probe decides, over an empty store, one check no system knows (the full
// query) and every check the catalog names — each system's each action at
// each scope type it applies at, asked by a user who holds nothing and
// sends no context — through the system's own query (what checks
// evaluate) and through data.permatrix.decision (what the Data API
// evaluates), and judges one write of each system. A policy that cannot
// decide one of them (its decision undefined, two values in conflict, a
// builtin's error) is not activated: served, it would answer every such
// check 500 where the last good policy decided. What it decides is not
// judged here; that it decides is.
func (p *Policy) probe(ctx context.Context) error {
	ctx = Quiet(ctx)
	empty := store.Empty(0)
	if _, err := p.decide(ctx, empty, permatrix.Check{Subject: probeSubject, System: "-", Action: "-"}); err != nil {
		return fmt.Errorf("probe decision: %w", err)
	}
	for _, id := range p.Catalog.IDs() {
		sys := p.Catalog[id]
		for _, action := range sys.ActionIDs() {
			for _, typ := range sys.Actions[action].Scopes {
				scope := permatrix.Scope{Type: typ}
				if typ != permatrix.ServiceScope.Type {
					scope.ID = probeSubject
				}
				c := permatrix.Check{Subject: probeSubject, System: id, Action: action, Resource: &scope}
				if _, err := p.decide(ctx, empty, c); err != nil {
					return fmt.Errorf("probe decision of %s's %s at scope type %s: %w", id, action, typ, err)
				}
				if _, err := p.decideWith(ctx, p.decision, false, empty, c); err != nil {
					return fmt.Errorf("probe decision of %s's %s at scope type %s (%s): %w", id, action, typ, DecisionQuery, err)
				}
			}
		}
		// The write rules too: one assignment of the system, on behalf of
		// an actor (the delegation rules run).
		if a, ok := probeAssignment(sys); ok {
			in := map[string]any{"op": "assign", "actor": probeSubject, "assignment": a.Value()}
			if _, _, err := p.Verdict(ctx, empty, in); err != nil {
				return fmt.Errorf("probe write verdict (system %s): %w", id, err)
			}
		}
	}
	return nil
}

// probeAssignment is an assignment of sys the probe's write verdict is
// asked about: its first role (else permission) at the first scope type
// it is held at.
func probeAssignment(sys *permatrix.System) (permatrix.Assignment, bool) {
	a := permatrix.Assignment{Subject: "user:" + probeSubject, System: sys.ID}
	var g permatrix.Grantable
	if ids := slices.Sorted(maps.Keys(sys.Roles)); len(ids) > 0 {
		a.Role, g = ids[0], sys.Roles[ids[0]]
	} else if ids := slices.Sorted(maps.Keys(sys.Permissions)); len(ids) > 0 {
		a.Permission, g = ids[0], sys.Permissions[ids[0]]
	} else {
		return a, false
	}
	a.Scope = permatrix.ServiceScope
	if len(g.Scopes) > 0 && g.Scopes[0] != permatrix.ServiceScope.Type {
		a.Scope = permatrix.Scope{Type: g.Scopes[0], ID: probeSubject}
	}
	return a, true
}

// prepareQuery prepares query over the policy. Preparing reads nothing of
// data.store, so it runs in a transaction over an empty snapshot: left to
// itself, rego would open one on the store, and a store that cannot be
// read yet (a fleet's replica still loading from etcd) would fail the
// bundle's compile at start.
func (p *Policy) prepareQuery(ctx context.Context, query func(*rego.Rego), strict bool) (rego.PreparedEvalQuery, error) {
	return rego.New(
		query,
		rego.Compiler(p.compiler),
		rego.Store(p.data),
		rego.Transaction(p.data.Begin(store.Empty(0))),
		rego.StrictBuiltinErrors(strict),
		rego.EnablePrintStatements(p.print != nil),
		rego.PrintHook(p.print),
	).PrepareForEval(ctx)
}

// Decide evaluates data.permatrix.decision for a check over snap. A fault
// is an error, never an allow; an input the policies call invalid comes
// back as a decision with Errors.
func (p *Policy) Decide(ctx context.Context, snap store.Snapshot, c permatrix.Check) (*permatrix.Decision, error) {
	return p.decide(ctx, snap, c)
}

func (p *Policy) decide(ctx context.Context, snap store.Snapshot, c permatrix.Check) (*permatrix.Decision, error) {
	q, fast := p.fastPath(c)
	if !fast {
		q = p.decision
	}
	return p.decideWith(ctx, q, fast, snap, c)
}

// decideWith evaluates c with q: a system's own decision query (fast) or
// data.permatrix.decision.
func (p *Policy) decideWith(ctx context.Context, q query, fast bool, snap store.Snapshot, c permatrix.Check) (*permatrix.Decision, error) {
	// The vm writes into no value it reads: its input may share terms.
	// Topdown's input is all its own (leaf.go: terms).
	var ts terms
	if q.program != nil {
		ts = p.data.terms
	}
	var v *ast.Term
	if ts != nil && fills(c) {
		// The check's input filled into objects made once
		// (checkInputs), given back once the decision is read.
		filled := p.checkInputs.get(newCheckInputs)
		defer p.checkInputs.put(filled)
		v = filled.fill(c, ts)
	} else {
		var err error
		if v, err = inputValue(c, ts); err != nil {
			return nil, err
		}
	}
	if fast {
		d, defined, err := p.evalDecision(ctx, q, snap, v)
		if err != nil {
			return nil, err
		}
		if !defined {
			return nil, fmt.Errorf("the decision of system %s is undefined", c.System)
		}
		d.Revision = snap.Revision()
		return d, nil
	}
	d, defined, err := p.evalDecision(ctx, q, snap, v)
	if err != nil {
		return nil, err
	}
	if !defined {
		return nil, errors.New("data.permatrix.decision is undefined")
	}
	// The revision is the snapshot's, as on the fast path: the stock
	// decision copies data.store.revision, but a bundle's may name none or
	// another, and a decision cache keeps the answer as true at it.
	d.Revision = snap.Revision()
	return d, nil
}

// fastPath is the system's own decision query when data.permatrix.decision
// would only wrap it: a check the catalog knows (system, action), whose
// scope type the action applies at. data.permatrix.decision is then
// exactly the system package's decision with the store revision added
// (policies/permatrix/permatrix.rego), and skipping the wrapper saves its
// input checks and dispatch. Anything else takes the full query.
func (p *Policy) fastPath(c permatrix.Check) (query, bool) {
	sys, ok := p.Catalog[c.System]
	if !ok || c.Subject == "" {
		return query{}, false
	}
	action, ok := sys.Actions[c.Action]
	if !ok {
		return query{}, false
	}
	scope := "service"
	if c.Resource != nil {
		if c.Resource.Type == "" || (c.Resource.Type != "service" && c.Resource.ID == "") {
			return query{}, false
		}
		scope = c.Resource.Type
	}
	if !slices.Contains(action.Scopes, scope) {
		return query{}, false
	}
	q, ok := p.systems[c.System]
	return q, ok
}

// inputValue is a check as the policies' input (Check.Input), built as an
// AST term directly. With ts, its keys, and the system, action and scope
// type when ts holds them, are shared terms (leaf.go: terms); with none,
// all its own. Its own terms — the input's, the subject's, a resource's
// and its id's — are one block, sized for them (the vm takes the input's
// term as it is: vm.Program.Read).
func inputValue(c permatrix.Check, ts terms) (*ast.Term, error) {
	keys := &inputKeys
	if ts == nil {
		keys = newInputKeys()
	}
	own := 2
	if r := c.Resource; r != nil {
		own++
		if r.ID != "" {
			own++
		}
	}
	b := termBlock{block: make([]ast.Term, 0, own)}
	items := make([][2]*ast.Term, 0, 6)
	items = append(items,
		[2]*ast.Term{keys.subject, b.term(ast.String(c.Subject))},
		[2]*ast.Term{keys.system, ts.segment(c.System)},
		[2]*ast.Term{keys.action, ts.segment(c.Action)})
	if r := c.Resource; r != nil {
		res := make([][2]*ast.Term, 1, 2) // an id appended in place
		res[0] = [2]*ast.Term{keys.typ, ts.segment(r.Type)}
		if r.ID != "" {
			res = append(res, [2]*ast.Term{keys.id, b.term(ast.String(r.ID))})
		}
		items = append(items, [2]*ast.Term{keys.resource, b.term(ast.NewObject(res...))})
	}
	if c.Context != nil {
		v, err := jsonTerm(c.Context, ts)
		if err != nil {
			return nil, err
		}
		items = append(items, [2]*ast.Term{keys.context, v})
	}
	if len(c.Groups) > 0 {
		gs := make([]*ast.Term, len(c.Groups))
		for i, g := range c.Groups {
			gs[i] = ast.StringTerm(g)
		}
		items = append(items, [2]*ast.Term{keys.groups, ast.ArrayTerm(gs...)})
	}
	return b.term(ast.NewObject(items...)), nil
}

// jsonTerm is ast.InterfaceToValue's term of x, built directly for the
// JSON-shaped values a write's verdict input and a check's context are
// made of (maps, arrays, strings; pdp.verdictInput, a decoded body), with
// the strings ts holds shared: a third
// of a short verdict went in the general conversion's intermediate slices
// and string copies. A permatrix.Assignment in x is its Value, built from
// the struct (an import line's input holds it: its Value's maps and boxed
// strings were a tenth of the line's allocations). Any other type goes
// the general way. The terms it
// makes are one block (an import judges a line's input per line: one
// allocation instead of one a string and an object).
func jsonTerm(x any, ts terms) (*ast.Term, error) {
	b := termBlock{block: make([]ast.Term, 0, jsonTerms(x, ts))}
	return b.json(x, ts)
}

// jsonTerms is how many terms jsonTerm makes of x in its block: one for
// each map, array and string ts does not share.
func jsonTerms(x any, ts terms) int {
	switch x := x.(type) {
	case string:
		return ownTerms(x, ts)
	case map[string]any:
		n := 1
		for k, v := range x {
			n += ownTerms(k, ts) + jsonTerms(v, ts)
		}
		return n
	case []any:
		n := 1
		for _, v := range x {
			n += jsonTerms(v, ts)
		}
		return n
	case *AssignInput:
		return jsonTerms(*x, ts)
	case AssignInput:
		n := 1 + ownTerms("op", ts) + ownTerms("assign", ts) + ownTerms("assignment", ts) + jsonTerms(x.Assignment, ts)
		if x.Actor != "" {
			n += ownTerms("actor", ts) + ownTerms(x.Actor, ts)
		}
		if x.Groups != nil {
			n += ownTerms("groups", ts) + jsonTerms(x.Groups, ts)
		}
		return n
	case permatrix.Assignment:
		kind, name := assignmentGrant(x)
		n := 1 + ownTerms("id", ts) + ownTerms(x.ID, ts) + ownTerms("subject", ts) + ownTerms(x.Subject, ts) +
			ownTerms("system", ts) + ownTerms(x.System, ts) + ownTerms(kind, ts) + ownTerms(name, ts) +
			ownTerms("scope", ts)
		if ts != nil {
			return n // serviceScope, or a shared scopeTerm
		}
		n += 1 + ownTerms("type", ts) + ownTerms(x.Scope.Type, ts)
		if x.Scope.ID != "" {
			n += ownTerms("id", ts) + ownTerms(x.Scope.ID, ts)
		}
		return n
	}
	return 0
}

// assignmentGrant is the key and value of what a grants in its Value:
// "role" and the role, or "permission" and the permission.
func assignmentGrant(a permatrix.Assignment) (kind, name string) {
	if a.Role != "" {
		return "role", a.Role
	}
	return "permission", a.Permission
}

// ownTerms is 1 for a string ts does not share, else 0.
func ownTerms(s string, ts terms) int {
	if _, ok := sharedTerm(s, ts); ok {
		return 0
	}
	return 1
}

// inputTerms are the strings of every write's verdict input that no data
// holds — its keys and ops (pdp's verdictInput and its callers) —, shared
// with the vm as ts's are: "op" and "assign" were two allocations an
// import line. Never changed (the vm writes into no input).
var inputTerms = func() terms {
	ts := terms{}
	for _, s := range []string{"op", "actor", "groups", "membership", "user", "group",
		"assign", "unassign", "add_member", "remove_member", "define_role", "delete_role", "register_project", "delete_project"} {
		ts[s] = ast.StringTerm(s)
	}
	return ts
}()

// sharedTerm is the shared term of s: ts's, or with ts (a vm's input)
// inputTerms'.
func sharedTerm(s string, ts terms) (*ast.Term, bool) {
	if ts == nil {
		return nil, false
	}
	if t, ok := ts[s]; ok {
		return t, true
	}
	t, ok := inputTerms[s]
	return t, ok
}

// termBlock hands out terms from one block, sized up front (jsonTerms).
type termBlock struct{ block []ast.Term }

// term is a term of v: the block's next, or its own once the block is
// used up (never: it is sized by jsonTerms).
func (b *termBlock) term(v ast.Value) *ast.Term {
	if len(b.block) == cap(b.block) {
		return ast.NewTerm(v)
	}
	b.block = b.block[:len(b.block)+1]
	t := &b.block[len(b.block)-1]
	t.Value = v
	return t
}

// str is the shared term of s (sharedTerm), or the block's.
func (b *termBlock) str(s string, ts terms) *ast.Term {
	if t, ok := sharedTerm(s, ts); ok {
		return t
	}
	return b.term(ast.String(s))
}

// smallObject is the most pairs an object's conversion holds on the
// stack (ast.NewObject copies them).
const smallObject = 8

func (b *termBlock) json(x any, ts terms) (*ast.Term, error) {
	switch x := x.(type) {
	case string:
		return b.str(x, ts), nil
	case map[string]any:
		var pairs [smallObject][2]*ast.Term
		items := pairs[:0]
		if len(x) > smallObject {
			items = make([][2]*ast.Term, 0, len(x))
		}
		for k, v := range x {
			t, err := b.json(v, ts)
			if err != nil {
				return nil, err
			}
			items = append(items, [2]*ast.Term{b.str(k, ts), t})
		}
		return b.term(ast.NewObject(items...)), nil
	case []any:
		elems := make([]*ast.Term, len(x))
		for i, v := range x {
			t, err := b.json(v, ts)
			if err != nil {
				return nil, err
			}
			elems[i] = t
		}
		return b.term(ast.NewArray(elems...)), nil
	case permatrix.Assignment:
		return b.assignment(x, ts), nil
	case AssignInput:
		return b.assignInput(x, ts)
	case *AssignInput:
		return b.assignInput(*x, ts)
	}
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(v), nil
}

// assignment is the term of a.Value(), built from a: a write's verdict
// input holds the assignment, not its Value's maps (pdp's assign).
func (b *termBlock) assignment(a permatrix.Assignment, ts terms) *ast.Term {
	var scope *ast.Term
	switch {
	case ts != nil && a.Scope == permatrix.ServiceScope:
		scope = serviceScope
	case ts != nil:
		scope = scopeTerm(a.Scope) // shared as serviceScope is
	default:
		pairs := [2][2]*ast.Term{{b.str("type", ts), b.str(a.Scope.Type, ts)}}
		n := 1
		if a.Scope.ID != "" {
			pairs[1] = [2]*ast.Term{b.str("id", ts), b.str(a.Scope.ID, ts)}
			n = 2
		}
		scope = b.term(ast.NewObject(pairs[:n]...))
	}
	kind, name := assignmentGrant(a)
	return b.term(ast.NewObject(
		[2]*ast.Term{b.str("id", ts), b.str(a.ID, ts)},
		[2]*ast.Term{b.str("subject", ts), b.str(a.Subject, ts)},
		[2]*ast.Term{b.str("system", ts), b.str(a.System, ts)},
		[2]*ast.Term{b.str(kind, ts), b.str(name, ts)},
		[2]*ast.Term{b.str("scope", ts), scope},
	))
}

// AssignInput (or its address) is the verdict input of a write that
// stores an assignment, {"op": "assign", "assignment": Assignment.Value(),
// "actor": Actor, "groups": Groups} (no actor when "", no groups when
// nil), converted from the struct (pdp's assign): as a map, with the
// assignment boxed in it, it was three allocations an import line.
type AssignInput struct {
	Actor      string
	Assignment permatrix.Assignment
	Groups     []any
}

// assignInput is the term of in as its map's.
func (b *termBlock) assignInput(in AssignInput, ts terms) (*ast.Term, error) {
	pairs := [4][2]*ast.Term{
		{b.str("op", ts), b.str("assign", ts)},
		{b.str("assignment", ts), b.assignment(in.Assignment, ts)},
	}
	n := 2
	if in.Actor != "" {
		pairs[n] = [2]*ast.Term{b.str("actor", ts), b.str(in.Actor, ts)}
		n++
	}
	if in.Groups != nil {
		groups, err := b.json(in.Groups, ts)
		if err != nil {
			return nil, err
		}
		pairs[n] = [2]*ast.Term{b.str("groups", ts), groups}
		n++
	}
	return b.term(ast.NewObject(pairs[:n]...)), nil
}

// serviceScope is the service scope's term, {"type": "service"}: one for
// every assignment at it in a vm's input (with ts), as ts's strings are
// shared (never changed: the vm writes into no input). Its own object an
// input was five allocations of half an import's lines.
var serviceScope = ast.ObjectTerm([2]*ast.Term{ast.StringTerm("type"), ast.StringTerm(permatrix.ServiceScope.Type)})

// checkKeys are the keys of a check's input.
type checkKeys struct{ subject, system, action, resource, typ, id, context, groups *ast.Term }

// inputKeys are checkKeys made once, shared by the vm's inputs.
var inputKeys = *newInputKeys()

func newInputKeys() *checkKeys {
	return &checkKeys{ast.StringTerm("subject"), ast.StringTerm("system"), ast.StringTerm("action"), ast.StringTerm("resource"),
		ast.StringTerm("type"), ast.StringTerm("id"), ast.StringTerm("context"), ast.StringTerm("groups")}
}

// Verdict evaluates data.permatrix.admin.verdict for a write over snap (a
// write's tracked view: what the verdict reads guards the commit).
//
// The input is a map, or an assignment's AssignInput (or its address).
func (p *Policy) Verdict(ctx context.Context, snap store.Snapshot, input any) (violations, forbidden []string, err error) {
	var ts terms // shared with the vm only, as a check's (decide)
	if p.verdict.program != nil {
		ts = p.data.terms
	}
	var v *ast.Term
	if in := assignInputOf(input); in != nil && ts != nil {
		// An assignment's input filled into objects made once
		// (assignInputs), given back once the verdict is read.
		filled := p.assignInputs.get(newAssignInputs)
		defer p.assignInputs.put(filled)
		v = filled.fill(in, ts)
	} else if v, err = jsonTerm(input, ts); err != nil {
		return nil, nil, err
	}
	if prog := p.verdict.program; prog != nil {
		// The lists are read from the vm's value: its conversion to
		// JSON was as many allocations as the input's.
		defined, err := p.run(ctx, prog, snap, v, func(r ast.Value) (err error) {
			violations, forbidden, err = verdictLists(r)
			return err
		})
		if !errors.Is(err, vm.ErrConflict) {
			if err == nil && !defined {
				err = errVerdictUndefined
			}
			if err != nil {
				return nil, nil, err
			}
			return violations, forbidden, nil
		}
	}
	in := v.Value
	if p.verdict.program != nil {
		// After a conflict: the input built with the vm's shared terms
		// is copied for topdown, as a decision's is (topdownInput).
		in = topdownInput(in)
	}
	r, defined, err := p.evalTopdown(ctx, p.verdict, snap, in)
	if err != nil {
		return nil, nil, err
	}
	if !defined {
		return nil, nil, errVerdictUndefined
	}
	return verdictOfJSON(r)
}

// verdictOfJSON is a verdict's two lists read from its JSON. A refusal of
// another shape (an object, a number, no list) is a fault, never read as
// no refusal: the write it meant to refuse would be stored.
func verdictOfJSON(r any) (violations, forbidden []string, err error) {
	m, ok := r.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("data.permatrix.admin.verdict is %s, not an object", jsonKind(r))
	}
	if violations, err = verdictList(m, "violations"); err != nil {
		return nil, nil, err
	}
	if forbidden, err = verdictList(m, "forbidden"); err != nil {
		return nil, nil, err
	}
	return violations, forbidden, nil
}

// verdictList is the verdict's list under key, every entry a string.
func verdictList(m map[string]any, key string) ([]string, error) {
	list, ok := m[key].([]any)
	if !ok {
		return nil, fmt.Errorf("data.permatrix.admin.verdict.%s is %s, not a list of strings", key, jsonKind(m[key]))
	}
	out := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("data.permatrix.admin.verdict.%s[%d] is %s, not a string", key, i, jsonKind(x))
		}
		out[i] = s
	}
	return out, nil
}

// jsonKind names the JSON kind of a value decoded from a Rego result.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null or absent"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

var errVerdictUndefined = errors.New("data.permatrix.admin.verdict is undefined")

// Keys of the verdict's value.
var violationsKey, forbiddenKey = ast.StringTerm("violations"), ast.StringTerm("forbidden")

// verdictLists are the verdict's violations and forbidden as the JSON of
// its value gives them (stringList of its "violations" and "forbidden",
// a set's members sorted), read from the value: for an object of string
// keys, which the vm's ground values are; any other value goes by JSON
// (and fails as its conversion does).
func verdictLists(v ast.Value) (violations, forbidden []string, err error) {
	obj, ok := v.(ast.Object)
	if !ok || !obj.IsGround() || obj.Iter(nonStringKey) != nil {
		r, err := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		if err != nil {
			return nil, nil, err
		}
		return verdictOfJSON(r)
	}
	if violations, err = termStrings(obj.Get(violationsKey), "violations"); err != nil {
		return nil, nil, err
	}
	if forbidden, err = termStrings(obj.Get(forbiddenKey), "forbidden"); err != nil {
		return nil, nil, err
	}
	return violations, forbidden, nil
}

var errNonStringKey = errors.New("a key that is not a string")

func nonStringKey(k, _ *ast.Term) error {
	if _, ok := k.Value.(ast.String); !ok {
		return errNonStringKey
	}
	return nil
}

// termStrings is verdictList of t's JSON: the strings of an array in
// order, of a set sorted (listOf, as JSON lists them); anything else, or
// an entry that is not a string, is an error, as verdictList's.
func termStrings(t *ast.Term, key string) ([]string, error) {
	v, n := listLen(t)
	if t == nil || n < 0 {
		var kind any // nil: absent
		if v != nil {
			kind, _ = ast.JSON(v)
		}
		return nil, fmt.Errorf("data.permatrix.admin.verdict.%s is %s, not a list of strings", key, jsonKind(kind))
	}
	out := make([]string, 0, n)
	err := listOf(t, func(e *ast.Term) error {
		s, ok := e.Value.(ast.String)
		if !ok {
			x, _ := ast.JSON(e.Value)
			return fmt.Errorf("data.permatrix.admin.verdict.%s[%d] is %s, not a string", key, len(out), jsonKind(x))
		}
		out = append(out, string(s))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Query evaluates data.<path> for the Data API over snap, as stock OPA's
// server does: path segments that are integers index arrays, builtin errors
// make an expression undefined rather than failing the query (OPA's
// default), and input may be any JSON value (nil: no input). defined is
// false when the document is undefined.
//
// Only paths the rule tree defines — a rule or a package of rules — get a
// prepared query kept in the cache. A path inside a rule's value is
// prepared for this one evaluation; a path no rule touches is base data,
// read from the data without preparing anything. So clients choosing paths
// cannot grow the cache beyond the bundle's own rules.
func (p *Policy) Query(ctx context.Context, snap store.Snapshot, path []string, input any) (result any, defined bool, err error) {
	ref := DataRef(path)
	txn := p.data.Begin(snap)
	opts := []rego.EvalOption{rego.EvalTransaction(txn)}
	if input != nil {
		v, err := ast.InterfaceToValue(input)
		if err != nil {
			return nil, false, err
		}
		opts = append(opts, rego.EvalParsedInput(v))
	}
	var pq *rego.PreparedEvalQuery
	switch p.ruleDepth(ref) {
	case byRule:
		if pq, err = p.cachedQuery(ctx, ref); err != nil {
			return nil, false, err
		}
	case inRule:
		q, err := p.prepareRef(ctx, ref)
		if err != nil {
			return nil, false, err
		}
		pq = &q
	default:
		return p.readBase(ctx, txn, path)
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

// DataRef is data.<path>, each segment a key, or an array index where it
// is an integer (as OPA's server reads Data API paths: util.Atoi64, which
// takes trailing decimal zeroes, "1.0", as the integer too).
func DataRef(path []string) ast.Ref {
	ref := make(ast.Ref, 1, len(path)+1)
	ref[0] = ast.DefaultRootDocument
	for _, seg := range path {
		if i, ok := util.Atoi64(seg); ok {
			ref = append(ref, ast.IntNumberTerm(int(i)))
		} else {
			ref = append(ref, ast.StringTerm(seg))
		}
	}
	return ref
}

// Where a path lies relative to the rules.
const (
	noRule = iota // no rule at, above or below it: base data only
	byRule        // a rule, or a package holding rules, is at the path
	inRule        // the path is inside the value of a rule
)

func (p *Policy) ruleDepth(ref ast.Ref) int {
	node := p.compiler.RuleTree
	for _, t := range ref {
		next := node.Child(t.Value)
		if next == nil {
			if len(node.Values) > 0 {
				return inRule
			}
			return noRule
		}
		node = next
	}
	return byRule
}

func (p *Policy) cachedQuery(ctx context.Context, ref ast.Ref) (*rego.PreparedEvalQuery, error) {
	key := ref.String()
	if pq, ok := p.queries.Get(key); ok {
		return pq, nil
	}
	pq, err := p.prepareRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	p.queries.Add(key, &pq)
	return &pq, nil
}

// CachedQueries is how many Data API queries are cached.
func (p *Policy) CachedQueries() int { return p.queries.Len() }

// prepareRef prepares a Data API query for ref, with OPA's default of
// non-strict builtin errors, so the Data API answers as stock opa does.
func (p *Policy) prepareRef(ctx context.Context, ref ast.Ref) (rego.PreparedEvalQuery, error) {
	return p.prepareQuery(ctx, rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))), false)
}

// readBase reads base data at path (no rule is involved there).
func (p *Policy) readBase(ctx context.Context, txn storage.Transaction, path []string) (any, bool, error) {
	v, err := p.data.Read(ctx, txn, storage.Path(path))
	if storage.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	x, err := ast.JSON(v.(ast.Value))
	if err != nil {
		return nil, false, err
	}
	return x, true, nil
}

// IsEntrypoint reports whether data.<path> is an entrypoint's document or
// lies inside one: what anyone may read through the Data API.
func (p *Policy) IsEntrypoint(path []string) bool {
	ref := DataRef(path)
	for _, e := range p.entrypoints {
		if ref.HasPrefix(e) {
			return true
		}
	}
	return false
}

// DecidesAt reports whether evaluating data.<path> evaluates an
// entrypoint with the input as its own: an entrypoint's document, one
// inside it, or one holding it (data.permatrix, data itself), whose
// answer holds the entrypoint's.
func (p *Policy) DecidesAt(path []string) bool {
	ref := DataRef(path)
	for _, e := range p.entrypoints {
		if ref.HasPrefix(e) || e.HasPrefix(ref) {
			return true
		}
	}
	return false
}

// Entrypoints lists the entrypoint rules, e.g. "data.permatrix.decision".
func (p *Policy) Entrypoints() []string {
	out := make([]string, len(p.entrypoints))
	for i, e := range p.entrypoints {
		out[i] = e.String()
	}
	return out
}

// entrypoints reads the `entrypoint: true` annotations of the compiled
// modules: the rules (or packages) they annotate.
func entrypoints(c *ast.Compiler) []ast.Ref {
	var out []ast.Ref
	for _, a := range c.GetAnnotationSet().Flatten() {
		if a.Annotations != nil && a.Annotations.Entrypoint {
			out = append(out, a.Path.GroundPrefix())
		}
	}
	return out
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

// decisionOf is parseDecision of v as JSON (ast.JSONWithOpt, sets
// sorted), read from the AST: the decision's own object, its lists and
// its boxed fields are not built only to be read once (the conversion was
// a tenth of a decision's allocations). Only what the decision keeps is
// converted: the elements of reasons, missing and errors. A value of
// another shape (another key, a field of another type) is converted whole
// and parsed, as before.
func decisionOf(v ast.Value, strs boxedStrings) (*permatrix.Decision, error) {
	f, ok := decisionFieldsOf(v)
	if !ok {
		x, err := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		if err != nil {
			return nil, err
		}
		return parseDecision(x)
	}
	d := &permatrix.Decision{Allow: bool(f.allow.Value.(ast.Boolean))}
	r := newJSONReader(strs)
	defer r.release()
	var err error
	if d.Reasons, err = objectsOf(f.reasons, r); err != nil {
		return nil, err
	}
	if d.Missing, err = objectsOf(f.missing, r); err != nil {
		return nil, err
	}
	if d.Errors, err = stringsOf(f.errors); err != nil {
		return nil, err
	}
	if f.revision != nil {
		r, err := json.Number(f.revision.Value.(ast.Number)).Int64()
		if err != nil {
			return nil, err
		}
		d.Revision = uint64(r)
	}
	if d.Allow && len(d.Errors) > 0 {
		return nil, errors.New("decision allows an invalid input")
	}
	return d, nil
}

// decisionKeys are the keys of a decision object decisionOf reads.
var decisionKeys = struct{ allow, revision, reasons, missing, errors *ast.Term }{
	ast.StringTerm("allow"), ast.StringTerm("revision"), ast.StringTerm("reasons"), ast.StringTerm("missing"), ast.StringTerm("errors"),
}

// decisionFields are a decision object's values by key (nil: no such key).
type decisionFields struct{ allow, revision, reasons, missing, errors *ast.Term }

// decisionFieldsOf is v's fields when v is a decision decisionOf reads
// from the AST: an object of decisionKeys only, allow (which it must have)
// a boolean, revision (if any) a number, and reasons, missing and errors
// (if any) arrays or sets. Each key is looked up once (a lookup hashes its
// key: the shape's check and the reads looked each up twice).
func decisionFieldsOf(v ast.Value) (decisionFields, bool) {
	obj, ok := v.(ast.Object)
	if !ok || obj.Len() > 5 {
		return decisionFields{}, false
	}
	f := decisionFields{
		allow:    obj.Get(decisionKeys.allow),
		revision: obj.Get(decisionKeys.revision),
		reasons:  obj.Get(decisionKeys.reasons),
		missing:  obj.Get(decisionKeys.missing),
		errors:   obj.Get(decisionKeys.errors),
	}
	if f.allow == nil {
		return decisionFields{}, false
	}
	if _, ok := f.allow.Value.(ast.Boolean); !ok {
		return decisionFields{}, false
	}
	found := 1
	if f.revision != nil {
		if _, ok := f.revision.Value.(ast.Number); !ok {
			return decisionFields{}, false
		}
		found++
	}
	for _, t := range [...]*ast.Term{f.reasons, f.missing, f.errors} {
		if t != nil {
			if _, n := listLen(t); n < 0 {
				return decisionFields{}, false
			}
			found++
		}
	}
	// No other key (looked up, not iterated: a callback escapes).
	return f, found == obj.Len()
}

// listLen is how many elements t has: -1 when it is neither an array nor
// a set, 0 when nil.
func listLen(t *ast.Term) (ast.Value, int) {
	if t == nil {
		return nil, 0
	}
	switch l := t.Value.(type) {
	case *ast.Array:
		return l, l.Len()
	case ast.Set:
		return l, l.Len()
	}
	return t.Value, -1
}

// listOf calls f with each element of t (an array or a set; nil: none),
// a set's in sorted order, as ast.JSONWithOpt lists them.
func listOf(t *ast.Term, f func(*ast.Term) error) error {
	if t == nil {
		return nil
	}
	switch l := t.Value.(type) {
	case *ast.Array:
		for i := range l.Len() {
			if err := f(l.Elem(i)); err != nil {
				return err
			}
		}
	case ast.Set:
		for _, e := range l.Slice() {
			if err := f(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// objectsOf is objects of t as JSON: its elements that are objects, as
// maps.
func objectsOf(t *ast.Term, r *jsonReader) ([]map[string]any, error) {
	_, n := listLen(t)
	out := make([]map[string]any, 0, max(n, 0))
	err := listOf(t, func(e *ast.Term) error {
		x, err := r.value(e.Value)
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
		return err
	})
	return out, err
}

// stringsOf is stringList of t as JSON: its elements that are strings.
func stringsOf(t *ast.Term) ([]string, error) {
	_, n := listLen(t)
	out := make([]string, 0, max(n, 0))
	err := listOf(t, func(e *ast.Term) error {
		if s, ok := e.Value.(ast.String); ok {
			out = append(out, string(s))
			return nil
		}
		_, err := ast.JSONWithOpt(e.Value, ast.JSONOpt{SortSets: true})
		return err
	})
	return out, err
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

// decisionsVary reports whether a rule the decisions refs depend on (the
// compiler's dependency graph, which also follows references computed at
// run time, and the rules' else branches) calls a builtin whose value is not a
// function of its arguments (vm.Deterministic): a time-bound grant, a
// random sample, an http.send. Such a decision is not a function of the
// check, the bundle and the store units it read, and a cache that kept it
// would answer it after the clock or the network moved on.
func decisionsVary(c *ast.Compiler, refs []ast.Ref) bool {
	return dependsOn(c, refs, callsVarying)
}

// verdictVaries is decisionsVary for the write rules' verdict, which a
// write planned again takes from the plan before it only if it is a
// function of its input, the bundle and the store units it read — so a
// read of data.store.revision, which no unit stands for (the decision
// cache does not count it: the stock decision copies it into its answer),
// varies too, as does a read of data.store or data whose next key is not
// a constant (it may be "revision").
func verdictVaries(c *ast.Compiler) bool {
	return dependsOn(c, []ast.Ref{ast.MustParseRef(VerdictQuery)}, func(t *ast.Term) bool {
		return callsVarying(t) || readsStoreRevision(t)
	})
}

// callsVarying says whether t calls (or names in a with) a builtin whose
// value is not a function of its arguments.
func callsVarying(t *ast.Term) bool {
	var op ast.Ref
	switch v := t.Value.(type) {
	case ast.Call:
		op, _ = v[0].Value.(ast.Ref)
	case ast.Ref:
		op = v // an expression's operator, or a builtin named in a with
	}
	if op == nil {
		return false
	}
	name := op.String()
	return ast.BuiltinMap[name] != nil && !vm.Deterministic(name)
}

// readsStoreRevision says whether t is a reference that may read
// data.store.revision.
func readsStoreRevision(t *ast.Term) bool {
	ref, ok := t.Value.(ast.Ref)
	if !ok || !ref.HasPrefix(ast.DefaultRootRef) {
		return false
	}
	for i, want := range []string{"store", "revision"} {
		if len(ref) <= i+1 {
			return true // data, or data.store, whole
		}
		key, ok := ref[i+1].Value.(ast.String)
		if !ok {
			return true // a key computed at run time
		}
		if string(key) != want {
			return false
		}
	}
	return true
}

// dependsOn reports whether a term of a rule the refs depend on (the
// compiler's dependency graph, which also follows references computed at
// run time, and the rules' else branches) is one reads says.
func dependsOn(c *ast.Compiler, refs []ast.Ref, reads func(*ast.Term) bool) bool {
	seen := map[*ast.Rule]bool{}
	var todo []*ast.Rule
	for _, ref := range refs {
		todo = append(todo, c.GetRules(ref)...)
	}
	for len(todo) > 0 {
		r := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		found := false
		ast.WalkTerms(r, func(t *ast.Term) bool {
			if !found && reads(t) {
				found = true
			}
			return found
		})
		if found {
			return true
		}
		// An else branch is a node of the graph of its own: what it
		// depends on is its edges, not its head's (a rule depended on
		// brings its else branches along, a rule asked for does not).
		if r.Else != nil {
			todo = append(todo, r.Else)
		}
		for dep := range c.Graph.Dependencies(r) {
			if rule, ok := dep.(*ast.Rule); ok {
				todo = append(todo, rule)
			}
		}
	}
	return false
}

// jsonOf is ast.JSONWithOpt(v, SortSets) without boxing an object's keys
// (ast boxes each key as a value and unboxes it as the map's key: half the
// allocations of a decision's items). Objects of string keys, arrays,
// strings, numbers, booleans and null are converted here; any other
// value (a set, an object with a key of another type) is ast's. A string
// strs holds is its boxed value, shared.
func jsonOf(v ast.Value, strs boxedStrings) (any, error) {
	r := newJSONReader(strs)
	defer r.release()
	return r.value(v)
}

// jsonReader is jsonOf's conversion. An object's fields are read by the
// reader's own callback, made once with it (ast.Object's Iter takes a
// callback through an interface, so a closure passed to it escapes: one
// was an allocation of every object a decision's items hold); readers are
// pooled.
type jsonReader struct {
	strs  boxedStrings
	out   map[string]any // the object whose fields field is reading
	field func(k, v *ast.Term) error
}

var jsonReaders = sync.Pool{New: func() any {
	r := &jsonReader{}
	r.field = r.put
	return r
}}

// newJSONReader is a pooled reader sharing strs' boxed strings; release
// gives it back.
func newJSONReader(strs boxedStrings) *jsonReader {
	r := jsonReaders.Get().(*jsonReader)
	r.strs = strs
	return r
}

func (r *jsonReader) release() {
	r.strs, r.out = nil, nil
	jsonReaders.Put(r)
}

// value is jsonOf of v.
func (r *jsonReader) value(v ast.Value) (any, error) {
	switch v := v.(type) {
	case ast.Null:
		return nil, nil
	case ast.Boolean:
		return bool(v), nil
	case ast.Number:
		return json.Number(v), nil
	case ast.String:
		return r.strs.str(string(v)), nil
	case *ast.Array:
		out := make([]any, v.Len())
		for i := range out {
			x, err := r.value(v.Elem(i).Value)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case ast.Object:
		if !stringKeys(v) {
			break
		}
		out, outer := make(map[string]any, v.Len()), r.out
		r.out = out
		err := v.Iter(r.field)
		r.out = outer
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
}

// put is an object's field converted into r.out (its value's own
// objects, converted first, restore r.out as they end).
func (r *jsonReader) put(k, e *ast.Term) error {
	x, err := r.value(e.Value)
	r.out[string(k.Value.(ast.String))] = x
	return err
}

// stringKeys says whether every key of obj is a string.
func stringKeys(obj ast.Object) bool {
	return !obj.Until(func(k, _ *ast.Term) bool {
		_, ok := k.Value.(ast.String)
		return !ok
	})
}
