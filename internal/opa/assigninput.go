package opa

import (
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
)

// assignInputs are an assignment's verdict input for the vm (AssignInput,
// as jsonTerm makes it with a vm's shared terms) made once and filled
// again for each verdict: its two objects were ten of an import line's 34
// allocations, and building them a fifth of its verdict's CPU. A filled
// input is one verdict's at a time (Policy.assignInputs, a pool): it is
// taken for one evaluation and given back once the verdict's lists are
// read — strings, which share nothing of it — and the vm writes into no
// input. An input with groups (a user's asserted groups) is built anew.
type assignInputs struct {
	// input is the input's object by its assignment's kind (role,
	// permission) and whether it names an actor; assignment the
	// assignment's object by kind. Each of the four inputs holds the
	// assignment object of its kind.
	input      [2][2]*ast.Term
	assignment [2]*ast.Term
	// own are the terms of the strings no shared term holds (a new
	// assignment's subject, an id, an actor), by kind — each held by
	// that kind's objects only —, their values replaced in place for
	// each verdict: id, subject, system, name, actor.
	own [2][5]ast.Term
}

// Keys of an assignment's verdict input: made once, shared by every
// filled input (the vm writes into no key).
var (
	keyOp, keyAssign, keyAssignment, keyActor = ast.StringTerm("op"), ast.StringTerm("assign"), ast.StringTerm("assignment"), ast.StringTerm("actor")
	keyID, keySubject, keySystem, keyScope    = ast.StringTerm("id"), ast.StringTerm("subject"), ast.StringTerm("system"), ast.StringTerm("scope")
	keyKinds                                  = [2]*ast.Term{ast.StringTerm("role"), ast.StringTerm("permission")}
)

// newAssignInputs makes the objects, their values placeholders until
// filled.
func newAssignInputs() *assignInputs {
	s := &assignInputs{}
	empty := ast.StringTerm("")
	for kind := range 2 {
		s.assignment[kind] = ast.ObjectTerm(
			[2]*ast.Term{keyID, empty}, [2]*ast.Term{keySubject, empty}, [2]*ast.Term{keySystem, empty},
			[2]*ast.Term{keyKinds[kind], empty}, [2]*ast.Term{keyScope, serviceScope})
		s.input[kind][0] = ast.ObjectTerm([2]*ast.Term{keyOp, keyAssign}, [2]*ast.Term{keyAssignment, s.assignment[kind]})
		s.input[kind][1] = ast.ObjectTerm([2]*ast.Term{keyOp, keyAssign}, [2]*ast.Term{keyAssignment, s.assignment[kind]},
			[2]*ast.Term{keyActor, empty})
		// Keys sorted now, as a shared object's are (OPA sorts them in
		// place when first iterated): an insert of a key held already
		// leaves them as they are.
		s.assignment[kind].Value.(ast.Object).Keys()
		s.input[kind][0].Value.(ast.Object).Keys()
		s.input[kind][1].Value.(ast.Object).Keys()
	}
	return s
}

// fill is the term of in, ts's strings shared (as jsonTerm's), in the
// objects of s: valid until s is filled again.
func (s *assignInputs) fill(in *AssignInput, ts terms) *ast.Term {
	a := &in.Assignment
	kind, name := 0, a.Role
	if a.Role == "" {
		kind, name = 1, a.Permission
	}
	scope := serviceScope
	if a.Scope != permatrix.ServiceScope {
		scope = scopeTerm(a.Scope)
	}
	obj, own := s.assignment[kind].Value.(ast.Object), &s.own[kind]
	set(obj, keyID, a.ID, &own[0], ts)
	set(obj, keySubject, a.Subject, &own[1], ts)
	set(obj, keySystem, a.System, &own[2], ts)
	set(obj, keyKinds[kind], name, &own[3], ts)
	// An object's hash is its values', summed again by an insert (each
	// walks every value): one insert after the values are in place,
	// rather than one a value (six a verdict were more than the two
	// objects built anew cost).
	obj.Insert(keyScope, scope)
	actor := 0
	if in.Actor != "" {
		actor = 1
	}
	input := s.input[kind][actor]
	o := input.Value.(ast.Object)
	if actor == 1 {
		set(o, keyActor, in.Actor, &own[4], ts)
	}
	o.Insert(keyAssignment, s.assignment[kind]) // again, for its hash
	return input
}

// set puts str's term at key in obj — the shared one, or own holding
// str (put).
func set(obj ast.Object, key *ast.Term, str string, own *ast.Term, ts terms) {
	t, _ := sharedTerm(str, ts)
	put(obj, key, t, str, own)
}

// assignInputOf is input's AssignInput if it is one without groups (an
// input assignInputs fills), else nil.
func assignInputOf(input any) *AssignInput {
	var in *AssignInput
	switch x := input.(type) {
	case *AssignInput:
		in = x
	case AssignInput:
		in = &x
	}
	if in == nil || in.Groups != nil {
		return nil
	}
	return in
}
