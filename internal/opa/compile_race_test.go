package opa_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/permatrix/permatrix/internal/opa"
)

// TestCompileAPIDoesNotWriteBundleData: the bundle's data is one value
// every evaluation of a Policy reads (dataStore hands it out as it is); the
// Compile API's partial evaluation inlines a part of it into its result and
// copy-propagates that in place (ast.Transform sets the Value of each term
// it walks). Run with -race: it must write no term a concurrent decision
// reads or another Compile's answer encodes.
func TestCompileAPIDoesNotWriteBundleData(t *testing.T) {
	compileBesideDecisions(t, `x := data.systems["celonis-task-mining"]; input.a == x`)
}

// TestCompileAPIDoesNotWriteSharedTerms: a store value the Compile API
// inlines is the evaluation's own only while leaves' terms are not shared
// with other evaluations (OPA's own interned terms excepted). Run with
// -race: a Compile that inlines data.store's leaves, while a decision reads
// the same leaves and another Compile's answer is encoded, must share no
// term one of them writes.
func TestCompileAPIDoesNotWriteSharedTerms(t *testing.T) {
	compileBesideDecisions(t, `x := data.store.grants["user:u0"]; input.a == x`)
}

// compileBesideDecisions runs the Compile API on query (unknown: input)
// from two goroutines while a third decides checks, all on one Policy.
func compileBesideDecisions(t *testing.T, query string) {
	db := tempDB(t)
	p := compile(t, db, opa.WithEvaluator(opa.VM))
	c := &corpus{rng: rand.New(rand.NewPCG(1, 2)), cat: p.Catalog, systems: p.Catalog.IDs(),
		users: []string{"u0"}, groups: []string{"g0"}, ids: []string{"p1"}}
	c.fill(t, db, 2, 30, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap, err := db.View()
			if err != nil {
				t.Error(err)
				return
			}
			defer snap.Close()
			for i := range 30 {
				if g == 2 {
					raw, _ := json.Marshal(c.check(i))
					var in any
					_ = json.Unmarshal(raw, &in)
					in.(map[string]any)["subject"] = "u0"
					if _, err := p.EvalData(ctx, snap, []string{"permatrix", "decision"}, &in, opa.EvalOptions{}); err != nil {
						t.Error(err)
					}
					continue
				}
				ev, err := p.Compile(ctx, snap, opa.CompileRequest{Query: query, Unknowns: []string{"input"}}, opa.EvalOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := json.Marshal(ev.Result); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}
