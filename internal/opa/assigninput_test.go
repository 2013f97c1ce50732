package opa

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// An assignment's verdict input filled into the same objects again and
// again (assignInputs) is, after each fill, the term jsonTerm makes of it
// and InterfaceToValue of its map: equal, with the same hash (an object
// caches its hash, summed as values are inserted), whatever the inputs
// before it were — a role's or a permission's, with an actor or not, at
// the service or a scope, strings the policy's data holds or not.
func TestFilledAssignInputIsJSONTerm(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(l ...string) string { return l[rng.IntN(len(l))] }
	filled := newAssignInputs()
	for i := range 2000 {
		a := permatrix.Assignment{
			ID:      pick("", "", "a000000000001", fmt.Sprintf("a%012d", i)),
			Subject: pick("user:ann", "group:ops", fmt.Sprintf("user:u%d", i), "analyst", ""),
			System:  pick("celonis-task-mining", "blueprism", "not-a-system"),
		}
		if rng.IntN(2) == 0 {
			a.Role = pick("analyst", "admin", fmt.Sprintf("custom-%d", i%3))
		} else {
			a.Permission = pick("edit_users", "view", "x")
		}
		switch rng.IntN(3) {
		case 0:
			a.Scope = permatrix.ServiceScope
		case 1:
			a.Scope = permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", rng.IntN(5))}
		default:
			a.Scope = permatrix.Scope{Type: pick("resource_group", "space"), ID: pick("x", "celonis-task-mining")}
		}
		in := AssignInput{Actor: pick("", "", "bob", fmt.Sprintf("u%d", i)), Assignment: a}
		got := filled.fill(&in, ts)
		want, err := jsonTerm(in, ts)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{"op": "assign", "assignment": a.Value()}
		if in.Actor != "" {
			m["actor"] = in.Actor
		}
		asMap := ast.MustInterfaceToValue(m)
		if got.Value.Compare(want.Value) != 0 || got.Value.Compare(asMap) != 0 {
			t.Fatalf("input %d %+v:\n filled  %v\n jsonTerm %v\n its map  %v", i, in, got, want, asMap)
		}
		if got.Hash() != want.Hash() || got.Hash() != asMap.Hash() {
			t.Fatalf("input %d %+v: filled hash %d, jsonTerm's %d, its map's %d", i, in, got.Hash(), want.Hash(), asMap.Hash())
		}
	}
}

// TestFilledAssignInputAllocs: filling an input whose strings the policy
// shares but the subject (an import line's for a new user) makes one
// allocation, the subject's string as a value; none when the subject is
// the one filled last.
func TestFilledAssignInputAllocs(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	filled := newAssignInputs()
	subjects := []string{"user:new1", "user:new2"}
	for _, a := range []permatrix.Assignment{
		{Subject: "user:new", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
		{Subject: "user:new", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p7"}},
	} {
		in := AssignInput{Assignment: a}
		i := 0
		n := testing.AllocsPerRun(100, func() {
			in.Assignment.Subject = subjects[i%2]
			i++
			filled.fill(&in, ts)
		})
		if n > 1 {
			t.Errorf("%+v: filled with %v allocations, at most 1 wanted", a, n)
		}
		if n = testing.AllocsPerRun(100, func() { filled.fill(&in, ts) }); n != 0 {
			t.Errorf("%+v filled again: %v allocations, none wanted", a, n)
		}
	}
}
