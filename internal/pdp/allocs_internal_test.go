package pdp

import (
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// TestImportLineChangeAllocs: an import line's change is made without
// formatting its line ("line N", which only a refusal's message needs):
// it allocates what its assignment's change does (the verdict input and
// the plan's closure) — nothing else: whether the line was stored already
// is noted by the write (change.held), not by a closure around the plan.
func TestImportLineChangeAllocs(t *testing.T) {
	l := ImportLine{Line: 12345, Assignment: permatrix.Assignment{Subject: "user:u1", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}}}
	var held bool
	own := testing.AllocsPerRun(100, func() { changeSink = assign(&l.Assignment, l.Actor) })
	n := testing.AllocsPerRun(100, func() {
		var err error
		if changeSink, err = l.change(nil, &held); err != nil {
			t.Fatal(err)
		}
	})
	if n > own {
		t.Errorf("an import line's change allocates %v times, want at most %v (its assignment's change)", n, own)
	}
}

// TestAssignChangeAllocs: an assignment's change holds the assignment
// itself in its verdict input, not its Value (two maps, and each string
// boxed: the verdict's conversion reads the struct), in a struct of the
// change, not a map (opa.AssignInput), and plans from it, not in a
// closure: it allocates nothing. Its input is the assignment's.
func TestAssignChangeAllocs(t *testing.T) {
	a := permatrix.Assignment{Subject: "user:u1", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	if n := testing.AllocsPerRun(100, func() { changeSink = assign(&a, "bob") }); n > 0 {
		t.Errorf("an assignment's change allocates %v times, want none", n)
	}
	c := assign(&a, "bob")
	if in, ok := c.verdictIn().(*opa.AssignInput); !ok || in.Actor != "bob" || in.Assignment != a {
		t.Errorf("the change's verdict input is %#v", c.verdictIn())
	}
}

// changeSink keeps what the tests above make: a result dropped may not be
// made at all.
var changeSink change
