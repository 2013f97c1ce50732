package opa

import (
	"bytes"
	"context"
	"encoding/json"
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
			q.program = q.program.SharingStrings(p.data.terms.shared).Constants(permatrix.StoreRoot)
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
	var in *ast.Term // nil: no input
	if input != nil {
		in = ast.NewTerm(input)
	}
	var r any
	defined, err := p.run(ctx, prog, snap, in, func(v ast.Value) (err error) {
		r, err = ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
		return err
	})
	return r, defined, err
}

// evalDecision is eval of a decision query, its value parsed
// (parseDecision): the vm's read from its AST (decisionOf), not converted
// to JSON first. Its input is a check's (inputValue); none is an error: a
// decision without its question would read input.* as undefined.
func (p *Policy) evalDecision(ctx context.Context, q query, snap store.Snapshot, in *ast.Term) (*permatrix.Decision, bool, error) {
	if in == nil || in.Value == nil {
		return nil, false, errors.New("a decision needs its input (the check)")
	}
	input := in.Value
	if q.program != nil {
		var d *permatrix.Decision
		defined, err := p.run(ctx, q.program, snap, in, func(v ast.Value) (err error) {
			d, err = decisionOf(v, p.data.boxed)
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

// run evaluates prog with input (nil: none): read is given the value,
// when there is one, before the evaluation's store nodes go back to their
// pool (what read keeps must not share them).
func (p *Policy) run(ctx context.Context, prog *vm.Program, snap store.Snapshot, input *ast.Term, read func(ast.Value) error) (bool, error) {
	nodes, _ := p.data.nodes.Get().(*storeNodes)
	if nodes == nil {
		nodes = &storeNodes{terms: p.data.terms}
	}
	defer func() { nodes.reset(); p.data.nodes.Put(nodes) }()
	// The values are read in place (vm.Program.Read: Eval's copy of them
	// was an allocation of every evaluation).
	defined := false
	nodes.root = dataDoc{bundle: p.data.bundle, snap: snap, nodes: nodes}
	err := prog.Read(ctx, input, &nodes.root, func(ts []*ast.Term) error {
		switch len(ts) {
		case 0:
			return nil
		case 1:
			defined = true
			return read(ts[0].Value)
		}
		return fmt.Errorf("%d results", len(ts))
	})
	return defined && err == nil, err
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
	// below, for a place inside a unit read whole, is how many segments
	// below the unit it is (0 elsewhere); lo and hi are its leaves, the
	// entries of nodes it spans (storeNodes.entries).
	below  int
	lo, hi int
	// bound marks a place Members handed out, or one below such: the
	// value of a scan's variable, looked up as a term is (vm.Bound).
	bound bool
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
	units unitIndex // by the unit's key; a leaf read is kept as a unit of one
	// root is the evaluation's data, handed to the vm by its address (a
	// dataDoc put in a vm.Document was an allocation of every evaluation).
	root  dataDoc
	terms terms          // shared string terms (leaf.go)
	key   []byte         // where a lookup's key is built (storeDoc.scratchKey)
	build subtreeBuilder // what builds a part of a unit read whole (storeNodes.value)
	// The leaves of the units read whole, unparsed: a unit's scan copies
	// its keys and values into arena (the snapshot's bytes may be a memory
	// map, whose faults only its own reads catch) and lists them in
	// entries, in key order; a leaf is parsed when a lookup reaches it, and
	// objects are built only for a part read whole (values). Building each
	// unit whole was a ninth of a decision at 1M, most of it leaves and
	// objects no rule looked at.
	arena   []byte
	entries []unitEntry
	values  []builtPart
	collect func(k, v []byte) error // unit's scan callback (bound once)
	scanN   int                     // the leaves the scan under way met
	scanAt  int                     // the length of its prefix
}

// unitEntry is a leaf of a unit read whole: its key and value in the
// arena, below the offset in the key where the unit's prefix ends, and its
// value once parsed.
type unitEntry struct {
	key, keyEnd, rawEnd int
	below               int
	t                   *ast.Term
	parsed, valid       bool // valid: its value is known to parse
}

// builtPart is the value built of a part of a unit (its entries lo to hi,
// depth segments below it), kept for the evaluation's other reads of it.
type builtPart struct {
	lo, hi, depth int
	t             *ast.Term
}

// keptArena and keptEntries bound what a reset keeps of the leaves' buffers.
const (
	keptArena   = 64 << 10
	keptEntries = 1024
)

// firstNodes is the size of the first chunk of nodes, kept between
// evaluations; nodesChunk, of the others, made for one evaluation.
const (
	firstNodes = 128
	nodesChunk = 32
)

// unitIndex is the units an evaluation read, by key. A decision reads a
// few (its principals' grants, the subject's memberships): the first
// unitsListed are found by a walk of their keys, kept one after another in
// one buffer, the others in a map — a key copied into a string of its own
// for each unit was a fiftieth of a decision's allocations.
type unitIndex struct {
	keys  []byte // the listed units' keys, one after another
	ends  []int  // where each listed unit's key ends in keys
	reads []unitRead
	more  map[string]unitRead
}

// unitsListed is how many units a unitIndex lists before its map: a walk
// of a few short keys is cheaper than a map's hash, and bounded.
const unitsListed = 16

func (x *unitIndex) get(k []byte) (unitRead, bool) {
	start := 0
	for i, end := range x.ends {
		if bytes.Equal(x.keys[start:end], k) {
			return x.reads[i], true
		}
		start = end
	}
	u, ok := x.more[string(k)]
	return u, ok
}

// len is how many units x holds.
func (x *unitIndex) len() int { return len(x.ends) + len(x.more) }

// put lists u by k (which no get found), copying k.
func (x *unitIndex) put(k []byte, u unitRead) {
	if len(x.ends) < unitsListed {
		x.keys = append(x.keys, k...)
		x.ends = append(x.ends, len(x.keys))
		x.reads = append(x.reads, u)
		return
	}
	if x.more == nil {
		x.more = map[string]unitRead{}
	}
	x.more[string(k)] = u
}

// keptUnits is the most units a reset keeps the map of, and keptUnitKeys
// the bytes of the listed units' keys: what an evaluation that read many
// grew is let go.
const (
	keptUnits    = 64
	keptUnitKeys = 4 << 10
)

// reset empties x, keeping its memory unless an evaluation grew it past
// keptUnits or keptUnitKeys.
func (x *unitIndex) reset() {
	clear(x.reads)
	x.keys, x.ends, x.reads = emptied(x.keys, keptUnitKeys), x.ends[:0], x.reads[:0]
	if len(x.more) > keptUnits {
		x.more = nil
	}
	clear(x.more)
}

// reset makes a for another evaluation: it holds nothing of the last one
// (the nodes handed out point to its snapshot, the units to its values),
// only the memory to hand out again.
func (a *storeNodes) reset() {
	a.root = dataDoc{}
	clear(a.first[:min(a.taken, len(a.first))])
	a.taken, a.free = 0, a.first
	a.units.reset()
	a.key = a.key[:0]
	a.build.reset()
	clear(a.entries)
	clear(a.values)
	a.arena = emptied(a.arena, keptArena)
	a.entries, a.values = emptied(a.entries, keptEntries), emptied(a.values, keptEntries)
}

// emptied is s with no elements, its memory kept for the next evaluation
// unless one grew it past kept (then let go).
func emptied[S ~[]E, E any](s S, kept int) S {
	if cap(s) > kept {
		return nil
	}
	return s[:0]
}

// unitRead is a unit read whole: its leaves, entries lo to hi (none when
// it is empty), or, when it holds more than unitLeaves leaves, nothing
// (not small). A leaf read alone is kept as one: its value t.
type unitRead struct {
	t      *ast.Term
	lo, hi int
	small  bool
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
	if d.below > 0 {
		return d.partChild(d.lo, d.hi, string(s))
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
			return d.partChild(u.lo, u.hi, string(s))
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
		if u, ok := d.nodes.units.get(k); ok {
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
		d.nodes.units.put(k, unitRead{t: t, small: true}) // k: nothing used the buffer since
	}
	return t, nil, nil
}

// partChild is d[s] where d, in a unit read whole (or the unit), spans
// the entries lo to hi: the leaf's value, parsed now, or the place below,
// a node spanning the entries under s; nothing when no entry is under s.
func (d *storeDoc) partChild(lo, hi int, s string) (*ast.Term, vm.Document, error) {
	a := d.nodes
	i := lo
	for ; i < hi; i++ {
		if seg, _, ok := a.segment(i, d.below); ok && string(seg) == s {
			break
		}
	}
	if i == hi {
		return nil, nil, nil
	}
	j := i + 1
	for ; j < hi; j++ {
		if seg, _, ok := a.segment(j, d.below); !ok || string(seg) != s {
			break
		}
	}
	node, _ := d.node.Child(s)
	c := storeDoc{snap: d.snap, nodes: a, parent: d, seg: s, node: node, below: d.below + 1, lo: i, hi: j, bound: d.bound}
	if _, last, _ := a.segment(i, d.below); last && j == i+1 {
		t, err := a.leaf(i)
		if err != nil {
			// Named by its key: a damaged store's leaf below the layout's
			// leaves has no place in it (c.path would index before it).
			e := &a.entries[i]
			return nil, nil, fmt.Errorf("data.store%q: %w", store.DocPath(a.arena[e.key:e.keyEnd]), err)
		}
		return t, nil, nil
	}
	return nil, a.node(c), nil
}

// Bound says whether d is a scan's value (vm.Bound).
func (d *storeDoc) Bound() bool { return d.bound }

// Members hands a scan the members of a unit read whole, or of a part of
// one, without building it (vm.Members): a leaf member parsed, a subtree a
// node below. A scan of a unit's roles for their names parses none of
// their grants and builds no object. Every leaf below d is first checked
// to parse (leafValid), so the scan fails where reading d whole would; an
// empty unit, or a place not in a unit read whole, is read whole instead.
func (d *storeDoc) Members(f func(k, t *ast.Term, c vm.Document) error) (bool, error) {
	lo, hi, depth := d.lo, d.hi, d.below
	if depth == 0 {
		if !d.node.Unit() || d.node.Leaf() || d.nodes == nil {
			return false, nil
		}
		u, err := d.unit()
		switch {
		case err != nil:
			return true, err
		case !u.small || u.lo == u.hi:
			return false, nil
		}
		lo, hi = u.lo, u.hi
	}
	a := d.nodes
	for i := lo; i < hi; i++ {
		if _, _, ok := a.segment(i, depth); ok && !a.leafValid(i) {
			_, err := a.leaf(i)
			e := &a.entries[i]
			return true, corruptLeafAt(a.arena[e.key:e.keyEnd], err)
		}
	}
	for i := lo; i < hi; {
		seg, last, ok := a.segment(i, depth)
		if !ok {
			i++ // a leaf above a leaf (value skips it too)
			continue
		}
		j := i + 1
		for ; j < hi; j++ {
			if s, _, ok := a.segment(j, depth); !ok || !bytes.Equal(s, seg) {
				break
			}
		}
		key := a.terms.segmentBytes(seg)
		var err error
		if last && j == i+1 {
			var t *ast.Term
			if t, err = a.leaf(i); err != nil {
				e := &a.entries[i]
				return true, corruptLeafAt(a.arena[e.key:e.keyEnd], err)
			}
			err = f(key, t, nil)
		} else {
			s := string(key.Value.(ast.String))
			node, _ := d.node.Child(s)
			err = f(key, nil, a.node(storeDoc{snap: d.snap, nodes: a, parent: d, seg: s, node: node, below: depth + 1, lo: i, hi: j, bound: true}))
		}
		if err != nil {
			return true, err
		}
		i = j
	}
	return true, nil
}

// leafValid says whether entry i's value parses (parseLeafWith), without
// parsing it when json.Valid says so. The parser refuses what json.Valid
// refuses (bytes after the value too: leafValue); what json.Valid refuses
// is still parsed, for the parser's word: a scan must fail where reading
// the leaf whole would, and only there.
func (a *storeNodes) leafValid(i int) bool {
	e := &a.entries[i]
	if !e.parsed && !e.valid {
		raw := a.arena[e.keyEnd:e.rawEnd]
		if e.valid = json.Valid(raw); !e.valid {
			_, err := a.leaf(i)
			return err == nil
		}
	}
	return e.parsed || e.valid
}

// segment is the depth-th segment of entry i's key below its unit, and
// whether it is the key's last; not ok when the key has fewer.
func (a *storeNodes) segment(i, depth int) (seg []byte, last, ok bool) {
	e := &a.entries[i]
	rest := a.arena[e.key+e.below : e.keyEnd]
	for ; depth > 0; depth-- {
		n := bytes.IndexByte(rest, 0)
		if n < 0 {
			return nil, false, false
		}
		rest = rest[n+1:]
	}
	if n := bytes.IndexByte(rest, 0); n >= 0 {
		return rest[:n], false, true
	}
	return rest, true, true
}

// leaf is entry i's value, parsed once.
func (a *storeNodes) leaf(i int) (*ast.Term, error) {
	e := &a.entries[i]
	if !e.parsed {
		v, err := parseLeafWith(a.arena[e.keyEnd:e.rawEnd], a.terms)
		if err != nil {
			return nil, err
		}
		e.t, e.parsed = ast.NewTerm(v), true
	}
	return e.t, nil
}

// value is the object of entries lo to hi, depth segments below their
// unit (not empty), built once per evaluation: the unit's or a part's
// read whole (an iteration, a comparison). A leaf that does not parse
// fails it as the scan building it from the store would (corruptLeaf).
func (a *storeNodes) value(lo, hi, depth int) (*ast.Term, error) {
	for _, p := range a.values {
		if p.lo == lo && p.hi == hi && p.depth == depth {
			return p.t, nil
		}
	}
	b := &a.build
	// The entries share the unit's prefix and depth segments below it;
	// the last has more (keys are unique: only the first of two or more
	// can end there, a leaf above a leaf, which a damaged store alone
	// holds and the scan's builder replaced by the object below it).
	e := &a.entries[hi-1]
	b.prefix = e.below
	for rest, n := a.arena[e.key+e.below:e.keyEnd], depth; n > 0; n-- {
		k := bytes.IndexByte(rest, 0)
		if k < 0 {
			return nil, nil // not a place of the unit: no builder node spans it
		}
		b.prefix += k + 1
		rest = rest[k+1:]
	}
	b.max, b.n, b.ts = -1, 0, a.terms
	defer b.reset()
	for i := lo; i < hi; i++ {
		e := &a.entries[i]
		if e.keyEnd-e.key <= b.prefix {
			continue
		}
		leaf, err := a.leaf(i)
		if err != nil {
			return nil, corruptLeafAt(a.arena[e.key:e.keyEnd], err)
		}
		b.put(a.arena[e.key:e.keyEnd], leaf)
	}
	if b.root == nil {
		return nil, nil
	}
	b.close(0)
	t := ast.NewTerm(b.root)
	a.values = append(a.values, builtPart{lo: lo, hi: hi, depth: depth, t: t})
	return t, nil
}

// collected is a unit's scan callback: the leaf's key and value copied
// into the arena, listed; past unitLeaves, the scan stops (not small).
func (a *storeNodes) collected(k, v []byte) error {
	if a.scanN++; a.scanN > unitLeaves {
		return store.ErrStop
	}
	off := len(a.arena)
	a.arena = append(append(a.arena, k...), v...)
	a.entries = append(a.entries, unitEntry{key: off, keyEnd: off + len(k), rawEnd: len(a.arena), below: a.scanAt})
	return nil
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
	if u, ok := d.nodes.units.get(key); ok {
		return u, nil
	}
	// The scan's prefix in the same buffer: nothing else uses it until
	// the units' index has its own copy of the key, below.
	prefix := append(key, 0)
	d.nodes.key = prefix
	key = prefix[:len(key)]
	a := d.nodes
	if a.collect == nil {
		a.collect = a.collected
	}
	lo, arena := len(a.entries), len(a.arena)
	a.scanN, a.scanAt = 0, len(prefix)
	err := d.snap.Scan(prefix, nil, a.collect)
	small := a.scanN <= unitLeaves
	if err != nil || !small {
		// Not kept: a larger unit is read a leaf at a time.
		clear(a.entries[lo:])
		a.entries, a.arena = a.entries[:lo], a.arena[:arena]
	}
	if err != nil {
		return unitRead{}, err
	}
	u := unitRead{lo: lo, hi: len(a.entries), small: small}
	d.nodes.units.put(key, u)
	return u, nil
}

func (d *storeDoc) Value() (*ast.Term, error) {
	if d.below > 0 {
		return d.nodes.value(d.lo, d.hi, d.below)
	}
	if d.node.Unit() && !d.node.Leaf() {
		u, err := d.unit()
		switch {
		case err != nil:
			return nil, err
		case u.small && u.lo == u.hi:
			return nil, nil
		case u.small:
			return d.nodes.value(u.lo, u.hi, 0)
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
