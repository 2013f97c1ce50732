package opa

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/permatrix/permatrix/internal/store"
)

// TestEvalDecisionWithoutInput: a decision asked without its input is an
// error under both evaluators, not a panic (it read in.Value of a nil
// term) nor an answer.
func TestEvalDecisionWithoutInput(t *testing.T) {
	for _, ev := range []Evaluator{VM, Topdown} {
		mem := store.NewMemory()
		p := compileDefault(t, mem, WithEvaluator(ev))
		snap, err := mem.View()
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*ast.Term{nil, {}} {
			d, defined, err := p.evalDecision(context.Background(), p.decision, snap, in)
			if err == nil || d != nil || defined {
				t.Errorf("evaluator %v, input %v: a decision without its input answered %+v (defined %v, err %v), want an error", ev, in, d, defined, err)
			}
		}
		snap.Close()
	}
}
