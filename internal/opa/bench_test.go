package opa_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// benchState is a store of n users, each an analyst with a project grant,
// and a tenth of them in a group holding a service grant.
func benchState(n int) *permatrix.State {
	st := &permatrix.State{Revision: uint64(n)}
	for i := range n {
		u := fmt.Sprintf("user:u%d", i)
		st.Assignments = append(st.Assignments,
			permatrix.Assignment{ID: fmt.Sprintf("r%d", i), Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope},
			permatrix.Assignment{ID: fmt.Sprintf("p%d", i), Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}})
		if i%10 == 0 {
			st.Memberships = append(st.Memberships, permatrix.Membership{Group: "ops", User: fmt.Sprintf("u%d", i)})
		}
	}
	st.Assignments = append(st.Assignments, permatrix.Assignment{ID: "g", Subject: "group:ops", System: "celonis-task-mining", Permission: "edit_client_settings", Scope: permatrix.ServiceScope})
	return st
}

func benchCheck(i int) map[string]any {
	return permatrix.Check{Subject: fmt.Sprintf("u%d", i%10000), System: "celonis-task-mining", Action: "view_project",
		Resource: &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}.Input()
}

// BenchmarkDecide is the server's path: one prepared query shared by all
// requests, data kept as AST values, input passed parsed.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("assignments=%d", 2*n), func(b *testing.B) {
			e := load(b, benchState(n))
			p := e.Current()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := p.Decide(ctx, benchCheck(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecideParallel is BenchmarkDecide from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	e := load(b, benchState(10000))
	p := e.Current()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := p.Decide(ctx, benchCheck(i)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkBaselineUnprepared is the baseline: what a naive embedding does
// per request — rego.New with the compiled modules and a plain (JSON
// values) store, then Eval with a Go-map input.
func BenchmarkBaselineUnprepared(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("assignments=%d", 2*n), func(b *testing.B) {
			bundle, err := opa.LoadDefault()
			if err != nil {
				b.Fatal(err)
			}
			modules := map[string]*ast.Module{}
			for _, m := range bundle.Modules {
				modules[m.Path] = m.Parsed
			}
			compiler := ast.MustCompileModules(func() map[string]string {
				out := map[string]string{}
				for _, m := range bundle.Modules {
					out[m.Path] = string(m.Raw)
				}
				return out
			}())
			data := map[string]any{}
			for k, v := range bundle.Data {
				data[k] = v
			}
			data["store"] = benchState(n).Document()
			store := inmem.NewFromObject(roundTrip(b, data))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				rs, err := rego.New(rego.Query(opa.DecisionQuery), rego.Compiler(compiler), rego.Store(store), rego.Input(benchCheck(i))).Eval(ctx)
				if err != nil || len(rs) != 1 {
					b.Fatal(err, rs)
				}
			}
		})
	}
}
