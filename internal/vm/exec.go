package vm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/open-policy-agent/opa/v1/util"
)

// slot is a local: a term (t), or data still to be read (d); neither when
// the local is undefined. A term reached from data by lookups alone keeps
// d as fromData: lookups in it are topdown's storage reads, whose path is
// strings (data.x[2] finds the key "2", not once the value is bound to a
// variable). A mark rather than a field: frames are most of what an
// evaluation allocates.
type slot struct {
	t *ast.Term
	d Document
}

// fromData marks a term read from data; missingData is data read and
// found not to exist.
type (
	fromData    struct{}
	missingData struct{}
)

func (fromData) Child(*ast.Term) (*ast.Term, Document, error) { return nil, nil, nil }
func (fromData) Value() (*ast.Term, error)                    { return nil, nil }

func (missingData) Child(*ast.Term) (*ast.Term, Document, error) { return nil, missingData{}, nil }
func (missingData) Value() (*ast.Term, error)                    { return nil, nil }

// memo is a rule's value within one evaluation (and one with scope).
type memo struct {
	done bool
	t    *ast.Term
}

// eval is one evaluation's state.
type eval struct {
	ctx     context.Context
	p       *Program
	bctx    topdown.BuiltinContext
	memo    []memo
	memoed  []int32  // the indexes of memo set outside any with (release)
	withs   int      // the withs under way: inside one, no constant is kept
	spare   [][]memo // memos a with used, cleared, for the next with (of any evaluation of e)
	results []result
	values  []*ast.Term // the results' values handed to Read
	steps   int
	stack   []slot      // frames are cut from it, last in first out
	args    []*ast.Term // builtin arguments, last in first out
	cache   builtins.Cache
	// scans are the scans under way, innermost last; scanned and
	// scannedSet run the innermost one's block for a key and value (made
	// once per eval: a closure per scan was a tenth of a decision's
	// allocations).
	scans      []scanning
	scanned    func(k, v *ast.Term) error
	scannedSet func(t *ast.Term) error
	member     func(k, t *ast.Term, d Document) error // scanMember
	// pairs is objectLiteral's scratch, empty between its statements.
	pairs [][2]*ast.Term
	// out is a builtin's value, yielded by yield (made once per eval).
	out   *ast.Term
	yield func(t *ast.Term) error
}

// scanning is a scan under way: its frame and statement, and how its
// block last stopped.
type scanning struct {
	fr    []slot
	x     *ir.ScanStmt
	stop  bool
	index uint32
}

// ErrConflict is what every conflict an evaluation ends with wraps: a rule
// or function with two values, an object with two values for a key. The
// error itself is topdown's: a *topdown.Error with its code
// (eval_conflict_error), location and wording.
var ErrConflict = errors.New("vm: conflict")

func (e *eval) conflict(l ir.Location, msg string) error {
	return (&topdown.Error{Code: topdown.ConflictErr, Message: msg, Location: e.p.location(l)}).Wrap(ErrConflict)
}

const objectConflict = "object keys must be unique"

// checkEvery is how many statements run between context checks.
const checkEvery = 1024

// result is one of the query's results: the object of its bindings (t,
// key nil), or the value t of its one binding, key (resultBinding: the
// object is made only for Results).
type result struct{ key, t *ast.Term }

// Eval evaluates the program's query with input (nil: none) over data and
// returns the value of each result of the query, in no particular order:
// the query must bind one variable (a query of one term, which rego
// captures in one).
func (p *Program) Eval(ctx context.Context, input ast.Value, data Document) ([]*ast.Term, error) {
	var out []*ast.Term
	err := p.Read(ctx, inputTerm(input), data, func(vs []*ast.Term) error {
		out = slices.Clone(vs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Read is Eval handing the values to read instead of returning them: the
// slice is the evaluation's own, read's only until it returns (the values
// are read's to keep). What read returns, Read returns. Its input is a
// term (nil: none), read as Eval's value is: a caller that builds its
// input as a term need not have it wrapped in another.
func (p *Program) Read(ctx context.Context, input *ast.Term, data Document, read func([]*ast.Term) error) error {
	return p.run(ctx, input, data, func(e *eval) error {
		vs := e.values[:0]
		for _, r := range e.results {
			v := r.t
			if r.key == nil {
				var err error
				if v, err = binding(r.t.Value.(ast.Object)); err != nil {
					return err
				}
			}
			vs = append(vs, v)
		}
		e.values = vs
		return read(vs)
	})
}

// binding is the value of a result's one binding (a separate function: the
// variable its callback sets moves to the heap).
func binding(obj ast.Object) (*ast.Term, error) {
	if obj.Len() != 1 {
		return nil, errors.New("vm: a result is not an object of one binding")
	}
	var v *ast.Term
	obj.Foreach(func(_, b *ast.Term) { v = b })
	return v, nil
}

// Results evaluates the program's query with input (nil: none) over data
// and returns each result: an object of the query's variables' bindings,
// by name (the planner's result set), in no particular order.
func (p *Program) Results(ctx context.Context, input ast.Value, data Document) ([]ast.Object, error) {
	var out []ast.Object
	err := p.run(ctx, inputTerm(input), data, func(e *eval) error {
		out = make([]ast.Object, len(e.results))
		for i, r := range e.results {
			if r.key != nil {
				out[i] = ast.NewObject([2]*ast.Term{r.key, r.t})
				continue
			}
			out[i] = r.t.Value.(ast.Object)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inputTerm is input's term, nil for none.
func inputTerm(input ast.Value) *ast.Term {
	if input == nil {
		return nil
	}
	return ast.NewTerm(input)
}

// run evaluates the query and gives done the evaluation, its results
// objects all (or bindings), before the evaluation goes back to the pool.
func (p *Program) run(ctx context.Context, input *ast.Term, data Document, done func(*eval) error) error {
	e := p.pool.Get().(*eval)
	defer e.release()
	e.ctx = ctx
	e.bctx = topdown.BuiltinContext{
		Context: ctx,
		// Builtins keep per-evaluation state here (rand.intn's draws,
		// net.lookup_ip_addr's answers): a nil map panics on their first
		// call. Seed is what topdown draws from without one.
		Cache: e.cache,
		Seed:  rand.Reader,
		// Cancel is how builtins that loop or build large values
		// (numbers.range, concat, net.cidr_expand) notice the deadline;
		// without one they run to the end whatever the context says.
		Cancel: e,
		// http.send and the caching builtins record metrics unasked.
		Metrics: metrics.NoOp(),
		// internal.print writes here, at the call's Location.
		PrintHook: e.p.printHook,
	}
	if p.clock {
		e.bctx.Time = ast.NewTerm(ast.Number(strconv.FormatInt(time.Now().UnixNano(), 10)))
	}
	var args [2]slot
	if input != nil {
		args[ir.Input] = slot{t: input}
	}
	args[ir.Data] = slot{d: data}
	_, err := e.call(p.plan, args[:])
	p.steps.Add(uint64(e.steps))
	if err != nil {
		return err
	}
	// A context done before the end is an error whenever it happened: the
	// statements see it only every checkEvery steps, and a short
	// evaluation none.
	if err := e.cancelled(); err != nil {
		return err
	}
	for _, r := range e.results {
		if _, ok := r.t.Value.(ast.Object); !ok && r.key == nil {
			return errors.New("vm: a result is not an object")
		}
	}
	return done(e)
}

func (p *Program) newEval() any {
	e := &eval{p: p, memo: make([]memo, len(p.funcs)), stack: make([]slot, 0, 256), args: make([]*ast.Term, 0, 32), cache: builtins.Cache{}}
	e.scanned = e.scanStep
	e.scannedSet = func(t *ast.Term) error { return e.scanStep(t, t) }
	e.member = e.scanMember
	e.yield = func(t *ast.Term) error { e.out = t; return nil }
	return e
}

// release returns e to its program's pool, holding nothing of this
// evaluation. It clears only what the evaluation used: every frame clears
// itself when its call returns, so the stack is all zero slots once the
// evaluation's call has returned (len 0), and the memos set outside a with
// are listed in memoed (a with clears its own). Clearing the whole stack
// and memo (8 KB of pointers, write barriers and all) was a tenth of a
// short evaluation. An evaluation that did not return — a panic out of
// a builtin, recovered above — leaves frames on the stack: e is dropped,
// not pooled.
func (e *eval) release() {
	if len(e.stack) != 0 || e.withs != 0 {
		return
	}
	for _, i := range e.memoed {
		e.memo[i] = memo{}
	}
	e.memoed = e.memoed[:0]
	clear(e.results)
	clear(e.values)
	e.results, e.values = e.results[:0], e.values[:0]
	e.ctx, e.bctx, e.steps = nil, topdown.BuiltinContext{}, 0
	e.args = e.args[:0]
	clear(e.cache)
	clear(e.scans)
	e.scans, e.out = e.scans[:0], nil
	e.p.pool.Put(e)
}

// cancelled is topdown's error for a context that is done (wrapping the
// context's), or nil.
func (e *eval) cancelled() error {
	err := e.ctx.Err()
	if err == nil {
		return nil
	}
	return (&topdown.Error{Code: topdown.CancelErr, Message: err.Error()}).Wrap(err)
}

// Cancel and Cancelled make an evaluation the topdown.Cancel its builtins
// watch: cancelled when its context is done.
func (e *eval) Cancel()         {}
func (e *eval) Cancelled() bool { return e.ctx.Err() != nil }

// call runs fn with args in a new frame; the result is nil when fn is
// undefined.
func (e *eval) call(fn *function, args []slot) (*ast.Term, error) {
	// A constant rule's value is the Program's (Constants), but not under
	// a with: there data or input is not the evaluation's own.
	kept := fn.memo && fn.index >= 0 && len(args) == 2 && e.withs == 0 && e.p.constant != nil && e.p.constant[fn.index]
	if kept {
		if m := e.p.values[fn.index].Load(); m != nil {
			return m.t, nil
		}
	}
	if fn.memo && fn.index >= 0 && len(args) == 2 {
		if m := e.memo[fn.index]; m.done {
			return m.t, nil
		}
	}
	base := len(e.stack)
	if cap(e.stack)-base < fn.locals {
		// A new stack: frames below keep the old one.
		e.stack = make([]slot, base, 2*cap(e.stack)+fn.locals)
	}
	e.stack = e.stack[:base+fn.locals]
	fr := e.stack[base : base+fn.locals]
	for i, l := range fn.params {
		if i < len(args) {
			fr[l] = args[i]
		}
	}
	var err error
	blocks := fn.blocks
	if fn.rest != nil && copied(fr, fn) {
		// The first block's copies are made: the rest of it runs.
		blocks = blocks[1:]
		_, _, err = e.block(fr, fn.rest)
	}
	for _, b := range blocks {
		if err != nil {
			break
		}
		_, _, err = e.block(fr, b)
	}
	var t *ast.Term
	if err == nil && fn.index >= 0 {
		t, err = e.force(fr, fn.ret)
	}
	clear(fr)
	e.stack = e.stack[:base]
	if err != nil {
		return nil, err
	}
	if fn.memo && fn.index >= 0 && len(args) == 2 {
		e.memo[fn.index] = memo{done: true, t: t}
		if e.withs == 0 {
			e.memoed = append(e.memoed, int32(fn.index))
		}
	}
	if kept {
		// Two evaluations may both compute it: they store the same value,
		// settled first (every evaluation reads it from now on).
		settle(t)
		e.p.values[fn.index].Store(&memo{done: true, t: t})
	}
	return t, nil
}

// copied makes fn's parameter copies in fr (paramCopies) when every
// parameter they copy holds a term, or nothing, as their AssignVarStmts
// would; not when one holds data (a Document, which the statement reads
// whole and may find missing): the statements run then.
func copied(fr []slot, fn *function) bool {
	for _, c := range fn.copies {
		if s := fr[fn.params[c.param]]; s.t == nil && s.d != nil {
			return false
		}
	}
	for _, c := range fn.copies {
		fr[c.target] = slot{t: fr[fn.params[c.param]].t}
	}
	return true
}

// block runs a block: it ends at its end or at a statement that is
// undefined or breaks. stop and index say how many enclosing blocks to
// leave as well.
func (e *eval) block(fr []slot, b *ir.Block) (bool, uint32, error) {
	stop, index, err := e.stmts(fr, b.Stmts)
	if err != nil || !stop {
		return false, 0, err
	}
	if index == 0 {
		return false, 0, nil
	}
	return true, index - 1, nil
}

// stmts runs statements until one stops.
func (e *eval) stmts(fr []slot, stmts []ir.Stmt) (bool, uint32, error) {
	for _, s := range stmts {
		if e.steps++; e.steps%checkEvery == 0 {
			if err := e.cancelled(); err != nil {
				return false, 0, err
			}
		}
		stop, index, err := e.stmt(fr, s)
		if err == errMissing {
			return undefined, 0, nil
		}
		if err != nil || stop {
			return stop, index, err
		}
	}
	return false, 0, nil
}

// emptySet is the value of every set a plan makes until its first element
// is added: shared, so never changed (the planner adds only to the local
// it made the set in, and SetAddStmt replaces emptySet there first).
var emptySet = ast.NewTerm(ast.NewSet())

// emptyArray is the value of every array a plan makes with no capacity
// (MakeArrayStmt): a verdict's "reasons": [] and "missing": [], made in
// every decision as an array and its term.
var emptyArray = ast.NewTerm(ast.NewArray())

// undefined stops the current block.
const undefined = true

func (e *eval) stmt(fr []slot, s ir.Stmt) (bool, uint32, error) {
	switch x := s.(type) {
	case *ir.DotStmt:
		return e.dot(fr, x, false)
	case *dotInto:
		return e.dot(fr, x.DotStmt, true)
	case *call:
		return e.callStmt(fr, x)
	case *ir.AssignVarStmt:
		if l, ok := x.Source.Value.(ir.Local); ok {
			if s := fr[l]; s.t == nil && s.d != nil && bound(s.d) {
				// A scan's value, copied unread: it exists, and is read
				// where it is used, as it would be where it was.
				fr[x.Target] = s
				return false, 0, nil
			}
		}
		t, err := e.operand(fr, x.Source)
		fr[x.Target] = slot{t: t}
		return false, 0, err
	case *assignOnce:
		t, err := e.operand(fr, x.Source)
		if err != nil {
			return false, 0, err
		}
		if cur := fr[x.Target].t; cur != nil {
			if t == nil || cur.Value.Compare(t.Value) != 0 {
				return false, 0, e.conflict(x.Location, x.conflict)
			}
			return false, 0, nil
		}
		fr[x.Target] = slot{t: t}
		return false, 0, nil
	case *ir.ResetLocalStmt:
		fr[x.Target] = slot{}
	case *ir.ArrayAppendStmt:
		v, err := e.operand(fr, x.Value)
		if err != nil {
			return false, 0, err
		}
		arr, ok := fr[x.Array].t.Value.(*ast.Array)
		if ok && v != nil {
			// Append copies the array (a constLiteral's too: it is at
			// its length, so its elements are never written).
			fr[x.Array] = slot{t: ast.NewTerm(arr.Append(v))}
		}
	case *ir.SetAddStmt:
		v, err := e.operand(fr, x.Value)
		if err != nil {
			return false, 0, err
		}
		if set, ok := fr[x.Set].t.Value.(ast.Set); ok && v != nil {
			if t := fr[x.Set].t; t == emptySet || e.p.shared(t) {
				set = set.Copy()
				fr[x.Set] = slot{t: ast.NewTerm(set)}
			}
			set.Add(v)
		}
	case *ir.ObjectInsertStmt:
		k, v, obj, err := e.insertion(fr, x.Key, x.Value, x.Object)
		if err != nil || obj == nil {
			return false, 0, err
		}
		obj.Insert(k, v)
	case *ir.ObjectInsertOnceStmt:
		k, v, obj, err := e.insertion(fr, x.Key, x.Value, x.Object)
		if err != nil || obj == nil {
			return false, 0, err
		}
		if cur := obj.Get(k); cur != nil {
			if cur.Value.Compare(v.Value) != 0 {
				return false, 0, e.conflict(x.Location, objectConflict)
			}
			return false, 0, nil
		}
		obj.Insert(k, v)
	case *ir.ReturnLocalStmt, *ir.NopStmt:
		// Dropped when the plan is prepared (resolver.block).
	case *ir.BlockStmt:
		for _, b := range x.Blocks {
			stop, index, err := e.block(fr, b)
			if err != nil || stop {
				return stop, index, err
			}
		}
	case *ir.ScanStmt:
		return e.scan(fr, x)
	case *ir.NotStmt:
		stop, index, err := e.stmts(fr, x.Block.Stmts)
		switch {
		case err != nil:
			return false, 0, err
		case !stop:
			return undefined, 0, nil
		case index == 0:
			return false, 0, nil
		default:
			return true, index - 1, nil
		}
	case *ir.BreakStmt:
		return true, x.Index, nil
	case *ir.EqualStmt:
		eq, err := e.equal(fr, x.A, x.B)
		return !eq, 0, err
	case *ir.NotEqualStmt:
		eq, err := e.equal(fr, x.A, x.B)
		return eq && err == nil, 0, err
	case *ir.IsDefinedStmt:
		t, err := e.force(fr, x.Source)
		return t == nil, 0, err
	case *ir.IsUndefinedStmt:
		t, err := e.force(fr, x.Source)
		return t != nil, 0, err
	case *ir.IsArrayStmt:
		return e.is(fr, x.Source, func(v ast.Value) bool { _, ok := v.(*ast.Array); return ok })
	case *ir.IsObjectStmt:
		return e.is(fr, x.Source, func(v ast.Value) bool { _, ok := v.(ast.Object); return ok })
	case *ir.IsSetStmt:
		return e.is(fr, x.Source, func(v ast.Value) bool { _, ok := v.(ast.Set); return ok })
	case *ir.LenStmt:
		t, err := e.operand(fr, x.Source)
		if err != nil {
			return false, 0, err
		}
		n, ok := length(t)
		if !ok {
			return false, 0, fmt.Errorf("%s: vm: length of %v", e.where(x.Location), t)
		}
		fr[x.Target] = slot{t: ast.InternedTerm(n)}
	case *ir.MakeNullStmt:
		fr[x.Target] = slot{t: ast.InternedNullTerm}
	case *ir.MakeNumberIntStmt:
		fr[x.Target] = slot{t: ast.InternedTerm(int(x.Value))}
	case *ir.AssignIntStmt:
		fr[x.Target] = slot{t: ast.InternedTerm(int(x.Value))}
	case *numberRef:
		fr[x.Target] = slot{t: x.t}
	case *ir.MakeArrayStmt:
		if x.Capacity == 0 {
			// An append copies the array (ArrayAppendStmt), and one of no
			// capacity its elements too: never changed, so shared.
			fr[x.Target] = slot{t: emptyArray}
			break
		}
		fr[x.Target] = slot{t: ast.NewTerm(ast.NewArrayWithCapacity(int(x.Capacity)))}
	case *constLiteral:
		fr[x.target] = slot{t: x.t}
	case *makeObject:
		fr[x.Target] = slot{t: ast.NewTerm(ast.NewObjectWithCapacity(x.capacity))}
	case *objectLiteral:
		return e.objectLiteral(fr, x)
	case *arrayLiteral:
		return e.arrayLiteral(fr, x)
	case *ir.MakeSetStmt:
		// Made when the first element is added (SetAddStmt): most sets a
		// decision makes (the reasons of a permission not held, what is
		// missing when nothing is) stay empty.
		fr[x.Target] = slot{t: emptySet}
	case *ir.ObjectMergeStmt:
		return e.merge(fr, x)
	case *ir.ResultSetAddStmt:
		t, err := e.force(fr, x.Value)
		if err != nil {
			return false, 0, err
		}
		if t != nil {
			e.results = append(e.results, result{t: t})
		}
	case *resultBinding:
		return e.resultBinding(fr, x)
	case *ir.WithStmt:
		return e.with(fr, x)
	case *saveData:
		fr[x.Target] = fr[ir.Data]
	case *restoreData:
		return e.within(fr, x.WithStmt, fr[x.Value.Value.(ir.Local)])
	case *ir.CallDynamicStmt:
		return e.callDynamic(fr, x)
	default:
		return false, 0, fmt.Errorf("%w: statement %T", ErrUnsupported, s)
	}
	return false, 0, nil
}

// dot is a DotStmt; keep: an undefined one leaves its target as it was
// (dotInto).
func (e *eval) dot(fr []slot, x *ir.DotStmt, keep bool) (bool, uint32, error) {
	src, ok := x.Source.Value.(ir.Local)
	if !ok {
		return undefined, 0, nil
	}
	key, err := e.operand(fr, x.Key)
	if err != nil {
		return false, 0, err
	}
	from := fr[src]
	var out slot
	switch {
	case key == nil:
	case from.t != nil:
		out.t = dot(from.t, key)
		if from.d != nil { // read from data
			if alt := storageKey(key); out.t == nil && alt != nil {
				out.t = dot(from.t, alt)
			}
			if out.t != nil {
				out.d = fromData{}
			}
		}
	case from.d != nil && bound(from.d):
		// A scan's value: a term's lookup (no storage key), and a term it
		// finds is not marked as read from data.
		if out, err = lookup(from.d, key); err != nil {
			return false, 0, fmt.Errorf("%s: %w", e.where(x.Location), err)
		}
		if out.t != nil {
			out.d = nil
		}
	case from.d != nil:
		if out, err = child(from.d, key); err != nil {
			return false, 0, fmt.Errorf("%s: %w", e.where(x.Location), err)
		}
	}
	undef := out.t == nil && out.d == nil
	if !undef || !keep {
		fr[x.Target] = out
	}
	return undef, 0, nil
}

// is is a type test: undefined unless the operand is defined and of the
// kind.
func (e *eval) is(fr []slot, o ir.Operand, kind func(ast.Value) bool) (bool, uint32, error) {
	t, err := e.operand(fr, o)
	if err != nil || t == nil {
		return undefined, 0, err
	}
	return !kind(t.Value), 0, nil
}

// operand is an operand's term (reading data it names), nil when undefined.
func (e *eval) operand(fr []slot, o ir.Operand) (*ast.Term, error) {
	switch v := o.Value.(type) {
	case ir.Local:
		return e.force(fr, v)
	case ir.StringIndex:
		return e.p.stringTerms[v], nil
	case ir.Bool:
		return ast.InternedTerm(bool(v)), nil
	}
	return nil, fmt.Errorf("%w: operand %T", ErrUnsupported, o.Value)
}

// force reads the data a local names, once: the local then holds it.
// Data that does not exist is errMissing.
func (e *eval) force(fr []slot, l ir.Local) (*ast.Term, error) {
	s := fr[l]
	if s.t != nil || s.d == nil {
		return s.t, nil
	}
	t, err := s.d.Value()
	switch {
	case err != nil:
		return nil, err
	case t == nil:
		fr[l] = slot{d: missingData{}}
		return nil, errMissing
	case bound(s.d):
		// A scan's value read whole: a term as the scan would have bound.
		fr[l] = slot{t: t}
		return t, nil
	}
	fr[l] = slot{t: t, d: fromData{}}
	return t, nil
}

// errMissing is data a statement uses that turns out not to exist: the
// statement is undefined. A Document's child need not exist, so the
// DotStmt that reached it went on where the Wasm compiler's stops; the
// planner uses what a DotStmt reads right after it (an assignment, a
// comparison, another DotStmt), so the block stops there instead, before
// anything else happens — not with the local undefined and the block going
// on (an array, object or set built without the element, a call made with
// an undefined argument).
var errMissing = errors.New("vm: missing data")

// child is d[key], read from data: the key's other storage form is tried
// when the key finds nothing.
func child(d Document, key *ast.Term) (slot, error) {
	s, err := lookup(d, key)
	if err == nil && s.t == nil && s.d == nil {
		if alt := storageKey(key); alt != nil {
			s, err = lookup(d, alt)
		}
	}
	return s, err
}

// lookup is d[key], with this key only.
func lookup(d Document, key *ast.Term) (slot, error) {
	if o, ok := d.(*overlaid); ok {
		return o.lookup(key)
	}
	t, cd, err := d.Child(key)
	if t != nil {
		cd = fromData{}
	}
	return slot{t: t, d: cd}, err
}

// storageKey is the other form a key takes in topdown's reads of data,
// whose storage path is strings: a number's string (data.x[2] is
// data.x["2"]), a string's array index (data.arr["1"] is data.arr[1]).
// nil when there is none.
func storageKey(key *ast.Term) *ast.Term {
	switch k := key.Value.(type) {
	case ast.Number:
		return ast.StringTerm(string(k))
	case ast.String:
		if i, ok := util.Atoi(string(k)); ok {
			return ast.InternedTerm(i)
		}
	}
	return nil
}

func (e *eval) insertion(fr []slot, key, value ir.Operand, object ir.Local) (*ast.Term, *ast.Term, ast.Object, error) {
	k, err := e.operand(fr, key)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := e.operand(fr, value)
	if err != nil {
		return nil, nil, nil, err
	}
	t := fr[object].t
	if t == nil || k == nil || v == nil {
		return nil, nil, nil, nil
	}
	obj, _ := t.Value.(ast.Object)
	if obj != nil && e.p.shared(t) {
		obj = obj.Copy()
		fr[object] = slot{t: ast.NewTerm(obj)}
	}
	return k, v, obj, nil
}

// objectLiteral makes x's object whole: ast.NewObject puts its pairs in
// one block. NewObject does not look for equal keys, so keys whose hashes
// meet, and an undefined or failing operand, run x's statements in turn
// instead. The object is this evaluation's own, as a makeObject's is.
func (e *eval) objectLiteral(fr []slot, x *objectLiteral) (bool, uint32, error) {
	pairs := e.pairs[:0]
	whole := true
	for _, o := range x.pairs {
		k, err := e.operand(fr, o[0])
		if err != nil || k == nil {
			whole = false
			break
		}
		v, err := e.operand(fr, o[1])
		if err != nil || v == nil {
			whole = false
			break
		}
		h := k.Hash()
		for _, p := range pairs {
			if p[0].Hash() == h {
				whole = false
			}
		}
		pairs = append(pairs, [2]*ast.Term{k, v})
	}
	if whole {
		fr[x.target] = slot{t: ast.NewTerm(ast.NewObject(pairs...))}
	}
	clear(pairs) // the scratch keeps no term alive
	e.pairs = pairs[:0]
	if !whole {
		// This statement was counted as the first of them.
		e.steps--
		return e.stmts(fr, x.stmts)
	}
	// Steps are the statements the plan has: the inserts count.
	return false, 0, e.counted(x.steps)
}

// resultBinding adds x's result, the value of its one binding, without
// the object the plan makes to hold it; an undefined value runs x's
// statements in turn instead (an empty object is its result then).
func (e *eval) resultBinding(fr []slot, x *resultBinding) (bool, uint32, error) {
	v, err := e.force(fr, x.value)
	if err != nil {
		return false, 0, err
	}
	if v == nil {
		// This statement was counted as the first of them.
		e.steps--
		return e.stmts(fr, x.stmts)
	}
	e.results = append(e.results, result{key: x.key, t: v})
	// Steps are the statements the plan has: the insert and the add count.
	return false, 0, e.counted(2)
}

// arrayLiteral makes x's array whole, its elements in one slice of its
// own; an undefined or failing element runs x's statements in turn
// instead. The array is this evaluation's own, as a MakeArrayStmt's is.
func (e *eval) arrayLiteral(fr []slot, x *arrayLiteral) (bool, uint32, error) {
	elems := make([]*ast.Term, len(x.elems))
	for i, o := range x.elems {
		v, err := e.operand(fr, o)
		if err != nil || v == nil {
			// This statement was counted as the first of them.
			e.steps--
			return e.stmts(fr, x.stmts)
		}
		elems[i] = v
	}
	fr[x.target] = slot{t: ast.NewTerm(ast.NewArray(elems...))}
	return false, 0, e.counted(len(x.elems))
}

// counted counts n statements more run (steps are the statements the plan
// has, whatever made them at once), checking the context as stmts does.
func (e *eval) counted(n int) error {
	before := e.steps
	e.steps += n
	if before/checkEvery != e.steps/checkEvery {
		return e.cancelled()
	}
	return nil
}

// shared says whether t is one of the values every evaluation shares (a
// constLiteral's), which an add must not change.
func (p *Program) shared(t *ast.Term) bool {
	_, ok := p.literals[t]
	return ok
}

// equal compares two operands as the Wasm compiler does (opa_value_compare):
// an undefined operand equals only another undefined one, so EqualStmt
// stops and NotEqualStmt goes on when just one is undefined.
func (e *eval) equal(fr []slot, a, b ir.Operand) (bool, error) {
	ta, err := e.operand(fr, a)
	if err != nil {
		return false, err
	}
	tb, err := e.operand(fr, b)
	if err != nil {
		return false, err
	}
	if ta == nil || tb == nil {
		return ta == nil && tb == nil, nil
	}
	return ta.Value.Compare(tb.Value) == 0, nil
}

func length(t *ast.Term) (int, bool) {
	if t == nil {
		return 0, false
	}
	switch x := t.Value.(type) {
	case *ast.Array:
		return x.Len(), true
	case ast.Object:
		return x.Len(), true
	case ast.Set:
		return x.Len(), true
	case ast.String:
		return utf8.RuneCountInString(string(x)), true
	}
	return 0, false
}

// errStopScan ends an iteration early.
var errStopScan = errors.New("stop")

func (e *eval) scan(fr []slot, x *ir.ScanStmt) (bool, uint32, error) {
	if s := fr[x.Source]; s.t == nil && s.d != nil {
		if m, ok := s.d.(Members); ok {
			// Data iterated member by member, not read whole: a value
			// the block does not use is never read.
			e.scans = append(e.scans, scanning{fr: fr, x: x})
			ok, err := m.Members(e.member)
			if ok {
				return e.endScan(err)
			}
			e.scans = e.scans[:len(e.scans)-1]
		}
	}
	o, _ := fr[x.Source].d.(*overlaid)
	src, err := e.force(fr, x.Source)
	if err != nil || src == nil {
		return false, 0, err
	}
	e.scans = append(e.scans, scanning{fr: fr, x: x})
	switch c := src.Value.(type) {
	case *ast.Array:
		for i := range c.Len() {
			if err = e.scanStep(ast.InternedTerm(i), c.Elem(i)); err != nil {
				break
			}
		}
	case ast.Object:
		if o != nil {
			// Topdown iterates data under a with key by key: a with's
			// target is its value, not merged with data's (overlaid).
			err = c.Iter(func(k, _ *ast.Term) error {
				v, err := o.member(k)
				if err != nil || v == nil {
					return err
				}
				return e.scanStep(k, v)
			})
			break
		}
		err = c.Iter(e.scanned)
	case ast.Set:
		err = c.Iter(e.scannedSet)
	}
	return e.endScan(err)
}

// endScan ends the innermost scan, its iteration having returned err.
func (e *eval) endScan(err error) (bool, uint32, error) {
	last := len(e.scans) - 1
	stop, index := e.scans[last].stop, e.scans[last].index
	e.scans[last] = scanning{}
	e.scans = e.scans[:last]
	if err != nil && err != errStopScan {
		return false, 0, err
	}
	if stop && index > 0 {
		return true, index - 1, nil
	}
	return false, 0, nil
}

// scanStep runs the innermost scan's block for one key and value.
func (e *eval) scanStep(k, v *ast.Term) error { return e.scanSlot(k, slot{t: v}) }

// scanMember is scanStep for a member a Members document handed out.
func (e *eval) scanMember(k, t *ast.Term, d Document) error {
	return e.scanSlot(k, slot{t: t, d: d})
}

// scanSlot runs the innermost scan's block for one key and value.
func (e *eval) scanSlot(k *ast.Term, v slot) error {
	i := len(e.scans) - 1 // scans the block starts end before it returns
	fr, x := e.scans[i].fr, e.scans[i].x
	fr[x.Key], fr[x.Value] = slot{t: k}, v
	stop, index, err := e.block(fr, x.Block)
	e.scans[i].stop, e.scans[i].index = stop, index
	if err != nil {
		return err
	}
	if stop {
		return errStopScan
	}
	return nil
}

func (e *eval) callStmt(fr []slot, x *call) (bool, uint32, error) {
	if x.fn != nil {
		var buf [8]slot
		args := buf[:0]
		if len(x.args) > len(buf) {
			args = make([]slot, 0, len(x.args))
		}
		args = args[:len(x.args)]
		for i, a := range x.args {
			if l, ok := a.Value.(ir.Local); ok {
				args[i] = fr[l] // data passes unread
				continue
			}
			t, err := e.operand(fr, a)
			if err != nil {
				return false, 0, err
			}
			args[i] = slot{t: t}
		}
		t, err := e.call(x.fn, args)
		if err != nil {
			return false, 0, err
		}
		return e.called(fr, x, t), 0, nil
	}
	base := len(e.args)
	defer func() { clear(e.args[base:]); e.args = e.args[:base] }()
	for _, a := range x.args {
		t, err := e.operand(fr, a)
		if err != nil {
			return false, 0, err
		}
		if t == nil {
			return e.called(fr, x, nil), 0, nil
		}
		e.args = append(e.args, t)
	}
	e.out = nil
	yield := e.yield
	if x.builtin.relation {
		// The planner scans a relation's result: all its values, as the
		// Wasm builtins return them (not the last one).
		all := ast.NewArray()
		e.out = ast.NewTerm(all)
		yield = func(t *ast.Term) error { all = all.Append(t); e.out.Value = all; return nil }
	}
	bctx := e.bctx
	bctx.Location = x.loc
	err := x.builtin.fn(bctx, e.args[base:len(e.args):len(e.args)], yield)
	// A builtin does not evaluate Rego: nothing between its yield and here
	// sets e.out again.
	out := e.out
	e.out = nil
	if err != nil {
		// A Halt ends the evaluation in either mode (topdown's cancellations
		// and the like); any other error is undefined when lenient.
		var h topdown.Halt
		switch {
		case errors.As(err, &h):
			return false, 0, h.Err
		case e.p.lenient:
			return e.called(fr, x, nil), 0, nil
		}
		return false, 0, err
	}
	if x.builtin.void {
		// No value, and none is tested (the planner's void call):
		// topdown goes on after it, so does the plan.
		fr[x.result] = slot{t: out}
		return false, 0, nil
	}
	return e.called(fr, x, out), 0, nil
}

// called sets a call's result to its value t and says whether it is
// undefined; an undefined one leaves the result as it was when x keeps it.
func (e *eval) called(fr []slot, x *call, t *ast.Term) bool {
	if t != nil || !x.keep {
		fr[x.result] = slot{t: t}
	}
	return t == nil
}

// callDynamic calls the function at a data path computed at run time
// (data.a[x].b with rules below data.a). A path no function has leaves
// the block (the planner then reads the path from data); a function that
// is undefined leaves three (the planner's layout of the two ways).
func (e *eval) callDynamic(fr []slot, x *ir.CallDynamicStmt) (bool, uint32, error) {
	var path [128]byte
	b := path[:0]
	for i, o := range x.Path {
		t, err := e.operand(fr, o)
		if err != nil || t == nil {
			return undefined, 0, err
		}
		s, ok := t.Value.(ast.String)
		if !ok {
			return undefined, 0, nil
		}
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, s...)
	}
	fn, ok := e.p.byPath[string(b)]
	if !ok {
		return undefined, 0, nil
	}
	var buf [8]slot
	args := buf[:0]
	for _, l := range x.Args {
		args = append(args, fr[l])
	}
	t, err := e.call(fn, args)
	if err != nil {
		return false, 0, err
	}
	if t == nil {
		return true, 3, nil
	}
	fr[x.Result] = slot{t: t}
	return false, 0, nil
}

// with runs its block with a local (input or data, or a part of one)
// replaced, and rule values computed inside kept apart.
func (e *eval) with(fr []slot, x *ir.WithStmt) (bool, uint32, error) {
	v, err := e.operand(fr, x.Value)
	if err != nil {
		return false, 0, err
	}
	path := make([]*ast.Term, len(x.Path))
	for i, s := range x.Path {
		path[i] = e.p.stringTerms[s]
	}
	var s slot
	switch cur := fr[x.Local]; {
	case len(path) == 0:
		s = slot{t: v}
	case cur.d != nil && (cur.t == nil || cur.d == fromData{}):
		// Data, read or not: the with lays its value over it, as
		// topdown's with does over its store — the rest of data is still
		// read on demand and found by its storage keys (reading data
		// whole here would read all of a lazy store).
		s = slot{d: overlay(cur, path, v)}
	default:
		t, err := e.force(fr, x.Local)
		if err != nil {
			return false, 0, err
		}
		s = slot{t: upsert(t, path, v)}
	}
	return e.within(fr, x, s)
}

// within runs a with's block with its local holding s, and rule values
// computed inside kept apart.
func (e *eval) within(fr []slot, x *ir.WithStmt, s slot) (bool, uint32, error) {
	saved := fr[x.Local]
	fr[x.Local] = s
	outer := e.memo
	if n := len(e.spare); n > 0 {
		e.memo, e.spare = e.spare[n-1], e.spare[:n-1]
	} else {
		e.memo = make([]memo, len(e.p.funcs))
	}
	e.withs++
	stop, index, err := e.stmts(fr, x.Block.Stmts)
	e.withs--
	clear(e.memo)
	e.spare = append(e.spare, e.memo)
	e.memo = outer
	fr[x.Local] = saved
	switch {
	case err != nil || !stop:
		return false, 0, err
	case index > 0:
		// A break out of the block and beyond goes on past the with, as
		// out of any block.
		return true, index - 1, nil
	}
	// Undefined inside: the with is undefined.
	return undefined, 0, nil
}

// upsert is doc with v at path, made of shallow copies of the objects on
// the path (doc is not changed); what is not an object on the way becomes
// one.
func upsert(doc *ast.Term, path []*ast.Term, v *ast.Term) *ast.Term {
	if len(path) == 0 {
		return v
	}
	obj := ast.NewObject()
	if doc != nil {
		if o, ok := doc.Value.(ast.Object); ok {
			o.Foreach(func(k, v *ast.Term) { obj.Insert(k, v) })
		}
	}
	obj.Insert(path[0], upsert(obj.Get(path[0]), path[1:], v))
	return ast.NewTerm(obj)
}

// overlaid is data under withs on parts of it, as topdown reads its store
// under them: over is the withs' values laid into one document (at this
// place of data), targets are the withs' paths from here. A document at
// or below a target is over's (not data: its keys are found as a term's
// are); one above a target is over's and data's merged (topdown's merge:
// objects key by key, over's value kept where either is not an object);
// any other is data's.
type overlaid struct {
	base    Document
	over    *ast.Term
	targets [][]*ast.Term // none empty
}

// overlay is data (the slot of a data local) with v laid at path.
func overlay(data slot, path []*ast.Term, v *ast.Term) *overlaid {
	if o, ok := data.d.(*overlaid); ok && data.t == nil {
		return &overlaid{base: o.base, over: upsert(o.over, path, v), targets: append(slices.Clip(o.targets), path)}
	}
	base := data.d
	if data.t != nil {
		base = valueDocument{data.t}
	}
	return &overlaid{base: base, over: upsert(nil, path, v), targets: [][]*ast.Term{path}}
}

// Child serves lookups that do not go through lookup (none in this
// package).
func (o *overlaid) Child(key *ast.Term) (*ast.Term, Document, error) {
	s, err := o.lookup(key)
	if s.d == (fromData{}) {
		s.d = nil
	}
	return s.t, s.d, err
}

func (o *overlaid) Value() (*ast.Term, error) {
	data, err := o.base.Value()
	switch {
	case err != nil || data == nil:
		return o.over, err
	case o.over == nil:
		return data, nil
	}
	return merged(o.over, data), nil
}

// lookup is o[key] as a local holds it.
func (o *overlaid) lookup(key *ast.Term) (slot, error) {
	var over *ast.Term // the withs' values at key
	if o.over != nil {
		over = dot(o.over, key)
	}
	var below [][]*ast.Term
	for _, t := range o.targets {
		if t[0].Value.Compare(key.Value) != 0 {
			continue
		}
		if len(t) == 1 {
			return slot{t: over}, nil // a with's target
		}
		below = append(below, t[1:])
	}
	data, err := lookup(o.base, key)
	if err != nil || below == nil {
		return data, err
	}
	// Above a with's target.
	var base Document = missingData{}
	switch {
	case data.t != nil:
		base = valueDocument{data.t}
	case data.d != nil:
		base = data.d
	}
	return slot{d: &overlaid{base: base, over: over, targets: below}}, nil
}

// member is o[key]'s value, as an iteration over o finds it.
func (o *overlaid) member(key *ast.Term) (*ast.Term, error) {
	s, err := o.lookup(key)
	if err != nil || s.t != nil || s.d == nil {
		return s.t, err
	}
	return s.d.Value()
}

// merged is a and b merged recursively, a's value kept where the two are
// not both objects: topdown's merge of a with's values (a) and data (b),
// and ObjectMergeStmt's.
func merged(a, b *ast.Term) *ast.Term {
	oa, okA := a.Value.(ast.Object)
	ob, okB := b.Value.(ast.Object)
	if !okA || !okB {
		return a
	}
	out := ast.NewObjectWithCapacity(oa.Len() + ob.Len())
	oa.Foreach(func(k, v *ast.Term) {
		if bv := ob.Get(k); bv != nil {
			v = merged(v, bv)
		}
		out.Insert(k, v)
	})
	ob.Foreach(func(k, v *ast.Term) {
		if oa.Get(k) == nil {
			out.Insert(k, v)
		}
	})
	return ast.NewTerm(out)
}

// merge is ObjectMergeStmt: a and b merged recursively, a's values kept
// where both have a key that is not an object in both.
func (e *eval) merge(fr []slot, x *ir.ObjectMergeStmt) (bool, uint32, error) {
	a, err := e.force(fr, x.A)
	if err != nil {
		return false, 0, err
	}
	b, err := e.force(fr, x.B)
	if err != nil {
		return false, 0, err
	}
	switch {
	case a == nil:
		fr[x.Target] = slot{t: b}
		return false, 0, nil
	case b == nil:
		fr[x.Target] = slot{t: a}
		return false, 0, nil
	}
	_, okA := a.Value.(ast.Object)
	_, okB := b.Value.(ast.Object)
	if !okA || !okB {
		return false, 0, e.conflict(x.Location, objectConflict)
	}
	fr[x.Target] = slot{t: merged(a, b)}
	return false, 0, nil
}

// location is where a statement comes from, for errors.
func (p *Program) location(l ir.Location) *ast.Location {
	if l.Row == 0 {
		return nil
	}
	loc := &ast.Location{Row: l.Row, Col: l.Col}
	if l.File >= 0 && l.File < len(p.files) {
		loc.File = p.files[l.File]
	}
	return loc
}

func (e *eval) where(l ir.Location) string {
	if loc := e.p.location(l); loc != nil {
		return loc.String()
	}
	return "vm"
}
