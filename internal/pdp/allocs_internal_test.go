package pdp

import (
	"testing"

	"github.com/permatrix/permatrix"
)

// TestImportLineChangeAllocs: an import line's change is made without
// formatting its line ("line N", which only a refusal's message needs):
// it allocates what its assignment's change does (the verdict input and
// the plan's closure) and the closure that notes whether the line was
// stored already — nothing else.
func TestImportLineChangeAllocs(t *testing.T) {
	l := ImportLine{Line: 12345, Assignment: permatrix.Assignment{Subject: "user:u1", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"}}}
	var held bool
	own := testing.AllocsPerRun(100, func() { _ = assign(&l.Assignment, l.Actor) })
	n := testing.AllocsPerRun(100, func() {
		if _, err := l.change(nil, &held); err != nil {
			t.Fatal(err)
		}
	})
	if n > own+1 {
		t.Errorf("an import line's change allocates %v times, want at most %v (its assignment's change, and one closure)", n, own+1)
	}
}
