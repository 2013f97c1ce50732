package opa

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// inputValue, the check's input built as AST for the evaluators, is
// Check.Input (the input the decision log records and stock opa is given)
// converted: for every shape of check, with the policy's shared terms and
// without.
func TestInputValueIsCheckInput(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	checks := []permatrix.Check{
		{Subject: "alice", System: "celonis-task-mining", Action: "view_project"},
		{Subject: "alice", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "alice", System: "blueprism", Action: "view_resource", Resource: &permatrix.Scope{Type: "service"}},
		{Subject: "alice", System: "blueprism", Action: "view_resource", Resource: &permatrix.Scope{Type: "resource_group"}},
		{Subject: "ü\u00a0x", System: "not a system", Action: "", Groups: []string{"g1", "g1", "ops"}},
		{Subject: "bob", System: "celonis-task-mining", Action: "create_project",
			Context:     map[string]any{"custom_project": true, "space": "s1", "n": 1.5, "list": []any{"a", nil, map[string]any{}}},
			MinRevision: 7},
		{Subject: "bob", System: "celonis-task-mining", Action: "create_project", Context: map[string]any{}, Groups: []string{}},
	}
	for _, c := range checks {
		convertsAsOPA(t, p, fmt.Sprintf("%+v", c), c.Input(), func(ts terms) (ast.Value, error) {
			t, err := inputValue(c, ts)
			if err != nil {
				return nil, err
			}
			return t.Value, nil
		})
	}
}

// A check's input is handed to the vm as a term (vm.Program.Read wraps no
// value), its own terms — the input's, the subject's, the resource's and
// its id's — are one allocation, and the resource's pairs are not grown
// for its id: four fewer than the same input built with each term its own,
// the id appended to the resource's pairs, and the value wrapped for the
// vm (as before).
func TestInputValueOwnTermsOneBlock(t *testing.T) {
	ts := newTerms(nil)
	c := permatrix.Check{Subject: "alice", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}}
	var kept *ast.Term
	each := testing.AllocsPerRun(100, func() {
		res := [][2]*ast.Term{{inputKeys.typ, ts.segment(c.Resource.Type)}}
		res = append(res, [2]*ast.Term{inputKeys.id, ast.StringTerm(c.Resource.ID)})
		kept = ast.NewTerm(ast.NewObject([2]*ast.Term{inputKeys.subject, ast.StringTerm(c.Subject)},
			[2]*ast.Term{inputKeys.system, ts.segment(c.System)}, [2]*ast.Term{inputKeys.action, ts.segment(c.Action)},
			[2]*ast.Term{inputKeys.resource, ast.ObjectTerm(res...)}))
	})
	block := testing.AllocsPerRun(100, func() {
		var err error
		if kept, err = inputValue(c, ts); err != nil {
			t.Fatal(err)
		}
	})
	if block > each-4 {
		t.Errorf("%v allocations an input, %v with each term its own", block, each)
	}
	t.Logf("%v allocations an input, %v with each term its own", block, each)
	if kept.Value.Compare(ast.MustParseTerm(`{"subject": "alice", "system": "celonis-task-mining", "action": "view_project", "resource": {"type": "project", "id": "p1"}}`).Value) != 0 {
		t.Errorf("input %v", kept)
	}
}

// jsonTerm, a write's verdict input built as AST, is ast.InterfaceToValue
// of it: for every write's input shape and for random JSON values (what a
// strict decoder gives: maps, arrays, strings, json.Number, bools, null,
// and the Go numbers a caller may put in), with the shared terms and
// without.
func TestJSONTermIsInterfaceToValue(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	a := permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}
	g := permatrix.Assignment{ID: "a1", Subject: "group:ops", System: "uipath-task-mining-cloud", Permission: "view", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	values := []any{
		map[string]any{"op": "assign", "assignment": a.Value()},
		map[string]any{"op": "unassign", "actor": "bob", "assignment": g.Value()},
		map[string]any{"op": "define_role", "role": permatrix.Role{System: "blueprism", Name: "r", Permissions: []string{"a", "b", "a"}}.Value()},
		map[string]any{"op": "add_member", "membership": map[string]any{"user": "ü\u00a0x", "group": ""}},
		[]string{"x", "analyst"},
		[]any{},
		map[string]any{},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var random func(depth int) any
	random = func(depth int) any {
		switch n := rng.IntN(12); {
		case n < 2 && depth < 4:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[[]string{"op", "role", "analyst", "x", "", "é"}[rng.IntN(6)]] = random(depth + 1)
			}
			return m
		case n < 4 && depth < 4:
			l := make([]any, rng.IntN(4))
			for i := range l {
				l[i] = random(depth + 1)
			}
			return l
		case n == 4:
			return json.Number([]string{"1", "-0", "1.5e300", "12345678901234567890"}[rng.IntN(4)])
		case n == 5:
			return []any{1.25, 7, int64(-3), uint64(9)}[rng.IntN(4)]
		case n == 6:
			return rng.IntN(2) == 0
		case n == 7:
			return nil
		default:
			return []string{"service", "celonis-task-mining", "user:ann", "", `"`, "a\x00b"}[rng.IntN(6)]
		}
	}
	for range 300 {
		values = append(values, random(0))
	}
	for _, x := range values {
		convertsAsOPA(t, p, fmt.Sprintf("%#v", x), x, func(ts terms) (ast.Value, error) {
			v, err := jsonTerm(x, ts)
			if err != nil {
				return nil, err
			}
			return v.Value, nil
		})
	}
}

// convertsAsOPA checks that build, with p's shared terms and without,
// makes the value ast.InterfaceToValue makes of x.
func convertsAsOPA(t *testing.T, p *Policy, what string, x any, build func(terms) (ast.Value, error)) {
	t.Helper()
	want, err := ast.InterfaceToValue(x)
	if err != nil {
		t.Fatal(err)
	}
	for name, ts := range map[string]terms{"shared terms": p.data.terms, "no shared terms": nil} {
		got, err := build(ts)
		if err != nil {
			t.Fatalf("%s, %s: %v", what, name, err)
		}
		if got.Compare(want) != 0 {
			t.Errorf("%s, %s:\n built                %v\n ast.InterfaceToValue %v", what, name, got, want)
		}
	}
}

// TestJSONTermAllocs: the verdict input of an import line (an assignment
// below the service scope, its subject and scope id the policy's data
// does not hold) is converted with its terms in one block and its objects'
// pairs on the stack: what is left is each object's own (ast.NewObject's)
// and each string's value the policy does not share — the keys and ops of
// a verdict input ("op", "assign") are shared as its data's are.
func TestJSONTermAllocs(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	a := permatrix.Assignment{Subject: "user:u12345", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p12345"}}
	in := map[string]any{"op": "assign", "assignment": a.Value()}
	own, objects := 0, 0.0 // strings of in that ts does not hold; the objects' allocations
	var count func(x any)
	count = func(x any) {
		switch x := x.(type) {
		case string:
			if _, ok := ts[x]; !ok && x != "op" && x != "assign" {
				own++
			}
		case map[string]any:
			pairs := make([][2]*ast.Term, 0, len(x))
			for k, v := range x {
				count(k)
				count(v)
				pairs = append(pairs, [2]*ast.Term{ast.StringTerm(k), ast.NullTerm()})
			}
			objects += testing.AllocsPerRun(10, func() { ast.NewObject(pairs...) })
		}
	}
	count(in)
	want := 1 + objects + float64(own)
	if n := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(in, ts) }); n > want {
		t.Errorf("jsonTerm of an assignment's verdict input allocates %v times, want at most %v (%v in ast.NewObject, %d strings of its own)", n, want, objects, own)
	}
}

// TestJSONTermOfAnAssignment: an assignment in a verdict input (as
// pdp's assign puts it, the struct itself) is the term of its Value —
// what the write rules read as input.assignment —, for each kind, scope
// and id, with the shared terms and without.
func TestJSONTermOfAnAssignment(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	for _, a := range []permatrix.Assignment{
		{Subject: "user:ann", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
		{ID: "a000000000042", Subject: "group:ops", System: "uipath-task-mining-cloud", Permission: "view", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
		{ID: "given", Subject: "user:ü\u00a0x", System: "blueprism", Role: "r", Scope: permatrix.Scope{Type: "resource_group", ID: `g"1`}},
		{Subject: "user:u", System: "s", Scope: permatrix.Scope{Type: "project"}},
	} {
		for _, actor := range []string{"", "bob"} {
			want := map[string]any{"op": "assign", "assignment": a.Value()}
			in := map[string]any{"op": "assign", "assignment": a}
			if actor != "" {
				want["actor"], in["actor"] = actor, actor
			}
			convertsAsOPA(t, p, fmt.Sprintf("%+v by %q", a, actor), want, func(ts terms) (ast.Value, error) {
				v, err := jsonTerm(in, ts)
				if err != nil {
					return nil, err
				}
				return v.Value, nil
			})
		}
	}
}

// TestJSONTermServiceScopeAllocs: an assignment at the service scope (half
// an import's lines: a role for the whole system) holds the service
// scope's object shared, with the shared terms: its input's scope is
// serviceScope itself, and it allocates an object less than one at a
// scope of the same shape, {"type": "project"} (refused by the write
// rules, but converted all the same), without them.
func TestJSONTermServiceScopeAllocs(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	input := func(scope permatrix.Scope) map[string]any {
		return map[string]any{"op": "assign", "assignment": permatrix.Assignment{Subject: "user:u12345", System: "celonis-task-mining", Role: "analyst", Scope: scope}}
	}
	service, project := input(permatrix.ServiceScope), input(permatrix.Scope{Type: "project"})
	v, err := jsonTerm(service, ts)
	if err != nil {
		t.Fatal(err)
	}
	if scope := v.Value.(ast.Object).Get(ast.StringTerm("assignment")).Value.(ast.Object).Get(ast.StringTerm("scope")); scope != serviceScope {
		t.Errorf("the service scope's term is %p, not serviceScope (%p)", scope, serviceScope)
	}
	pair := [][2]*ast.Term{{ast.StringTerm("type"), ast.StringTerm("service")}}
	object := testing.AllocsPerRun(10, func() { ast.NewObject(pair...) })
	shared := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(service, nil) })
	own := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(project, nil) })
	if withTerms := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(service, ts) }); withTerms > own-object {
		t.Errorf("jsonTerm of an assignment at the service scope allocates %v times with the shared terms, at {\"type\": \"project\"} %v without: the service scope's object is not shared", withTerms, own)
	}
	if shared > own {
		t.Errorf("without the shared terms, the service scope allocates %v times, {\"type\": \"project\"} %v", shared, own)
	}
}

// TestJSONTermOfAnAssignInput: an assignment's verdict input as a struct
// (AssignInput, pdp's assign) is the term of the map it stands for — op,
// assignment, the actor unless "", the groups unless nil —, with the
// shared terms and without.
func TestJSONTermOfAnAssignInput(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	for _, a := range []permatrix.Assignment{
		{Subject: "user:ann", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
		{ID: "a000000000042", Subject: "group:ops", System: "uipath-task-mining-cloud", Permission: "view", Scope: permatrix.Scope{Type: "project", ID: "p1"}},
	} {
		for _, actor := range []string{"", "bob"} {
			for _, groups := range [][]any{nil, {}, {"g1", "é"}} {
				want := map[string]any{"op": "assign", "assignment": a.Value()}
				if actor != "" {
					want["actor"] = actor
				}
				if groups != nil {
					want["groups"] = groups
				}
				in := AssignInput{Actor: actor, Assignment: a, Groups: groups}
				convertsAsOPA(t, p, fmt.Sprintf("%+v", in), want, func(ts terms) (ast.Value, error) {
					v, err := jsonTerm(in, ts)
					if err != nil {
						return nil, err
					}
					if byAddress, err := jsonTerm(&in, ts); err != nil || byAddress.Value.Compare(v.Value) != 0 {
						return nil, fmt.Errorf("by its address: %v, %v", byAddress, err)
					}
					if err != nil {
						return nil, err
					}
					if n := jsonTerms(in, ts); ts != nil && n == 0 {
						return nil, fmt.Errorf("jsonTerms counts no term")
					}
					return v.Value, nil
				})
			}
		}
	}
}

// TestJSONTermScopeShared: an assignment at a scope converted before (an
// import's lines are at a few projects each) holds that scope's object
// shared, with the shared terms, as the service scope's is: its input
// allocates no more than one at the service scope. The scopes shared are
// bounded whatever scopes the lines name.
func TestJSONTermScopeShared(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	input := func(scope permatrix.Scope) map[string]any {
		return map[string]any{"op": "assign", "assignment": permatrix.Assignment{Subject: "user:u12345", System: "celonis-task-mining", Role: "analyst", Scope: scope}}
	}
	id := func(n int) string { return fmt.Sprintf("p%d", n) } // a string of its own each time
	service := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(input(permatrix.ServiceScope), ts) })
	project := input(permatrix.Scope{Type: "project", ID: id(7)})
	again := testing.AllocsPerRun(100, func() { _, _ = jsonTerm(project, ts) })
	if again > service {
		t.Errorf("jsonTerm of an assignment at a project converted before allocates %v times, at the service scope %v: the scope's object is not shared", again, service)
	}
	scopeOf := func(in map[string]any) *ast.Term {
		v, err := jsonTerm(in, ts)
		if err != nil {
			t.Fatal(err)
		}
		return v.Value.(ast.Object).Get(ast.StringTerm("assignment")).Value.(ast.Object).Get(ast.StringTerm("scope"))
	}
	if a, b := scopeOf(input(permatrix.Scope{Type: "project", ID: id(8)})), scopeOf(input(permatrix.Scope{Type: "project", ID: id(8)})); a != b {
		t.Errorf("two inputs at project p8 hold two scope terms, %v and %v", a, b)
	}
	for n := range 3 * maxScopeTerms {
		scopeOf(input(permatrix.Scope{Type: "project", ID: id(n)}))
	}
	if n := sharedScopes(); n > maxScopeTerms {
		t.Errorf("%d scopes' terms shared, more than %d", n, maxScopeTerms)
	}
	long := permatrix.Scope{Type: "project", ID: strings.Repeat("p", permatrix.MaxIDBytes+1)}
	if a, b := scopeOf(input(long)), scopeOf(input(long)); a == b {
		t.Errorf("a scope whose id is longer than any valid one's is kept")
	}
}
