package opa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// TestSharedTermsAcrossAPIs: the string terms the store's leaves share
// (the layout's keys, process-wide; the bundle's strings, per Policy) are
// read by every API at once — vm and topdown decisions through the Data
// API, explanations, ad-hoc queries that build values from data.store
// (object.union, json.patch, walk, array.concat), and the Compile API's
// partial evaluation, which copy-propagates and transforms terms — and
// each answer is what it was alone. Under -race it also holds them to
// writing into no shared term.
func TestSharedTermsAcrossAPIs(t *testing.T) {
	db := tempDB(t)
	vm, td := bothEvaluators(t, db)
	c := &corpus{rng: rand.New(rand.NewPCG(1, 2)), cat: vm.Catalog, systems: vm.Catalog.IDs(),
		users: []string{"u0", "u1"}, groups: []string{"g0", "ops"}, ids: []string{"p1", "p2"}}
	c.fill(t, db, 6, 80, nil)
	ctx := context.Background()

	// A job reads its own snapshot (run opens it): a snapshot is one
	// goroutine's, as the server's are.
	type job func(snap store.Snapshot) (any, error)
	var jobs []job
	for i := range 6 {
		raw, _ := json.Marshal(c.check(i))
		var in any
		_ = json.Unmarshal(raw, &in)
		path := []string{"permatrix", "decision"}
		opts := []opa.EvalOptions{{}, {Metrics: true}}
		if i == 0 || i == 3 {
			// A full explanation costs a hundred decisions (its trace, a
			// tenth of a second here, ten times that under -race): two
			// checks' with and without Pretty keep the API in the mix.
			opts = append(opts, opa.EvalOptions{Explain: opa.ExplainFull, Pretty: i%2 == 0})
		}
		for _, p := range []*opa.Policy{vm, td} {
			for _, o := range opts {
				jobs = append(jobs, func(snap store.Snapshot) (any, error) {
					ev, err := p.EvalData(ctx, snap, path, &in, o)
					if err != nil {
						return nil, err
					}
					return []any{ev.Defined, ev.Result}, nil
				})
			}
		}
	}
	for _, q := range []string{
		`x := object.union(data.store.grants["user:u0"], {"celonis-task-mining": {"role": {"analyst": {"service": {"kind": "mutated"}}}}})`,
		`x := json.patch(data.store.grants["user:u0"], [{"op": "add", "path": "/zz", "value": "mutated"}])`,
		`x := [p | walk(data.store.grants, [p, v]); v == "role"]`,
		`x := object.union_n([data.store.grants["user:u0"], data.store.grants["user:u1"], {"a": "mutated"}])`,
		`x := json.remove(data.store, ["grants/user:u0"])`,
		`x := [k | some k, _ in data.store.grants]`,
	} {
		for _, p := range []*opa.Policy{vm, td} {
			jobs = append(jobs, func(snap store.Snapshot) (any, error) {
				ev, err := p.EvalQuery(ctx, snap, q, nil, opa.EvalOptions{})
				if err != nil {
					return nil, err
				}
				return ev.Result, nil
			})
		}
	}
	for _, q := range []string{
		`data.store.grants[input.p] == x; input.q == x`,
		`x := data.store.grants["user:u0"]; input.a == x`,
		`some k; data.store.grants["user:u0"][k] == input.b`,
	} {
		for _, p := range []*opa.Policy{vm, td} {
			jobs = append(jobs, func(snap store.Snapshot) (any, error) {
				ev, err := p.Compile(ctx, snap, opa.CompileRequest{Query: q, Unknowns: []string{"input"}}, opa.EvalOptions{})
				if err != nil {
					return nil, err
				}
				b, err := json.Marshal(ev.Result)
				return string(b), err
			})
		}
	}
	run := func(j job) (any, error) {
		snap, err := db.View()
		if err != nil {
			return nil, err
		}
		defer snap.Close()
		return j(snap)
	}
	alone := make([]string, len(jobs))
	for i, j := range jobs {
		v, err := run(j)
		alone[i] = fmt.Sprintf("%#v %v", v, err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(jobs))
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 2 {
				for k := range jobs {
					i := (k*7 + g*13 + r*5) % len(jobs)
					v, err := run(jobs[i])
					if got := fmt.Sprintf("%#v %v", v, err); got != alone[i] {
						errs <- fmt.Sprintf("job %d:\n concurrent %.300s\n alone      %.300s", i, got, alone[i])
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// And again alone, after all that.
	for i, j := range jobs {
		v, err := run(j)
		if got := fmt.Sprintf("%#v %v", v, err); !reflect.DeepEqual(got, alone[i]) {
			t.Fatalf("job %d changed:\n after  %.300s\n before %.300s", i, got, alone[i])
		}
	}
}
