package opa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// benchStore is a bolt store of n users, each an analyst with a project
// grant, and a tenth of them in a group holding a service grant.
func benchStore(b *testing.B, n int) *bolt.DB { return benchStoreT(b, n) }

func benchStoreT(b testing.TB, n int) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	const chunk = 5000
	for lo := 0; lo < n; lo += chunk {
		_, err := store.Update(ctx, db, func(tx *store.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				u := fmt.Sprintf("user:u%d", i)
				for _, a := range []permatrix.Assignment{
					{Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
					{Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}},
				} {
					if err := tx.CreateAssignment(&a); err != nil {
						return err
					}
				}
				if i%10 == 0 {
					if err := tx.AddMember(permatrix.Membership{Group: "ops", User: fmt.Sprintf("u%d", i)}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	_, err = store.Update(ctx, db, func(tx *store.Tx) error {
		return tx.CreateAssignment(&permatrix.Assignment{Subject: "group:ops", System: "celonis-task-mining", Permission: "edit_client_settings", Scope: permatrix.ServiceScope})
	})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func benchCheck(i int) permatrix.Check {
	return permatrix.Check{Subject: fmt.Sprintf("u%d", (i*7919)%10000), System: "celonis-task-mining", Action: "view_project",
		Resource: &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
}

// BenchmarkDecide is the server's path: one prepared query shared by all
// requests, data.store read from a snapshot of the bolt file.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 10000} {
		for _, ev := range evaluators {
			b.Run(fmt.Sprintf("assignments=%d/evaluator=%s", 2*n, ev), func(b *testing.B) {
				db := benchStore(b, n)
				p := compile(b, db, opa.WithEvaluator(ev))
				ctx := context.Background()
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					snap, err := db.View()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := p.Decide(ctx, snap, benchCheck(i)); err != nil {
						b.Fatal(err)
					}
					snap.Close()
				}
			})
		}
	}
}

// evaluators are the evaluators a benchmark compares.
var evaluators = []opa.Evaluator{opa.VM, opa.Topdown}

// BenchmarkDecideParallel is BenchmarkDecide from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	db := benchStore(b, 10000)
	p := compile(b, db)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer() // the store and the compile above are not a decision
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			snap, err := db.View()
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := p.Decide(ctx, snap, benchCheck(i)); err != nil {
				b.Error(err)
				return
			}
			snap.Close()
			i++
		}
	})
}

// BenchmarkBaselineUnprepared is the baseline: what a naive embedding does
// per request — rego.New with the compiled modules over OPA's in-memory
// store holding the exported document, then Eval with a Go-map input.
func BenchmarkBaselineUnprepared(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("assignments=%d", 2*n), func(b *testing.B) {
			db := benchStore(b, n)
			bundle, err := opa.ReadDefault()
			if err != nil {
				b.Fatal(err)
			}
			p := compile(b, db)
			_ = p
			modules := map[string]string{}
			for _, m := range bundleModules(b, bundle) {
				modules[m.path] = m.raw
			}
			compiler := ast.MustCompileModules(modules)
			data := map[string]any{}
			for _, k := range []string{"systems"} {
				data[k] = p.BundleData(k)
			}
			snap, _ := db.View()
			var buf bytes.Buffer
			if err := store.WriteDocument(&buf, snap); err != nil {
				b.Fatal(err)
			}
			snap.Close()
			var doc map[string]any
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				b.Fatal(err)
			}
			data["store"] = doc["store"]
			st := inmem.NewFromObject(data)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				rs, err := rego.New(rego.Query(opa.DecisionQuery), rego.Compiler(compiler), rego.Store(st), rego.Input(benchCheck(i).Input())).Eval(ctx)
				if err != nil || len(rs) != 1 {
					b.Fatal(err, rs)
				}
			}
		})
	}
}

type module struct{ path, raw string }

func bundleModules(b *testing.B, bundle *opa.Bundle) []module {
	var out []module
	for path, raw := range bundle.ModuleSources() {
		out = append(out, module{path, raw})
	}
	return out
}

// BenchmarkVerdict is the write rules' judgement of one import line (an
// operator's, no actor): a Celonis analyst role or project permission for a
// user the store does not know yet, over a store of 20,000 assignments.
func BenchmarkVerdict(b *testing.B) {
	for _, ev := range evaluators {
		b.Run("evaluator="+string(ev), func(b *testing.B) { benchVerdict(b, ev) })
	}
}

func benchVerdict(b *testing.B, ev opa.Evaluator) {
	db := benchStore(b, 10000)
	p := compile(b, db, opa.WithEvaluator(ev))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		snap, err := db.View()
		if err != nil {
			b.Fatal(err)
		}
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:new%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}
		if i%2 == 1 {
			a = permatrix.Assignment{Subject: a.Subject, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
		}
		v, f, err := p.Verdict(ctx, snap, map[string]any{"op": "assign", "assignment": a.Value()})
		if err != nil || len(v)+len(f) > 0 {
			b.Fatal(err, v, f)
		}
		snap.Close()
	}
}

// BenchmarkVerdictImportLine is the write rules' judgement of one import
// line as an import judges it ahead (pdp's prejudge): its input an
// AssignInput, read through a tracked view of the store (20,000
// assignments), the lines a role and a project permission for users the
// store does not know yet, in turn. steps/op: the verdict's vm statements,
// a figure no load moves.
func BenchmarkVerdictImportLine(b *testing.B) {
	db := benchStore(b, 10000)
	p := compile(b, db)
	ctx := context.Background()
	snap, err := db.View()
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	tracked := store.Track(snap)
	steps := p.VerdictSteps()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := permatrix.Assignment{Subject: fmt.Sprintf("user:new%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}
		if i%2 == 1 {
			a = permatrix.Assignment{Subject: a.Subject, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
		}
		tracked.Reset()
		v, f, err := p.Verdict(ctx, tracked, opa.AssignInput{Assignment: a})
		if err != nil || len(v)+len(f) > 0 {
			b.Fatal(err, v, f)
		}
	}
	b.ReportMetric(float64(p.VerdictSteps()-steps)/float64(b.N), "steps/op")
}

// BenchmarkEvalDataDecision is BenchmarkDecide through the Data API (POST
// /v1/data/permatrix/decision, as an OPA client asks): the input as JSON
// values, the answer as the API's document.
func BenchmarkEvalDataDecision(b *testing.B) {
	db := benchStore(b, 10000)
	for _, ev := range evaluators {
		b.Run("evaluator="+string(ev), func(b *testing.B) {
			p := compile(b, db, opa.WithEvaluator(ev))
			ctx := context.Background()
			inputs := make([]any, 100)
			for i := range inputs {
				raw, err := json.Marshal(benchCheck(i))
				if err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(raw, &inputs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				snap, err := db.View()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.EvalData(ctx, snap, []string{"permatrix", "decision"}, &inputs[i%len(inputs)], opa.EvalOptions{}); err != nil {
					b.Fatal(err)
				}
				snap.Close()
			}
		})
	}
}
