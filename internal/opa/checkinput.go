package opa

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// checkInputs are a check's input for the vm (inputValue's, with a vm's
// shared terms) made once and filled again for each decision, as an
// assignment's verdict input is (assignInputs): the input's objects were
// ten of an uncached decision's 127 allocations at 1M. A filled input is
// one decision's at a time (Policy.checkInputs, a pool): taken for one
// evaluation and given back once its decision is read (decisionOf: Go
// strings, sharing nothing of it; topdown, on a conflict, is given a copy),
// and the vm writes into no input. A check with a context or groups is
// built anew (inputValue).
type checkInputs struct {
	// input is the input's object by its resource's shape (none, a type, a
	// type and an id); resource the resource's object by shape, each held
	// by that shape's input only.
	input    [3]*ast.Term
	resource [2]*ast.Term
	// own are the terms of the strings no shared term holds, by shape —
	// each held by that shape's objects only —, their values replaced in
	// place for each decision: subject, system, action, type, id.
	own [3][5]ast.Term
}

// newCheckInputs makes the objects, their values placeholders until
// filled.
func newCheckInputs() *checkInputs {
	s := &checkInputs{}
	k := &inputKeys
	empty := ast.StringTerm("")
	s.resource[0] = ast.ObjectTerm([2]*ast.Term{k.typ, empty})
	s.resource[1] = ast.ObjectTerm([2]*ast.Term{k.typ, empty}, [2]*ast.Term{k.id, empty})
	s.input[0] = ast.ObjectTerm([2]*ast.Term{k.subject, empty}, [2]*ast.Term{k.system, empty}, [2]*ast.Term{k.action, empty})
	for shape := 1; shape < 3; shape++ {
		s.input[shape] = ast.ObjectTerm([2]*ast.Term{k.subject, empty}, [2]*ast.Term{k.system, empty}, [2]*ast.Term{k.action, empty},
			[2]*ast.Term{k.resource, s.resource[shape-1]})
	}
	// Keys sorted now (assignInputs: an insert of a key held already
	// leaves them as they are).
	for _, t := range append(s.input[:], s.resource[:]...) {
		t.Value.(ast.Object).Keys()
	}
	return s
}

// fills is whether c's input is one checkInputs fills: no context, no
// groups (those are built anew).
func fills(c permatrix.Check) bool { return c.Context == nil && len(c.Groups) == 0 }

// fill is the term of c's input (c fills), ts's strings shared as
// inputValue shares them, in the objects of s: valid until s is filled
// again.
func (s *checkInputs) fill(c permatrix.Check, ts terms) *ast.Term {
	shape := 0
	if r := c.Resource; r != nil {
		shape = 1
		if r.ID != "" {
			shape = 2
		}
	}
	k, own := &inputKeys, &s.own[shape]
	input := s.input[shape]
	obj := input.Value.(ast.Object)
	if shape > 0 {
		res := s.resource[shape-1]
		ro := res.Value.(ast.Object)
		put(ro, k.typ, ts.shared(c.Resource.Type), c.Resource.Type, &own[3])
		if shape == 2 {
			put(ro, k.id, nil, c.Resource.ID, &own[4])
		}
		// An object's hash is its values', summed again by an insert of a
		// key it holds (each walks every value): one an object, last.
		ro.Insert(k.typ, ro.Get(k.typ))
	}
	put(obj, k.subject, nil, c.Subject, &own[0])
	put(obj, k.system, ts.shared(c.System), c.System, &own[1])
	put(obj, k.action, ts.shared(c.Action), c.Action, &own[2])
	obj.Insert(k.subject, obj.Get(k.subject)) // for its hash (and the resource's, above)
	return input
}

// put puts at key in obj the shared term of str, or own holding str
// (shared nil), inserting it only if obj holds another term there: a
// value replaced in place is summed into obj's hash by the insert fill
// makes last.
func put(obj ast.Object, key, shared *ast.Term, str string, own *ast.Term) {
	t := shared
	if t == nil {
		t = own
		if cur, ok := t.Value.(ast.String); !ok || string(cur) != str {
			t.Value = ast.String(str)
		}
	}
	if obj.Get(key) != t {
		obj.Insert(key, t)
	}
}

// inputPool hands out filled inputs (assignInputs, checkInputs), one an
// evaluation at a time: a kept one, or newFill's.
type inputPool[T any] struct{ pool sync.Pool }

func (p *inputPool[T]) get(newFill func() *T) *T {
	if s, ok := p.pool.Get().(*T); ok {
		return s
	}
	return newFill()
}

func (p *inputPool[T]) put(s *T) { p.pool.Put(s) }
