package opa

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestFilledCheckInputIsInputValue: a check's input filled into the same
// objects again and again (checkInputs) is, value and hash, inputValue's of
// the check and Check.Input converted by OPA — over 3 000 random checks of
// every shape it fills (no resource, a type, a type and an id), hostile
// strings among them (the input's own keys, empty, huge, the bundle's
// names in another case), each shape following every other.
func TestFilledCheckInputIsInputValue(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	rng := rand.New(rand.NewPCG(38, 7))
	pick := func(l ...string) string { return l[rng.IntN(len(l))] }
	hostile := []string{"", "subject", "system", "action", "resource", "type", "id", "service", "project",
		"celonis-task-mining", "Celonis-Task-Mining", "view_project", strings.Repeat("x", 4096), "ü\u00a0x", "null"}
	filled := newCheckInputs()
	for i := range 3000 {
		c := permatrix.Check{
			Subject: pick(append(hostile, fmt.Sprintf("u%d", i), "u1")...),
			System:  pick(append(hostile, "blueprism", "uipath-orchestrator")...),
			Action:  pick(append(hostile, "edit_process", fmt.Sprintf("a%d", i%5))...),
		}
		switch rng.IntN(3) {
		case 1:
			c.Resource = &permatrix.Scope{Type: pick(append(hostile, "resource_group")...)}
		case 2:
			c.Resource = &permatrix.Scope{Type: pick(append(hostile, "resource_group")...), ID: pick("p1", fmt.Sprintf("p%d", i), "x", "id", "subject")}
		}
		got := filled.fill(c, ts)
		want, err := inputValue(c, ts)
		if err != nil {
			t.Fatal(err)
		}
		converted := ast.MustInterfaceToValue(c.Input())
		if got.Value.Compare(want.Value) != 0 || got.Value.Compare(converted) != 0 {
			t.Fatalf("check %d %+v:\n filled     %v\n inputValue %v\n converted  %v", i, c, got, want, converted)
		}
		if got.Hash() != want.Hash() || got.Hash() != converted.Hash() {
			t.Fatalf("check %d %+v: filled hash %d, inputValue's %d, converted %d", i, c, got.Hash(), want.Hash(), converted.Hash())
		}
	}
}

// TestFilledCheckInputAllocs: filling a check's input whose system, action
// and scope type the policy shares makes an allocation for each string it
// does not (the subject's and the id's, as values), none for one filled
// last; inputValue made ten.
func TestFilledCheckInputAllocs(t *testing.T) {
	p := compileDefault(t, store.NewMemory())
	ts := p.data.terms
	filled := newCheckInputs()
	cs := []permatrix.Check{
		{Subject: "u1", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "u2", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p2"}},
	}
	i := 0
	n := testing.AllocsPerRun(100, func() {
		filled.fill(cs[i%2], ts)
		i++
	})
	same := testing.AllocsPerRun(100, func() { filled.fill(cs[0], ts) })
	built := testing.AllocsPerRun(100, func() {
		if _, err := inputValue(cs[0], ts); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("filled: %v allocations, %v for the check filled last; inputValue %v", n, same, built)
	if n > 2 || same > 0 {
		t.Errorf("filled: %v allocations (want at most 2), %v for the check filled last (want 0)", n, same)
	}
}
