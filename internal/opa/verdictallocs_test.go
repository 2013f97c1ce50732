package opa_test

import (
	"context"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// verdictLineAllocs are the most allocations the verdict of an operator's
// import line may take (BenchmarkVerdictImportLine's lines: a role at the
// service, a permission on a project, for a user the store does not know)
// over a tracked view of a bolt store: an import judges a million of them.
// (1 and 5 since the assignment's input is filled into pooled objects,
// assignInputs, and handed to the vm as a term with the evaluation's data
// by address.)
var verdictLineAllocs = map[string]float64{"role": 1, "permission": 5}

func TestVerdictImportLineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("-race: allocation counts are not the code's (race_on_test.go)")
	}
	db := benchStoreT(t, 100)
	p := compile(t, db)
	ctx := context.Background()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tracked := store.Track(snap)
	for kind, a := range map[string]permatrix.Assignment{
		"role":       {Subject: "user:new", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
		"permission": {Subject: "user:new", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p7"}},
	} {
		n := testing.AllocsPerRun(100, func() {
			tracked.Reset()
			v, f, err := p.Verdict(ctx, tracked, opa.AssignInput{Assignment: a})
			if err != nil || len(v)+len(f) > 0 {
				t.Fatal(err, v, f)
			}
		})
		if n > verdictLineAllocs[kind] {
			t.Errorf("the verdict of a %s line allocates %v times, at most %v wanted", kind, n, verdictLineAllocs[kind])
		}
	}
}
