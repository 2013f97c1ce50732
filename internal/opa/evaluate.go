package opa

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/vm"
)

// Evaluator names what evaluates a policy's decisions and write verdicts.
type Evaluator string

const (
	// VM runs the queries' plans (internal/vm), falling back to topdown for a
	// query whose plan it cannot run. The default.
	VM Evaluator = "vm"
	// Topdown is OPA's own evaluator, for every query.
	Topdown Evaluator = "topdown"
)

// ParseEvaluator is the evaluator a flag names ("" is the default).
func ParseEvaluator(s string) (Evaluator, error) {
	switch Evaluator(s) {
	case "", VM:
		return VM, nil
	case Topdown:
		return Topdown, nil
	}
	return "", fmt.Errorf("unknown evaluator %q: vm or topdown", s)
}

// Option is a Compile option.
type Option func(*options)

type options struct {
	evaluator Evaluator
	print     print.Hook
}

// WithEvaluator has the policy's decisions and verdicts evaluated by ev.
func WithEvaluator(ev Evaluator) Option { return func(o *options) { o.evaluator = ev } }

// WithPrintHook has print() in the bundle's Rego write to h, from every
// evaluation (the vm's and topdown's: decisions, verdicts, the Data,
// Query and Compile APIs) but the probes of an activation. Without it,
// print statements are compiled out (as `opa eval` without
// --enable-print). A policy that does not call print is compiled and
// evaluated as it is without a hook.
func WithPrintHook(h print.Hook) Option { return func(o *options) { o.print = h } }

// probing marks the context of an activation's probe decisions: print()
// is silent there (every check of the catalog is decided at each
// activation; a print in a decision would fill the log at every reload).
type probing struct{}

// Quiet is ctx with print() silent in the evaluations under it: what a
// probe decides (a matrix's cells) is not the traffic print is for.
func Quiet(ctx context.Context) context.Context { return context.WithValue(ctx, probing{}, true) }

// quietHook is a print hook that says nothing while probing.
type quietHook struct{ h print.Hook }

func (q quietHook) Print(ctx print.Context, msg string) error {
	if ctx.Context != nil && ctx.Context.Value(probing{}) != nil {
		return nil
	}
	return q.h.Print(ctx, msg)
}

// query is one of the queries the server asks, prepared for the vm or,
// when the evaluator is topdown, the query's plan uses what the vm does
// not run or OPA's planner cannot plan it, for topdown. (Explanations,
// traces and the Data API prepare their own topdown queries.)
type query struct {
	program *vm.Program            // nil: topdown evaluates
	topdown rego.PreparedEvalQuery // always set: with a program, for its conflicts (eval)
}

// prepare prepares the query ref for the policy's evaluator.
func (p *Policy) prepare(ctx context.Context, ref ast.Ref) (query, error) {
	body := ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))
	var q query
	if p.evaluator != Topdown {
		var err error
		q.program, err = vm.Plan(ctx, body,
			rego.Compiler(p.compiler),
			rego.Store(p.data),
			rego.Transaction(p.data.Begin(store.Empty(0))),
			rego.StrictBuiltinErrors(true))
		switch {
		case err == nil:
			// The bundle's data is fixed for the life of the policy
			// (dataStore): a rule of it alone, and not of input or
			// data.store, is computed once for all evaluations.
			q.program = q.program.Constants(permatrix.StoreRoot)
			if p.print != nil {
				q.program = q.program.WithPrintHook(p.print)
			}
		case !errors.Is(err, vm.ErrUnsupported):
			return query{}, err
		default:
			p.topdownWhy = append(p.topdownWhy, fmt.Sprintf("%s: %v", ref, err))
		}
	}
	var err error
	q.topdown, err = p.prepareQuery(ctx, rego.ParsedQuery(body), true)
	return q, err
}

// plan records q under ref for the Data API when the vm runs it, with
// builtin errors as undefined (the Data API's default, as OPA's).
func (p *Policy) plan(ref ast.Ref, q query) {
	if q.program != nil {
		p.planned[ref.String()] = q.program.Lenient()
	}
}

// eval evaluates q with input over snap: its value as JSON (numbers as
// json.Number), and whether it is defined. A query with more than one
// result is an error.
func (p *Policy) eval(ctx context.Context, q query, snap store.Snapshot, input ast.Value) (any, bool, error) {
	if q.program != nil {
		r, defined, err := p.runJSON(ctx, q.program, snap, input)
		if !errors.Is(err, vm.ErrConflict) {
			return r, defined, err
		}
		input = topdownInput(input)
	}
	return p.evalTopdown(ctx, q, snap, input)
}

// runJSON is eval by the vm.
func (p *Policy) runJSON(ctx context.Context, prog *vm.Program, snap store.Snapshot, input ast.Value) (any, bool, error) {
	var r any
	defined, err := p.run(ctx, prog, snap, input, func(v ast.Value) (err error) {
		r, err = ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		return err
	})
	return r, defined, err
}

// evalDecision is eval of a decision query, its value parsed
// (parseDecision): the vm's read from its AST (decisionOf), not converted
// to JSON first.
func (p *Policy) evalDecision(ctx context.Context, q query, snap store.Snapshot, input ast.Value) (*permatrix.Decision, bool, error) {
	if q.program != nil {
		var d *permatrix.Decision
		defined, err := p.run(ctx, q.program, snap, input, func(v ast.Value) (err error) {
			d, err = decisionOf(v)
			return err
		})
		if !errors.Is(err, vm.ErrConflict) {
			return d, defined, err
		}
		input = topdownInput(input)
	}
	r, defined, err := p.evalTopdown(ctx, q, snap, input)
	if err != nil || !defined {
		return nil, defined, err
	}
	d, err := parseDecision(r)
	return d, err == nil, err
}

// topdownInput is the input of a vm's evaluation for topdown. The plan
// builds a partial object whole, and finds a conflict at any of its keys;
// topdown, asked for one key, evaluates only its rules. Topdown's answer
// is the one (it fails too when the conflict is where it reads). Its
// input is its own (leaf.go: terms).
func topdownInput(input ast.Value) ast.Value {
	if input == nil {
		return nil
	}
	return ast.NewTerm(input).Copy().Value
}

// evalTopdown is eval by topdown.
func (p *Policy) evalTopdown(ctx context.Context, q query, snap store.Snapshot, input ast.Value) (any, bool, error) {
	rs, err := q.topdown.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTransaction(p.data.Begin(snap)))
	if err != nil {
		return nil, false, err
	}
	switch {
	case len(rs) == 0:
		return nil, false, nil
	case len(rs) == 1 && len(rs[0].Expressions) == 1:
		return rs[0].Expressions[0].Value, true, nil
	}
	return nil, false, fmt.Errorf("%d results", len(rs))
}

// run evaluates prog: read is given the value, when there is one, before
// the evaluation's store nodes go back to their pool (what read keeps must
// not share them).
func (p *Policy) run(ctx context.Context, prog *vm.Program, snap store.Snapshot, input ast.Value, read func(ast.Value) error) (bool, error) {
	nodes, _ := p.data.nodes.Get().(*storeNodes)
	if nodes == nil {
		nodes = &storeNodes{terms: p.data.terms}
	}
	defer func() { nodes.reset(); p.data.nodes.Put(nodes) }()
	ts, err := prog.Eval(ctx, input, dataDoc{bundle: p.data.bundle, snap: snap, nodes: nodes})
	if err != nil {
		return false, err
	}
	switch len(ts) {
	case 0:
		return false, nil
	case 1:
		err := read(ts[0].Value)
		return err == nil, err
	}
	return false, fmt.Errorf("%d results", len(ts))
}

// dataDoc is data as the vm reads it: the bundle's data in memory, and
// data.store from a snapshot, one lookup at a time (the layout of
// internal/store: a grant is one key, read with one Get).
type dataDoc struct {
	bundle ast.Object
	snap   store.Snapshot
	nodes  *storeNodes
}

func (d dataDoc) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	if s, ok := key.Value.(ast.String); ok && string(s) == permatrix.StoreRoot {
		return nil, d.nodes.node(storeDoc{snap: d.snap, nodes: d.nodes}), nil
	}
	return d.bundle.Get(key), nil, nil
}

func (d dataDoc) Value() (*ast.Term, error) {
	doc, err := (&storeDoc{snap: d.snap}).Value()
	if err != nil {
		return nil, err
	}
	all := d.bundle.Copy()
	all.Insert(ast.StringTerm(permatrix.StoreRoot), doc)
	return ast.NewTerm(all), nil
}

// storeDoc is data.store at one place of its layout, for the vm: a step
// below its parent, so a lookup of six keys takes six small nodes (from
// the evaluation's storeNodes) and builds one key, at the leaf.
type storeDoc struct {
	snap   store.Snapshot
	nodes  *storeNodes
	parent *storeDoc
	seg    string
	node   store.DocNode
}

// storeNodes is what one evaluation keeps of data.store: its storeDoc
// nodes, handed out from chunks (a decision walks a hundred of them, and
// one allocation each was a sixth of its allocations), and the units it
// read whole (storeDoc.unit). A nil *storeNodes allocates each node alone
// and keeps no unit.
type storeNodes struct {
	// first is the first chunk, kept when the nodes are reset for the
	// next evaluation (a Policy pools them); taken counts the nodes handed
	// out, from first first.
	first []storeDoc
	taken int
	free  []storeDoc
	units map[string]unitRead // by the unit's key; a leaf read is kept as a unit of one
	terms terms               // shared string terms (leaf.go)
	key   []byte              // where a lookup's key is built (storeDoc.scratchKey)
	build subtreeBuilder      // what reads a unit whole (storeDoc.unit)
}

// firstNodes is the size of the first chunk of nodes, kept between
// evaluations; nodesChunk, of the others, made for one evaluation.
const (
	firstNodes = 128
	nodesChunk = 32
)

// keptUnits is the most units a reset keeps the map of: a map grown by an
// evaluation that read many is let go.
const keptUnits = 64

// reset makes a for another evaluation: it holds nothing of the last one
// (the nodes handed out point to its snapshot, the units to its values),
// only the memory to hand out again.
func (a *storeNodes) reset() {
	clear(a.first[:min(a.taken, len(a.first))])
	a.taken, a.free = 0, a.first
	if len(a.units) > keptUnits {
		a.units = nil
	}
	clear(a.units)
	a.key = a.key[:0]
	a.build.reset()
}

// unitRead is a unit read whole: its value (nil when it is empty), or,
// when it holds more than unitLeaves leaves, nothing (not small).
type unitRead struct {
	t     *ast.Term
	small bool
}

// unitLeaves is the most leaves a unit read whole may hold. A policy's
// lookups in one unit (a principal's grants in a system: its roles, each
// permission at the service and at the scope asked) are a dozen leaf reads
// and subtree scans, each a seek in a tree of a million keys; one scan of
// the unit answers them all when the unit is small, as almost all are. A
// larger one (a group granted a permission on thousands of projects) is
// read a leaf at a time, as before: a decision reads no more than the
// leaves it looks up, plus unitLeaves.
const unitLeaves = 32

func (a *storeNodes) node(d storeDoc) *storeDoc {
	if a == nil {
		// A copy, not &d: taking d's address would move every call's d to
		// the heap, the chunks' nodes too.
		n := new(storeDoc)
		*n = d
		return n
	}
	if len(a.free) == 0 {
		if a.first == nil {
			a.first = make([]storeDoc, firstNodes)
			a.free = a.first
		} else {
			a.free = make([]storeDoc, nodesChunk)
		}
	}
	n := &a.free[0]
	a.free = a.free[1:]
	a.taken++
	*n = d
	return n
}

func (d *storeDoc) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	s, ok := key.Value.(ast.String)
	if !ok {
		return nil, nil, nil
	}
	if d.node.Root() && string(s) == revisionKey {
		return ast.UIntNumberTerm(d.snap.Revision()), nil, nil
	}
	if d.node.Unit() && !d.node.Leaf() {
		u, err := d.unit()
		if err != nil {
			return nil, nil, err
		}
		if u.small {
			if u.t == nil {
				return nil, nil, nil
			}
			return u.t.Get(key), nil, nil
		}
	}
	node, ok := d.node.Child(string(s))
	if !ok {
		return nil, nil, nil
	}
	c := d.nodes.node(storeDoc{snap: d.snap, nodes: d.nodes, parent: d, seg: string(s), node: node})
	if !node.Leaf() {
		return nil, c, nil
	}
	k := c.scratchKey()
	if d.nodes != nil {
		// A leaf read again in one evaluation (a role's permissions, a
		// project: each use of a function reads them anew) is parsed once.
		if u, ok := d.nodes.units[string(k)]; ok {
			return u.t, nil, nil
		}
	}
	raw, err := d.snap.Get(k)
	if err != nil {
		return nil, nil, err
	}
	var t *ast.Term
	if raw != nil {
		v, err := parseLeafWith(raw, d.terms())
		if err != nil {
			return nil, nil, fmt.Errorf("data.store%q: %w", c.path(nil), err)
		}
		t = ast.NewTerm(v)
	}
	if d.nodes != nil {
		if d.nodes.units == nil {
			d.nodes.units = map[string]unitRead{}
		}
		d.nodes.units[string(k)] = unitRead{t: t, small: true} // k: nothing used the buffer since
	}
	return t, nil, nil
}

// path is d's segments below data.store, in buf when they fit.
func (d *storeDoc) path(buf []string) []string {
	segs := buf[:0]
	if n := d.node.Depth(); n <= cap(buf) {
		segs = buf[:n]
	} else {
		segs = make([]string, n)
	}
	for n := d; n.parent != nil; n = n.parent {
		segs[n.node.Depth()-1] = n.seg
	}
	return segs
}

func (d *storeDoc) key() []byte {
	var buf [8]string
	return store.DocNodeKey(d.path(buf[:])...)
}

// scratchKey is d's key built in the evaluation's buffer, valid until the
// next scratchKey: for a read that keeps no reference to it (a Get, a map
// lookup). Without storeNodes it is key().
func (d *storeDoc) scratchKey() []byte {
	if d.nodes == nil {
		return d.key()
	}
	var buf [8]string
	d.nodes.key = store.AppendDocNodeKey(d.nodes.key[:0], d.path(buf[:])...)
	return d.nodes.key
}

// terms are the string terms d's reads share: the evaluation's (the vm's
// reads, leaf.go), none without one.
func (d *storeDoc) terms() terms {
	if d.nodes == nil {
		return nil
	}
	return d.nodes.terms
}

// unit is d, a unit, read whole once per evaluation when it is small.
// What a policy reads below d is then read from memory: the same units are
// read either way (every read below a unit records that unit), so guards
// and a cached decision's validity are unchanged.
func (d *storeDoc) unit() (unitRead, error) {
	if d.nodes == nil {
		return unitRead{}, nil
	}
	key := d.scratchKey()
	if u, ok := d.nodes.units[string(key)]; ok {
		return u, nil
	}
	// The scan's prefix in the same buffer: nothing else uses it until
	// the units' map has its own copy of the key, below.
	prefix := append(key, 0)
	d.nodes.key = prefix
	key = prefix[:len(key)]
	obj, small, err := d.nodes.build.build(d.snap, prefix, unitLeaves, d.terms())
	if err != nil {
		// Only here: errors.As's target escapes, and would be
		// allocated on every read.
		if c := (*corruptLeaf)(nil); errors.As(err, &c) {
			// Read a leaf at a time, as topdown does: the reads that
			// take the corrupt leaf fail, the others answer.
			obj, small, err = nil, false, nil
		}
	}
	if err != nil {
		return unitRead{}, err
	}
	u := unitRead{small: small}
	if small && obj != nil {
		u.t = ast.NewTerm(obj)
	}
	if d.nodes.units == nil {
		d.nodes.units = map[string]unitRead{}
	}
	d.nodes.units[string(key)] = u
	return u, nil
}

func (d *storeDoc) Value() (*ast.Term, error) {
	if d.node.Unit() && !d.node.Leaf() {
		u, err := d.unit()
		if err != nil || u.small {
			return u.t, err
		}
	}
	var v ast.Value
	var err error
	if d.node.Root() {
		v, err = storeDocument(d.snap)
	} else {
		v, err = subtreeAt(d.snap, d.key(), d.node.Depth() == 1, d.terms())
	}
	if err != nil || v == nil {
		return nil, err
	}
	return ast.NewTerm(v), nil
}

// Evaluator is what evaluates the policy's decisions and verdicts: VM
// when every one of those queries was planned for the vm, else Topdown.
func (p *Policy) Evaluator() Evaluator {
	if p.decision.program == nil || p.verdict.program == nil {
		return Topdown
	}
	for _, q := range p.systems {
		if q.program == nil {
			return Topdown
		}
	}
	return VM
}
