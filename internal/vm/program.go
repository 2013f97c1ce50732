package vm

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// Program is a planned query, ready to evaluate. It is immutable.
type Program struct {
	stringTerms []*ast.Term // the plan's string constants
	files       []string
	funcs       []*function
	byPath      map[string]*function // funcs by data path (CallDynamicStmt)
	plan        *function            // the query: a function of input and data
	pool        *sync.Pool           // of *eval
	lenient     bool                 // a builtin's error is undefined (see Lenient)
	printHook   print.Hook           // hears print() (WithPrintHook); nil: print says nothing
	// constant says, by function index, which rules Constants keeps
	// across evaluations, and values holds them once computed (nil: none
	// kept).
	constant []bool
	values   []atomic.Pointer[memo]
	// literals are the constLiterals' values, shared by every evaluation:
	// an add into one makes a copy first.
	literals map[*ast.Term]struct{}
	// clock: the plan calls a builtin whose value is not a function of
	// its arguments (time.now_ns, io.jwt.decode_verify, http.send: the
	// builtins that read BuiltinContext.Time, and any unknown to OPA's
	// table), so an evaluation makes its time; one that calls none does
	// not (the time's term was three allocations of every decision).
	clock bool
	// steps counts the statements every evaluation of the plan has run
	// (Steps), shared by the Programs made from it (Lenient, Constants).
	steps *atomic.Uint64
}

// Steps is how many statements p's evaluations have run so far: the cost
// of a policy in the interpreter's own unit, the same on any machine and
// under any load (a benchmark's steps/op).
func (p *Program) Steps() uint64 { return p.steps.Load() }

// Lenient is p with topdown's default handling of builtin errors: a
// builtin that fails is undefined, as if it had no value. A Program is
// otherwise strict (a builtin's error ends the evaluation, as with
// rego.StrictBuiltinErrors(true)) whatever the options Plan was given:
// rego does not pass that one to a target. p is not changed.
func (p *Program) Lenient() *Program {
	c := *p
	c.lenient = true
	if p.constant != nil {
		// A builtin's error makes a value undefined here, an error there:
		// the values are not the strict Program's.
		c.values = make([]atomic.Pointer[memo], len(p.funcs))
	}
	c.pool = &sync.Pool{}
	c.pool.New = c.newEval
	return &c
}

// WithPrintHook is p with print() (internal.print, in a plan compiled
// with print statements enabled) writing to h, as topdown's does with
// rego.PrintHook: each call's location and text. Without a hook print
// does nothing, as topdown's without one. p is not changed.
func (p *Program) WithPrintHook(h print.Hook) *Program {
	c := *p
	c.printHook = h
	c.pool = &sync.Pool{}
	c.pool.New = c.newEval
	return &c
}

// SharingStrings is p with each string constant of its plan that shared
// holds (a term, nil when it holds none) evaluated as shared's term: the
// terms the caller builds its input and data with (permatrix: the keys of
// a check's input and of the store's leaves). A lookup of a constant key
// in an object whose key is that very term is then found by ast's
// pointer comparison, not by comparing the strings. The terms must be
// strings equal to the constants and never changed (as every value a plan
// reads). What p prepared from its constants keeps its own terms. p is
// not changed.
func (p *Program) SharingStrings(shared func(string) *ast.Term) *Program {
	c := *p
	c.stringTerms = slices.Clone(p.stringTerms)
	for i, t := range c.stringTerms {
		if s := shared(string(t.Value.(ast.String))); s != nil && s.Value.Compare(t.Value) == 0 {
			c.stringTerms[i] = s
		}
	}
	c.pool = &sync.Pool{}
	c.pool.New = c.newEval
	return &c
}

// Constants is p keeping, across its evaluations, the value of each rule
// that reads only data outside the varying root keys: no input, no key of
// data named dynamically, no with, no dynamic call, no builtin whose value
// may differ between two calls with the same arguments (ast's
// Nondeterministic ones and variesBuiltins), and no rule or function that
// does. Its value is computed by the first evaluation
// outside any with that needs it, and shared by all the others.
//
// The caller promises that every evaluation's data is the same outside
// the varying root keys (permatrix: the bundle's data, fixed for the life
// of a policy, beside data.store). p is not changed.
func (p *Program) Constants(varying ...string) *Program {
	c := *p
	const (
		unknown = iota
		visiting
		yes
		no
	)
	state := make([]int, len(p.funcs))
	var fixed func(fn *function) bool
	fixed = func(fn *function) bool {
		switch state[fn.index] {
		case yes:
			return true
		case visiting, no:
			return false // Rego has no recursion; a cycle is not constant
		}
		state[fn.index] = visiting
		r := fn.reads
		ok := !r.input && !r.data && !r.varies &&
			len(fn.params) >= 2 && fn.params[0] == ir.Input && fn.params[1] == ir.Data
		for _, root := range varying {
			ok = ok && !r.roots[root]
		}
		for _, callee := range r.callees {
			ok = ok && fixed(callee)
		}
		state[fn.index] = no
		if ok {
			state[fn.index] = yes
		}
		return ok
	}
	c.constant = make([]bool, len(p.funcs))
	for i, fn := range p.funcs {
		c.constant[i] = fn.memo && fixed(fn)
	}
	c.values = make([]atomic.Pointer[memo], len(p.funcs))
	c.pool = &sync.Pool{}
	c.pool.New = c.newEval
	return &c
}

// function is a planned function (a rule, a Rego function, or the query
// itself) with its frame size.
type function struct {
	name   string
	params []ir.Local
	ret    ir.Local
	blocks []*ir.Block
	locals int  // frame size: the highest local it names, plus one
	memo   bool // a rule of input and data only: its value is kept per evaluation
	index  int  // its slot in an evaluation's memo
	reads  reads
	// copies are the copies of parameters into locals the first block
	// starts with (paramCopies), rest that block without them: a call of
	// parameters that hold terms makes the copies as it starts and runs
	// rest instead.
	copies []paramCopy
	rest   *ir.Block
}

// paramCopy is an AssignVarStmt copying a parameter (params[param]) into
// another local.
type paramCopy struct {
	param  int
	target ir.Local
}

// reads is what a function's statements read, for Constants: input; data
// other than by a constant root key (data itself, or a key computed at run
// time); the root keys of data it reads; the planned functions it calls
// with its own input and data; and whether it does anything whose value
// may differ between two evaluations over the same data (varies: a with, a
// dynamic call, a builtin that is not a function of its arguments).
type reads struct {
	input, data, varies bool
	roots               map[string]bool
	callees             []*function
}

// variesBuiltins are the builtins not flagged Nondeterministic whose
// value or effect still depends on more than their arguments. The x509
// chain verifications read the clock (x509 verifies at time.Now() unless
// given a CurrentTime): a certificate valid now may have expired at the
// next evaluation.
var variesBuiltins = map[string]bool{
	"print": true, "internal.print": true, "trace": true, "opa.runtime": true,
	"rego.metadata.chain": true, "rego.metadata.rule": true,
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// deterministic says whether a builtin's value is a function of its
// arguments alone (one unknown to ast's table is not).
func deterministic(name string) bool {
	decl := ast.BuiltinMap[name]
	return decl != nil && !decl.Nondeterministic && !variesBuiltins[name]
}

// Deterministic says whether the builtin name's value is a function of its
// arguments alone, as Constants judges it: not the clock, randomness, the
// network, x509 verification at the current time, nor a builtin unknown to
// OPA's table.
func Deterministic(name string) bool { return deterministic(name) }

// call is a CallStmt resolved when the program is prepared: to a planned
// function or to a builtin.
type call struct {
	ir.Location
	fn      *function
	builtin *builtin
	loc     *ast.Location // for the builtin's errors
	args    []ir.Operand
	result  ir.Local
	// keep: an undefined call leaves result as it was (its value is made
	// into the variable the plan copied it to: copied).
	keep bool
}

// dotInto is a read of input made into the variable the plan copied it to
// (copied): an undefined one leaves the variable as it was.
type dotInto struct{ *ir.DotStmt }

// assignOnce is an AssignVarOnceStmt (the planner's assignment of a
// rule's value) with what its conflict reports, in topdown's words.
type assignOnce struct {
	*ir.AssignVarOnceStmt
	conflict string
}

// saveData is the planner's copy of data before a with replaces part of
// it, and restoreData the with that puts the copy back for the rest of
// the expression's body (planWith): the slot is copied as it is, data
// unread and found by its storage keys — not read whole, as a use of the
// copy's value would.
type (
	saveData    struct{ *ir.AssignVarStmt }
	restoreData struct{ *ir.WithStmt }
)

// builtin is a topdown builtin the plan calls.
type builtin struct {
	name     string
	fn       topdown.BuiltinFunc
	relation bool // it yields any number of values (walk): the plan scans an array of them
	// void: it has no value (internal.print): the planner does not test
	// its result, and the call is never undefined.
	void bool
}

// ErrUnsupported is returned by New for a plan using what the interpreter
// does not implement, and by Plan for a query OPA's planner cannot plan;
// the query is then evaluated by topdown.
var ErrUnsupported = errors.New("vm: unsupported")

// New prepares a plan with exactly one query. Builtins are topdown's own
// (concat's common call is made here, with topdown's answer: concat.go).
func New(policy *ir.Policy) (*Program, error) {
	if policy.Plans == nil || len(policy.Plans.Plans) != 1 {
		return nil, fmt.Errorf("%w: a policy with one plan is needed", ErrUnsupported)
	}
	p := &Program{byPath: map[string]*function{}, literals: map[*ast.Term]struct{}{}, steps: new(atomic.Uint64)}
	if s := policy.Static; s != nil {
		for _, c := range s.Strings {
			p.stringTerms = append(p.stringTerms, ast.StringTerm(c.Value))
		}
		for _, c := range s.Files {
			p.files = append(p.files, c.Value)
		}
	}
	byName := map[string]*function{}
	if policy.Funcs != nil {
		for i, f := range policy.Funcs.Funcs {
			fn := &function{name: f.Name, params: f.Params, ret: f.Return, blocks: f.Blocks, index: i,
				memo: len(f.Params) == 2 && f.Params[0] == ir.Input && f.Params[1] == ir.Data}
			p.funcs = append(p.funcs, fn)
			byName[f.Name] = fn
			if len(f.Path) > 0 {
				p.byPath[strings.Join(f.Path, "\x00")] = fn
			}
		}
	}
	plan := policy.Plans.Plans[0]
	p.plan = &function{name: plan.Name, params: []ir.Local{ir.Input, ir.Data}, blocks: plan.Blocks, index: -1}
	r := &resolver{p: p, byName: byName, builtins: map[string]*builtin{}}
	for _, fn := range append(p.funcs, p.plan) {
		if err := r.resolve(fn); err != nil {
			return nil, err
		}
	}
	for name := range r.builtins {
		p.clock = p.clock || !deterministic(name)
	}
	p.pool = &sync.Pool{}
	p.pool.New = p.newEval
	return p, nil
}

// resolver prepares the functions of a program.
type resolver struct {
	p        *Program
	byName   map[string]*function
	builtins map[string]*builtin
	max      ir.Local // the highest local the function names
	conflict string   // what a conflict in the function reports
	// withs are the locals a with without a path puts into data in the
	// function, saves those of them that are copies of data (saveData).
	withs, saves map[ir.Local]bool
	fn           *function // the function being resolved
	// named counts the statements of fn that name each local (named),
	// copies the copies of it right after it was made (copies).
	named, copies map[ir.Local]int
	// fresh are the resets of a new frame's locals (freshResets).
	fresh map[ir.Stmt]bool
	// naming lists the statements of fn that name each local (namings),
	// termLocals the locals known to hold terms or not (terms).
	naming     map[ir.Local][]ir.Stmt
	termLocals map[ir.Local]bool
}

// resolve sizes fn's frame and replaces its CallStmts with calls and its
// AssignVarOnceStmts with assignOnces (a copy of each block that holds
// one: the ir.Policy is not changed).
func (r *resolver) resolve(fn *function) error {
	r.fn = fn
	fn.blocks = returned(fn)
	r.max = ir.Data
	for _, l := range fn.params {
		r.max = maxLocal(r.max, l)
	}
	r.max = maxLocal(r.max, fn.ret)
	// A function's name is its group and its rule's ref: g0.data.test.q.
	_, ref, _ := strings.Cut(fn.name, ".")
	r.withs, r.saves = map[ir.Local]bool{}, map[ir.Local]bool{}
	for _, b := range fn.blocks {
		_ = ir.Walk(withsOf(r.withs), b)
	}
	r.conflict = "rule " + ref + " produced conflicting values"
	if len(fn.params) > 2 {
		r.conflict = "function " + ref + " produced conflicting values for the same inputs"
	}
	r.named, r.copies = map[ir.Local]int{}, map[ir.Local]int{}
	r.naming, r.termLocals = map[ir.Local][]ir.Stmt{}, map[ir.Local]bool{}
	r.fresh = map[ir.Stmt]bool{}
	seen := map[ir.Local]bool{}
	for _, b := range fn.blocks {
		named(b.Stmts, r.named)
		namings(b.Stmts, r.naming)
	}
	for _, b := range fn.blocks {
		copies(b.Stmts, r.copies, r.terms)
		freshResets(b.Stmts, fn.params, seen, false, r.fresh)
	}
	var err error
	fn.blocks, err = r.blocks(fn.blocks)
	fn.locals = int(r.max) + 1
	fn.copies, fn.rest = paramCopies(fn)
	return err
}

// paramCopies are the copies of fn's parameters into locals of their own
// its first block starts with (the planner's: every function's block
// begins so, some 15 statements of a decision), and that block without
// them. A copy of a parameter that holds a term is that term in the local:
// made when the call starts, it is the statement's effect at the same
// point (nothing runs between), without the statement. The target is no
// parameter (the copies are made in turn, from the parameters as passed).
func paramCopies(fn *function) ([]paramCopy, *ir.Block) {
	if len(fn.blocks) == 0 {
		return nil, nil
	}
	var cs []paramCopy
	stmts := fn.blocks[0].Stmts
	for _, s := range stmts {
		x, ok := s.(*ir.AssignVarStmt)
		if !ok {
			break
		}
		src, ok := x.Source.Value.(ir.Local)
		i := slices.Index(fn.params, src)
		if !ok || i < 0 || slices.Contains(fn.params, x.Target) {
			break
		}
		cs = append(cs, paramCopy{param: i, target: x.Target})
	}
	if len(cs) == 0 {
		return nil, nil
	}
	return cs, &ir.Block{Stmts: stmts[len(cs):]}
}

// named counts, by local, the statements of stmts (and of the blocks in
// them) that name it, read or written.
func named(stmts []ir.Stmt, n map[ir.Local]int) {
	for _, s := range stmts {
		inner := fields(s, func(l ir.Local) { n[l]++ })
		for _, b := range inner {
			named(b.Stmts, n)
		}
	}
}

// fields calls each with every local s names itself and returns the
// blocks in it: every field of the statement that is a local, an operand
// or a block, found by reflection so that no kind of statement is passed
// over.
func fields(s ir.Stmt, each func(ir.Local)) []*ir.Block {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	v = v.Elem()
	var blocks []*ir.Block
	for i := range v.NumField() {
		switch f := v.Field(i).Interface().(type) {
		case ir.Local:
			each(f)
		case ir.Operand:
			if l, ok := f.Value.(ir.Local); ok {
				each(l)
			}
		case []ir.Local:
			for _, l := range f {
				each(l)
			}
		case []ir.Operand:
			for _, o := range f {
				if l, ok := o.Value.(ir.Local); ok {
					each(l)
				}
			}
		case *ir.Block:
			blocks = append(blocks, f)
		case []*ir.Block:
			blocks = append(blocks, f...)
		}
	}
	return blocks
}

// freshResets finds the ResetLocalStmts of a function that reset a local
// of a new frame (every slot but the parameters is empty when a call
// starts: call): run once per call (in no scan's block), with no statement
// before them, in the order they run, naming the local. They are not run:
// every rule's first statement is one. seen are the locals named so far.
func freshResets(stmts []ir.Stmt, params []ir.Local, seen map[ir.Local]bool, inScan bool, fresh map[ir.Stmt]bool) {
	for _, s := range stmts {
		if x, ok := s.(*ir.ResetLocalStmt); ok && !inScan && !seen[x.Target] && !slices.Contains(params, x.Target) {
			fresh[s] = true
		}
		inner := fields(s, func(l ir.Local) { seen[l] = true })
		_, scan := s.(*ir.ScanStmt)
		for _, b := range inner {
			freshResets(b.Stmts, params, seen, inScan || scan, fresh)
		}
	}
}

// returned is fn's blocks with its value made into its return local: the
// planner makes a rule's or a function's value into a local of its own and
// copies it into the return local in a block of its own, [IsDefinedStmt
// value, AssignVarOnceStmt value → return], two statements of every call.
// Where that block runs whenever the value was set (it is one of fn's
// blocks, or a block of a BlockStmt in one of them, an else chain's, that
// no break leaves and outside which the value is not set), no statement
// before it names the return local (empty until then) and none after it
// the value's local, the two are one local, the return local, and the
// block is left empty: the return local then holds what the copy would
// have put there, the value or nothing. fn's blocks are not changed.
func returned(fn *function) []*ir.Block {
	var order []ir.Stmt // fn's statements in the order they run, blocks in place
	var copying *ir.Block
	var within *ir.BlockStmt // the statement whose block copying is, if not fn's own
	at, value := -1, ir.Local(-1)
	// depth: 0 for fn's blocks (each runs, whatever the one before did:
	// call), 1 for the blocks of a BlockStmt in one of them (an else
	// chain's), more below.
	var walk func(blocks []*ir.Block, depth int, owner *ir.BlockStmt)
	walk = func(blocks []*ir.Block, depth int, owner *ir.BlockStmt) {
		for _, b := range blocks {
			if at < 0 && depth <= 1 && len(b.Stmts) == 2 {
				d, ok1 := b.Stmts[0].(*ir.IsDefinedStmt)
				a, ok2 := b.Stmts[1].(*ir.AssignVarOnceStmt)
				if ok1 && ok2 && isLocal(a.Source, d.Source) && a.Target == fn.ret && d.Source != fn.ret {
					copying, within, at, value = b, owner, len(order), d.Source
				}
			}
			for _, s := range b.Stmts {
				order = append(order, s)
				x, block := s.(*ir.BlockStmt)
				if !block {
					walk(fields(s, func(ir.Local) {}), 2, nil)
					continue
				}
				walk(x.Blocks, depth+1, x)
			}
		}
	}
	walk(fn.blocks, 0, nil)
	if at < 0 || slices.Contains(fn.params, value) || slices.Contains(fn.params, fn.ret) {
		return fn.blocks
	}
	// Inside a BlockStmt, the copying block runs after any of its blocks
	// that set the value only if none breaks out of it, and the value is
	// set nowhere else (a reset of it empties what is empty).
	inside := map[ir.Stmt]bool{}
	if within != nil {
		if escapes(within.Blocks, 1) {
			return fn.blocks
		}
		var mark func(blocks []*ir.Block)
		mark = func(blocks []*ir.Block) {
			for _, b := range blocks {
				for _, s := range b.Stmts {
					inside[s] = true
					mark(fields(s, func(ir.Local) {}))
				}
			}
		}
		mark(within.Blocks)
	}
	ok := true
	for i, s := range order {
		if i == at || i == at+1 {
			continue
		}
		_, reset := s.(*ir.ResetLocalStmt)
		fields(s, func(l ir.Local) {
			ok = ok && !(i < at && l == fn.ret) && !(i > at+1 && l == value) &&
				!(within != nil && !inside[s] && !reset && l == value)
		})
	}
	if !ok {
		return fn.blocks
	}
	out, err := renamedBlocks(fn.blocks, value, fn.ret, copying)
	if err != nil {
		return fn.blocks
	}
	return out
}

// renamedBlocks is blocks with every statement naming from naming to
// instead (copies: blocks are not changed), and drop empty.
func renamedBlocks(blocks []*ir.Block, from, to ir.Local, drop *ir.Block) ([]*ir.Block, error) {
	out := make([]*ir.Block, len(blocks))
	for i, b := range blocks {
		out[i] = &ir.Block{}
		if b == drop {
			continue
		}
		for _, s := range b.Stmts {
			c, err := renamed(s, from, to, drop)
			if err != nil {
				return nil, err
			}
			out[i].Stmts = append(out[i].Stmts, c)
		}
	}
	return out, nil
}

// renamed is a copy of s naming to where it names from, its blocks
// renamed; an error for a statement it cannot copy.
func renamed(s ir.Stmt, from, to ir.Local, drop *ir.Block) (ir.Stmt, error) {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("vm: statement %T", s)
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	local := func(l ir.Local) ir.Local {
		if l == from {
			return to
		}
		return l
	}
	operand := func(o ir.Operand) ir.Operand {
		if l, ok := o.Value.(ir.Local); ok {
			return ir.Operand{Value: local(l)}
		}
		return o
	}
	for i := range c.Elem().NumField() {
		f := c.Elem().Field(i)
		var nv any
		switch x := f.Interface().(type) {
		case ir.Local:
			nv = local(x)
		case ir.Operand:
			nv = operand(x)
		case []ir.Local:
			ls := make([]ir.Local, len(x))
			for j, l := range x {
				ls[j] = local(l)
			}
			nv = ls
		case []ir.Operand:
			os := make([]ir.Operand, len(x))
			for j, o := range x {
				os[j] = operand(o)
			}
			nv = os
		case *ir.Block:
			bs, err := renamedBlocks([]*ir.Block{x}, from, to, drop)
			if err != nil {
				return nil, err
			}
			nv = bs[0]
		case []*ir.Block:
			bs, err := renamedBlocks(x, from, to, drop)
			if err != nil {
				return nil, err
			}
			nv = bs
		default:
			continue
		}
		if !f.CanSet() {
			return nil, fmt.Errorf("vm: statement %T", s)
		}
		f.Set(reflect.ValueOf(nv))
	}
	return c.Interface().(ir.Stmt), nil
}

// breaks is how a BlockStmt of BlockStmts and BreakStmts only ends, as
// the statement would end it (stmt): stop and index; known is false for
// one that holds any other statement.
func breaks(x *ir.BlockStmt) (stop bool, index uint32, known bool) {
	for _, b := range x.Blocks {
		stop, index, known := blockBreaks(b)
		if !known {
			return false, 0, false
		}
		if stop {
			return true, index, true
		}
	}
	return false, 0, true
}

// blockBreaks is how a block of BlockStmts and BreakStmts only ends (block).
func blockBreaks(b *ir.Block) (bool, uint32, bool) {
	for _, s := range b.Stmts {
		var stop, known bool
		var index uint32
		switch x := s.(type) {
		case *ir.BreakStmt:
			stop, index, known = true, x.Index, true
		case *ir.BlockStmt:
			stop, index, known = breaks(x)
		}
		switch {
		case !known:
			return false, 0, false
		case !stop:
			continue
		case index == 0:
			return false, 0, true
		}
		return true, index - 1, true
	}
	return false, 0, true
}

// A made value's copy: the planner makes a value into a local of its own
// (a call's result, a read, a scan's key and value) and copies it at once
// into the variable it is for (AssignVarStmt), a fifth of a decision's
// statements. Where the made local is read by nothing but such copies, the
// value is made into the variable itself and the copy is not run.

// copies counts, by local, the copies of it made right after a statement
// that made it (copyOf), in stmts and the blocks in them.
func copies(stmts []ir.Stmt, n map[ir.Local]int, terms func(ir.Local) bool) {
	for i, s := range stmts {
		if i+1 < len(stmts) {
			if made, ok := makes(s, terms); ok && copyOf(stmts[i+1], made) {
				n[made] += 2
			}
		}
		if set, adds, _, ok := filled(stmts[i:]); ok {
			n[set] += 2 + adds
		}
		if x, ok := s.(*ir.ScanStmt); ok {
			for _, c := range x.Block.Stmts[:min(2, len(x.Block.Stmts))] {
				for _, made := range []ir.Local{x.Key, x.Value} {
					if copyOf(c, made) {
						n[made] += 2
					}
				}
			}
		}
		v := reflect.ValueOf(s)
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			continue
		}
		v = v.Elem()
		for i := range v.NumField() {
			switch f := v.Field(i).Interface().(type) {
			case *ir.Block:
				copies(f.Stmts, n, terms)
			case []*ir.Block:
				for _, b := range f {
					copies(b.Stmts, n, terms)
				}
			}
		}
	}
}

// makes is the local a statement makes a term into, when it is a call or
// a read of input (input is a term in every frame: a with on it sets a
// term) — not a read of data, which a copy would read whole.
func makes(s ir.Stmt, terms func(ir.Local) bool) (ir.Local, bool) {
	switch x := s.(type) {
	case *ir.CallStmt:
		return x.Result, true
	case *ir.DotStmt:
		src, ok := x.Source.Value.(ir.Local)
		return x.Target, ok && terms(src)
	}
	return 0, false
}

// terms says whether a local of fn holds a term wherever it is set, never
// data (a Document, or a term read from data, which a copy reads whole and
// strips of its storage keys): input; a local no parameter, set only by
// statements that set terms (a call, a copy of anything but data, a make, an
// add, a scan's key or value, a read of a local that holds terms) and
// otherwise only read. Any other statement naming it, a with, data or a
// parameter: not.
func (r *resolver) terms(l ir.Local) bool {
	if l == ir.Input {
		return true
	}
	if l == ir.Data || slices.Contains(r.fn.params, l) {
		return false
	}
	if v, ok := r.termLocals[l]; ok {
		return v
	}
	r.termLocals[l] = false // a cycle is not known to hold terms
	ok := true
	for _, s := range r.naming[l] {
		switch x := s.(type) {
		case *ir.DotStmt:
			if x.Target == l {
				src, local := x.Source.Value.(ir.Local)
				ok = ok && local && src != l && r.terms(src)
			}
		case *ir.AssignVarStmt:
			ok = ok && !(x.Target == l && isLocal(x.Source, ir.Data))
		case *ir.CallStmt, *ir.AssignVarOnceStmt, *ir.ScanStmt, *ir.EqualStmt, *ir.NotEqualStmt,
			*ir.IsDefinedStmt, *ir.IsUndefinedStmt, *ir.SetAddStmt, *ir.ArrayAppendStmt,
			*ir.ObjectInsertStmt, *ir.ObjectInsertOnceStmt, *ir.MakeSetStmt, *ir.MakeArrayStmt,
			*ir.MakeObjectStmt, *ir.MakeNullStmt, *ir.MakeNumberIntStmt, *ir.MakeNumberRefStmt,
			*ir.AssignIntStmt, *ir.LenStmt, *ir.ResetLocalStmt, *ir.ResultSetAddStmt,
			*ir.IsArrayStmt, *ir.IsObjectStmt, *ir.IsSetStmt, *ir.ReturnLocalStmt:
		default:
			ok = false
		}
	}
	r.termLocals[l] = ok
	return ok
}

// namings lists, by local, the statements of stmts (and of the blocks in
// them) that name it themselves.
func namings(stmts []ir.Stmt, n map[ir.Local][]ir.Stmt) {
	for _, s := range stmts {
		var seen []ir.Local
		inner := fields(s, func(l ir.Local) {
			if !slices.Contains(seen, l) {
				seen = append(seen, l)
				n[l] = append(n[l], s)
			}
		})
		for _, b := range inner {
			namings(b.Stmts, n)
		}
	}
}

// copyOf says whether s copies made into another local.
func copyOf(s ir.Stmt, made ir.Local) bool {
	cp, ok := s.(*ir.AssignVarStmt)
	return ok && isLocal(cp.Source, made) && cp.Target != made
}

// onlyCopied says whether every statement of the function that names l is
// a copy of it right after it was made, or that statement: l is read by
// nothing else, so a value made into the copy's variable instead is never
// missed. Input and data are never.
func (r *resolver) onlyCopied(l ir.Local) bool {
	return l != ir.Input && l != ir.Data && r.copies[l] > 0 && r.named[l] == r.copies[l]
}

// filled is the planner's comprehension of a set at the start of stmts: a
// MakeSetStmt, a BlockStmt that names the set only to add to it (adds
// times) and cannot leave the block around it (no break out of it), and
// the copy of the set into its variable, which the block does not name.
// Made in the variable, the set is there, filled, where the copy would
// have put it, and nothing reads the variable in between.
func filled(stmts []ir.Stmt) (set ir.Local, adds int, into ir.Local, ok bool) {
	if len(stmts) < 3 {
		return 0, 0, 0, false
	}
	mk, ok1 := stmts[0].(*ir.MakeSetStmt)
	b, ok2 := stmts[1].(*ir.BlockStmt)
	if !ok1 || !ok2 || !copyOf(stmts[2], mk.Target) {
		return 0, 0, 0, false
	}
	set, into = mk.Target, stmts[2].(*ir.AssignVarStmt).Target
	n := map[ir.Local]int{}
	named([]ir.Stmt{b}, n)
	adds = setAdds(b.Blocks, set)
	if n[into] > 0 || adds < 0 || n[set] != adds || escapes(b.Blocks, 1) {
		return 0, 0, 0, false
	}
	return set, adds, into, true
}

// setAdds counts the SetAddStmts into set in blocks (-1 when one adds set
// to itself).
func setAdds(blocks []*ir.Block, set ir.Local) int {
	adds := 0
	for _, b := range blocks {
		for _, s := range b.Stmts {
			if x, ok := s.(*ir.SetAddStmt); ok && x.Set == set {
				if isLocal(x.Value, set) {
					return -1
				}
				adds++
			}
			n := setAdds(fields(s, func(ir.Local) {}), set)
			if n < 0 {
				return -1
			}
			adds += n
		}
	}
	return adds
}

// escapes says whether a break in blocks, depth blocks deep, leaves more
// blocks than it is in.
func escapes(blocks []*ir.Block, depth uint32) bool {
	for _, b := range blocks {
		for _, s := range b.Stmts {
			if x, ok := s.(*ir.BreakStmt); ok && x.Index >= depth {
				return true
			}
			if escapes(fields(s, func(ir.Local) {}), depth+1) {
				return true
			}
		}
	}
	return false
}

// copied is the variable stmts[0] may make its value into, leaving out
// the copy stmts[1]: made there, the value is in the variable when the
// statements after read it, as after the copy. An undefined one leaves the
// variable as it was and stops the block (keep), as before.
func (r *resolver) copied(stmts []ir.Stmt) (ir.Local, bool) {
	if len(stmts) < 2 {
		return 0, false
	}
	made, ok := makes(stmts[0], r.terms)
	if !ok || !copyOf(stmts[1], made) || !r.onlyCopied(made) {
		return 0, false
	}
	into := stmts[1].(*ir.AssignVarStmt).Target
	return into, into != ir.Input && into != ir.Data
}

// withsOf records the locals withs without a path put into data.
type withsOf map[ir.Local]bool

func (s withsOf) Before(any) {}
func (s withsOf) After(any)  {}
func (s withsOf) Visit(x any) (ir.Visitor, error) {
	if w, ok := x.(*ir.WithStmt); ok && w.Local == ir.Data && len(w.Path) == 0 {
		if l, ok := w.Value.Value.(ir.Local); ok {
			s[l] = true
		}
	}
	return s, nil
}

// isLocal says whether o is the local l.
func isLocal(o ir.Operand, l ir.Local) bool {
	v, ok := o.Value.(ir.Local)
	return ok && v == l
}

func maxLocal(a, b ir.Local) ir.Local {
	if b > a {
		return b
	}
	return a
}

func (r *resolver) blocks(blocks []*ir.Block) ([]*ir.Block, error) {
	out := make([]*ir.Block, len(blocks))
	for i, b := range blocks {
		nb, err := r.block(b)
		if err != nil {
			return nil, err
		}
		out[i] = nb
	}
	return out, nil
}

func (r *resolver) block(b *ir.Block) (*ir.Block, error) {
	out := &ir.Block{Stmts: make([]ir.Stmt, 0, len(b.Stmts))}
	for i := 0; i < len(b.Stmts); i++ {
		s, err := r.stmt(b.Stmts[i])
		if err != nil {
			return nil, err
		}
		if into, ok := r.copied(b.Stmts[i:]); ok {
			// The copy is checked, not run (copied).
			if _, err := r.stmt(b.Stmts[i+1]); err != nil {
				return nil, err
			}
			switch x := s.(type) {
			case *call:
				c := *x
				c.result, c.keep = into, true
				s = &c
			case *ir.DotStmt:
				s = &dotInto{DotStmt: &ir.DotStmt{Source: x.Source, Key: x.Key, Target: into, Location: x.Location}}
			}
			out.Stmts = append(out.Stmts, s)
			i++
			continue
		}
		if r.fresh[b.Stmts[i]] {
			continue // a new frame's local is empty already (freshResets)
		}
		if res, err := r.resultBinding(b.Stmts[i:]); err != nil {
			return nil, err
		} else if res != nil {
			out.Stmts = append(out.Stmts, res)
			i += 2
			continue
		}
		if set, _, into, ok := filled(b.Stmts[i:]); ok && r.onlyCopied(set) && into != ir.Input && into != ir.Data {
			// The set is made in its variable; the copy is checked, not
			// run (filled).
			block, err := renamed(b.Stmts[i+1], set, into, nil)
			if err != nil {
				return nil, err
			}
			made, err := r.stmt(&ir.MakeSetStmt{Target: into, Location: s.(*ir.MakeSetStmt).Location})
			if err != nil {
				return nil, err
			}
			if block, err = r.stmt(block); err != nil {
				return nil, err
			}
			if _, err := r.stmt(b.Stmts[i+2]); err != nil {
				return nil, err
			}
			out.Stmts = append(out.Stmts, made, block)
			i += 2
			continue
		}
		if x, ok := s.(*ir.BlockStmt); ok {
			if stop, index, known := breaks(x); known {
				// Blocks of breaks only: their end is the same on every
				// run, and it is worked out here.
				if stop {
					out.Stmts = append(out.Stmts, &ir.BreakStmt{Index: index, Location: x.Location})
				}
				continue
			}
		}
		switch s.(type) {
		case *ir.ReturnLocalStmt, *ir.NopStmt:
			// They do nothing here (the function names its return
			// local): every rule's last block is one, and each run
			// of one was a statement's dispatch for nothing.
			continue
		}
		lit, n := r.literal(b.Stmts[i:])
		folded := n // the inserts a constLiteral would stand for (objectLiteral.steps)
		if lit != nil && !fillsWithLocals(b.Stmts[i:]) {
			// The statements that fill it are checked, not run.
			for _, fill := range b.Stmts[i+1 : i+1+n] {
				if _, err := r.stmt(fill); err != nil {
					return nil, err
				}
			}
			out.Stmts = append(out.Stmts, lit)
			i += n
			continue
		}
		if x, ok := s.(*ir.MakeObjectStmt); ok {
			s = &makeObject{MakeObjectStmt: x, capacity: inserts(b.Stmts[i+1:], x.Target)}
		}
		if lit, n, err := r.arrayLiteral(s, b.Stmts[i+1:]); err != nil {
			return nil, err
		} else if lit != nil {
			out.Stmts = append(out.Stmts, lit)
			i += n
			continue
		}
		if lit, n, err := r.objectLiteral(s, b.Stmts[i+1:], folded); err != nil {
			return nil, err
		} else if lit != nil {
			out.Stmts = append(out.Stmts, lit)
			i += n
			continue
		}
		out.Stmts = append(out.Stmts, s)
	}
	return out, nil
}

// numberRef is a MakeNumberRefStmt with its number made when the plan is
// prepared: a number is never changed, so every evaluation shares it (made
// on each, its term and boxed value were a tenth of a decision's
// allocations).
type numberRef struct {
	*ir.MakeNumberRefStmt
	t *ast.Term
}

// constLiteral is a set, array or object literal of constants (a make
// followed by the adds of constants that fill it), made once when the
// plan is prepared and shared by every evaluation. Nothing changes it: an
// add into a local that holds one adds to a copy (Program.literals).
type constLiteral struct {
	ir.Location
	target ir.Local
	t      *ast.Term
}

// literal is the constLiteral that stmts start with, and how many adds
// after the make it stands for; nil when they do not start with one.
func (r *resolver) literal(stmts []ir.Stmt) (*constLiteral, int) {
	var target ir.Local
	var set ast.Set
	var elems []*ast.Term
	var obj ast.Object
	array := false
	switch x := stmts[0].(type) {
	case *ir.MakeSetStmt:
		target, set = x.Target, ast.NewSet()
	case *ir.MakeArrayStmt:
		target, array = x.Target, true
	case *ir.MakeObjectStmt:
		target, obj = x.Target, ast.NewObject()
	default:
		return nil, 0
	}
	n := 0
	for _, s := range stmts[1:] {
		var added bool
		switch x := s.(type) {
		case *ir.SetAddStmt:
			if v := r.constTerm(x.Value); set != nil && x.Set == target && v != nil {
				set.Add(v)
				added = true
			}
		case *ir.ArrayAppendStmt:
			if v := r.constTerm(x.Value); array && x.Array == target && v != nil {
				elems = append(elems, v)
				added = true
			}
		case *ir.ObjectInsertStmt:
			k, v := r.constTerm(x.Key), r.constTerm(x.Value)
			if obj != nil && x.Object == target && k != nil && v != nil {
				obj.Insert(k, v)
				added = true
			}
		}
		if !added {
			break
		}
		n++
	}
	if n == 0 {
		return nil, 0
	}
	lit := &constLiteral{Location: *stmts[0].GetLocation(), target: target}
	switch {
	case set != nil:
		lit.t = ast.NewTerm(set)
	case obj != nil:
		lit.t = ast.NewTerm(obj)
	default:
		// Its elements' slice at its length: appending to the array
		// (ArrayAppendStmt) then always copies them, never writes into
		// the slice every evaluation shares.
		lit.t = ast.NewTerm(ast.NewArray(slices.Clip(elems)...))
	}
	settle(lit.t)
	r.p.literals[lit.t] = struct{}{}
	return lit, n
}

// constTerm is the term of a constant operand (a string or a boolean), nil
// for a local or a constant out of range.
func (r *resolver) constTerm(o ir.Operand) *ast.Term {
	switch v := o.Value.(type) {
	case ir.StringIndex:
		if r.constant(int(v)) == nil {
			return r.p.stringTerms[v]
		}
	case ir.Bool:
		return ast.InternedTerm(bool(v))
	}
	return nil
}

// makeObject is a MakeObjectStmt with the keys its block inserts into the
// object: an object literal is made at its size, not grown key by key.
type makeObject struct {
	*ir.MakeObjectStmt
	capacity int
}

// objectLiteral is the planner's object literal made whole: a
// MakeObjectStmt (made, resolved) and the ObjectInsertStmts into its
// object right after it (rest), when there are two or more. Made key by
// key, every pair was an allocation of its own (some 25 of a decision at
// 1M).
type objectLiteral struct {
	ir.Location
	target ir.Local
	pairs  [][2]ir.Operand
	// steps is what it counts beyond itself made whole: its inserts but
	// the leading constants' a constLiteral stood for before (steps/op
	// stays comparable with earlier commits).
	steps int
	// stmts are the make and the inserts, run in turn when the object
	// cannot be made whole (an undefined operand, keys that may be
	// equal): what the statements did, they do.
	stmts []ir.Stmt
}

// objectLiteral is the objectLiteral made and the statements of rest it
// stands for; nil when made is not a make of an object filled at once.
// folded is how many of them a constLiteral would stand for.
func (r *resolver) objectLiteral(made ir.Stmt, rest []ir.Stmt, folded int) (*objectLiteral, int, error) {
	mk, ok := made.(*makeObject)
	if !ok {
		return nil, 0, nil
	}
	lit := &objectLiteral{Location: mk.Location, target: mk.Target, stmts: []ir.Stmt{mk}}
	for _, s := range rest {
		x, ok := s.(*ir.ObjectInsertStmt)
		if !ok || x.Object != mk.Target || isLocal(x.Key, mk.Target) || isLocal(x.Value, mk.Target) {
			break
		}
		rs, err := r.stmt(x)
		if err != nil {
			return nil, 0, err
		}
		lit.stmts = append(lit.stmts, rs)
		lit.pairs = append(lit.pairs, [2]ir.Operand{x.Key, x.Value})
	}
	if len(lit.pairs) < 2 {
		return nil, 0, nil
	}
	lit.steps = len(lit.pairs) - folded
	return lit, len(lit.pairs), nil
}

// resultBinding is a result of the query added as the value of its one
// binding: the planner's MakeObjectStmt, an ObjectInsertStmt of a constant
// key and a local's value into the object, and the ResultSetAddStmt of
// the object, the object named nowhere else. Program.Eval takes the value
// out of the object again: made, the object was six allocations of every
// evaluation (Results makes it from the key and value).
type resultBinding struct {
	ir.Location
	key   *ast.Term
	value ir.Local
	// stmts are the three statements, run in turn when the value is
	// undefined: what they did, they do.
	stmts []ir.Stmt
}

// resultBinding is the resultBinding stmts start with, nil when they do
// not start with one.
func (r *resolver) resultBinding(stmts []ir.Stmt) (*resultBinding, error) {
	if len(stmts) < 3 {
		return nil, nil
	}
	mk, ok1 := stmts[0].(*ir.MakeObjectStmt)
	in, ok2 := stmts[1].(*ir.ObjectInsertStmt)
	add, ok3 := stmts[2].(*ir.ResultSetAddStmt)
	if !ok1 || !ok2 || !ok3 || in.Object != mk.Target || add.Value != mk.Target || r.named[mk.Target] != 3 {
		return nil, nil
	}
	key, ok := in.Key.Value.(ir.StringIndex)
	value, local := in.Value.Value.(ir.Local)
	if !ok || !local || value == mk.Target || r.constant(int(key)) != nil {
		return nil, nil
	}
	res := &resultBinding{Location: mk.Location, key: r.p.stringTerms[key], value: value}
	for _, s := range stmts[:3] {
		rs, err := r.stmt(s)
		if err != nil {
			return nil, err
		}
		if x, ok := rs.(*ir.MakeObjectStmt); ok {
			rs = &makeObject{MakeObjectStmt: x, capacity: 1}
		}
		res.stmts = append(res.stmts, rs)
	}
	return res, nil
}

// arrayLiteral is the planner's array literal made whole: a MakeArrayStmt
// and the ArrayAppendStmts into its array right after it, the first of a
// local (one of constants first is a constLiteral, which its appends
// copy). Appended in turn, each element was a new array and its term
// (ArrayAppendStmt copies its array's header).
type arrayLiteral struct {
	ir.Location
	target ir.Local
	elems  []ir.Operand
	// stmts are the make and the appends, run in turn when an element is
	// undefined or fails: what the statements did, they do.
	stmts []ir.Stmt
}

// arrayLiteral is the arrayLiteral made (resolved) starts and the
// statements of rest it stands for; nil when made is not a make of an
// array filled at once by a local first.
func (r *resolver) arrayLiteral(made ir.Stmt, rest []ir.Stmt) (*arrayLiteral, int, error) {
	mk, ok := made.(*ir.MakeArrayStmt)
	if !ok {
		return nil, 0, nil
	}
	lit := &arrayLiteral{Location: mk.Location, target: mk.Target, stmts: []ir.Stmt{mk}}
	for _, s := range rest {
		x, ok := s.(*ir.ArrayAppendStmt)
		if !ok || x.Array != mk.Target || isLocal(x.Value, mk.Target) {
			break
		}
		if _, local := x.Value.Value.(ir.Local); len(lit.elems) == 0 && !local {
			return nil, 0, nil
		}
		rs, err := r.stmt(x)
		if err != nil {
			return nil, 0, err
		}
		lit.stmts = append(lit.stmts, rs)
		lit.elems = append(lit.elems, x.Value)
	}
	if len(lit.elems) == 0 {
		return nil, 0, nil
	}
	return lit, len(lit.elems), nil
}

// fillsWithLocals says whether stmts start with an object's make and
// inserts into it right after, one of a local: an objectLiteral, made
// whole, rather than a constLiteral copied for the local's insert.
func fillsWithLocals(stmts []ir.Stmt) bool {
	mk, ok := stmts[0].(*ir.MakeObjectStmt)
	if !ok {
		return false
	}
	for _, s := range stmts[1:] {
		x, ok := s.(*ir.ObjectInsertStmt)
		if !ok || x.Object != mk.Target {
			return false
		}
		_, k := x.Key.Value.(ir.Local)
		_, v := x.Value.Value.(ir.Local)
		if k || v {
			return true
		}
	}
	return false
}

// inserts counts the statements of a block that insert into object.
func inserts(stmts []ir.Stmt, object ir.Local) int {
	n := 0
	for _, s := range stmts {
		switch x := s.(type) {
		case *ir.ObjectInsertStmt:
			if x.Object == object {
				n++
			}
		case *ir.ObjectInsertOnceStmt:
			if x.Object == object {
				n++
			}
		}
	}
	return n
}

// constant checks a string constant's index.
func (r *resolver) constant(i int) error {
	if i < 0 || i >= len(r.p.stringTerms) {
		return fmt.Errorf("vm: string constant %d out of range", i)
	}
	return nil
}

func (r *resolver) stmt(s ir.Stmt) (ir.Stmt, error) {
	p := r.p
	reads := &r.fn.reads
	// Every local a statement names goes through local: a use of input
	// or data is recorded (Constants), but for data's constant root keys
	// and the input and data a call passes on, recorded as such below.
	local := func(ls ...ir.Local) {
		for _, l := range ls {
			r.max = maxLocal(r.max, l)
			reads.input = reads.input || l == ir.Input
			reads.data = reads.data || l == ir.Data
		}
	}
	operand := func(os ...ir.Operand) error {
		for _, o := range os {
			switch v := o.Value.(type) {
			case ir.Local:
				local(v)
			case ir.StringIndex:
				if err := r.constant(int(v)); err != nil {
					return err
				}
			case ir.Bool:
			default:
				return fmt.Errorf("%w: operand %T", ErrUnsupported, o.Value)
			}
		}
		return nil
	}
	var err error
	switch x := s.(type) {
	case *ir.CallStmt:
		c := &call{Location: x.Location, args: x.Args, result: x.Result, loc: p.location(x.Location)}
		local(x.Result)
		args := x.Args
		fn, planned := r.byName[x.Func]
		if planned && len(args) >= 2 && isLocal(args[0], ir.Input) && isLocal(args[1], ir.Data) {
			// The callee's own input and data: what it reads of them
			// is its own reads.
			reads.callees = append(reads.callees, fn)
			args = args[2:]
		}
		if err := operand(args...); err != nil {
			return nil, err
		}
		if !planned {
			reads.varies = reads.varies || !deterministic(x.Func)
		}
		if planned {
			c.fn = fn
		} else if b, ok := r.builtins[x.Func]; ok {
			c.builtin = b
		} else if f := topdown.GetBuiltin(x.Func); f != nil {
			if x.Func == ast.Concat.Name {
				f = concat(f)
			}
			c.builtin = &builtin{name: x.Func, fn: f}
			if decl := ast.BuiltinMap[x.Func]; decl != nil {
				c.builtin.relation = decl.Relation
				c.builtin.void = decl.Decl.Result() == nil
			}
			r.builtins[x.Func] = c.builtin
		} else {
			return nil, fmt.Errorf("%w: function %q", ErrUnsupported, x.Func)
		}
		return c, nil
	case *ir.CallDynamicStmt:
		reads.varies = true
		local(x.Args...)
		local(x.Result)
		err = operand(x.Path...)
	case *ir.BlockStmt:
		nb, err := r.blocks(x.Blocks)
		if err != nil {
			return nil, err
		}
		return &ir.BlockStmt{Blocks: nb, Location: x.Location}, nil
	case *ir.ScanStmt:
		local(x.Source, x.Key, x.Value)
		c := *x
		// The copies of its key and value its block starts with are
		// checked, not run: the scan sets the variables (copied).
		body := *x.Block
	copies:
		for range min(2, len(body.Stmts)) {
			cp, ok := body.Stmts[0].(*ir.AssignVarStmt)
			if !ok || cp.Target == ir.Input || cp.Target == ir.Data {
				break
			}
			switch {
			case copyOf(cp, c.Key) && c.Key == x.Key && r.onlyCopied(c.Key) && cp.Target != c.Value:
				c.Key = cp.Target
			case copyOf(cp, c.Value) && c.Value == x.Value && r.onlyCopied(c.Value) && cp.Target != c.Key:
				c.Value = cp.Target
			default:
				break copies
			}
			if _, err := r.stmt(cp); err != nil {
				return nil, err
			}
			body.Stmts = body.Stmts[1:]
		}
		c.Block, err = r.block(&body)
		return &c, err
	case *ir.NotStmt:
		c := *x
		c.Block, err = r.block(x.Block)
		return &c, err
	case *ir.WithStmt:
		reads.varies = true
		local(x.Local)
		if err := operand(x.Value); err != nil {
			return nil, err
		}
		for _, i := range x.Path {
			if err := r.constant(i); err != nil {
				return nil, err
			}
		}
		nb, err := r.block(x.Block)
		if err != nil {
			return nil, err
		}
		c := *x
		c.Block = nb
		if l, ok := x.Value.Value.(ir.Local); ok && x.Local == ir.Data && len(x.Path) == 0 && r.saves[l] {
			return &restoreData{&c}, nil
		}
		return &c, nil
	case *ir.BreakStmt, *ir.NopStmt:
	case *ir.ReturnLocalStmt:
		local(x.Source)
	case *ir.DotStmt:
		local(x.Target)
		if i, ok := x.Key.Value.(ir.StringIndex); ok && isLocal(x.Source, ir.Data) && r.constant(int(i)) == nil {
			// data.<root>: a read of that root key only.
			if reads.roots == nil {
				reads.roots = map[string]bool{}
			}
			reads.roots[string(p.stringTerms[i].Value.(ast.String))] = true
			break
		}
		err = operand(x.Source, x.Key)
	case *ir.LenStmt:
		local(x.Target)
		err = operand(x.Source)
	case *ir.AssignIntStmt:
		local(x.Target)
	case *ir.AssignVarStmt:
		local(x.Target)
		if err := operand(x.Source); err != nil {
			return nil, err
		}
		if l, ok := x.Source.Value.(ir.Local); ok && l == ir.Data && r.withs[x.Target] {
			r.saves[x.Target] = true
			return &saveData{x}, nil
		}
	case *ir.AssignVarOnceStmt:
		local(x.Target)
		if err := operand(x.Source); err != nil {
			return nil, err
		}
		return &assignOnce{AssignVarOnceStmt: x, conflict: r.conflict}, nil
	case *ir.ResetLocalStmt:
		local(x.Target)
	case *ir.MakeNullStmt:
		local(x.Target)
	case *ir.MakeNumberIntStmt:
		local(x.Target)
	case *ir.MakeNumberRefStmt:
		local(x.Target)
		if err := r.constant(x.Index); err != nil {
			return nil, err
		}
		return &numberRef{MakeNumberRefStmt: x, t: ast.NewTerm(ast.Number(p.stringTerms[x.Index].Value.(ast.String)))}, nil
	case *ir.MakeArrayStmt:
		local(x.Target)
	case *ir.MakeObjectStmt:
		local(x.Target)
	case *ir.MakeSetStmt:
		local(x.Target)
	case *ir.EqualStmt:
		err = operand(x.A, x.B)
	case *ir.NotEqualStmt:
		err = operand(x.A, x.B)
	case *ir.IsArrayStmt:
		err = operand(x.Source)
	case *ir.IsObjectStmt:
		err = operand(x.Source)
	case *ir.IsSetStmt:
		err = operand(x.Source)
	case *ir.IsDefinedStmt:
		local(x.Source)
	case *ir.IsUndefinedStmt:
		local(x.Source)
	case *ir.ArrayAppendStmt:
		local(x.Array)
		err = operand(x.Value)
	case *ir.ObjectInsertStmt:
		local(x.Object)
		err = operand(x.Key, x.Value)
	case *ir.ObjectInsertOnceStmt:
		local(x.Object)
		err = operand(x.Key, x.Value)
	case *ir.ObjectMergeStmt:
		local(x.A, x.B, x.Target)
	case *ir.SetAddStmt:
		local(x.Set)
		err = operand(x.Value)
	case *ir.ResultSetAddStmt:
		local(x.Value)
	default:
		return nil, fmt.Errorf("%w: statement %T", ErrUnsupported, s)
	}
	return s, err
}

// settle sorts the keys of every set and object in t, before evaluations
// share it. OPA sorts them in place the first time they are iterated (once,
// under a sync.Once), while a union, a difference or a copy reads them as
// they lie, outside it: one evaluation iterating a shared value while
// another took its union was a data race. Settled, a value is only read.
func settle(t *ast.Term) {
	if t != nil {
		ast.WalkTerms(t, func(*ast.Term) bool { return false })
	}
}
